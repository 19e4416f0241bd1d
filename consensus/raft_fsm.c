/*
 * The struct raft_fsm (version 1) adapter: libraft calls apply/snapshot/restore, this file hands
 * the bytes to the pure state machine (consensus/state.c) and reports to optional hooks.
 *
 * Data flow: raft commits an entry → fsm_apply(buf) → afc_fsm_apply(index, bytes) → result cast to
 * a pointer → raft_apply_cb on the proposing leader (followers drop it). Snapshots are the
 * canonical afc_state encoding in one raft_malloc'd buffer.
 *
 * 0.15 contract (raft-0.15.md §3 "FSM contract"):
 *  - apply gets no index: it is raft_last_applied() + 1 while apply runs (0.15 bumps last_applied
 *    after apply returns).
 *  - apply must return 0 even for rejected commands: a non-zero return stops the apply loop and
 *    retries the same entry forever (a wedged node).
 *  - the result reaches the leader only, so it is never heap memory: an enum cast to a pointer.
 *  - `buf` belongs to raft: the pure fsm only reads it during the call and keeps no pointer.
 *  - restore owns buf->base only on success (then it must raft_free it); a non-zero return makes
 *    raft refuse the snapshot and keep ownership.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "afc/consensus.h"
#include "afc/log.h"

static struct afc_raft_fsm *adapter_of(struct raft_fsm *rf)
{
    return rf->data;
}

static int fsm_apply(struct raft_fsm *rf, const struct raft_buffer *buf, void **result)
{
    struct afc_raft_fsm *a = adapter_of(rf);
    struct afc_err why = {0};
    uint64_t index = raft_last_applied(a->raft) + 1;
    /* The local monotonic apply time: a RENEW copies it into lease_applied_ms (§4.2). */
    a->fsm->apply_clock_ms = (uint64_t)a->raft->io->time(a->raft->io);
    enum afc_apply_result r = afc_fsm_apply(a->fsm, index, buf->base, buf->len, &why);

    if (r == AFC_APPLY_RETRY) {
        /* Out of memory: a non-zero return makes raft apply this index again later, which is
         * what we want here (rejecting would make this node's state differ from the others). */
        afc_warn("raft apply index=%llu: out of memory, will retry", (unsigned long long)index);
        return RAFT_NOMEM;
    }
    if (r == AFC_APPLY_REJECTED_MALFORMED || r == AFC_APPLY_REJECTED_VERSION) {
        /* The same bytes are rejected on every node, so this is not divergence; but it means a
         * proposer wrote something we cannot read (e.g. a newer build), which an operator must
         * see. */
        afc_warn("raft apply index=%llu: command rejected: %s", (unsigned long long)index,
                 why.msg[0] ? why.msg : afc_apply_result_name(r));
    }
    if (a->hooks.applied != NULL) {
        a->hooks.applied(a->hooks.data, index, r, &why);
    }
    *result = (void *)(uintptr_t)r;
    return 0;
}

/* Copy `len` bytes into a single raft_malloc'd buffer array, as v1 snapshot() requires (raft
 * frees both the array and each base). */
static int snapshot_bufs(const void *data, size_t len, struct raft_buffer *bufs[], unsigned *n)
{
    struct raft_buffer *b = raft_malloc(sizeof *b);

    if (b == NULL) {
        return RAFT_NOMEM;
    }
    b->base = raft_malloc(len);
    if (b->base == NULL) {
        raft_free(b);
        return RAFT_NOMEM;
    }
    memcpy(b->base, data, len);
    b->len = len;
    *bufs = b;
    *n = 1;
    return 0;
}

static int fsm_snapshot(struct raft_fsm *rf, struct raft_buffer *bufs[], unsigned *n_bufs)
{
    struct afc_raft_fsm *a = adapter_of(rf);
    void *enc = NULL;
    size_t len = 0;
    int rv = afc_state_encode(&a->fsm->state, &enc, &len);

    if (rv != 0) {
        /* Not fatal for raft: it retries at the next threshold crossing. */
        afc_warn("raft snapshot at applied_index=%llu: encode: %s",
                 (unsigned long long)a->fsm->state.applied_index, afc_strerror(rv));
        return rv == AFC_ENOMEM ? RAFT_NOMEM : RAFT_INVALID;
    }
    rv = snapshot_bufs(enc, len, bufs, n_bufs);
    free(enc);
    return rv;
}

static int fsm_restore(struct raft_fsm *rf, struct raft_buffer *buf)
{
    struct afc_raft_fsm *a = adapter_of(rf);
    struct afc_err why = {0};
    /* struct afc_state is ~14 KiB (bounded history): keep it off the loop's stack. */
    struct afc_state *s = calloc(1, sizeof *s);
    uint64_t index;
    int rv;

    if (s == NULL) {
        return RAFT_NOMEM;
    }
    rv = afc_state_decode(buf->base, buf->len, s, &why);
    if (rv != 0) {
        /* Refuse: raft keeps the buffer and does not install the snapshot. Silently starting
         * from an empty state would be a divergence the digest check may only catch later. */
        afc_error("raft restore snapshot (%zu bytes): %s", buf->len,
                  why.msg[0] ? why.msg : afc_strerror(rv));
        free(s);
        return RAFT_MALFORMED;
    }
    afc_fsm_restore(a->fsm, s);
    index = s->applied_index;
    free(s);
    raft_free(buf->base);
    afc_info("raft restored snapshot: applied_index=%llu", (unsigned long long)index);
    if (a->hooks.restored != NULL) {
        a->hooks.restored(a->hooks.data, index);
    }
    return 0;
}

void afc_raft_fsm_init(struct afc_raft_fsm *a, struct afc_fsm *fsm, const struct afc_fsm_hooks *h)
{
    memset(a, 0, sizeof *a);
    a->fsm = fsm;
    if (h != NULL) {
        a->hooks = *h;
    }
    a->raft_fsm.version = 1; /* v1: raft frees snapshot buffers; state is tiny (§3) */
    a->raft_fsm.data = a;
    a->raft_fsm.apply = fsm_apply;
    a->raft_fsm.snapshot = fsm_snapshot;
    a->raft_fsm.restore = fsm_restore;
}

void afc_raft_fsm_set_raft(struct afc_raft_fsm *a, struct raft *r)
{
    a->raft = r;
}
