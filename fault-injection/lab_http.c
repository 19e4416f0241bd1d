/*
 * The harness's one HTTP client (libcurl, blocking): the lab talks to the coordinators', the
 * PowerDNS's and the fault layer's APIs with it, and so does the scenario runner (run_http).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "lab.h"

struct answer {
    char *p;
    size_t n;
};

static size_t grow_cb(char *data, size_t size, size_t nmemb, void *arg)
{
    struct answer *b = arg;
    size_t n = size * nmemb;
    char *p = realloc(b->p, b->n + n + 1);
    if (p == NULL)
        return 0; /* curl fails the transfer */
    memcpy(p + b->n, data, n);
    b->p = p;
    b->n += n;
    p[b->n] = '\0';
    return n;
}

long lab_http_request(const char *method, const char *url, const char *header, const char *body,
                      long timeout_ms, char **out)
{
    struct answer b = {NULL, 0};
    struct curl_slist *headers = NULL;
    long status = 0;
    CURL *h = curl_easy_init();
    if (out != NULL)
        *out = NULL;
    if (h == NULL)
        return 0;
    if (header != NULL)
        headers = curl_slist_append(headers, header);
    if (body != NULL) {
        headers = curl_slist_append(headers, "Content-Type: application/json");
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms < 1000 ? timeout_ms : 1000L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, grow_cb);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    if (curl_easy_perform(h) == CURLE_OK)
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(h);
    curl_slist_free_all(headers);
    if (out != NULL && status != 0)
        *out = b.p;
    else
        free(b.p);
    return status;
}

long lab_http(const char *method, const char *url, const char *api_key, const char *body,
              long timeout_ms, char *out)
{
    char header[160], *answer = NULL;
    if (api_key != NULL)
        snprintf(header, sizeof header, "X-API-Key: %s", api_key);
    long status = lab_http_request(method, url, api_key != NULL ? header : NULL, body, timeout_ms,
                                   out != NULL ? &answer : NULL);
    explicit_bzero(header, sizeof header);
    if (out != NULL)
        snprintf(out, LAB_HTTP_OUT_MAX, "%s", answer != NULL ? answer : "");
    free(answer);
    return status;
}
