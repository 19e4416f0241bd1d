/*
 * The in-database fence's pure decisions (fence_core.h).
 */
#include "fence_core.h"

#include <ctype.h>
#include <stddef.h>

#define FENCE_VERDICT_NAME(name, text) [name] = text,
static const char *const verdict_names[] = {FENCE_VERDICTS(FENCE_VERDICT_NAME)};
#undef FENCE_VERDICT_NAME

const char *fence_verdict_name(enum fence_verdict v)
{
    if ((unsigned)v >= sizeof verdict_names / sizeof verdict_names[0])
        return "unknown";
    return verdict_names[v];
}

bool fence_is_open(const struct fence_state *s, int64_t now_ns)
{
    return s->open && now_ns < s->deadline_ns;
}

enum fence_verdict fence_decide_commit(const struct fence_state *s, int64_t now_ns,
                                       uint64_t session_epoch)
{
    if (!s->open && s->epoch == 0)
        return FENCE_NEVER_ARMED;
    if (!s->open)
        return FENCE_CLOSED;
    if (now_ns >= s->deadline_ns)
        return FENCE_EXPIRED;
    if (session_epoch != 0 && session_epoch != s->epoch)
        return FENCE_EPOCH_MISMATCH;
    return FENCE_ALLOW;
}

int64_t fence_remaining_ms(const struct fence_state *s, int64_t now_ns)
{
    if (!fence_is_open(s, now_ns))
        return 0;
    return (s->deadline_ns - now_ns) / FENCE_NS_PER_MS;
}

int64_t fence_expired_ms(const struct fence_state *s, int64_t now_ns)
{
    if (now_ns <= s->deadline_ns)
        return 0;
    return (now_ns - s->deadline_ns) / FENCE_NS_PER_MS;
}

enum fence_renew_result fence_compute_renew(const struct fence_state *s, uint64_t epoch,
                                            int64_t deadline_ns, struct fence_state *next)
{
    *next = *s;
    if (epoch <= s->closed_epoch)
        return FENCE_RENEW_CLOSED;
    if (epoch < s->epoch)
        return FENCE_RENEW_STALE;
    next->epoch = epoch;
    next->deadline_ns = deadline_ns;
    next->open = true;
    return FENCE_RENEWED;
}

void fence_compute_close(const struct fence_state *s, uint64_t epoch, struct fence_state *next)
{
    *next = *s;
    if (epoch > next->epoch)
        next->epoch = epoch;
    if (epoch > next->closed_epoch)
        next->closed_epoch = epoch;
    next->open = false;
    next->deadline_ns = 0;
}

int64_t fence_compute_deadline(int64_t now_ns, int32_t ttl_ms, bool has_sent_at, int64_t sent_at_ms)
{
    int64_t start = now_ns;
    /* sent_at_ms <= now_ns / 1e6 keeps the multiplication below in range */
    if (has_sent_at && sent_at_ms >= 0 && sent_at_ms <= now_ns / FENCE_NS_PER_MS)
        start = sent_at_ms * FENCE_NS_PER_MS;
    if (ttl_ms <= 0)
        return start;
    int64_t ttl_ns = (int64_t)ttl_ms * FENCE_NS_PER_MS; /* < 2^31 * 10^6 < 2^52 */
    if (start > INT64_MAX - ttl_ns)
        return INT64_MAX;
    return start + ttl_ns;
}

int fence_parse_epoch(const char *text, uint64_t *out)
{
    uint64_t v = 0;
    const char *p = text;
    if (p == NULL)
        return -1;
    while (isspace((unsigned char)*p))
        p++;
    if (!isdigit((unsigned char)*p))
        return -1;
    for (; isdigit((unsigned char)*p); p++) {
        unsigned digit = (unsigned)(*p - '0');
        if (v > ((uint64_t)INT64_MAX - digit) / 10)
            return -1;
        v = v * 10 + digit;
    }
    while (isspace((unsigned char)*p))
        p++;
    if (*p != '\0')
        return -1;
    *out = v;
    return 0;
}
