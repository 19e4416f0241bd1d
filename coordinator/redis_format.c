/*
 * The Redis publisher's formats (include/afc/redis_pub.h, docs/redis.md): redis:// URLs and the
 * primary record's JSON. Pure: no I/O, no clock; jansson for decoding.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "coordinator/redis_internal.h"

const char *afc_redis_outcome_name(enum afc_redis_outcome o)
{
    static const char *const names[] = {
#define AFC_REDIS_OUTCOME_NAME(name, text) text,
        AFC_REDIS_OUTCOMES(AFC_REDIS_OUTCOME_NAME)
#undef AFC_REDIS_OUTCOME_NAME
    };
    if ((unsigned)o >= sizeof names / sizeof names[0]) {
        return "unknown";
    }
    return names[o];
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* Copy [s, s+n) %XX-decoded into out. */
static int pct_decode(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '%') {
            if (i + 2 >= n) {
                return -1;
            }
            int hi = hexval(s[i + 1]), lo = hexval(s[i + 2]);
            if (hi < 0 || lo < 0) {
                return -1;
            }
            c = (char)(hi * 16 + lo);
            i += 2;
        }
        if (o + 1 >= cap) {
            return -1;
        }
        out[o++] = c;
    }
    out[o] = '\0';
    return 0;
}

static int parse_number(const char *s, size_t n, unsigned max, unsigned *out)
{
    unsigned long v = 0;
    if (n == 0 || n > 10) {
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }
        v = v * 10 + (unsigned long)(s[i] - '0');
    }
    if (v > max) {
        return -1;
    }
    *out = (unsigned)v;
    return 0;
}

static int parse_userinfo(const char *s, size_t n, struct afc_redis_url *u, struct afc_err *err)
{
    const char *colon = memchr(s, ':', n);
    if (colon == NULL) { /* "redis://secret@host": a password alone, as redis-cli reads it */
        colon = s - 1;
    } else if (pct_decode(s, (size_t)(colon - s), u->user, sizeof u->user) != 0) {
        return afc_err_set(err, AFC_ECONFIG, "redis url: bad user name");
    }
    if (pct_decode(colon + 1, (size_t)(s + n - colon - 1), u->password, sizeof u->password) != 0) {
        return afc_err_set(err, AFC_ECONFIG, "redis url: bad password (too long or bad %%XX)");
    }
    return 0;
}

static int parse_hostport(const char *s, size_t n, struct afc_redis_url *u, struct afc_err *err)
{
    const char *port = NULL;
    size_t host_len;
    if (n > 0 && s[0] == '[') { /* [IPv6]:port */
        const char *close = memchr(s, ']', n);
        if (close == NULL) {
            return afc_err_set(err, AFC_ECONFIG, "redis url: unterminated [address]");
        }
        host_len = (size_t)(close - s) - 1;
        if (host_len == 0 || host_len >= sizeof u->host) {
            return afc_err_set(err, AFC_ECONFIG, "redis url: bad [address]");
        }
        memcpy(u->host, s + 1, host_len);
        u->host[host_len] = '\0';
        if (close + 1 < s + n) {
            if (close[1] != ':') {
                return afc_err_set(err, AFC_ECONFIG, "redis url: junk after [address]");
            }
            port = close + 2;
        }
    } else {
        const char *colon = memchr(s, ':', n);
        host_len = colon ? (size_t)(colon - s) : n;
        if (host_len == 0 || host_len >= sizeof u->host) {
            return afc_err_set(err, AFC_ECONFIG, "redis url: missing or too long host");
        }
        memcpy(u->host, s, host_len);
        u->host[host_len] = '\0';
        port = colon ? colon + 1 : NULL;
    }
    if (port != NULL &&
        (parse_number(port, (size_t)(s + n - port), 65535, &u->port) != 0 || u->port == 0)) {
        return afc_err_set(err, AFC_ECONFIG, "redis url: bad port");
    }
    return 0;
}

int afc_redis_url_parse(const char *url, struct afc_redis_url *out, struct afc_err *err)
{
    static const char scheme[] = "redis://";
    memset(out, 0, sizeof *out);
    out->port = 6379;
    if (url == NULL || strncmp(url, "rediss://", 9) == 0) {
        return afc_err_set(err, AFC_ECONFIG,
                           "redis url: TLS (rediss://) is not supported by hiredis 0.14");
    }
    if (strncmp(url, scheme, sizeof scheme - 1) != 0) {
        return afc_err_set(err, AFC_ECONFIG, "redis url: expected redis://host[:port][/db]");
    }
    const char *s = url + sizeof scheme - 1;
    const char *slash = strchr(s, '/');
    const char *end = slash ? slash : s + strlen(s);
    const char *at = memchr(s, '@', (size_t)(end - s));
    if (at != NULL) {
        int rv = parse_userinfo(s, (size_t)(at - s), out, err);
        if (rv != 0) {
            return rv;
        }
        s = at + 1;
    }
    int rv = parse_hostport(s, (size_t)(end - s), out, err);
    if (rv != 0) {
        return rv;
    }
    if (slash != NULL && slash[1] != '\0' &&
        parse_number(slash + 1, strlen(slash + 1), 1u << 20, &out->db) != 0) {
        return afc_err_set(err, AFC_ECONFIG, "redis url: bad database number '%s'", slash + 1);
    }
    return 0;
}

/* Append s as a JSON string. false when it does not fit. */
bool redis_put_json_string(char *buf, size_t cap, size_t *len, const char *s)
{
    size_t n = *len;
    if (n + 1 >= cap) {
        return false;
    }
    buf[n++] = '"';
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[8];
        size_t k;
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            k = 2;
        } else if (c < 0x20) {
            k = (size_t)snprintf(esc, sizeof esc, "\\u%04x", c);
        } else {
            esc[0] = (char)c;
            k = 1;
        }
        if (n + k + 1 >= cap) {
            return false;
        }
        memcpy(buf + n, esc, k);
        n += k;
    }
    buf[n++] = '"';
    buf[n] = '\0';
    *len = n;
    return true;
}

bool redis_put_raw(char *buf, size_t cap, size_t *len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(buf + *len, cap - *len, fmt, ap);
    va_end(ap);
    if (k < 0 || (size_t)k >= cap - *len) {
        return false;
    }
    *len += (size_t)k;
    return true;
}

bool redis_put_record(char *buf, size_t cap, size_t *len, const struct afc_redis_primary *r)
{
    return redis_put_raw(buf, cap, len, "\"epoch\":%" PRIu64 ",\"region\":", r->epoch) &&
           redis_put_json_string(buf, cap, len, r->region) &&
           redis_put_raw(buf, cap, len, ",\"host\":") &&
           redis_put_json_string(buf, cap, len, r->host) &&
           redis_put_raw(buf, cap, len, ",\"port\":%u,\"since\":%" PRId64, r->port, r->since_ms);
}

int afc_redis_primary_encode(const struct afc_redis_primary *rec, char *buf, size_t cap)
{
    size_t len = 0;
    if (rec->region[0] == '\0') {
        return AFC_EINVAL;
    }
    if (cap == 0 || !redis_put_raw(buf, cap, &len, "{") || !redis_put_record(buf, cap, &len, rec) ||
        !redis_put_raw(buf, cap, &len, "}")) {
        return AFC_ETOOBIG;
    }
    return (int)len;
}

static int copy_member(json_t *o, const char *name, char *out, size_t cap, struct afc_err *err)
{
    json_t *v = json_object_get(o, name);
    if (v == NULL) {
        out[0] = '\0';
        return 0;
    }
    if (!json_is_string(v) || json_string_length(v) >= cap) {
        return afc_err_set(err, AFC_EMALFORMED, "\"%s\" is not a string (of < %zu bytes)", name,
                           cap);
    }
    memcpy(out, json_string_value(v), json_string_length(v) + 1);
    return 0;
}

static int decode_object(json_t *o, struct afc_redis_primary *out, struct afc_err *err)
{
    json_t *epoch = json_object_get(o, "epoch"), *region = json_object_get(o, "region");
    json_t *port = json_object_get(o, "port"), *since = json_object_get(o, "since");
    if (!json_is_integer(epoch) || json_integer_value(epoch) < 0) {
        return afc_err_set(err, AFC_EMALFORMED, "no \"epoch\" (an integer >= 0)");
    }
    if (!json_is_string(region)) {
        return afc_err_set(err, AFC_EMALFORMED, "no \"region\" (a string)");
    }
    int rv = copy_member(o, "region", out->region, sizeof out->region, err);
    if (rv == 0) {
        rv = copy_member(o, "host", out->host, sizeof out->host, err);
    }
    if (rv != 0) {
        return rv;
    }
    if (port != NULL && (!json_is_integer(port) || json_integer_value(port) < 0 ||
                         json_integer_value(port) > 65535)) {
        return afc_err_set(err, AFC_EMALFORMED, "\"port\" is not an integer in 0..65535");
    }
    if (since != NULL && !json_is_integer(since)) {
        return afc_err_set(err, AFC_EMALFORMED, "\"since\" is not an integer");
    }
    out->epoch = (uint64_t)json_integer_value(epoch);
    out->port = port ? (unsigned)json_integer_value(port) : 0;
    out->since_ms = since ? (int64_t)json_integer_value(since) : 0;
    return 0;
}

int afc_redis_primary_decode(const char *json, size_t len, struct afc_redis_primary *out,
                             struct afc_err *err)
{
    json_error_t jerr;
    memset(out, 0, sizeof *out);
    json_t *o = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (o == NULL) {
        return afc_err_set(err, AFC_EMALFORMED, "not JSON: %s", jerr.text);
    }
    int rv = json_is_object(o) ? decode_object(o, out, err)
                               : afc_err_set(err, AFC_EMALFORMED, "not a JSON object");
    json_decref(o);
    return rv;
}
