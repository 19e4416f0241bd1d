/*
 * Small jansson helpers for the HTTP API: error bodies, rendering, timestamps and the one request
 * body the API accepts ({"reason": "..."} for pause/resume).
 *
 * Every builder returns NULL on out-of-memory rather than aborting; http_reply_json turns a NULL
 * document into a plain 500.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "coordinator/http_internal.h"

json_t *json_error_new(const char *code, const char *message)
{
    return json_pack("{s:s, s:s}", "error", code, "message", message ? message : "");
}

char *json_render(const json_t *doc, size_t *len)
{
    char *text = json_dumps(doc, JSON_COMPACT | JSON_ENSURE_ASCII);
    if (text == NULL) {
        return NULL;
    }
    size_t n = strlen(text);
    char *out = realloc(text, n + 2);
    if (out == NULL) {
        free(text);
        return NULL;
    }
    out[n] = '\n';
    out[n + 1] = '\0';
    *len = n + 1;
    return out;
}

json_t *json_string_or_null(const char *s)
{
    if (s == NULL || s[0] == '\0') {
        return json_null();
    }
    return json_string(s);
}

json_t *json_string_lossy(const char *s)
{
    json_t *j = json_string(s);
    if (j != NULL) {
        return j;
    }
    char *copy = strdup(s);
    if (copy == NULL) {
        return NULL;
    }
    for (char *c = copy; *c; c++) {
        if ((unsigned char)*c >= 0x80) {
            *c = '?';
        }
    }
    j = json_string(copy);
    free(copy);
    return j;
}

void json_format_time(int64_t wall_ms, char *buf, size_t len)
{
    time_t secs = (time_t)(wall_ms / 1000);
    int ms = (int)(wall_ms % 1000);
    if (ms < 0) {
        ms += 1000;
        secs -= 1;
    }
    struct tm tm;
    if (gmtime_r(&secs, &tm) == NULL) {
        snprintf(buf, len, "1970-01-01T00:00:00.000Z");
        return;
    }
    size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, len - n, ".%03dZ", ms);
}

static bool is_blank(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n') {
            return false;
        }
    }
    return true;
}

int json_parse_reason(const char *body, size_t len, char *reason, size_t cap, const char **why)
{
    reason[0] = '\0';
    if (body == NULL || is_blank(body, len)) {
        return 0;
    }
    json_error_t jerr;
    /* Without JSON_ALLOW_NUL jansson rejects "\u0000", so the reason is a clean C string. */
    json_t *doc = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (doc == NULL) {
        *why = "body is not valid JSON";
        return -1;
    }
    int rc = 0;
    json_t *r = json_object_get(doc, "reason");
    if (!json_is_object(doc)) {
        *why = "body must be a JSON object";
        rc = -1;
    } else if (r != NULL && !json_is_null(r) && !json_is_string(r)) {
        *why = "\"reason\" must be a string";
        rc = -1;
    } else if (json_is_string(r) && json_string_length(r) >= cap) {
        *why = "\"reason\" is too long";
        rc = -1;
    } else if (json_is_string(r)) {
        snprintf(reason, cap, "%s", json_string_value(r));
    }
    json_decref(doc);
    return rc;
}
