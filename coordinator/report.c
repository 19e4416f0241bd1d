/*
 * Reports to the leader (coordinator/report.h).
 *
 * A report is either a local proposal (this node is the ready leader) or an HTTP POST through the
 * daemon's libcurl multi (forward.c) to the leader's /v1/internal/propose. Network reports are
 * kept in a list so that shutdown can complete them: fwd_multi_close() drops transfers without
 * calling them back. A local proposal's callback can run synchronously only through the node's
 * close, never from inside afc_node_propose, so the "never from inside this call" guarantee holds.
 */
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>

#include "afc/log.h"
#include "coordinator/daemon.h"
#include "coordinator/http_internal.h"
#include "coordinator/report.h"

struct afc_report {
    struct afc_daemon *d;
    afc_report_cb cb;
    void *data;
    struct afc_propose prop; /* local */
    struct fwd_req *f;       /* remote, NULL once answered */
    struct afc_report *prev, *next;
    enum afc_op op;
};

/* Network reports in flight hang off d->reports, for afc_report_abort_all. */
static void unlink_report(struct afc_report *r)
{
    if (r->prev != NULL) {
        r->prev->next = r->next;
    } else if (r->d->reports == r) {
        r->d->reports = r->next;
    }
    if (r->next != NULL) {
        r->next->prev = r->prev;
    }
    r->prev = r->next = NULL;
}

static void complete(struct afc_report *r, int status, enum afc_apply_result result)
{
    if (r->cb != NULL) {
        r->cb(r->data, status, result);
    }
    free(r);
}

int64_t afc_wall_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void afc_cmd_start(struct afc_cmd *cmd, enum afc_op op, const char *by)
{
    memset(cmd, 0, sizeof *cmd);
    cmd->op = op;
    cmd->wall_ms = afc_wall_now_ms();
    snprintf(cmd->by, sizeof cmd->by, "%s", by);
}

void afc_sign_hex(const unsigned char *secret, size_t secret_len, const void *body, size_t len,
                  char out[AFC_SIGNATURE_HEX + 1])
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    HMAC(EVP_sha256(), secret, (int)secret_len, body, len, mac, &mac_len);
    for (unsigned i = 0; i < 32; i++) {
        snprintf(out + 2 * i, 3, "%02x", i < mac_len ? mac[i] : 0);
    }
    out[AFC_SIGNATURE_HEX] = '\0';
}

bool afc_signature_ok(const unsigned char *secret, size_t secret_len, const void *body, size_t len,
                      const char *authorization)
{
    const size_t scheme = strlen(AFC_SIGNATURE_SCHEME);
    if (authorization == NULL || secret_len == 0 ||
        strncasecmp(authorization, AFC_SIGNATURE_SCHEME, scheme) != 0 ||
        authorization[scheme] != ' ') {
        return false;
    }
    const char *got = authorization + scheme + 1;
    char want[AFC_SIGNATURE_HEX + 1];
    afc_sign_hex(secret, secret_len, body, len, want);
    return strlen(got) == AFC_SIGNATURE_HEX && CRYPTO_memcmp(got, want, AFC_SIGNATURE_HEX) == 0;
}

/* ---- local ---- */

static void local_done_cb(struct afc_propose *p, int status, enum afc_apply_result result)
{
    complete(p->data, status, result);
}

/* ---- remote ---- */

static enum afc_apply_result result_from_name(const char *name)
{
    for (int r = AFC_APPLY_OK; r <= AFC_APPLY_RETRY; r++) {
        if (name != NULL && strcmp(name, afc_apply_result_name((enum afc_apply_result)r)) == 0) {
            return (enum afc_apply_result)r;
        }
    }
    return AFC_APPLY_REJECTED_INVALID;
}

static void remote_done_cb(void *arg, const struct fwd_result *res)
{
    struct afc_report *r = arg;
    r->f = NULL;
    unlink_report(r);
    if (res->curl_code != 0) {
        afc_debug("report %s to the leader: %s", afc_op_name(r->op), res->error);
        complete(r, AFC_EIO, AFC_APPLY_OK);
        return;
    }
    json_t *doc = json_loadb(res->body != NULL ? res->body : "", res->len, 0, NULL);
    const char *result = json_string_value(json_object_get(doc, "result"));
    int status = res->status == 200 ? 0 : res->status == 503 ? AFC_ENOTLEADER : AFC_EIO;
    if (res->status != 200) {
        afc_debug("report %s to the leader: HTTP %ld", afc_op_name(r->op), res->status);
    }
    enum afc_apply_result ar = result_from_name(result);
    json_decref(doc);
    complete(r, status, ar);
}

static int send_remote(struct afc_report *r, const struct afc_cmd *cmd)
{
    struct afc_daemon *d = r->d;
    afc_region_id lid = afc_node_leader_id(&d->node);
    const struct afc_node_member *m = lid ? afc_node_member(&d->node, lid) : NULL;
    struct fwd_multi *fm = http_daemon_fwd(d);
    if (m == NULL || lid == d->cfg.region_id || m->api_url[0] == '\0' || fm == NULL) {
        return AFC_ENOTLEADER;
    }
    void *body;
    size_t len;
    int rv = afc_cmd_encode(cmd, &body, &len);
    if (rv != 0) {
        return rv;
    }
    char url[AFC_URL_MAX + 32], auth[AFC_SIGNATURE_HEX + 32], sig[AFC_SIGNATURE_HEX + 1];
    snprintf(url, sizeof url, "%s/v1/internal/propose", m->api_url);
    afc_sign_hex(d->cfg.cluster_secret, d->cfg.cluster_secret_len, body, len, sig);
    snprintf(auth, sizeof auth, "%s %s", AFC_SIGNATURE_SCHEME, sig);
    r->f = fwd_post(fm, url, auth, body, len, remote_done_cb, r);
    free(body);
    if (r->f == NULL) {
        return AFC_EIO;
    }
    r->next = d->reports;
    if (d->reports != NULL) {
        d->reports->prev = r;
    }
    d->reports = r;
    return 0;
}

int afc_report_send(struct afc_daemon *d, const struct afc_cmd *cmd, afc_report_cb cb, void *data)
{
    if (d->stopping) {
        return AFC_ESHUTDOWN;
    }
    struct afc_report *r = calloc(1, sizeof *r);
    if (r == NULL) {
        return AFC_ENOMEM;
    }
    *r = (struct afc_report){.d = d, .cb = cb, .data = data, .op = cmd->op};
    int rv;
    if (afc_node_is_ready(&d->node)) {
        r->prop.data = r;
        rv = afc_node_propose(&d->node, &r->prop, cmd, local_done_cb);
    } else {
        rv = send_remote(r, cmd);
    }
    if (rv != 0) {
        free(r);
    }
    return rv;
}

void afc_report_abort_all(struct afc_daemon *d)
{
    while (d->reports != NULL) {
        struct afc_report *r = d->reports;
        unlink_report(r);
        fwd_cancel(r->f);
        complete(r, AFC_ESHUTDOWN, AFC_APPLY_OK);
    }
}
