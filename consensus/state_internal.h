/*
 * Module-internal interface between the two halves of the state machine: state.c (fsm, snapshot,
 * the original ops) and state_failover.c (the failover ops and the failover part of the snapshot).
 *
 * Not in include/afc/. Pure: libc + msgpack.
 */
#ifndef AFC_CONSENSUS_STATE_INTERNAL_H
#define AFC_CONSENSUS_STATE_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include <msgpack.h>

#include "afc/state.h"

/* Append a history event (ring; the oldest is overwritten). The detail is cut to fit. */
__attribute__((format(printf, 5, 6))) void state_record_event(struct afc_state *s, uint64_t index,
                                                              int64_t wall_ms, const char *kind,
                                                              const char *fmt, ...);

/* Apply handlers of AFC_OP_OBSERVE, _RENEW, _FAILOVER_BEGIN, _FAILOVER_STEP (same contract as the
 * other handlers: deterministic, state unchanged unless the result is OK). */
enum afc_apply_result state_apply_observe(struct afc_fsm *fsm, uint64_t index,
                                          const struct afc_cmd *c, struct afc_err *why);
enum afc_apply_result state_apply_renew(struct afc_fsm *fsm, uint64_t index,
                                        const struct afc_cmd *c, struct afc_err *why);
enum afc_apply_result state_apply_failover_begin(struct afc_fsm *fsm, uint64_t index,
                                                 const struct afc_cmd *c, struct afc_err *why);
enum afc_apply_result state_apply_failover_step(struct afc_fsm *fsm, uint64_t index,
                                                const struct afc_cmd *c, struct afc_err *why);
enum afc_apply_result state_apply_routed(struct afc_fsm *fsm, uint64_t index,
                                         const struct afc_cmd *c, struct afc_err *why);
enum afc_apply_result state_apply_published(struct afc_fsm *fsm, uint64_t index,
                                            const struct afc_cmd *c, struct afc_err *why);
enum afc_apply_result state_apply_sync_set(struct afc_fsm *fsm, uint64_t index,
                                           const struct afc_cmd *c, struct afc_err *why);

/* Snapshot keys "obs", "lease", "failover", "failovers", and "sync" once a primary has set it
 * (state_failover_key_count() key/value pairs, canonical). Decode treats each absent key as empty
 * (a snapshot written before these existed). */
unsigned state_failover_key_count(const struct afc_state *s);
int state_pack_failover(msgpack_packer *pk, const struct afc_state *s);
int state_decode_failover(const msgpack_object *m, struct afc_state *s, struct afc_err *why);
bool state_failover_is_encodable(const struct afc_state *s);

#endif
