/*
 * The userspace fault proxy (`aragora-chaos proxy --dir DIR`, proxy.c) and its control API
 * (proxy_http.c). Shared between those two files only; the lab and the runner talk to it over
 * HTTP (docs/chaos.md "The fault layer").
 */
#ifndef AFC_CHAOS_PROXY_H
#define AFC_CHAOS_PROXY_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>
#include <uv.h>

#include "chaos.h"

#define PROXY_PATH_MAX 512
#define PROXY_ADDR_MAX 64

struct proxy;
struct proxy_conn;
struct throttle;

/* One listener: connections from region `from` to `service` of region `to`. */
struct proxy_link {
    struct proxy *px;
    unsigned from, to;
    char service[CHAOS_NAME_MAX];
    char listen[PROXY_ADDR_MAX], upstream[PROXY_ADDR_MAX];
    struct sockaddr_storage listen_addr, upstream_addr;
    uv_tcp_t server;
    bool listening;
    struct chaos_link_state st[2]; /* [0] from -> to (client to server), [1] to -> from */
    struct proxy_conn *conns;      /* doubly linked */
    unsigned n_conns;
    uint64_t bytes;
    bool dns_front;     /* service "dns-api": the DNS provider's API, outside every region; no
                           link faults, but `dns 429` answers for it (proxy_throttle.c) */
    uint64_t throttled; /* requests answered 429 */
    struct throttle *throttles; /* connections being answered 429 (proxy_throttle.c) */
};

struct proxy {
    uv_loop_t *loop;
    char dir[PROXY_PATH_MAX];
    char control[PROXY_ADDR_MAX];
    unsigned n_regions;
    char region_names[CHAOS_MAX_REGIONS][CHAOS_NAME_MAX];
    const char *regions[CHAOS_MAX_REGIONS];
    struct chaos_faultset faults, profile;
    char faults_text[CHAOS_TEXT_MAX], profile_text[CHAOS_TEXT_MAX];
    uint64_t version;
    int64_t since_us;
    struct proxy_link *links;
    unsigned n_links;
    uint64_t rng;
    uv_signal_t sigterm, sigint;
    uv_tcp_t control_server;
    bool control_open, stopping;
    struct proxy_netns *netns; /* namespace mode (proxy_netns.c); NULL: the userspace proxy */
};

/* Replace the fault set (or the profile) with `text`, atomically: every link's state and every
 * connection re-evaluated in this loop turn, faults.json rewritten, a faults.log line appended.
 * Returns -1 with the parse reason in why (nothing changes then). */
int proxy_set_faults(struct proxy *px, const char *text, char *why, size_t why_size);
int proxy_set_profile(struct proxy *px, const char *text, char *why, size_t why_size);
/* DIR/chaos/NAME := data, atomically (tmp + fsync + rename); its path into path. -1 with errno. */
int proxy_write_file(const struct proxy *px, const char *name, const char *data, char *path,
                     size_t size);
/* The GET /v1/faults body (a new reference). */
json_t *proxy_state_json(const struct proxy *px);

/* proxy_http.c: read DIR/chaos/links.json into px (regions, control, links; the profile as raw
 * text in px->profile_text). Prints "FILE: key \"K\": reason" and returns -1 on error. */
int proxy_load_config(struct proxy *px);
/* "A.B.C.D:PORT" into an IPv4 address; -1 when malformed. */
int proxy_parse_addr(const char *text, struct sockaddr_storage *out);

/* proxy_throttle.c: take a connection accepted on a dns-api link while `dns 429` is in force:
 * read one HTTP request, answer 429 Too Many Requests with Retry-After, close. */
void proxy_throttle_accept(struct proxy_link *l, uv_stream_t *server);
/* Close every such connection now (the proxy is stopping). */
void proxy_throttle_close_all(struct proxy_link *l);

/* proxy_http.c: one direction's state as JSON (a new reference). */
json_t *proxy_link_state_json(const struct chaos_link_state *st);

/* proxy_http.c: the control API on px->control. Returns -1 with a message printed. */
int proxy_http_start(struct proxy *px);
void proxy_http_stop(struct proxy *px);

/* proxy_netns.c: namespace mode. There are no links then: the regions are network namespaces
 * on one bridge and the fault set becomes the bridge's packet filter (chaos_nft_ruleset) plus
 * an NFQUEUE delayer in this process. */
/* links.json's "netns" object: {"bridge": NETNS, "addresses": [one IPv4 per region]}. Prints
 * "FILE: key \"netns.K\": reason" and returns -1 on error. */
int proxy_netns_load(struct proxy *px, json_t *obj, const char *path);
/* Bind the delayer's queue inside the bridge's namespace and start serving it. */
int proxy_netns_start(struct proxy *px);
/* Make the filter what (faults over profile) say, in one nft transaction; the delayer takes
 * the new delays at once. -1 with the reason in why: nothing changed. */
int proxy_netns_apply(struct proxy *px, const struct chaos_faultset *faults,
                      const struct chaos_faultset *profile, char *why, size_t why_size);
/* Release every held packet, remove the filter (no fault outlives its controller), close. */
void proxy_netns_stop(struct proxy *px);
void proxy_netns_free(struct proxy *px);
/* GET /v1/faults's "netns" member: the bridge and, per ordered pair, state and counters. */
json_t *proxy_netns_json(const struct proxy *px);

/* faultspec.c (pure): the WAN profile text (also in chaos.h). */
int chaos_wan_profile(const char *const *regions, unsigned n, char *out, size_t size);

#endif
