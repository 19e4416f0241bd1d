/*
 * Namespace mode of the fault layer (docs/chaos.md "Namespace mode"): `lab up --netns` puts every
 * region in its own network namespace on one bridge, and this controller (the same
 * `aragora-chaos proxy` process, the same control API and files) turns each fault set into
 *   - one nftables transaction in the bridge's namespace (chaos_nft_ruleset, nft.c): cuts, resets,
 *     loss, bandwidth, and a packet mark on every delayed ordered pair;
 *   - a delayer: one static iptables rule (installed here at start) sends marked packets to
 *     NFQUEUE CHAOS_NFQUEUE_NUM, and this process holds each for its pair's delay ± jitter before
 *     accepting it. Order is kept per pair, as the proxy keeps it. The rule carries
 *     --queue-bypass: if this process dies, packets flow undelayed instead of stopping.
 * Running a program inside the bridge's namespace: lab_exec (fork, setns(), exec).
 * Binding the queue there: setns() for this thread, nfq_open, and back.
 */
#define _GNU_SOURCE    /* setns */
#include <arpa/inet.h> /* before linux/netfilter.h (lab-recipes.md §1.5) */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/netfilter.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <libnetfilter_queue/libnetfilter_queue.h>

#include "lab.h"
#include "proxy.h"

#define NETNS_NAME_MAX 64
#define NFT_BIN        "/usr/sbin/nft"
#define IPTABLES_BIN   "/usr/sbin/iptables"
#define QUEUE_MAXLEN   16384
#define RUN_OUT_MAX    1024
#define RUN_TIMEOUT_MS 10000u

struct held {
    uint32_t id;
    uint64_t due_us;
    uint64_t order; /* ties on due_us keep arrival order */
};

struct proxy_netns {
    char bridge[NETNS_NAME_MAX];
    char addrs[CHAOS_MAX_REGIONS][INET_ADDRSTRLEN];
    struct chaos_link_state state[CHAOS_MAX_REGIONS * CHAOS_MAX_REGIONS];
    uint64_t last_due_us[CHAOS_MAX_REGIONS * CHAOS_MAX_REGIONS];
    uint64_t delayed[CHAOS_MAX_REGIONS * CHAOS_MAX_REGIONS]; /* packets held, per pair */
    struct nfq_handle *h;
    struct nfq_q_handle *qh;
    uv_poll_t poll;
    uv_timer_t timer;
    bool started;
    struct held *heap;
    size_t n_held, cap;
    uint64_t order, lost; /* lost: notifications the kernel could not deliver (ENOBUFS) */
};

static uint64_t mono_us(void)
{
    return uv_hrtime() / 1000;
}

/* ---- links.json ---- */

static int netns_error(const char *path, const char *key, const char *what)
{
    fprintf(stderr, "aragora-chaos proxy: %s: key \"netns.%s\": %s\n", path, key, what);
    return -1;
}

int proxy_netns_load(struct proxy *px, json_t *obj, const char *path)
{
    struct proxy_netns *ns = calloc(1, sizeof *ns);
    if (ns == NULL)
        return netns_error(path, "bridge", "out of memory");
    px->netns = ns;
    const char *bridge = json_string_value(json_object_get(obj, "bridge"));
    json_t *addrs = json_object_get(obj, "addresses");
    struct in_addr a;
    if (bridge == NULL || bridge[0] == '\0' || strlen(bridge) >= sizeof ns->bridge ||
        strchr(bridge, '/') != NULL)
        return netns_error(path, "bridge", "expected a network namespace's name");
    snprintf(ns->bridge, sizeof ns->bridge, "%s", bridge);
    if (!json_is_array(addrs) || json_array_size(addrs) != px->n_regions)
        return netns_error(path, "addresses", "expected one IPv4 address per region");
    for (unsigned i = 0; i < px->n_regions; i++) {
        const char *s = json_string_value(json_array_get(addrs, i));
        if (s == NULL || inet_pton(AF_INET, s, &a) != 1)
            return netns_error(path, "addresses", "expected one IPv4 address per region");
        snprintf(ns->addrs[i], sizeof ns->addrs[i], "%s", s);
    }
    return 0;
}

void proxy_netns_free(struct proxy *px)
{
    if (px->netns != NULL)
        free(px->netns->heap);
    free(px->netns);
    px->netns = NULL;
}

/* ---- running nft and iptables inside the bridge's namespace ---- */

/* argv inside the bridge's namespace (lab_exec); its output, trailing blanks cut, into out.
 * Returns its exit status, -1 when it could not run. */
static int run_in_bridge(const struct proxy_netns *ns, const char *const argv[], char *out,
                         size_t out_size)
{
    int rc = lab_exec(NULL, ns->bridge, argv, NULL, out, out_size, RUN_TIMEOUT_MS);
    size_t len = strlen(out);
    while (len > 0 && (out[len - 1] == '\n' || out[len - 1] == ' '))
        out[--len] = '\0';
    if (rc == -1 && len == 0) /* lab_exec said why on stderr: proxy.log */
        snprintf(out, out_size, "could not run %s in network namespace %s (see proxy.log)", argv[0],
                 ns->bridge);
    return rc;
}

/* The static rule that hands marked packets to our queue (added once; -C checks for it). */
static int ensure_queue_rule(const struct proxy_netns *ns, char *why, size_t why_size)
{
    char mark[32], queue[8], out[RUN_OUT_MAX];
    snprintf(mark, sizeof mark, "0x%x/0x%x", CHAOS_NFT_MARK_BASE, CHAOS_NFT_MARK_MASK);
    snprintf(queue, sizeof queue, "%d", CHAOS_NFQUEUE_NUM);
    const char *check[] = {IPTABLES_BIN,     "-w", "-C", "FORWARD", "-m",          "mark",
                           "--mark",         mark, "-j", "NFQUEUE", "--queue-num", queue,
                           "--queue-bypass", NULL};
    if (run_in_bridge(ns, check, out, sizeof out) == 0)
        return 0;
    const char *add[] = {IPTABLES_BIN,     "-w", "-A", "FORWARD", "-m",          "mark",
                         "--mark",         mark, "-j", "NFQUEUE", "--queue-num", queue,
                         "--queue-bypass", NULL};
    if (run_in_bridge(ns, add, out, sizeof out) != 0) {
        snprintf(why, why_size, "iptables NFQUEUE rule in %s: %.300s", ns->bridge, out);
        return -1;
    }
    return 0;
}

/* ---- the delayer ---- */

static bool held_before(const struct held *a, const struct held *b)
{
    return a->due_us < b->due_us || (a->due_us == b->due_us && a->order < b->order);
}

static void heap_swap(struct held *a, struct held *b)
{
    struct held t = *a;
    *a = *b;
    *b = t;
}

static int heap_push(struct proxy_netns *ns, struct held h)
{
    if (ns->n_held == ns->cap) {
        size_t cap = ns->cap > 0 ? ns->cap * 2 : 256;
        struct held *p = realloc(ns->heap, cap * sizeof *p);
        if (p == NULL)
            return -1;
        ns->heap = p;
        ns->cap = cap;
    }
    size_t i = ns->n_held++;
    ns->heap[i] = h;
    while (i > 0 && held_before(&ns->heap[i], &ns->heap[(i - 1) / 2])) {
        heap_swap(&ns->heap[i], &ns->heap[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    return 0;
}

static struct held heap_pop(struct proxy_netns *ns)
{
    struct held top = ns->heap[0];
    ns->heap[0] = ns->heap[--ns->n_held];
    for (size_t i = 0;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < ns->n_held && held_before(&ns->heap[l], &ns->heap[m]))
            m = l;
        if (r < ns->n_held && held_before(&ns->heap[r], &ns->heap[m]))
            m = r;
        if (m == i)
            break;
        heap_swap(&ns->heap[i], &ns->heap[m]);
        i = m;
    }
    return top;
}

static void timer_cb(uv_timer_t *t);

/* The timer fires when the earliest held packet is due. */
static void arm_timer(struct proxy_netns *ns)
{
    if (ns->n_held == 0)
        return;
    uint64_t now = mono_us(), due = ns->heap[0].due_us;
    uv_timer_start(&ns->timer, timer_cb, due > now ? (due - now + 999) / 1000 : 0, 0);
}

static void release_due(struct proxy_netns *ns, bool all)
{
    uint64_t now = mono_us();
    while (ns->n_held > 0 && (all || ns->heap[0].due_us <= now)) {
        struct held h = heap_pop(ns);
        nfq_set_verdict(ns->qh, h.id, NF_ACCEPT, 0, NULL);
    }
}

static void timer_cb(uv_timer_t *t)
{
    struct proxy_netns *ns = t->data;
    release_due(ns, false);
    arm_timer(ns);
}

/* How long this packet of pair p waits: delay ± jitter, never before the pair's previous one. */
static uint64_t due_for(struct proxy *px, unsigned p, uint64_t now)
{
    struct proxy_netns *ns = px->netns;
    const struct chaos_link_state *st = &ns->state[p];
    int64_t d = (int64_t)st->delay_ms * 1000;
    if (st->jitter_ms > 0) {
        uint64_t span = (uint64_t)st->jitter_ms * 2000 + 1;
        d += (int64_t)(chaos_rand_next(&px->rng) % span) - (int64_t)st->jitter_ms * 1000;
    }
    uint64_t due = now + (uint64_t)(d > 0 ? d : 0);
    if (due < ns->last_due_us[p])
        due = ns->last_due_us[p];
    ns->last_due_us[p] = due;
    return due;
}

static int packet_cb(struct nfq_q_handle *qh, struct nfgenmsg *msg, struct nfq_data *nfa,
                     void *data)
{
    (void)msg;
    struct proxy *px = data;
    struct proxy_netns *ns = px->netns;
    struct nfqnl_msg_packet_hdr *ph = nfq_get_msg_packet_hdr(nfa);
    if (ph == NULL)
        return 0;
    uint32_t id = ntohl(ph->packet_id), mark = nfq_get_nfmark(nfa);
    unsigned from = (mark >> 4) & 0xf, to = mark & 0xf, n = px->n_regions;
    if ((mark & CHAOS_NFT_MARK_MASK) != CHAOS_NFT_MARK_BASE || from >= n || to >= n)
        return nfq_set_verdict(qh, id, NF_ACCEPT, 0, NULL);
    unsigned p = from * n + to;
    const struct chaos_link_state *st = &ns->state[p];
    if (st->delay_ms == 0 && st->jitter_ms == 0)
        return nfq_set_verdict(qh, id, NF_ACCEPT, 0, NULL);
    struct held h = {.id = id, .due_us = due_for(px, p, mono_us()), .order = ns->order++};
    if (heap_push(ns, h) != 0)
        return nfq_set_verdict(qh, id, NF_ACCEPT, 0, NULL); /* out of memory: let it pass */
    ns->delayed[p]++;
    if (ns->n_held == 1 || ns->heap[0].id == id)
        arm_timer(ns);
    return 0;
}

static void poll_cb(uv_poll_t *p, int status, int events)
{
    (void)events;
    struct proxy *px = p->data;
    struct proxy_netns *ns = px->netns;
    char buf[8192] __attribute__((aligned));
    if (status < 0)
        return;
    for (;;) {
        ssize_t n = recv(nfq_fd(ns->h), buf, sizeof buf, MSG_DONTWAIT);
        if (n > 0) {
            nfq_handle_packet(ns->h, buf, (int)n);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == ENOBUFS) {
            ns->lost++; /* the kernel dropped notifications (and so those packets) */
            continue;
        }
        break; /* EAGAIN: drained */
    }
}

/* nfq_open and the queue, inside the bridge's namespace: a netlink socket belongs to the
 * namespace of the thread that creates it, so switch there and back. */
static int open_queue(struct proxy *px, char *why, size_t why_size)
{
    struct proxy_netns *ns = px->netns;
    int self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    int there = lab_netns_open(ns->bridge);
    int rc = -1;
    if (self < 0 || there < 0 || setns(there, CLONE_NEWNET) != 0) {
        snprintf(why, why_size, "cannot enter network namespace %s: %s", ns->bridge,
                 strerror(errno));
        goto close_fds;
    }
    ns->h = nfq_open();
    if (ns->h != NULL) {
        nfq_bind_pf(ns->h, AF_INET); /* a no-op on kernels since 3.8; harmless */
        ns->qh = nfq_create_queue(ns->h, CHAOS_NFQUEUE_NUM, packet_cb, px);
    }
    if (ns->qh != NULL && nfq_set_mode(ns->qh, NFQNL_COPY_META, 0) == 0) {
        fcntl(nfq_fd(ns->h), F_SETFD, FD_CLOEXEC); /* not into nft's and iptables' processes */
        nfq_set_queue_maxlen(ns->qh, QUEUE_MAXLEN);
        nfnl_rcvbufsiz(nfq_nfnlh(ns->h), 4u << 20);
        rc = 0;
    } else {
        snprintf(why, why_size, "NFQUEUE %d in %s: %s", CHAOS_NFQUEUE_NUM, ns->bridge,
                 strerror(errno));
    }
    if (setns(self, CLONE_NEWNET) != 0) {
        snprintf(why, why_size, "cannot return to our network namespace: %s", strerror(errno));
        rc = -1;
    }
close_fds:
    if (self >= 0)
        close(self);
    if (there >= 0)
        close(there);
    return rc;
}

int proxy_netns_start(struct proxy *px)
{
    struct proxy_netns *ns = px->netns;
    char why[512];
    if (ensure_queue_rule(ns, why, sizeof why) != 0 || open_queue(px, why, sizeof why) != 0) {
        fprintf(stderr, "aragora-chaos proxy: %s\n", why);
        return -1;
    }
    uv_timer_init(px->loop, &ns->timer);
    ns->timer.data = ns;
    uv_poll_init(px->loop, &ns->poll, nfq_fd(ns->h));
    ns->poll.data = px;
    uv_poll_start(&ns->poll, UV_READABLE, poll_cb);
    ns->started = true;
    return 0;
}

/* ---- applying a fault set ---- */

int proxy_netns_apply(struct proxy *px, const struct chaos_faultset *faults,
                      const struct chaos_faultset *profile, char *why, size_t why_size)
{
    struct proxy_netns *ns = px->netns;
    unsigned n = px->n_regions;
    struct chaos_link_state old[CHAOS_MAX_REGIONS * CHAOS_MAX_REGIONS];
    const char *addrs[CHAOS_MAX_REGIONS];
    char text[32768], out[RUN_OUT_MAX];
    memcpy(old, ns->state, sizeof old);
    for (unsigned f = 0; f < n; f++) {
        addrs[f] = ns->addrs[f];
        for (unsigned t = 0; t < n; t++) {
            struct chaos_link_state a, b;
            chaos_faultset_link(profile, f, t, &a);
            chaos_faultset_link(faults, f, t, &b);
            chaos_link_combine(&a, &b, &ns->state[f * n + t]);
        }
    }
    if (chaos_nft_ruleset(ns->state, n, addrs, text, sizeof text) != 0) {
        memcpy(ns->state, old, sizeof old);
        snprintf(why, why_size, "the rule set does not fit in %zu bytes", sizeof text);
        return -1;
    }
    /* the delays are in place before the marks that send packets to them. The set goes to
     * rules.nft.next; only once nft has taken it does it become DIR/chaos/rules.nft, so that file
     * is always what the filter holds (operators compare the two; docs/chaos.md). */
    char next[PROXY_PATH_MAX + 32], path[PROXY_PATH_MAX + 32];
    if (proxy_write_file(px, "rules.nft.next", text, next, sizeof next) != 0) {
        memcpy(ns->state, old, sizeof old);
        snprintf(why, why_size, "cannot write %s/chaos/rules.nft.next: %s", px->dir,
                 strerror(errno));
        return -1;
    }
    const char *argv[] = {NFT_BIN, "-f", next, NULL};
    int rc = run_in_bridge(ns, argv, out, sizeof out);
    if (rc != 0) {
        unlink(next);
        memcpy(ns->state, old, sizeof old);
        snprintf(why, why_size, "nft in %s refused the rule set (exit %d): %.300s", ns->bridge, rc,
                 out);
        return -1;
    }
    snprintf(path, sizeof path, "%s/chaos/rules.nft", px->dir);
    if (rename(next, path) != 0)
        fprintf(stderr, "aragora-chaos proxy: %s: %s\n", path, strerror(errno));
    return 0;
}

void proxy_netns_stop(struct proxy *px)
{
    struct proxy_netns *ns = px->netns;
    char out[RUN_OUT_MAX];
    /* one transaction: create the table if it is not there, so that deleting it cannot fail */
    const char *argv[] = {NFT_BIN, "table ip " CHAOS_NFT_TABLE "; delete table ip " CHAOS_NFT_TABLE,
                          NULL};
    char path[PROXY_PATH_MAX + 32];
    if (run_in_bridge(ns, argv, out, sizeof out) != 0)
        fprintf(stderr, "aragora-chaos proxy: removing the filter: %s\n", out);
    else if (snprintf(path, sizeof path, "%s/chaos/rules.nft", px->dir) > 0)
        unlink(path); /* no filter, no rule set: the file says what is in force */
    if (ns->qh != NULL)
        release_due(ns, true);
    if (ns->started) {
        uv_poll_stop(&ns->poll);
        uv_close((uv_handle_t *)&ns->poll, NULL);
        uv_close((uv_handle_t *)&ns->timer, NULL);
        ns->started = false;
    }
    if (ns->qh != NULL)
        nfq_destroy_queue(ns->qh);
    if (ns->h != NULL)
        nfq_close(ns->h);
    ns->qh = NULL;
    ns->h = NULL;
}

json_t *proxy_netns_json(const struct proxy *px)
{
    const struct proxy_netns *ns = px->netns;
    unsigned n = px->n_regions;
    json_t *pairs = json_array();
    for (unsigned f = 0; f < n; f++) {
        for (unsigned t = 0; t < n; t++) {
            if (f == t)
                continue;
            json_array_append_new(pairs,
                                  json_pack("{s:s,s:s,s:s,s:s,s:o,s:I}", "from", px->regions[f],
                                            "to", px->regions[t], "from_address", ns->addrs[f],
                                            "to_address", ns->addrs[t], "state",
                                            proxy_link_state_json(&ns->state[f * n + t]),
                                            "packets_delayed", (json_int_t)ns->delayed[f * n + t]));
        }
    }
    return json_pack("{s:s,s:i,s:I,s:I,s:o}", "bridge", ns->bridge, "queue", CHAOS_NFQUEUE_NUM,
                     "packets_held", (json_int_t)ns->n_held, "notifications_lost",
                     (json_int_t)ns->lost, "pairs", pairs);
}
