/*
 * The userspace fault proxy: `aragora-chaos proxy --dir DIR` (docs/chaos.md "The fault layer").
 *
 * DIR/chaos/links.json (written by the lab, lab_links.c) lists the regions, the control address,
 * a profile (fault-set text applied under the faults, e.g. the WAN delays) and the links: for
 * each, connections from region F to a service of region T arrive at `listen` and are forwarded
 * to `upstream`. Client-to-server bytes follow the combined state of F -> T, server-to-client
 * bytes that of T -> F (chaos_faultset_link over the profile, then the faults; both apply).
 *
 * What each fault does to a TCP stream (a proxy sees streams, not packets):
 *   cut       stop reading the sending side (uv_read_stop): the bytes stay in the kernel and TCP
 *             backpressure holds the sender, like retransmissions into a partition; reading
 *             resumes when the direction passes again, like a retransmission that gets through
 *             after the heal. Chunks already queued are held too. A NEW connection whose F -> T
 *             is cut is accepted, but the upstream connect waits until F -> T passes (the SYN
 *             "is dropped" and retried).
 *   delay     each chunk is due at now + delay + uniform(-jitter, +jitter), never before the
 *             previous chunk of that direction (a TCP stream is never reordered); one uv_timer
 *             per direction wakes at the head's due time.
 *   loss      a TCP proxy cannot drop bytes without corrupting the stream, so a lost chunk is
 *             "retransmitted": it is delivered 200 ms later (RTO_MIN), the wait doubling while
 *             the retransmission is lost again (capped at 3.2 s), and the chunks behind it wait
 *             too (head-of-line blocking), which is what an application sees over a lossy path.
 *   rate      a token bucket in bytes/s (rate_bps / 8) with a burst of max(one piece, rate/10);
 *             chunks go out in pieces of at most rate/10 bytes.
 *   reset     existing connections on the link are closed with RST on both sides
 *             (uv_tcp_close_reset); new ones are accepted and reset at once.
 *   blackhole bytes are read and discarded (the connection is marked tainted), nothing answers;
 *             a new connection is never forwarded; when the blackhole ends, tainted connections
 *             are reset (their streams lost bytes and cannot continue).
 * A fault change is atomic: the whole set is swapped in one loop turn, then every link's state and
 * every connection re-evaluated. The active set is persisted to DIR/chaos/faults.json (tmp, fsync,
 * rename) and restored at start; every change (and the start) appends a JSON line to
 * DIR/chaos/faults.log: {"t_us": CLOCK_REALTIME µs, "faults": TEXT, "profile": TEXT}.
 *
 * Connections: one struct per accepted client, with the client and upstream sockets, and per
 * direction a queue of chunks, a timer, a token bucket and flags. Everything is freed only when all
 * four handles have closed (libuv's lifecycle).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "chaos_cmd.h"
#include "proxy.h"

#define READ_BUF    65536
#define HIGH_WATER  (4u << 20) /* bytes queued or being written before we stop reading */
#define RTO_MIN_MS  200
#define RTO_MAX_MS  3200
#define MAX_RETRANS 16

struct chunk {
    struct chunk *next;
    uint64_t due_ms;
    size_t len, off;
    char data[];
};

struct wreq {
    uv_write_t req;
    struct proxy_conn *c;
    unsigned idx;
    size_t len;
    char data[];
};

struct pdir {
    struct proxy_conn *c;
    unsigned idx; /* 0 client -> upstream, 1 upstream -> client */
    uv_tcp_t *src, *dst;
    uv_timer_t timer;
    struct chunk *head, *tail;
    size_t queued, inflight;
    uint64_t last_due_ms, refill_ms;
    double tokens;
    bool reading, eof, shut, shut_done;
    uv_shutdown_t shut_req;
    char buf[READ_BUF];
};

struct proxy_conn {
    struct proxy_link *link;
    struct proxy_conn *prev, *next;
    uv_tcp_t client, upstream;
    uv_connect_t connect_req;
    struct pdir d[2];
    bool connecting, connected, tainted, closing;
    unsigned open_handles;
};

static void pump(struct pdir *d);
static void close_conn(struct proxy_conn *c, bool reset);

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static const struct chaos_link_state *dir_state(const struct pdir *d)
{
    return &d->c->link->st[d->idx];
}

/* ---- closing ---- */

static void conn_handle_closed_cb(uv_handle_t *h)
{
    struct proxy_conn *c = h->data;
    if (--c->open_handles == 0)
        free(c);
}

static void close_handle(uv_handle_t *h, bool reset)
{
    if (uv_is_closing(h))
        return;
    if (reset && uv_tcp_close_reset((uv_tcp_t *)h, conn_handle_closed_cb) == 0)
        return;
    uv_close(h, conn_handle_closed_cb);
}

static void free_queue(struct pdir *d)
{
    while (d->head != NULL) {
        struct chunk *k = d->head;
        d->head = k->next;
        free(k);
    }
    d->tail = NULL;
    d->queued = 0;
}

static void close_conn(struct proxy_conn *c, bool reset)
{
    struct proxy_link *l = c->link;
    if (c->closing)
        return;
    c->closing = true;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        l->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    l->n_conns--;
    for (unsigned i = 0; i < 2; i++) {
        free_queue(&c->d[i]);
        uv_close((uv_handle_t *)&c->d[i].timer, conn_handle_closed_cb);
    }
    close_handle((uv_handle_t *)&c->client, reset);
    close_handle((uv_handle_t *)&c->upstream, reset && c->connected);
}

/* ---- reading ---- */

static bool should_read(const struct pdir *d)
{
    const struct proxy_conn *c = d->c;
    const struct chaos_link_state *st = dir_state(d);
    if (c->closing || d->eof || st->cut || d->queued + d->inflight >= HIGH_WATER)
        return false;
    return c->connected || (d->idx == 0 && st->blackhole);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct proxy_conn *c = h->data;
    struct pdir *d = (uv_tcp_t *)h == &c->client ? &c->d[0] : &c->d[1];
    (void)suggested;
    *buf = uv_buf_init(d->buf, sizeof d->buf);
}

/* When the chunk arriving now is due: delay ± jitter, retransmissions, never before the last. */
static uint64_t due_time(struct pdir *d, uint64_t now)
{
    const struct chaos_link_state *st = dir_state(d);
    uint64_t *rng = &d->c->link->px->rng;
    int64_t due = (int64_t)now + st->delay_ms;
    if (st->jitter_ms > 0)
        due += (int64_t)(chaos_rand_next(rng) % (2 * (uint64_t)st->jitter_ms + 1)) -
               (int64_t)st->jitter_ms;
    uint64_t rto = RTO_MIN_MS;
    for (unsigned i = 0; st->loss_pct > 0 && i < MAX_RETRANS; i++) {
        double u = (double)(chaos_rand_next(rng) >> 11) / 9007199254740992.0;
        if (u * 100.0 >= st->loss_pct)
            break;
        due += (int64_t)rto;
        rto = rto * 2 > RTO_MAX_MS ? RTO_MAX_MS : rto * 2;
    }
    if (due < (int64_t)now)
        due = (int64_t)now;
    if ((uint64_t)due < d->last_due_ms)
        due = (int64_t)d->last_due_ms;
    d->last_due_ms = (uint64_t)due;
    return (uint64_t)due;
}

static void enqueue(struct pdir *d, const char *data, size_t len)
{
    struct chunk *k = malloc(sizeof *k + len);
    if (k == NULL) {
        fprintf(stderr, "aragora-chaos proxy: out of memory; resetting a connection\n");
        close_conn(d->c, true);
        return;
    }
    k->next = NULL;
    k->len = len;
    k->off = 0;
    memcpy(k->data, data, len);
    k->due_ms = due_time(d, uv_now(d->c->link->px->loop));
    if (d->tail != NULL)
        d->tail->next = k;
    else
        d->head = k;
    d->tail = k;
    d->queued += len;
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct proxy_conn *c = s->data;
    struct pdir *d = (uv_tcp_t *)s == &c->client ? &c->d[0] : &c->d[1];
    (void)buf;
    if (nread == 0 || c->closing)
        return;
    if (nread == UV_EOF) {
        d->eof = true;
        pump(d);
        return;
    }
    if (nread < 0) { /* a reset or an error: the other side gets a reset too */
        close_conn(c, true);
        return;
    }
    if (dir_state(d)->blackhole) {
        c->tainted = true;
        return;
    }
    enqueue(d, d->buf, (size_t)nread);
    if (!c->closing)
        pump(d);
}

static void update_reading(struct pdir *d)
{
    bool want = should_read(d);
    if (want && !d->reading) {
        if (uv_read_start((uv_stream_t *)d->src, alloc_cb, read_cb) == 0)
            d->reading = true;
    } else if (!want && d->reading) {
        uv_read_stop((uv_stream_t *)d->src);
        d->reading = false;
    }
}

/* ---- writing ---- */

static void shutdown_cb(uv_shutdown_t *req, int status)
{
    struct pdir *d = req->data;
    struct proxy_conn *c = d->c;
    d->shut_done = true;
    if (c->closing)
        return;
    if (status < 0 || (c->d[0].shut_done && c->d[1].shut_done))
        close_conn(c, status < 0);
}

static void maybe_shutdown(struct pdir *d)
{
    if (!d->eof || d->shut || d->head != NULL || d->inflight > 0 || d->c->closing)
        return;
    d->shut = true;
    d->shut_req.data = d;
    if (uv_shutdown(&d->shut_req, (uv_stream_t *)d->dst, shutdown_cb) != 0)
        close_conn(d->c, false);
}

static void write_cb(uv_write_t *req, int status)
{
    struct wreq *w = (struct wreq *)req;
    struct proxy_conn *c = w->c;
    struct pdir *d = &c->d[w->idx];
    d->inflight -= w->len;
    free(w);
    if (c->closing)
        return;
    if (status < 0) {
        close_conn(c, true);
        return;
    }
    pump(d);
}

static int send_piece(struct pdir *d, const char *data, size_t len)
{
    struct wreq *w = malloc(sizeof *w + len);
    if (w == NULL)
        return -1;
    w->c = d->c;
    w->idx = d->idx;
    w->len = len;
    memcpy(w->data, data, len);
    uv_buf_t b = uv_buf_init(w->data, (unsigned)len);
    if (uv_write(&w->req, (uv_stream_t *)d->dst, &b, 1, write_cb) != 0) {
        free(w);
        return -1;
    }
    d->inflight += len;
    d->c->link->bytes += len;
    return 0;
}

/* How many bytes the token bucket lets out now (0: wait *wait_ms). */
static size_t rate_allow(struct pdir *d, uint64_t now, size_t want, uint64_t *wait_ms)
{
    double rate = (double)dir_state(d)->rate_bps / 8.0; /* bytes per second */
    double piece = rate / 10.0 < 1.0 ? 1.0 : rate / 10.0;
    if ((double)want > piece)
        want = (size_t)piece;
    double burst = piece;
    if (d->refill_ms == 0 || now < d->refill_ms)
        d->tokens = burst;
    else
        d->tokens += (double)(now - d->refill_ms) * rate / 1000.0;
    if (d->tokens > burst)
        d->tokens = burst;
    d->refill_ms = now;
    if (d->tokens < (double)want) {
        *wait_ms = (uint64_t)(((double)want - d->tokens) * 1000.0 / rate) + 1;
        return 0;
    }
    d->tokens -= (double)want;
    return want;
}

static void timer_cb(uv_timer_t *t)
{
    pump((struct pdir *)(void *)((char *)t - offsetof(struct pdir, timer)));
}

/* Send what is due (and allowed), arm the timer for the rest, adjust reading and EOF. */
static void pump(struct pdir *d)
{
    struct proxy_conn *c = d->c;
    const struct chaos_link_state *st = dir_state(d);
    uint64_t now = uv_now(c->link->px->loop), wait_ms = 0;
    if (c->closing)
        return;
    uv_timer_stop(&d->timer);
    while (d->head != NULL && !st->cut && c->connected) {
        struct chunk *k = d->head;
        if (k->due_ms > now) {
            wait_ms = k->due_ms - now;
            break;
        }
        size_t n = k->len - k->off;
        if (st->rate_bps > 0 && (n = rate_allow(d, now, n, &wait_ms)) == 0)
            break;
        if (send_piece(d, k->data + k->off, n) != 0) {
            close_conn(c, true);
            return;
        }
        k->off += n;
        d->queued -= n;
        if (k->off < k->len)
            continue;
        d->head = k->next;
        if (d->head == NULL)
            d->tail = NULL;
        free(k);
    }
    if (wait_ms > 0)
        uv_timer_start(&d->timer, timer_cb, wait_ms, 0);
    update_reading(d);
    maybe_shutdown(d);
}

/* ---- connections ---- */

static void connect_cb(uv_connect_t *req, int status)
{
    struct proxy_conn *c = req->data;
    c->connecting = false;
    if (status == UV_ECANCELED || c->closing)
        return;
    if (status < 0) {
        fprintf(stderr, "aragora-chaos proxy: %s -> %s %s: connect %s: %s\n",
                c->link->px->regions[c->link->from], c->link->px->regions[c->link->to],
                c->link->service, c->link->upstream, uv_strerror(status));
        close_conn(c, true);
        return;
    }
    c->connected = true;
    uv_tcp_nodelay(&c->client, 1);
    uv_tcp_nodelay(&c->upstream, 1);
    pump(&c->d[0]);
    if (!c->closing)
        pump(&c->d[1]);
}

static void start_connect(struct proxy_conn *c)
{
    c->connecting = true;
    c->connect_req.data = c;
    int rc = uv_tcp_connect(&c->connect_req, &c->upstream,
                            (const struct sockaddr *)&c->link->upstream_addr, connect_cb);
    if (rc != 0) {
        c->connecting = false;
        close_conn(c, true);
    }
}

/* What a connection does under its link's current state (after accept and after every change). */
static void reevaluate(struct proxy_conn *c)
{
    const struct chaos_link_state *fwd = &c->link->st[0], *back = &c->link->st[1];
    if (fwd->reset || back->reset) {
        close_conn(c, true);
        return;
    }
    if (c->tainted && !fwd->blackhole && !back->blackhole) {
        close_conn(c, true);
        return;
    }
    if (!c->connected && !c->connecting && !fwd->cut && !fwd->blackhole)
        start_connect(c);
    for (unsigned i = 0; i < 2 && !c->closing; i++)
        pump(&c->d[i]);
}

static struct proxy_conn *conn_new(struct proxy_link *l)
{
    struct proxy_conn *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->link = l;
    uv_tcp_init(l->px->loop, &c->client);
    uv_tcp_init(l->px->loop, &c->upstream);
    c->client.data = c->upstream.data = c;
    for (unsigned i = 0; i < 2; i++) {
        struct pdir *d = &c->d[i];
        d->c = c;
        d->idx = i;
        d->src = i == 0 ? &c->client : &c->upstream;
        d->dst = i == 0 ? &c->upstream : &c->client;
        uv_timer_init(l->px->loop, &d->timer);
        d->timer.data = c;
    }
    c->open_handles = 4;
    c->next = l->conns;
    if (l->conns != NULL)
        l->conns->prev = c;
    l->conns = c;
    l->n_conns++;
    return c;
}

static void accept_cb(uv_stream_t *server, int status)
{
    struct proxy_link *l = server->data;
    if (status < 0 || l->px->stopping)
        return;
    if (l->dns_front && l->px->faults.dns_429_retry_s > 0) {
        proxy_throttle_accept(l, server);
        return;
    }
    struct proxy_conn *c = conn_new(l);
    if (c == NULL) {
        fprintf(stderr, "aragora-chaos proxy: out of memory accepting on %s\n", l->listen);
        return;
    }
    if (uv_accept(server, (uv_stream_t *)&c->client) != 0) {
        close_conn(c, false);
        return;
    }
    reevaluate(c);
}

/* ---- the fault state ---- */

static void direction_state(const struct proxy *px, unsigned from, unsigned to,
                            struct chaos_link_state *out)
{
    struct chaos_link_state p, f;
    chaos_faultset_link(&px->profile, from, to, &p);
    chaos_faultset_link(&px->faults, from, to, &f);
    chaos_link_combine(&p, &f, out);
}

/* Every link's state from the sets, then every connection (one loop turn: atomic). */
static void apply(struct proxy *px)
{
    for (unsigned i = 0; i < px->n_links; i++) {
        struct proxy_link *l = &px->links[i];
        if (l->dns_front) { /* outside every region: no link fault reaches it */
            memset(l->st, 0, sizeof l->st);
            continue;
        }
        direction_state(px, l->from, l->to, &l->st[0]);
        direction_state(px, l->to, l->from, &l->st[1]);
    }
    for (unsigned i = 0; i < px->n_links; i++) {
        struct proxy_conn *next;
        /* a kept-alive connection to the DNS API must not slip past a new `dns 429` */
        bool throttle = px->links[i].dns_front && px->faults.dns_429_retry_s > 0;
        for (struct proxy_conn *c = px->links[i].conns; c != NULL; c = next) {
            next = c->next;
            if (throttle)
                close_conn(c, true);
            else
                reevaluate(c);
        }
    }
}

static int path_in(const struct proxy *px, const char *name, char *out, size_t size)
{
    int n = snprintf(out, size, "%s/chaos/%s", px->dir, name);
    return n < 0 || (size_t)n >= size ? -1 : 0;
}

static int write_all_fsync(const char *path, const char *data)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    size_t len = strlen(data), done = 0;
    while (done < len) {
        ssize_t w = write(fd, data + done, len - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            close(fd);
            return -1;
        }
        done += (size_t)w;
    }
    int rc = fsync(fd);
    return close(fd) != 0 || rc != 0 ? -1 : 0;
}

int proxy_write_file(const struct proxy *px, const char *name, const char *data, char *path,
                     size_t size)
{
    char tmp[PROXY_PATH_MAX + 48], tmp_name[40];
    snprintf(tmp_name, sizeof tmp_name, "%.32s.tmp", name);
    if (path_in(px, name, path, size) != 0 || path_in(px, tmp_name, tmp, sizeof tmp) != 0) {
        errno = ENAMETOOLONG;
        return -1;
    }
    if (write_all_fsync(tmp, data) != 0 || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        errno = e;
        return -1;
    }
    return 0;
}

/* DIR/chaos/faults.json. */
static void persist(const struct proxy *px)
{
    char path[PROXY_PATH_MAX + 32];
    json_t *doc = json_pack("{s:s,s:s,s:I}", "faults", px->faults_text, "profile", px->profile_text,
                            "version", (json_int_t)px->version);
    char *text = doc != NULL ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (text == NULL || proxy_write_file(px, "faults.json", text, path, sizeof path) != 0)
        fprintf(stderr, "aragora-chaos proxy: cannot write %s/chaos/faults.json: %s\n", px->dir,
                strerror(errno));
    free(text);
}

/* One JSON line per change in DIR/chaos/faults.log (the runner's timeline reads it). */
static void log_change(const struct proxy *px)
{
    char path[PROXY_PATH_MAX + 32];
    if (path_in(px, "faults.log", path, sizeof path) != 0)
        return;
    json_t *doc = json_pack("{s:I,s:s,s:s}", "t_us", (json_int_t)px->since_us, "faults",
                            px->faults_text, "profile", px->profile_text);
    char *text = doc != NULL ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    FILE *f = text != NULL ? fopen(path, "a") : NULL;
    if (f == NULL || fprintf(f, "%s\n", text) < 0 || fclose(f) != 0)
        fprintf(stderr, "aragora-chaos proxy: cannot append to %s\n", path);
    free(text);
    fprintf(stderr, "aragora-chaos proxy: version %" PRIu64 ": faults: %s; profile: %s\n",
            px->version, px->faults_text, px->profile_text);
}

static void changed(struct proxy *px)
{
    px->version++;
    px->since_us = now_us();
    apply(px);
    persist(px);
    log_change(px);
}

static int parse_into(struct proxy *px, const char *text, struct chaos_faultset *set, char *canon,
                      char *why, size_t why_size)
{
    struct chaos_faultset tmp;
    char out[CHAOS_TEXT_MAX];
    if (chaos_faultset_parse(text, px->regions, px->n_regions, &tmp, why, why_size) != 0)
        return -1;
    if (chaos_faultset_format(&tmp, px->regions, px->n_regions, out, sizeof out) != 0) {
        snprintf(why, why_size, "the fault set is too long (at most %d bytes)", CHAOS_TEXT_MAX);
        return -1;
    }
    *set = tmp;
    memcpy(canon, out, sizeof out);
    return 0;
}

/* Parse, then (namespace mode) make the filter so, then commit: a set the kernel refused
 * changes nothing. -1 parse error, -2 the filter could not be changed. */
static int set_sets(struct proxy *px, const char *text, bool profile, char *why, size_t why_size)
{
    struct chaos_faultset set;
    char canon[CHAOS_TEXT_MAX];
    if (parse_into(px, text, &set, canon, why, why_size) != 0)
        return -1;
    if (profile && set.dns_429_retry_s > 0) {
        snprintf(why, why_size, "\"dns 429\" is a fault, not a profile: PUT it to /v1/faults");
        return -1;
    }
    if (px->netns != NULL && proxy_netns_apply(px, profile ? &px->faults : &set,
                                               profile ? &set : &px->profile, why, why_size) != 0)
        return -2;
    if (profile) {
        px->profile = set;
        memcpy(px->profile_text, canon, sizeof canon);
    } else {
        px->faults = set;
        memcpy(px->faults_text, canon, sizeof canon);
    }
    changed(px);
    return 0;
}

int proxy_set_faults(struct proxy *px, const char *text, char *why, size_t why_size)
{
    return set_sets(px, text, false, why, why_size);
}

int proxy_set_profile(struct proxy *px, const char *text, char *why, size_t why_size)
{
    char wan[CHAOS_TEXT_MAX];
    if (strcmp(text, "wan") == 0) {
        if (chaos_wan_profile(px->regions, px->n_regions, wan, sizeof wan) != 0) {
            snprintf(why, why_size, "the WAN profile does not fit");
            return -1;
        }
        text = wan;
    }
    return set_sets(px, text, true, why, why_size);
}

/* The set before a restart (DIR/chaos/faults.json), if any. */
static void restore(struct proxy *px)
{
    char path[PROXY_PATH_MAX + 32], why[512];
    if (path_in(px, "faults.json", path, sizeof path) != 0 || access(path, F_OK) != 0)
        return;
    json_t *doc = json_load_file(path, 0, NULL);
    const char *faults = json_string_value(json_object_get(doc, "faults"));
    const char *profile = json_string_value(json_object_get(doc, "profile"));
    json_int_t version = json_integer_value(json_object_get(doc, "version"));
    if (faults == NULL ||
        parse_into(px, faults, &px->faults, px->faults_text, why, sizeof why) != 0 ||
        (profile != NULL &&
         parse_into(px, profile, &px->profile, px->profile_text, why, sizeof why) != 0))
        fprintf(stderr, "aragora-chaos proxy: %s: ignored (%s)\n", path,
                faults == NULL ? "no \"faults\"" : why);
    else
        fprintf(stderr, "aragora-chaos proxy: restored faults from %s\n", path);
    if (version > 0)
        px->version = (uint64_t)version;
    json_decref(doc);
}

static int listen_links(struct proxy *px)
{
    for (unsigned i = 0; i < px->n_links; i++) {
        struct proxy_link *l = &px->links[i];
        uv_tcp_init(px->loop, &l->server);
        l->server.data = l;
        l->listening = true;
        int rc = uv_tcp_bind(&l->server, (const struct sockaddr *)&l->listen_addr, 0);
        if (rc == 0)
            rc = uv_listen((uv_stream_t *)&l->server, 128, accept_cb);
        if (rc != 0) {
            fprintf(stderr, "aragora-chaos proxy: link %s -> %s %s: listen %s: %s\n",
                    px->regions[l->from], px->regions[l->to], l->service, l->listen,
                    uv_strerror(rc));
            return -1;
        }
    }
    return 0;
}

static void stop_all(struct proxy *px)
{
    if (px->stopping)
        return;
    px->stopping = true;
    for (unsigned i = 0; i < px->n_links; i++) {
        struct proxy_link *l = &px->links[i];
        while (l->conns != NULL)
            close_conn(l->conns, false);
        proxy_throttle_close_all(l);
        if (l->listening)
            uv_close((uv_handle_t *)&l->server, NULL);
        l->listening = false;
    }
    proxy_http_stop(px);
    if (px->netns != NULL)
        proxy_netns_stop(px);
    uv_close((uv_handle_t *)&px->sigterm, NULL);
    uv_close((uv_handle_t *)&px->sigint, NULL);
}

static void signal_cb(uv_signal_t *s, int signum)
{
    struct proxy *px = s->data;
    fprintf(stderr, "aragora-chaos proxy: signal %d: stopping\n", signum);
    stop_all(px);
}

static const char proxy_usage[] =
    "Usage: aragora-chaos proxy --dir DIR\n"
    "\n"
    "The userspace fault proxy of a lab (normally started by `lab up`). Reads "
    "DIR/chaos/links.json,\n"
    "listens on every link's address and forwards to its upstream, applying the active fault\n"
    "set; the control API (GET/PUT/DELETE /v1/faults, /v1/profile, GET /v1/health) listens on\n"
    "the file's \"control\" address. Keeps DIR/chaos/faults.json and DIR/chaos/faults.log.\n"
    "SIGTERM or SIGINT: close everything and exit 0.\n";

static int parse_args(int argc, char **argv, struct proxy *px)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(proxy_usage, stdout);
            return 1;
        }
        if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc && strlen(argv[i + 1]) < sizeof px->dir) {
            snprintf(px->dir, sizeof px->dir, "%s", argv[++i]);
            continue;
        }
        fprintf(stderr, "aragora-chaos proxy: unexpected argument \"%s\"\n%s", argv[i],
                proxy_usage);
        return 2;
    }
    if (px->dir[0] == '\0') {
        fprintf(stderr, "aragora-chaos proxy: --dir DIR is required\n%s", proxy_usage);
        return 2;
    }
    return 0;
}

static int run(struct proxy *px)
{
    px->since_us = now_us();
    px->rng = (uint64_t)px->since_us ^ ((uint64_t)getpid() << 32);
    char why[512] = "";
    if (proxy_load_config(px) != 0)
        return 1;
    if (parse_into(px, px->profile_text, &px->profile, px->profile_text, why, sizeof why) != 0) {
        fprintf(stderr, "aragora-chaos proxy: %s/chaos/links.json: key \"profile\": %s\n", px->dir,
                why);
        return 1;
    }
    snprintf(px->faults_text, sizeof px->faults_text, "none");
    restore(px);
    px->loop = uv_default_loop();
    apply(px);
    uv_signal_init(px->loop, &px->sigterm);
    uv_signal_init(px->loop, &px->sigint);
    px->sigterm.data = px->sigint.data = px;
    if (px->netns != NULL &&
        (proxy_netns_start(px) != 0 ||
         proxy_netns_apply(px, &px->faults, &px->profile, why, sizeof why) != 0)) {
        if (why[0] != '\0')
            fprintf(stderr, "aragora-chaos proxy: %s\n", why);
        stop_all(px);
        uv_run(px->loop, UV_RUN_DEFAULT);
        return 1;
    }
    if (listen_links(px) != 0 || proxy_http_start(px) != 0) {
        stop_all(px);
        uv_run(px->loop, UV_RUN_DEFAULT);
        return 1;
    }
    uv_signal_start(&px->sigterm, signal_cb, SIGTERM);
    uv_signal_start(&px->sigint, signal_cb, SIGINT);
    persist(px);
    log_change(px);
    if (px->netns != NULL)
        fprintf(stderr, "aragora-chaos proxy: namespace mode, control on %s\n", px->control);
    else
        fprintf(stderr, "aragora-chaos proxy: %u links, control on %s\n", px->n_links, px->control);
    uv_run(px->loop, UV_RUN_DEFAULT);
    return 0;
}

int chaos_proxy_main(int argc, char **argv)
{
    struct proxy *px = calloc(1, sizeof *px);
    if (px == NULL)
        return 1;
    /* a peer that went away must cost one connection, not the process: writes to a closed
     * socket then fail with EPIPE instead of killing the proxy */
    signal(SIGPIPE, SIG_IGN);
    int rc = parse_args(argc, argv, px);
    if (rc == 0)
        rc = run(px);
    else if (rc == 1)
        rc = 0;
    if (px->loop != NULL)
        uv_loop_close(px->loop);
    free(px->links);
    proxy_netns_free(px);
    free(px);
    return rc;
}
