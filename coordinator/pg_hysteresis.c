/*
 * PostgreSQL probe results → reported observations. Pure: libc only, no clock, no I/O.
 *
 * A raw probe result (afc_pg_sample) goes through HAProxy-style rise/fall counters into the
 * filtered view (afc_pg_hyst.obs); afc_pg_hyst_update() then compares it with what was last
 * reported and says whether the difference matters (ARCHITECTURE.md §4.4: observations reach the
 * Raft log only when they change). Also here: parsing the health query's row, so that malformed
 * answers are unit-tested without a server.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "afc/pg_probe.h"

static const char *const reason_names[] = {
#define AFC_PG_REASON_NAME(e, s) s,
    AFC_PG_REASONS(AFC_PG_REASON_NAME)
#undef AFC_PG_REASON_NAME
};

const char *afc_pg_reason_name(enum afc_pg_reason r)
{
    if ((unsigned)r >= AFC_PG_REASON__COUNT)
        return "unknown";
    return reason_names[r];
}

/* ---- parsing ---- */

/* Parse 1..8 hex digits from s up to (not including) end; false on anything else. */
static bool parse_hex32(const char *s, const char *end, uint32_t *out)
{
    size_t len = (size_t)(end - s);
    uint32_t v = 0;

    if (len == 0 || len > 8)
        return false;
    for (; s < end; s++) {
        unsigned d;
        if (*s >= '0' && *s <= '9')
            d = (unsigned)(*s - '0');
        else if (*s >= 'a' && *s <= 'f')
            d = (unsigned)(*s - 'a' + 10);
        else if (*s >= 'A' && *s <= 'F')
            d = (unsigned)(*s - 'A' + 10);
        else
            return false;
        v = (v << 4) | d;
    }
    *out = v;
    return true;
}

/* pg_lsn's text form is "%X/%X" of the high and low 32 bits (src/backend/utils/adt/pg_lsn.c). */
int afc_pg_lsn_parse(const char *s, uint64_t *out)
{
    const char *slash;
    uint32_t hi, lo;

    if (s == NULL || out == NULL)
        return AFC_EINVAL;
    slash = strchr(s, '/');
    if (slash == NULL || !parse_hex32(s, slash, &hi) ||
        !parse_hex32(slash + 1, slash + 1 + strlen(slash + 1), &lo))
        return AFC_EMALFORMED;
    *out = ((uint64_t)hi << 32) | lo;
    return 0;
}

/* A decimal integer in [min, max], the whole string. */
static bool parse_int(const char *s, long long min, long long max, long long *out)
{
    char *end;
    long long v;

    if (s == NULL || *s == '\0')
        return false;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return false;
    *out = v;
    return true;
}

/* NULL (SQL NULL) → 0: a replica that never received WAL has no receive LSN yet. */
static bool parse_opt_lsn(const char *s, uint64_t *out)
{
    *out = 0;
    return s == NULL || afc_pg_lsn_parse(s, out) == 0;
}

/* Negative lag (clock skew between the primary's commit stamps and this server) reads as 0;
 * anything beyond uint32 milliseconds (49 days) saturates. */
static bool parse_lag(const char *s, uint32_t *out)
{
    long long v;

    *out = 0;
    if (s == NULL)
        return true;
    if (!parse_int(s, INT64_MIN, INT64_MAX, &v))
        return false;
    *out = v < 0 ? 0 : v > (long long)UINT32_MAX ? UINT32_MAX : (uint32_t)v;
    return true;
}

int afc_pg_row_parse(const char *const vals[AFC_PG_COLS], struct afc_pg_sample *out, char *addr,
                     unsigned addr_cap)
{
    long long tli;

    if (vals == NULL || out == NULL || addr == NULL || addr_cap == 0)
        return AFC_EINVAL;
    memset(out, 0, sizeof(*out));
    addr[0] = '\0';
    if (vals[0] == NULL || (strcmp(vals[0], "t") != 0 && strcmp(vals[0], "f") != 0))
        return AFC_EMALFORMED;
    out->role = vals[0][0] == 't' ? AFC_PG_REPLICA : AFC_PG_PRIMARY;
    /* Timelines are 1-based uint32 (TimeLineID). */
    if (!parse_int(vals[1], 1, UINT32_MAX, &tli))
        return AFC_EMALFORMED;
    out->timeline = (uint32_t)tli;
    if (!parse_opt_lsn(vals[2], &out->lsn) || !parse_opt_lsn(vals[3], &out->replay_lsn) ||
        !parse_lag(vals[4], &out->lag_ms))
        return AFC_EMALFORMED;
    if (vals[5] != NULL) {
        if (strlen(vals[5]) >= addr_cap)
            return AFC_EMALFORMED;
        strcpy(addr, vals[5]);
    }
    out->reason = AFC_PG_OK;
    return 0;
}

int afc_pg_addr_find(const char *addr, const char *const *addrs, unsigned n)
{
    if (addr == NULL || addr[0] == '\0')
        return -1;
    for (unsigned i = 0; i < n; i++)
        if (addrs[i] != NULL && strcmp(addrs[i], addr) == 0)
            return (int)i;
    return -1;
}

/* ---- hysteresis ---- */

void afc_pg_hyst_config_default(struct afc_pg_hyst_config *c)
{
    memset(c, 0, sizeof(*c));
    c->rise = 2;
    c->fall = 3;
    c->refresh_ms = 5000;
    c->lag_bounds_ms[0] = 1000;
    c->lag_bounds_ms[1] = 10000;
    c->lag_bounds_ms[2] = 60000;
}

void afc_pg_hyst_init(struct afc_pg_hyst *h)
{
    memset(h, 0, sizeof(*h));
    h->last_reason = AFC_PG_OK;
}

unsigned afc_pg_lag_bucket(const struct afc_pg_hyst_config *c, uint32_t lag_ms)
{
    unsigned b = 0;

    while (b < AFC_PG_LAG_BOUNDS_MAX && c->lag_bounds_ms[b] != 0 && lag_ms >= c->lag_bounds_ms[b])
        b++;
    return b;
}

/* Count the sample and move health if a run is long enough. A zero rise/fall means 1. */
static void count_sample(struct afc_pg_hyst *h, const struct afc_pg_hyst_config *c, bool ok)
{
    unsigned rise = c->rise ? c->rise : 1, fall = c->fall ? c->fall : 1;

    if (ok) {
        h->fail_run = 0;
        if (h->ok_run < rise)
            h->ok_run++;
    } else {
        h->ok_run = 0;
        if (h->fail_run < fall)
            h->fail_run++;
    }
    if (h->ok_run >= rise && (!h->obs.valid || !h->obs.healthy)) {
        h->obs.valid = true;
        h->obs.healthy = true;
    } else if (h->fail_run >= fall && (!h->obs.valid || h->obs.healthy)) {
        h->obs.valid = true;
        h->obs.healthy = false;
    }
}

static void copy_facts(struct afc_pg_obs *o, const struct afc_pg_sample *s)
{
    o->role = s->role;
    o->timeline = s->timeline;
    o->lsn = s->lsn;
    o->replay_lsn = s->replay_lsn;
    o->lag_ms = s->lag_ms;
    memcpy(o->upstream, s->upstream, sizeof(o->upstream));
    o->upstream[sizeof(o->upstream) - 1] = '\0';
}

/* What differs between the filtered view and the last report, and matters. */
static unsigned compute_changes(const struct afc_pg_hyst *h, const struct afc_pg_hyst_config *c,
                                uint64_t now_ms)
{
    const struct afc_pg_obs *a = &h->reported, *b = &h->obs;
    unsigned chg = 0;
    bool lsn_moved, lsn_back, stale;

    if (!b->valid)
        return 0;
    if (!a->valid)
        return AFC_PG_CHG_FIRST;
    chg |= a->healthy != b->healthy ? AFC_PG_CHG_HEALTH : 0;
    chg |= a->role != b->role ? AFC_PG_CHG_ROLE : 0;
    chg |= a->timeline != b->timeline ? AFC_PG_CHG_TIMELINE : 0;
    chg |= strcmp(a->upstream, b->upstream) != 0 ? AFC_PG_CHG_UPSTREAM : 0;
    chg |= afc_pg_lag_bucket(c, a->lag_ms) != afc_pg_lag_bucket(c, b->lag_ms) ? AFC_PG_CHG_LAG : 0;
    /* Forward progress is routine and is only refreshed now and then; going backwards means a
     * restore or a rewind, which the decision core must hear about at once. */
    lsn_moved = a->lsn != b->lsn || a->replay_lsn != b->replay_lsn;
    lsn_back = b->lsn < a->lsn || b->replay_lsn < a->replay_lsn;
    stale = now_ms - h->reported_ms >= c->refresh_ms;
    if (lsn_moved && (lsn_back || stale))
        chg |= AFC_PG_CHG_LSN;
    return chg;
}

unsigned afc_pg_hyst_update(struct afc_pg_hyst *h, const struct afc_pg_hyst_config *c,
                            const struct afc_pg_sample *s, uint64_t now_ms)
{
    bool ok = s->reason == AFC_PG_OK;
    unsigned chg;

    if (!ok)
        h->last_reason = s->reason;
    count_sample(h, c, ok);
    if (ok && h->obs.healthy)
        copy_facts(&h->obs, s);
    chg = compute_changes(h, c, now_ms);
    if (chg != 0) {
        h->reported = h->obs;
        h->reported_ms = now_ms;
    }
    return chg;
}
