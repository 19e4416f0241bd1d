/*
 * What a run records besides the workload's history (run.h): every ~200 ms a sampler thread
 * asks each coordinator for /v1/cluster (its leader, the authorized primary and epoch); at the
 * end the replicated history (/v1/history) and the node events of the logs become chaos_events,
 * every source's final view is read (coordinators, the DNS name through the PowerDNS API, each
 * region's Redis key), and the rows the final primary holds are read back.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "run.h"

#define SAMPLE_EVERY_MS   200
#define SAMPLE_TIMEOUT_MS 400

int64_t run_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- HTTP ---- */

long run_http(const char *method, const char *url, const char *bearer, const char *body,
              long timeout_ms, char **out)
{
    char auth[200];
    if (bearer != NULL)
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", bearer);
    return lab_http_request(method, url, bearer != NULL ? auth : NULL, body, timeout_ms, out);
}

static json_t *get_json(const char *base, const char *path, long timeout_ms)
{
    char url[256], *text = NULL;
    snprintf(url, sizeof url, "%s%s", base, path);
    if (run_http("GET", url, NULL, NULL, timeout_ms, &text) != 200) {
        free(text);
        return NULL;
    }
    json_t *doc = json_loads(text, 0, NULL);
    free(text);
    return doc;
}

int run_region_index(const struct run_ctx *x, const char *name)
{
    for (unsigned i = 0; name != NULL && i < x->lab.n_regions; i++)
        if (strcmp(x->lab.regions[i].name, name) == 0)
            return (int)i;
    return -1;
}

/* ---- the sampler ---- */

struct view {
    bool answered;
    bool is_leader; /* this node is the ready Raft leader */
    int leader, primary;
    uint64_t epoch;
};

static void read_view(struct run_ctx *x, unsigned i, struct view *v)
{
    memset(v, 0, sizeof *v);
    v->leader = v->primary = -1;
    json_t *doc = get_json(x->lab.regions[i].api_url, "/v1/cluster", SAMPLE_TIMEOUT_MS);
    if (doc == NULL)
        return;
    json_t *node = json_object_get(doc, "node");
    v->answered = true;
    v->leader = run_region_index(
        x, json_string_value(json_object_get(json_object_get(doc, "leader"), "region")));
    v->primary = run_region_index(x, json_string_value(json_object_get(doc, "primary")));
    v->epoch = (uint64_t)json_integer_value(json_object_get(doc, "epoch"));
    const char *state = json_string_value(json_object_get(node, "raft_state"));
    v->is_leader = state != NULL && strcmp(state, "leader") == 0 &&
                   json_is_true(json_object_get(node, "leader_ready"));
    json_decref(doc);
}

static void add_sample(struct run_ctx *x, const struct chaos_sample *s)
{
    pthread_mutex_lock(&x->mu);
    if (x->rec.n_samples == x->cap_samples) {
        size_t cap = x->cap_samples ? 2 * x->cap_samples : 1024;
        void *p = realloc(x->rec.samples, cap * sizeof *x->rec.samples);
        if (p == NULL) {
            pthread_mutex_unlock(&x->mu);
            return;
        }
        x->rec.samples = p;
        x->cap_samples = cap;
    }
    x->rec.samples[x->rec.n_samples++] = *s;
    pthread_mutex_unlock(&x->mu);
}

static void *sampler_main(void *arg)
{
    struct run_ctx *x = arg;
    while (!x->stop_sampling) {
        int64_t start = run_now_us();
        struct chaos_sample s;
        memset(&s, 0, sizeof s);
        s.t_us = start;
        for (unsigned i = 0; i < CHAOS_MAX_REGIONS; i++)
            s.leader[i] = s.primary[i] = -1;
        for (unsigned i = 0; i < x->lab.n_regions; i++) {
            struct view v;
            read_view(x, i, &v);
            s.leader[i] = v.leader;
            s.primary[i] = v.primary;
            s.epoch[i] = v.epoch;
        }
        add_sample(x, &s);
        int64_t spent = (run_now_us() - start) / 1000;
        if (spent < SAMPLE_EVERY_MS)
            usleep((useconds_t)(SAMPLE_EVERY_MS - spent) * 1000); /* a sampling period */
    }
    return NULL;
}

int run_sampler_start(struct run_ctx *x)
{
    x->stop_sampling = false;
    if (pthread_create(&x->sampler, NULL, sampler_main, x) != 0) {
        fprintf(stderr, "aragora-chaos: run: cannot start the sampler thread\n");
        return -1;
    }
    x->sampling = true;
    return 0;
}

void run_sampler_stop(struct run_ctx *x)
{
    if (!x->sampling)
        return;
    x->stop_sampling = true;
    pthread_join(x->sampler, NULL);
    x->sampling = false;
}

void run_current_view(struct run_ctx *x, int *primary, uint64_t *epoch, int *leader)
{
    *primary = *leader = -1;
    *epoch = 0;
    for (unsigned i = 0; i < x->lab.n_regions; i++) {
        struct view v;
        read_view(x, i, &v);
        if (!v.answered)
            continue;
        if (v.is_leader)
            *leader = (int)i;
        if (v.epoch >= *epoch && v.primary >= 0) {
            *epoch = v.epoch;
            *primary = v.primary;
        }
    }
}

/* ---- events ---- */

/* "2026-11-26T13:20:01.417Z" → µs; -1 if it does not parse. */
static int64_t parse_iso_us(const char *s)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    unsigned ms = 0;
    if (s == NULL || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d.%3uZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                            &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms) != 7)
        return -1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (int64_t)timegm(&tm) * 1000000 + (int64_t)ms * 1000;
}

/* The value of key= in a "k=v k=v" detail, into out; false if absent. */
static bool detail_get(const char *detail, const char *key, char *out, size_t size)
{
    size_t klen = strlen(key);
    for (const char *p = detail; p != NULL && *p != '\0';) {
        if (strncmp(p, key, klen) == 0 && p[klen] == '=') {
            const char *v = p + klen + 1;
            size_t n = strcspn(v, " ");
            snprintf(out, size, "%.*s", (int)(n < size ? n : size - 1), v);
            return true;
        }
        p = strchr(p, ' ');
        if (p != NULL)
            p++;
    }
    return false;
}

static void add_event(struct run_ctx *x, const struct chaos_event *e)
{
    if (x->rec.n_events == x->cap_events) {
        size_t cap = x->cap_events ? 2 * x->cap_events : 64;
        void *p = realloc(x->rec.events, cap * sizeof *x->rec.events);
        if (p == NULL)
            return;
        x->rec.events = p;
        x->cap_events = cap;
    }
    x->rec.events[x->rec.n_events++] = *e;
}

static const struct {
    const char *kind;
    enum chaos_event_kind ev;
    const char *region_key;
} history_kinds[] = {
    {"failover-decided", CHAOS_EV_DECIDED, "to"}, {"failover-promoted", CHAOS_EV_PROMOTED, "to"},
    {"failover-done", CHAOS_EV_DONE, "to"},       {"failover-aborted", CHAOS_EV_ABORTED, "to"},
    {"promoted", CHAOS_EV_AUTHORIZED, "region"},
};

static void history_event(struct run_ctx *x, json_t *e)
{
    const char *kind = json_string_value(json_object_get(e, "kind"));
    const char *detail = json_string_value(json_object_get(e, "detail"));
    int64_t t = parse_iso_us(json_string_value(json_object_get(e, "time")));
    char epoch[32] = "", region[64] = "", from[64] = "";
    if (kind == NULL || detail == NULL || t < 0)
        return;
    for (size_t k = 0; k < sizeof history_kinds / sizeof history_kinds[0]; k++) {
        if (strcmp(kind, history_kinds[k].kind) != 0)
            continue;
        detail_get(detail, "epoch", epoch, sizeof epoch);
        detail_get(detail, history_kinds[k].region_key, region, sizeof region);
        detail_get(detail, "from", from, sizeof from);
        struct chaos_event ev = {.kind = history_kinds[k].ev,
                                 .t_us = t,
                                 .region = 0,
                                 .from = run_region_index(x, from),
                                 .epoch = strtoull(epoch, NULL, 10)};
        int r = run_region_index(x, region);
        if (r < 0)
            return;
        ev.region = (unsigned)r;
        add_event(x, &ev);
    }
}

/* The most complete /v1/history among the coordinators that answer: a region cut off from the
 * others still answers, with the history it had when it was cut off. */
static json_t *any_history(struct run_ctx *x)
{
    json_t *best = NULL;
    for (unsigned i = 0; i < x->lab.n_regions; i++) {
        json_t *doc = get_json(x->lab.regions[i].api_url, "/v1/history", 3000);
        if (doc == NULL)
            continue;
        json_t *e = json_object_get(doc, "events"), *b = json_object_get(best, "events");
        json_t *last = json_array_get(e, json_array_size(e) - 1);
        json_t *blast = json_array_get(b, json_array_size(b) - 1);
        if (best == NULL || json_integer_value(json_object_get(last, "index")) >
                                json_integer_value(json_object_get(blast, "index"))) {
            json_decref(best);
            best = doc;
        } else {
            json_decref(doc);
        }
    }
    return best;
}

uint64_t run_latest_epoch(struct run_ctx *x, const char *kind)
{
    json_t *doc = any_history(x), *e;
    uint64_t best = 0;
    size_t i;
    json_array_foreach(json_object_get(doc, "events"), i, e)
    {
        const char *k = json_string_value(json_object_get(e, "kind"));
        const char *detail = json_string_value(json_object_get(e, "detail"));
        char epoch[32];
        if (k != NULL && detail != NULL && strcmp(k, kind) == 0 &&
            detail_get(detail, "epoch", epoch, sizeof epoch) && strtoull(epoch, NULL, 10) > best)
            best = strtoull(epoch, NULL, 10);
    }
    json_decref(doc);
    return best;
}

/* Node events in region i's log: "+promoted-here ... epoch=N" and "+leader-elected term=N". */
static void log_events(struct run_ctx *x, unsigned i)
{
    FILE *f = fopen(x->lab.regions[i].log, "r");
    char line[2048];
    if (f == NULL)
        return;
    while (fgets(line, sizeof line, f) != NULL) {
        const char *here = strstr(line, " +promoted-here ");
        const char *elected = strstr(line, " +leader-elected ");
        char val[32];
        int64_t t = parse_iso_us(line);
        if (t < 0 || (here == NULL && elected == NULL))
            continue;
        struct chaos_event ev = {.t_us = t, .region = i, .from = -1};
        ev.kind = here != NULL ? CHAOS_EV_NODE_PROMOTED_HERE : CHAOS_EV_LEADER;
        const char *fields = here != NULL ? here + 16 : elected + 17;
        if (!detail_get(fields, here != NULL ? "epoch" : "term", val, sizeof val))
            continue;
        ev.epoch = strtoull(val, NULL, 10);
        add_event(x, &ev);
    }
    fclose(f);
}

int run_collect_events(struct run_ctx *x)
{
    json_t *doc = any_history(x), *e;
    size_t i;
    if (doc == NULL) {
        fprintf(stderr, "aragora-chaos: run: no coordinator answered /v1/history\n");
        return -1;
    }
    json_array_foreach(json_object_get(doc, "events"), i, e) history_event(x, e);
    json_decref(doc);
    for (unsigned r = 0; r < x->lab.n_regions; r++)
        log_events(x, r);
    return 0;
}

/* ---- final views ---- */

static struct chaos_final_view *add_final(struct run_ctx *x, const char *source)
{
    struct chaos_record *rec = &x->rec;
    if (rec->n_finals >= sizeof rec->finals / sizeof rec->finals[0])
        return NULL;
    struct chaos_final_view *f = &rec->finals[rec->n_finals++];
    memset(f, 0, sizeof *f);
    f->primary = -1;
    snprintf(f->source, sizeof f->source, "%s", source);
    return f;
}

static int region_of_address(const struct run_ctx *x, const char *address)
{
    for (unsigned i = 0; i < x->lab.n_regions; i++)
        if (strcmp(x->lab.regions[i].address, address) == 0)
            return (int)i;
    return -1;
}

/* The name's A record and TXT stamp "epoch=N region=R", through the PowerDNS API. */
static void final_dns(struct run_ctx *x)
{
    const struct lab_dns *d = &x->lab.dns;
    char key[128] = "", url[256], body[8192];
    FILE *kf = fopen(d->api_key_file, "r");
    if (kf == NULL)
        return;
    if (fgets(key, sizeof key, kf) == NULL)
        key[0] = '\0';
    fclose(kf);
    key[strcspn(key, "\r\n")] = '\0';
    struct chaos_final_view *f = add_final(x, "dns");
    snprintf(url, sizeof url, "%s/api/v1/servers/localhost/zones/%s", d->api_url, d->zone);
    /* the PowerDNS API wants X-API-Key (lab_http); the lab's zone fits in its 8 KiB */
    if (f == NULL || lab_http("GET", url, key, NULL, 3000, body) != 200)
        return;
    json_t *doc = json_loads(body, 0, NULL), *rr;
    size_t i;
    json_array_foreach(json_object_get(doc, "rrsets"), i, rr)
    {
        const char *name = json_string_value(json_object_get(rr, "name"));
        const char *type = json_string_value(json_object_get(rr, "type"));
        json_t *rec0 = json_array_get(json_object_get(rr, "records"), 0);
        const char *content = json_string_value(json_object_get(rec0, "content"));
        if (name == NULL || type == NULL || content == NULL || strcmp(name, d->name) != 0)
            continue;
        if (strcmp(type, "A") == 0) {
            f->primary = region_of_address(x, content);
            f->answered = true;
        } else if (strcmp(type, "TXT") == 0) {
            char epoch[32];
            if (detail_get(content[0] == '"' ? content + 1 : content, "epoch", epoch, sizeof epoch))
                f->epoch = strtoull(epoch, NULL, 10);
        }
    }
    json_decref(doc);
}

/* One RESP reply into reply (NUL-terminated): reads until the bulk string is complete ("$N\r\n"
 * and N bytes and "\r\n"), or a one-line reply has its "\r\n"; the answer may come in pieces.
 * Returns its length, or -1 on error, timeout (SO_RCVTIMEO) or a reply too big. */
static ssize_t read_bulk(int fd, char *reply, size_t size)
{
    size_t have = 0;
    for (;;) {
        ssize_t n = read(fd, reply + have, size - 1 - have);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        have += (size_t)n;
        reply[have] = '\0';
        const char *eol = strstr(reply, "\r\n");
        if (eol != NULL) {
            long len = reply[0] == '$' ? strtol(reply + 1, NULL, 10) : -1;
            size_t need = (size_t)(eol + 2 - reply) + (len >= 0 ? (size_t)len + 2 : 0);
            if (have >= need)
                return (ssize_t)have;
        }
        if (have + 1 >= size)
            return -1;
    }
}

/* GET the Redis key with one inline command over a plain socket (RESP bulk string back). */
static void final_redis(struct run_ctx *x, unsigned i)
{
    const struct lab_redis *rd = &x->lab.regions[i].redis;
    char source[48], reply[4096];
    snprintf(source, sizeof source, "redis %s", x->lab.regions[i].name);
    struct chaos_final_view *f = add_final(x, source);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (f == NULL || fd < 0)
        return;
    struct timeval tv = {.tv_sec = 2};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)rd->port)};
    inet_pton(AF_INET, rd->host, &sa.sin_addr);
    static const char cmd[] = "GET aragora:primary\r\n";
    ssize_t n = -1;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
        write(fd, cmd, sizeof cmd - 1) == (ssize_t)(sizeof cmd - 1))
        n = read_bulk(fd, reply, sizeof reply);
    close(fd);
    if (n <= 0 || reply[0] != '$')
        return;
    reply[n] = '\0';
    const char *json = strstr(reply, "\r\n");
    json_t *doc = json != NULL ? json_loads(json + 2, JSON_DISABLE_EOF_CHECK, NULL) : NULL;
    if (doc == NULL)
        return;
    f->answered = true;
    f->primary = run_region_index(x, json_string_value(json_object_get(doc, "region")));
    f->epoch = (uint64_t)json_integer_value(json_object_get(doc, "epoch"));
    json_decref(doc);
}

void run_collect_finals(struct run_ctx *x)
{
    bool alive[LAB_MAX_REGIONS] = {false};
    for (unsigned i = 0; i < x->lab.n_regions; i++) {
        char source[48];
        struct view v;
        read_view(x, i, &v);
        snprintf(source, sizeof source, "coordinator %s", x->lab.regions[i].name);
        struct chaos_final_view *f = add_final(x, source);
        if (f == NULL || !v.answered)
            continue;
        f->answered = alive[i] = true;
        f->primary = v.primary;
        f->epoch = v.epoch;
    }
    if (x->lab.dns.mode != LAB_DNS_OFF)
        final_dns(x);
    /* A region's Redis hears only from its own coordinator: while that one is down (a killed
     * region the scenario did not restart) its Redis keeps what it last had, by design. */
    for (unsigned i = 0; x->lab.redis && i < x->lab.n_regions; i++)
        if (alive[i])
            final_redis(x, i);
}

/* ---- intervals ---- */

long run_add_interval(struct run_ctx *x, const char *label, bool failure)
{
    if (x->rec.n_intervals == x->cap_intervals) {
        size_t cap = x->cap_intervals ? 2 * x->cap_intervals : 32;
        void *p = realloc(x->rec.intervals, cap * sizeof *x->rec.intervals);
        if (p == NULL)
            return -1;
        x->rec.intervals = p;
        x->cap_intervals = cap;
    }
    struct chaos_interval *iv = &x->rec.intervals[x->rec.n_intervals];
    memset(iv, 0, sizeof *iv);
    iv->start_us = run_now_us();
    iv->failure = failure;
    snprintf(iv->label, sizeof iv->label, "%s", label);
    return (long)x->rec.n_intervals++;
}

void run_end_interval(struct run_ctx *x, long *iv)
{
    if (*iv >= 0 && (size_t)*iv < x->rec.n_intervals && x->rec.intervals[*iv].end_us == 0)
        x->rec.intervals[*iv].end_us = run_now_us();
    *iv = -1;
}

/* ---- read-back ---- */

void run_read_back(struct run_ctx *x)
{
    int primary, leader;
    uint64_t epoch;
    char conninfo[160], out[LAB_PATH_MAX + 32], why[256];
    run_current_view(x, &primary, &epoch, &leader);
    if (primary < 0 || !x->lab.regions[primary].pg.enabled) {
        fprintf(stderr, "aragora-chaos: run: no authorized primary to read back from\n");
        return;
    }
    lab_pg_conninfo(&x->lab.regions[primary].pg, x->lab.regions[primary].pg.host, conninfo,
                    sizeof conninfo);
    snprintf(out, sizeof out, "%s/rows.jsonl", x->dir);
    const char *args[] = {"workload", "--readback", conninfo, "--out", out, NULL};
    if (run_self(x, args) != 0) {
        fprintf(stderr, "aragora-chaos: run: read-back from %s failed (see %s/runner.log)\n",
                x->lab.regions[primary].name, x->dir);
        return;
    }
    if (chaos_rows_load(out, &x->rec, why, sizeof why) != 0)
        fprintf(stderr, "aragora-chaos: run: %s\n", why);
}
