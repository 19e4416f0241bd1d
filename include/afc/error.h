/*
 * Error codes shared by every module.
 *
 * Convention: 0 is success, a negative AFC_E* value is an error. raft's positive codes, libpq's and
 * hiredis's are converted at their boundary. A function that can fail for more than one reason
 * takes a trailing `struct afc_err *` and wraps the message on the way up with afc_err_wrap():
 * "promote eu-west-1: pg_promote: server closed the connection".
 */
#ifndef AFC_ERROR_H
#define AFC_ERROR_H

#include <stdarg.h>

/* X(name, value, message) — the enum and its message table cannot drift. */
#define AFC_ERRORS(X)                                                                              \
    X(AFC_ENOMEM, -1, "out of memory")                                                             \
    X(AFC_EINVAL, -2, "invalid argument")                                                          \
    X(AFC_EMALFORMED, -3, "malformed input")                                                       \
    X(AFC_EVERSION, -4, "unknown format version")                                                  \
    X(AFC_ETOOBIG, -5, "input too large")                                                          \
    X(AFC_ENOTLEADER, -6, "not the leader")                                                        \
    X(AFC_ENOTREADY, -7, "leader not ready (barrier not applied in this term)")                    \
    X(AFC_ESTALEEPOCH, -8, "stale epoch")                                                          \
    X(AFC_ENOQUORUM, -9, "no quorum")                                                              \
    X(AFC_ENOCANDIDATE, -10, "no candidate qualifies")                                             \
    X(AFC_EUNKNOWNMEMBER, -11, "unknown member")                                                   \
    X(AFC_ELEADERSHIPLOST, -12, "leadership lost; outcome unknown")                                \
    X(AFC_ESHUTDOWN, -13, "shutting down")                                                         \
    X(AFC_EIO, -14, "input/output error")                                                          \
    X(AFC_ELOCKED, -15, "data directory locked by another process")                                \
    X(AFC_ECORRUPT, -16, "corrupt data")                                                           \
    X(AFC_EDIVERGED, -17, "replicated state diverged")                                             \
    X(AFC_ECONFIG, -18, "invalid configuration")                                                   \
    X(AFC_EALREADY, -19, "already in that state")                                                  \
    X(AFC_EINTERNAL, -20, "internal error")                                                        \
    X(AFC_ESTALESEQ, -21, "delayed or replayed report (sequence number not newer)")

enum afc_error {
#define AFC_ERR_ENUM(name, value, msg) name = value,
    AFC_ERRORS(AFC_ERR_ENUM)
#undef AFC_ERR_ENUM
};

/* Static message for a code; "unknown error" for anything not in the table. Never NULL. */
const char *afc_strerror(int code);

/* Short stable name ("AFC_ESTALEEPOCH") for logs and JSON; "AFC_EUNKNOWN" if not in the table. */
const char *afc_errname(int code);

#define AFC_ERR_MSG_MAX 512

/* A caller-allocated error: code plus a human message built up layer by layer. */
struct afc_err {
    int code;
    char msg[AFC_ERR_MSG_MAX];
};

/* Set code and message (printf-style); returns code so callers can `return afc_err_set(...)`.
 * err may be NULL (then only the code is returned). */
int afc_err_set(struct afc_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefix the existing message with "<context>: " (printf-style); returns err->code (0 if err NULL).
 */
int afc_err_wrap(struct afc_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
