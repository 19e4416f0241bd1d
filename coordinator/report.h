/*
 * Getting a command into the Raft log from any node.
 *
 * Only the ready leader may propose. A coordinator that observed something about PostgreSQL,
 * renews its lease or finished a failover step, and is not the leader, sends the encoded command
 * to the leader's `POST /v1/internal/propose`, signed with HMAC-SHA256 over the body with the
 * cluster secret (`Authorization: AragoraCluster <hex>`); the leader checks the signature and the
 * op (only OBSERVE, RENEW, FAILOVER_STEP and NOTE come this way), proposes it, and answers once it
 * is applied. On the leader itself the command is proposed directly.
 */
#ifndef AFC_REPORT_H
#define AFC_REPORT_H

#include <stddef.h>
#include <stdint.h>

#include "afc/state.h"

struct afc_daemon;

#define AFC_SIGNATURE_HEX    64 /* hex digits of an HMAC-SHA256 */
#define AFC_SIGNATURE_SCHEME "AragoraCluster"

/* status: 0 = committed and applied (on the leader) with `result`; AFC_ENOTLEADER (no leader
 * known, or the node asked is not the leader); AFC_EIO (the leader could not be reached or gave a
 * bad answer); AFC_ELEADERSHIPLOST (outcome unknown); AFC_ESHUTDOWN. */
typedef void (*afc_report_cb)(void *data, int status, enum afc_apply_result result);

/* Send `cmd` (copied) to the leader. On 0, cb runs exactly once (from the loop, never from inside
 * this call); on an error return it never runs. cb may be NULL (fire and forget). */
int afc_report_send(struct afc_daemon *d, const struct afc_cmd *cmd, afc_report_cb cb, void *data);

/* Complete every report still waiting on the network with AFC_ESHUTDOWN (before the HTTP client
 * closes). Reports proposed locally complete through the node's close. */
void afc_report_abort_all(struct afc_daemon *d);

/* Start a command: zeroed, `op`, the wall clock now (for history display only, never decisions)
 * and `by` (this node's region). The one place every proposer begins a command. */
void afc_cmd_start(struct afc_cmd *cmd, enum afc_op op, const char *by);

/* Wall-clock milliseconds since the epoch: for display and sequence seeds, never for timeouts
 * (those use the loop's monotonic clock). */
int64_t afc_wall_now_ms(void);

/* HMAC-SHA256(secret, body) as lowercase hex, NUL-terminated (out has AFC_SIGNATURE_HEX + 1). */
void afc_sign_hex(const unsigned char *secret, size_t secret_len, const void *body, size_t len,
                  char out[AFC_SIGNATURE_HEX + 1]);

/* Constant-time check of an "Authorization: AragoraCluster <hex>" header value. */
bool afc_signature_ok(const unsigned char *secret, size_t secret_len, const void *body, size_t len,
                      const char *authorization);

#endif
