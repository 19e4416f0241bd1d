/* Error codes and layered messages (include/afc/error.h). */
#include <stdio.h>
#include <string.h>

#include "afc/error.h"

const char *afc_strerror(int code)
{
    switch (code) {
#define AFC_ERR_CASE(name, value, msg)                                                             \
    case name:                                                                                     \
        return msg;
        AFC_ERRORS(AFC_ERR_CASE)
#undef AFC_ERR_CASE
    case 0:
        return "success";
    default:
        return "unknown error";
    }
}

const char *afc_errname(int code)
{
    switch (code) {
#define AFC_ERR_NAME(name, value, msg)                                                             \
    case name:                                                                                     \
        return #name;
        AFC_ERRORS(AFC_ERR_NAME)
#undef AFC_ERR_NAME
    case 0:
        return "OK";
    default:
        return "AFC_EUNKNOWN";
    }
}

int afc_err_set(struct afc_err *err, int code, const char *fmt, ...)
{
    if (err == NULL) {
        return code;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    err->code = code;
    return code;
}

int afc_err_wrap(struct afc_err *err, const char *fmt, ...)
{
    if (err == NULL) {
        return 0;
    }
    /* Build "<prefix>: <old>" in a buffer large enough for both, then keep what fits: the
     * innermost detail is what gets cut when a message grows too long. */
    char joined[2 * AFC_ERR_MSG_MAX + 2];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(joined, AFC_ERR_MSG_MAX, fmt, ap);
    va_end(ap);
    if (n < 0) {
        n = 0;
    } else if (n >= AFC_ERR_MSG_MAX) {
        n = AFC_ERR_MSG_MAX - 1;
    }
    joined[n++] = ':';
    joined[n++] = ' ';
    size_t old_len = strnlen(err->msg, AFC_ERR_MSG_MAX - 1);
    memcpy(joined + n, err->msg, old_len);
    joined[(size_t)n + old_len] = '\0';
    memcpy(err->msg, joined, AFC_ERR_MSG_MAX - 1);
    err->msg[AFC_ERR_MSG_MAX - 1] = '\0';
    return err->code;
}
