/*
 * An asynchronous HTTP client on the daemon's libuv loop (libcurl's multi interface), for the DNS
 * providers, webhooks and follower → leader forwarding. Nothing blocks the loop: connects, TLS,
 * name resolution (curl's threaded resolver) and I/O all run under curl_multi_socket_action().
 *
 * Every request: http/https only, no redirects followed, proxies from the environment ignored, a
 * total timeout, a response body limit. The callback runs exactly once per started request, on
 * the loop, unless the request was cancelled first (then never).
 */
#ifndef AFC_HTTP_CLIENT_H
#define AFC_HTTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

#include <uv.h>

#include "afc/error.h"

#define AFC_HTTP_MAX_HEADERS 16
#define AFC_HTTP_RESP_MAX    (1024 * 1024) /* a larger answer fails the request */

struct afc_http_client;
struct afc_http_call;

struct afc_http_header {
    const char *name;  /* "Content-Type" */
    const char *value; /* copied when the request starts */
};

struct afc_http_request {
    const char *method; /* "GET", "POST", "PATCH", "PUT", "DELETE" */
    const char *url;
    struct afc_http_header headers[AFC_HTTP_MAX_HEADERS];
    unsigned n_headers;
    const char *body; /* may be NULL; copied when the request starts */
    size_t body_len;
    unsigned timeout_ms;         /* total; 0 = 5000 */
    unsigned connect_timeout_ms; /* 0 = min(2000, timeout_ms) */
};

struct afc_http_response {
    int curl_code;    /* CURLE_OK (0) when an HTTP answer arrived, whatever its status */
    long status;      /* HTTP status, 0 when none arrived */
    char error[256];  /* curl's message when curl_code != 0 */
    const char *body; /* NUL-terminated; valid only during the callback */
    size_t body_len;
    long retry_after_s; /* the Retry-After header in seconds (delta form), -1 when absent */
    double total_s;     /* transfer time, for logs */
    /* curl_code != 0 and not one byte of the request was sent (resolve or connect failed or timed
     * out, TLS handshake failed): the server cannot have acted on it, a retry is safe. */
    bool nothing_sent;
};

typedef void (*afc_http_cb)(void *data, const struct afc_http_response *res);

/* A client on `loop`; NULL when out of memory. */
struct afc_http_client *afc_http_client_new(uv_loop_t *loop);
/* Cancels every request still running (their callbacks never run) and closes the loop handles;
 * `done` (may be NULL) runs once the last handle is closed, then the client is freed. */
void afc_http_client_close(struct afc_http_client *c, void (*done)(void *arg), void *arg);

/* Starts a request. Returns the call (to cancel it), or NULL with *err set; then cb never runs:
 *   AFC_EINVAL     the URL is not http:// or https://, an unknown method, a header name or value
 *                  holding CR, LF or NUL (no header injection), a NULL field that is required
 *   AFC_ETOOBIG    more than AFC_HTTP_MAX_HEADERS headers
 *   AFC_ENOMEM     out of memory (or curl refused the transfer)
 *   AFC_ESHUTDOWN  the client is closing
 * (Not `afc_http_start`: that name is the daemon's API server, coordinator/daemon.h.) */
struct afc_http_call *afc_http_call_start(struct afc_http_client *c,
                                          const struct afc_http_request *req, afc_http_cb cb,
                                          void *data, struct afc_err *err);
/* The callback will not run; the transfer is aborted. Only before the callback has run. */
void afc_http_cancel(struct afc_http_call *call);

#endif
