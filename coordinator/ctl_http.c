/*
 * aragoractl's HTTP client: one request against the endpoint list (the next endpoint is tried only
 * when one cannot be reached), the server's JSON errors printed as is, and the bearer token.
 * Declarations in coordinator/ctl.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coordinator/ctl.h"

static size_t write_cb(char *data, size_t size, size_t nmemb, void *arg)
{
    struct response *r = arg;
    size_t n = size * nmemb;
    if (r->len + n > CTL_MAX_BODY)
        return 0;
    char *b = realloc(r->body, r->len + n + 1);
    if (b == NULL)
        return 0;
    memcpy(b + r->len, data, n);
    r->len += n;
    b[r->len] = '\0';
    r->body = b;
    return n;
}

/* Errors after which the next endpoint is worth trying: the node is down, frozen or not there. */
static bool is_unreachable(CURLcode rc)
{
    switch (rc) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_GOT_NOTHING:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
        return true;
    default:
        return false;
    }
}

/* One attempt against one endpoint. Returns the curl code; fills r on CURLE_OK. */
CURLcode ctl_request_one(const char *endpoint, const char *method, const char *path,
                         const char *body, const char *token, struct response *r, long total_ms)
{
    char url[1024];
    char auth[600];
    struct curl_slist *hdr = NULL;
    CURLcode rc = CURLE_OUT_OF_MEMORY;
    CURL *h = curl_easy_init();
    if (h == NULL)
        return rc;
    snprintf(url, sizeof url, "%s%s", endpoint, path);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, CTL_CONNECT_TIMEOUT_MS);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, total_ms);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "aragoractl/" AFC_VERSION);
    hdr = curl_slist_append(hdr, "Accept: application/json");
    if (token != NULL && token[0] != '\0') {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
        hdr = curl_slist_append(hdr, auth);
    }
    if (strcmp(method, "POST") == 0) {
        hdr = curl_slist_append(hdr, "Content-Type: application/json");
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body != NULL ? body : "{}");
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    rc = curl_easy_perform(h);
    if (rc == CURLE_OK)
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(hdr);
    curl_easy_cleanup(h);
    return rc;
}

/*
 * Send METHOD PATH to the first endpoint that answers. Returns EXIT_OK with r filled (any HTTP
 * status), EXIT_UNREACHABLE when none answered, EXIT_FAILED on another transport error.
 */
int ctl_request(const struct ctl *ctl, const char *method, const char *path, const char *body,
                const char *token, struct response *r)
{
    for (unsigned i = 0; i < ctl->n_endpoints; i++) {
        memset(r, 0, sizeof *r);
        CURLcode rc =
            ctl_request_one(ctl->endpoints[i], method, path, body, token, r, CTL_TOTAL_TIMEOUT_MS);
        if (rc == CURLE_OK) {
            r->endpoint = ctl->endpoints[i];
            if (ctl->verbose)
                fprintf(stderr, "aragoractl: %s %s%s: HTTP %ld\n", method, ctl->endpoints[i], path,
                        r->status);
            return EXIT_OK;
        }
        free(r->body);
        r->body = NULL;
        if (!is_unreachable(rc)) {
            fprintf(stderr, "aragoractl: %s %s%s: %s\n", method, ctl->endpoints[i], path,
                    curl_easy_strerror(rc));
            return EXIT_FAILED;
        }
        if (ctl->verbose || i + 1 == ctl->n_endpoints)
            fprintf(stderr, "aragoractl: %s: unreachable (%s)\n", ctl->endpoints[i],
                    curl_easy_strerror(rc));
    }
    fprintf(stderr, "aragoractl: no endpoint reachable (tried %u)\n", ctl->n_endpoints);
    return EXIT_UNREACHABLE;
}

/* Print the server's JSON error (or the raw body) for a non-2xx answer. Returns EXIT_FAILED. */
int ctl_report_http_error(const struct response *r)
{
    json_t *doc = json_loadb(r->body != NULL ? r->body : "", r->len, 0, NULL);
    const char *code = json_string_value(json_object_get(doc, "error"));
    const char *msg = json_string_value(json_object_get(doc, "message"));
    if (msg != NULL)
        fprintf(stderr, "aragoractl: %s: HTTP %ld %s: %s\n", r->endpoint, r->status,
                code != NULL ? code : "error", msg);
    else
        fprintf(stderr, "aragoractl: %s: HTTP %ld%s%.200s\n", r->endpoint, r->status,
                r->len > 0 ? ": " : "", r->body != NULL ? r->body : "");
    json_decref(doc);
    return EXIT_FAILED;
}

/* GET a JSON document. On success *out is a new reference. */
int ctl_get_json(const struct ctl *ctl, const char *path, json_t **out, struct response *r)
{
    int rc = ctl_request(ctl, "GET", path, NULL, NULL, r);
    if (rc != EXIT_OK)
        return rc;
    if (r->status < 200 || r->status > 299) {
        rc = ctl_report_http_error(r);
        free(r->body);
        return rc;
    }
    json_error_t jerr;
    *out = json_loadb(r->body != NULL ? r->body : "", r->len, 0, &jerr);
    if (*out == NULL || !json_is_object(*out)) {
        fprintf(stderr, "aragoractl: %s%s: invalid JSON answer: %s\n", r->endpoint, path,
                jerr.text);
        json_decref(*out);
        free(r->body);
        return EXIT_FAILED;
    }
    return EXIT_OK;
}

const char *ctl_str_or(json_t *o, const char *key, const char *dflt)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s != NULL ? s : dflt;
}

long long ctl_int_or(json_t *o, const char *key, long long dflt)
{
    json_t *v = json_object_get(o, key);
    return json_is_integer(v) ? (long long)json_integer_value(v) : dflt;
}

/* Read the first line of a token file into buf. */
static int read_token_file(const char *path, char *buf, size_t size)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "aragoractl: token file %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (fgets(buf, (int)size, f) == NULL)
        buf[0] = '\0';
    fclose(f);
    buf[strcspn(buf, "\r\n")] = '\0';
    if (buf[0] == '\0') {
        fprintf(stderr, "aragoractl: token file %s is empty\n", path);
        return -1;
    }
    return 0;
}

/* --token-file, then ARAGORA_API_TOKEN, then ARAGORA_API_TOKEN_FILE. "" when none is given. */
int ctl_load_token(const struct ctl *ctl, char *buf, size_t size)
{
    const char *env = getenv("ARAGORA_API_TOKEN");
    const char *env_file = getenv("ARAGORA_API_TOKEN_FILE");
    buf[0] = '\0';
    if (ctl->token_file != NULL)
        return read_token_file(ctl->token_file, buf, size);
    if (env != NULL && env[0] != '\0') {
        snprintf(buf, size, "%s", env);
        return 0;
    }
    if (env_file != NULL && env_file[0] != '\0')
        return read_token_file(env_file, buf, size);
    return 0;
}
