/*
 * The harness's shared types (ARCHITECTURE.md §10, docs/chaos.md): the fault vocabulary and the
 * link state it implies (faultspec.c, pure), the nemesis shapes (nemesis.c, pure), a scenario
 * (scenario.c, scenario_steps.c: YAML), what a run records (history, events, samples) and what the
 * checkers (checkers.c, pure) and the report (report_out.c, report_svg.c) make of it.
 *
 * Times: every recorded time is wall-clock microseconds since the Unix epoch (CLOCK_REALTIME).
 * The whole lab runs on one machine, so the workload's, the proxy's, the runner's and the
 * coordinators' timestamps come from the same clock and can be compared directly.
 */
#ifndef AFC_CHAOS_H
#define AFC_CHAOS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CHAOS_MAX_REGIONS 9
#define CHAOS_NAME_MAX    32
#define CHAOS_MAX_FAULTS  96
#define CHAOS_TEXT_MAX    2048 /* a fault set as text */

/* ---- the fault vocabulary (faultspec.c) ----
 *
 * A fault set is a comma-separated list of items; the regions are the lab's names, `*` means every
 * region (other than the other side):
 *   A -/- B                      partition: nothing passes either way (data held, as dropped
 * packets) A -/> B                      one-way cut: A's bytes to B are held; B's to A pass isolate
 * A                    A -/- every other region A -> B delay 200ms±50ms      each chunk A sends to
 * B waits 200 ms ± 50 ms (also "+-"); order kept A <-> B ...                  the same action in
 * both directions A -> B loss 20%              each chunk is lost with that probability and
 * retransmitted after a TCP-like retransmission timeout (a TCP proxy cannot drop bytes) A -> B rate
 * 64kbps           bandwidth limit (kbps = 1000 bits/s; also bps, mbps) A <-> B reset existing
 * connections reset (RST), new ones reset on accept A <-> B blackhole            connections
 * accepted, bytes discarded, nothing ever answered; connections that lost bytes are reset when the
 * blackhole ends Later items add to earlier ones for the same ordered pair (a delay and a loss
 * combine). */
enum chaos_fault_kind {
    CHAOS_F_CUT = 0,   /* one ordered pair held (a partition is two cuts) */
    CHAOS_F_DELAY,     /* delay_ms ± jitter_ms */
    CHAOS_F_LOSS,      /* loss_pct */
    CHAOS_F_RATE,      /* rate_bps */
    CHAOS_F_RESET,     /* reset */
    CHAOS_F_BLACKHOLE, /* blackhole */
};

/* One fault on one ordered pair of regions (indexes into the region list). Parsing expands
 * partitions, `<->`, `isolate` and `*` into ordered pairs. */
struct chaos_fault {
    enum chaos_fault_kind kind;
    unsigned from, to;
    unsigned delay_ms, jitter_ms;
    double loss_pct;   /* 0..100 */
    uint64_t rate_bps; /* bits per second */
};

struct chaos_faultset {
    unsigned n;
    struct chaos_fault f[CHAOS_MAX_FAULTS];
    /* `dns 429 [retry-after 2s]`: the DNS provider's API answers every request with 429 Too
     * Many Requests and this Retry-After (seconds; 0 = no such fault). Not a link fault: the
     * lab's fault layer fronts the PowerDNS API (its "dns-api" link) and answers for it. */
    unsigned dns_429_retry_s;
};

/* What a direction of a link does right now: the combination of every fault on (from, to). */
struct chaos_link_state {
    bool cut;       /* held */
    bool reset;     /* connections reset */
    bool blackhole; /* bytes discarded */
    unsigned delay_ms, jitter_ms;
    double loss_pct;
    uint64_t rate_bps; /* 0 = unlimited */
};

/* Parse `text` against the region names. "" and "none" parse to an empty set. On error returns -1
 * and writes a one-line reason naming the item and the column into why. */
int chaos_faultset_parse(const char *text, const char *const *regions, unsigned n_regions,
                         struct chaos_faultset *out, char *why, size_t why_size);
/* The canonical text of a set (parses back to the same set); "none" when empty. */
int chaos_faultset_format(const struct chaos_faultset *set, const char *const *regions,
                          unsigned n_regions, char *out, size_t size);
/* The combined state of direction from -> to. */
void chaos_faultset_link(const struct chaos_faultset *set, unsigned from, unsigned to,
                         struct chaos_link_state *out);
/* Can `from` reach `to` at all (not cut, not reset, not blackholed)? */
bool chaos_faultset_passes(const struct chaos_faultset *set, unsigned from, unsigned to);

/* a and b at once (the profile under the fault set): flags or, delays and jitters add, losses
 * combine as independent (p + q - pq), the lower rate wins. */
void chaos_link_combine(const struct chaos_link_state *a, const struct chaos_link_state *b,
                        struct chaos_link_state *out);

/* ---- namespace mode (nft.c, pure): the fault set as one nftables transaction ----
 * In `lab up --netns` every region is a network namespace on one bridge; the bridge's namespace
 * filters what crosses it in the forward hook of table `ip aragora_chaos` (br_netfilter hands
 * bridged IPv4 to it). Per ordered pair, matched on source and destination address:
 *   cut, blackhole     drop
 *   reset              TCP answered with a RST (reject with tcp reset), anything else dropped
 *   loss P%            numgen random mod 10000 < P*100 drop
 *   rate R             limit rate over R/8 bytes/second drop (a policer: a shaper needs tc)
 *   delay D±J          meta mark set CHAOS_NFT_MARK(from, to): a static iptables rule sends
 *                      marked packets to NFQUEUE CHAOS_NFQUEUE_NUM, where the controller holds
 *                      each for D±J (order kept per pair), since this kernel has neither netem
 *                      nor nft's own queue statement.
 * The text deletes and recreates the table, so one `nft -f` applies a whole set atomically. */
#define CHAOS_NFT_TABLE      "aragora_chaos"
#define CHAOS_NFT_MARK_BASE  0xafc00u
#define CHAOS_NFT_MARK_MASK  0xfff00u
#define CHAOS_NFT_MARK(f, t) (CHAOS_NFT_MARK_BASE | ((unsigned)(f) << 4) | (unsigned)(t))
#define CHAOS_NFQUEUE_NUM    7
/* state[from * n + to] for every ordered pair (the diagonal is ignored); addrs[i] is region i's
 * IPv4 address as text. Returns -1 when out is too small or n is out of range. */
int chaos_nft_ruleset(const struct chaos_link_state *state, unsigned n, const char *const *addrs,
                      char *out, size_t size);

/* Text appended into a fixed buffer; once something does not fit, overflow stays set and nothing
 * more is written (faultspec.c; the fault set's and the nft rule set's text). */
struct chaos_buf {
    char *p;
    size_t size, len;
    bool overflow;
};
void chaos_buf_put(struct chaos_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The WAN profile (faultspec.c; also declared in proxy.h): one-way delays with jitter between
 * every pair of regions, round trips 80-250 ms, as fault-set text. */
int chaos_wan_profile(const char *const *regions, unsigned n, char *out, size_t size);

/* ---- nemesis shapes (nemesis.c): which partition a named nemesis means ----
 * Each writes a fault set text (chaos_faultset_parse syntax) into out; seed drives the random
 * ones (the same seed, the same shape). Returns -1 with a reason when the shape needs more
 * regions than there are, or an index is out of range. */
enum chaos_shape {
    CHAOS_SHAPE_ISOLATE = 0,   /* isolate `node` */
    CHAOS_SHAPE_HALVES,        /* two halves, the smaller one first (node = one member of it) */
    CHAOS_SHAPE_RANDOM_HALVES, /* random halves from seed */
    CHAOS_SHAPE_MAJORITY_RING, /* every node sees a majority, no two the same one */
    CHAOS_SHAPE_BRIDGE,        /* two halves and `node` connected to both */
    CHAOS_SHAPE_ONE_WAY_FROM,  /* node -/> every other */
    CHAOS_SHAPE_ONE_WAY_TO,    /* every other -/> node */
};
int chaos_shape_faults(enum chaos_shape shape, const char *const *regions, unsigned n_regions,
                       unsigned node, uint64_t seed, char *out, size_t size, char *why,
                       size_t why_size);
/* "isolate", "halves", "random-halves", "majority-ring", "bridge", "one-way-from", "one-way-to" */
int chaos_shape_from_name(const char *name, enum chaos_shape *out);
const char *chaos_shape_name(enum chaos_shape shape);
/* A small deterministic PRNG (splitmix64) so that a seed replays the same schedule. */
uint64_t chaos_rand_next(uint64_t *state);

/* ---- what a run records ---- */

/* One write of the workload (history.jsonl, one JSON object per line:
 * {"region":"us-east-2","seq":17,"start_us":...,"end_us":...,"result":"ok","error":"..."}). */
enum chaos_result { CHAOS_OK = 0, CHAOS_FAIL, CHAOS_UNKNOWN };
struct chaos_op {
    unsigned region; /* index */
    uint64_t seq;    /* per region, from 1 */
    int64_t start_us, end_us;
    enum chaos_result result; /* ok: committed and acknowledged; fail: certainly not committed
                                 (an error before commit, e.g. 25006 read-only, connection
                                 refused); unknown: the connection broke or timed out during
                                 the commit */
    char error[96];           /* SQLSTATE and message, or the connection error ("" when ok) */
};

/* A replicated history entry (/v1/history) or a node event from a coordinator's log. */
enum chaos_event_kind {
    CHAOS_EV_DECIDED = 0,        /* failover-decided epoch from to (committed) */
    CHAOS_EV_PROMOTED,           /* failover-promoted epoch to (committed: B ran pg_promote) */
    CHAOS_EV_DONE,               /* failover-done epoch */
    CHAOS_EV_ABORTED,            /* failover-aborted epoch */
    CHAOS_EV_AUTHORIZED,         /* `promoted`: the authorized primary changed (epoch, to) */
    CHAOS_EV_NODE_PROMOTED_HERE, /* node event +promoted-here on node `region` (epoch) */
    CHAOS_EV_LEADER,             /* node event +leader-elected on `region` (term) */
};
struct chaos_event {
    enum chaos_event_kind kind;
    int64_t t_us;
    unsigned region; /* where it was logged (node events); the target (`to`) for history ones */
    int from;        /* -1 = none */
    uint64_t epoch;  /* or term for LEADER */
};

/* What the runner sampled every ~200 ms: each coordinator's view. */
struct chaos_sample {
    int64_t t_us;
    int leader[CHAOS_MAX_REGIONS];  /* leader index as seen by each node; -1 unknown/down */
    int primary[CHAOS_MAX_REGIONS]; /* authorized primary as seen by each node; -1 */
    uint64_t epoch[CHAOS_MAX_REGIONS];
};

/* A fault or process action that was active over [start_us, end_us) (end_us 0 = until the end). */
struct chaos_interval {
    int64_t start_us, end_us;
    char label[96]; /* "us-east-2 -/- eu-west-1", "freeze coordinator us-east-2", ... */
    bool failure;   /* the scenario counts RTO from its start (a fault that warrants a failover) */
};

/* What every source says at the end (convergence). */
struct chaos_final_view {
    char source[48]; /* "coordinator eu-west-1", "dns", "redis ap-south-1" */
    int primary;     /* -1 = no answer */
    uint64_t epoch;  /* 0 = not known from this source */
    bool answered;
};

struct chaos_record {
    unsigned n_regions;
    char regions[CHAOS_MAX_REGIONS][CHAOS_NAME_MAX];
    int64_t start_us, end_us;
    int initial_primary;

    struct chaos_op *ops;
    size_t n_ops;
    struct chaos_event *events;
    size_t n_events;
    struct chaos_sample *samples;
    size_t n_samples;
    struct chaos_interval *intervals;
    size_t n_intervals;
    struct chaos_final_view finals[2 * CHAOS_MAX_REGIONS + 4];
    unsigned n_finals;

    /* The rows the final primary holds: (region, seq) pairs, sorted. */
    struct {
        unsigned region;
        uint64_t seq;
    } * rows;
    size_t n_rows;
    bool rows_read; /* false: the read-back failed (lost-writes check is then "unknown") */
};

/* ---- expectations and verdicts (checkers.c) ---- */

struct chaos_expect {
    int failover;         /* 1 a failover is expected, 0 none is warranted, -1 either */
    int64_t rto_max_us;   /* 0 = no bound */
    long lost_writes_max; /* -1 = not checked (async replication may lose a few) */
    int64_t converge_us;  /* 0 = no bound on convergence after the end */
};

enum chaos_verdict { CHAOS_PASS = 0, CHAOS_FAILED, CHAOS_SKIPPED };
#define CHAOS_MAX_CHECKS 8
struct chaos_check {
    char name[32]; /* "lost-writes", "split-brain", "rto", "write-gap", "convergence",
                      "false-failover", "decisions" */
    enum chaos_verdict verdict;
    char detail[512]; /* one paragraph: the figures, and the first violations named */
    /* figures (meaning per check; 0 when not applicable) */
    double value; /* lost writes, RTO ms, longest gap ms, violations ... */
    double value2;
};
struct chaos_checks {
    unsigned n;
    struct chaos_check c[CHAOS_MAX_CHECKS];
    bool all_passed;
};

/* Run every checker over a record. Pure. */
void chaos_check_all(const struct chaos_record *rec, const struct chaos_expect *ex,
                     struct chaos_checks *out);

const char *chaos_verdict_name(enum chaos_verdict v);
const char *chaos_result_name(enum chaos_result r);

/* ---- history files (history.c) ---- */

/* Read a history.jsonl written by the workload into rec->ops (regions by name from rec->regions).
 * Returns -1 with "FILE:LINE: reason" in why on malformed input. */
int chaos_history_load(const char *path, struct chaos_record *rec, char *why, size_t why_size);
/* Append one op as a JSON line. */
int chaos_history_write_op(FILE *f, const struct chaos_record *rec, const struct chaos_op *op);
void chaos_record_free(struct chaos_record *rec);
/* Read a read-back file (one {"region":"..","seq":N} per line) into rec->rows, sorted; sets
 * rows_read (history.c; also declared in workload.h). */
int chaos_rows_load(const char *path, struct chaos_record *rec, char *why, size_t why_size);

/* ---- scenarios (scenario.c): YAML files, docs/chaos.md "Writing a scenario" ---- */

enum chaos_step_kind {
    CHAOS_STEP_FAULT = 0,   /* fault: "TEXT" (the vocabulary above), replaces the active set */
    CHAOS_STEP_NEMESIS,     /* nemesis: SHAPE, target: T (a partition shape around T) */
    CHAOS_STEP_HEAL,        /* heal: true -- clear every fault, thaw every frozen process */
    CHAOS_STEP_KILL,        /* kill: coordinator|postgres|region|redis|dns, target: T */
    CHAOS_STEP_FREEZE,      /* freeze: ... (SIGSTOP) */
    CHAOS_STEP_THAW,        /* thaw: ... (SIGCONT) */
    CHAOS_STEP_RESTART,     /* restart: ... */
    CHAOS_STEP_FLAP,        /* flap: SHAPE, target: T, down: 300ms, up: 700ms, for: 10s */
    CHAOS_STEP_FAULT_POINT, /* fault_point: NAME, target: T (arms a coordinator fault point) */
    CHAOS_STEP_DNS,         /* dns: down|up|429 (the PowerDNS API through the lab) */
    CHAOS_STEP_WAIT,        /* wait: failover-decided|failover-promoted|failover-done|settled,
                               timeout: 90s -- the run fails if it times out */
    CHAOS_STEP_SWITCHOVER,  /* switchover: true, target: T -- a planned switchover to T
                               (POST /v1/switchover, as an operator would) */
};

/* Whom a step acts on, resolved when the step runs (the primary and the leader move). */
enum chaos_target {
    CHAOS_TARGET_PRIMARY = 0, /* the authorized primary's region */
    CHAOS_TARGET_LEADER,      /* the Raft leader's region */
    CHAOS_TARGET_REPLICA,     /* a region that is neither primary nor (if possible) leader */
    CHAOS_TARGET_NEW_PRIMARY, /* the primary authorized since the last failure step */
    CHAOS_TARGET_REGION,      /* target_region */
    CHAOS_TARGET_NONE,        /* steps that need none (fault, heal, dns, wait) */
    CHAOS_TARGET_OLD_PRIMARY, /* "old-primary": the primary when the last failure step ran */
    CHAOS_TARGET_LAST,        /* "last": the region the previous targeted step acted on */
};

#define CHAOS_MAX_STEPS 48
struct chaos_step {
    enum chaos_step_kind kind;
    unsigned line; /* in the scenario file, for messages */
    int64_t at_us; /* when, after the workload started; with `relative`, after the previous step */
    bool relative; /* at: +2s */
    bool failure;  /* failure: true -- RTO counts from this step (default: kill/freeze of the
                      primary or a nemesis isolating it) */
    char text[CHAOS_TEXT_MAX]; /* FAULT: the fault set */
    enum chaos_shape shape;    /* NEMESIS, FLAP */
    enum chaos_target target;
    unsigned target_region; /* CHAOS_TARGET_REGION */
    char what[24];          /* KILL/FREEZE/THAW/RESTART: coordinator|postgres|region|redis|dns;
                               DNS: down|up|429; WAIT: the event */
    char point[48];         /* FAULT_POINT */
    int64_t timeout_us;     /* WAIT */
    int64_t down_us, up_us, for_us; /* FLAP */
};

struct chaos_scenario {
    char file[512];
    char name[64];
    char description[512];
    /* lab: */
    bool sync;    /* replication: sync */
    bool fence;   /* fence: true (default) */
    bool wan;     /* wan: true: the WAN profile on every link */
    char dns[16]; /* "powerdns" (default), "rfc2136", "none" */
    bool redis;   /* default true */
    /* workload: */
    unsigned interval_ms; /* between writes per region (default 20) */
    unsigned timeout_ms;  /* a write not answered by then is "unknown" (default 2000) */
    /* schedule: */
    struct chaos_step steps[CHAOS_MAX_STEPS];
    unsigned n_steps;
    int64_t warmup_us;   /* workload runs this long before step times count (default 3s) */
    int64_t duration_us; /* the workload runs at least this long after it started */
    int64_t settle_us;   /* after the last step, before the end (default 10s) */
    uint64_t seed;       /* seed: N (default 1); `run --seed` overrides */
    struct chaos_expect expect;
};

/* Parse a scenario file. region names: the lab's. Returns -1 with "FILE:LINE: key: reason" in
 * why. Durations: "250ms", "3s", "2m", "+2s" for `at`. Unknown keys are errors. */
int chaos_scenario_load(const char *path, const char *const *regions, unsigned n_regions,
                        struct chaos_scenario *out, char *why, size_t why_size);
const char *chaos_step_kind_name(enum chaos_step_kind k);
const char *chaos_target_name(enum chaos_target t);

/* ---- the report (report_out.c) ---- */

struct chaos_report_meta {
    const char *scenario; /* its name */
    const char *file;     /* the scenario file */
    const char *description;
    uint64_t seed;
    const char *mode; /* "proxy" | "netns" (the fault layer) */
    bool wan;
    const char *replication; /* "async" | "sync" */
    bool fence;
};
/* Write DIR/report.json, DIR/report.md and DIR/timeline.svg. Returns -1 with a message. */
int chaos_report_write(const char *dir, const struct chaos_report_meta *meta,
                       const struct chaos_record *rec, const struct chaos_checks *checks);

#endif
