/*
 * The lab's cross-region links (docs/chaos.md, "The fault layer"). With the proxy on (the
 * default), every connection from region F to a service of region T goes through the userspace
 * fault proxy (`aragora-chaos proxy`, proxy.c): F's configuration names T's Raft port (through
 * members[].raft_dial), T's API and T's PostgreSQL at 127.1.<F+1>.<T+1> on T's own port, where
 * the proxy listens and forwards to 127.0.0.1. A replica's primary_conninfo goes the same way.
 * What stays direct: a region's own services, the PowerDNS (the DNS provider is outside every
 * region) and the test's or operator's own connections to 127.0.0.1.
 *
 * Loopback is 127.0.0.0/8 on Linux: binding 127.1.x.y needs no set-up and no root, and the
 * services themselves listen on 127.0.0.1 (and the member address 127.0.10.x) only, so the
 * proxy's listeners never collide with them.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lab.h"
#include "chaos.h"

#define PROXY_READY_MS 10000

int lab_proxy_prepare(struct lab *lab, bool enabled, bool wan)
{
    struct lab_proxy *p = &lab->proxy;
    memset(p, 0, sizeof *p);
    p->enabled = enabled;
    p->wan = wan && enabled;
    p->control_port = lab->base_port + 10 * lab->n_regions + 5;
    int n = snprintf(p->dir, sizeof p->dir, "%s/chaos", lab->dir);
    int m = snprintf(p->links, sizeof p->links, "%s/links.json", p->dir);
    int k = snprintf(p->log, sizeof p->log, "%s/proxy.log", p->dir);
    if (n < 0 || m < 0 || k < 0 || (size_t)m >= sizeof p->links || (size_t)k >= sizeof p->log) {
        fprintf(stderr, "aragora-chaos: path too long: %s/chaos/links.json\n", lab->dir);
        return -1;
    }
    if (!enabled)
        return 0;
    if (mkdir(p->dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "aragora-chaos: mkdir %s: %s\n", p->dir, strerror(errno));
        return -1;
    }
    return 0;
}

void lab_via_host(const struct lab *lab, unsigned from, unsigned to, char *out, size_t size)
{
    if (lab->netns.enabled)
        snprintf(out, size, "%s", lab->regions[to].host);
    else if (!lab->proxy.enabled || from == to)
        snprintf(out, size, "127.0.0.1");
    else
        snprintf(out, size, "127.1.%u.%u", from + 1, to + 1);
}

static void write_link(FILE *f, const struct lab *lab, unsigned from, unsigned to,
                       const char *service, unsigned port, bool *first)
{
    char host[32];
    lab_via_host(lab, from, to, host, sizeof host);
    fprintf(f,
            "%s\n    {\"from\": \"%s\", \"to\": \"%s\", \"service\": \"%s\", \"listen\": "
            "\"%s:%u\", \"upstream\": \"127.0.0.1:%u\"}",
            *first ? "" : ",", lab->regions[from].name, lab->regions[to].name, service, host, port,
            port);
    *first = false;
}

/* The PowerDNS API's front (proxy_throttle.c, `dns 429`): on the fault layer's control port + 1,
 * where the regions reach this machine (127.0.0.1, or its bridge address in namespace mode). */
static bool has_dns_front(const struct lab *lab)
{
    return lab->proxy.enabled && lab->dns.mode == LAB_DNS_POWERDNS;
}

int lab_dns_front_url(const struct lab *lab, char *out, size_t size)
{
    if (!has_dns_front(lab))
        return -1;
    snprintf(out, size, "http://%s:%u", lab->dns.host, lab->proxy.control_port + 1);
    return 0;
}

static void write_dns_front(FILE *f, const struct lab *lab, bool first)
{
    fprintf(f,
            "%s\n    {\"service\": \"dns-api\", \"listen\": \"%s:%u\", \"upstream\": "
            "\"%s:%u\"}",
            first ? "" : ",", lab->dns.host, lab->proxy.control_port + 1, lab->dns.host,
            lab->dns.api_port);
}

/* DIR/chaos/links.json: the proxy's whole configuration (proxy.c reads it). */
static int write_links(const struct lab *lab)
{
    const char *names[LAB_MAX_REGIONS];
    char profile[4096] = "";
    for (unsigned i = 0; i < lab->n_regions; i++)
        names[i] = lab->regions[i].name;
    if (lab->proxy.wan && chaos_wan_profile(names, lab->n_regions, profile, sizeof profile) != 0) {
        fprintf(stderr, "aragora-chaos: the WAN profile does not fit\n");
        return -1;
    }
    FILE *f = fopen(lab->proxy.links, "w");
    if (f == NULL) {
        fprintf(stderr, "aragora-chaos: %s: %s\n", lab->proxy.links, strerror(errno));
        return -1;
    }
    fprintf(f, "{\n  \"control\": \"127.0.0.1:%u\",\n  \"regions\": [", lab->proxy.control_port);
    for (unsigned i = 0; i < lab->n_regions; i++)
        fprintf(f, "%s\"%s\"", i ? ", " : "", names[i]);
    fprintf(f, "],\n  \"profile\": \"%s\",\n", profile);
    if (lab->netns.enabled) {
        /* namespace mode: no links to listen on; the controller filters the bridge */
        fprintf(f, "  \"netns\": {\"bridge\": \"%s\", \"addresses\": [", lab->netns.bridge);
        for (unsigned i = 0; i < lab->n_regions; i++)
            fprintf(f, "%s\"%s\"", i ? ", " : "", lab->regions[i].host);
        fprintf(f, "]},\n  \"links\": [");
        if (has_dns_front(lab))
            write_dns_front(f, lab, true);
        fprintf(f, "\n  ]\n}\n");
        return fclose(f) == 0 ? 0 : -1;
    }
    fprintf(f, "  \"links\": [");
    bool first = true;
    for (unsigned a = 0; a < lab->n_regions; a++) {
        for (unsigned b = 0; b < lab->n_regions; b++) {
            const struct lab_region *t = &lab->regions[b];
            if (a == b)
                continue;
            write_link(f, lab, a, b, "raft", t->raft_port, &first);
            write_link(f, lab, a, b, "api", t->api_port, &first);
            if (t->pg.enabled)
                write_link(f, lab, a, b, "postgres", t->pg.port, &first);
        }
    }
    if (has_dns_front(lab))
        write_dns_front(f, lab, first);
    fprintf(f, "\n  ]\n}\n");
    if (fclose(f) != 0) {
        fprintf(stderr, "aragora-chaos: %s: %s\n", lab->proxy.links, strerror(errno));
        return -1;
    }
    return 0;
}

enum lab_proc_state lab_proxy_state(const struct lab *lab)
{
    const struct lab_proxy *p = &lab->proxy;
    if (!p->enabled || lab_pid_state(p->pid, "proxy") == LAB_PROC_DEAD)
        return LAB_PROC_DEAD;
    return lab_pid_state(p->pid, lab->dir);
}

int lab_proxy_up(struct lab *lab)
{
    struct lab_proxy *p = &lab->proxy;
    char self[LAB_PATH_MAX], url[96];
    if (!p->enabled)
        return 0;
    if (lab_self_exe(self, sizeof self) != 0 || write_links(lab) != 0)
        return -1;
    const char *argv[] = {self, "proxy", "--dir", lab->dir, NULL};
    if (lab_spawn_service(NULL, NULL, argv, p->log, p->dir, &p->pid) != 0 || lab_save(lab) != 0)
        return -1;
    snprintf(url, sizeof url, "http://127.0.0.1:%u/v1/health", p->control_port);
    unsigned long long start = lab_now_ms();
    while (lab_now_ms() - start < PROXY_READY_MS) {
        if (lab_proxy_state(lab) == LAB_PROC_DEAD) {
            fprintf(stderr, "aragora-chaos: the fault proxy (pid %d) exited during start-up\n",
                    (int)p->pid);
            lab_print_file_tail(p->log, "proxy", 20);
            return -1;
        }
        if (lab_http("GET", url, NULL, NULL, 500, NULL) == 200) {
            printf("%-14s pid %-7d control http://127.0.0.1:%u%s%s\n",
                   lab->netns.enabled ? "fault netns" : "fault proxy", (int)p->pid, p->control_port,
                   lab->netns.enabled ? " (nftables + NFQUEUE)" : "",
                   p->wan ? " (WAN profile)" : "");
            return 0;
        }
        lab_sleep_ms(50);
    }
    fprintf(stderr, "aragora-chaos: the fault proxy did not answer on %s within %u s\n", url,
            PROXY_READY_MS / 1000);
    return -1;
}

int lab_proxy_down(struct lab *lab)
{
    if (lab_proxy_state(lab) == LAB_PROC_DEAD)
        return 0;
    return lab_stop_service(lab->proxy.pid, lab->dir, "fault proxy", 5000);
}

void lab_proxy_print_status(const struct lab *lab)
{
    const struct lab_proxy *p = &lab->proxy;
    if (!p->enabled) {
        printf("\nFAULT LAYER    none (lab up --no-proxy): regions connect directly\n");
        return;
    }
    if (lab->netns.enabled)
        printf("\nNETNS          bridge %s, regions %s.1-%u, this machine %s\n", lab->netns.bridge,
               lab->netns.subnet, lab->n_regions, lab->netns.host_addr);
    printf("\n%-14s pid %-7d %-8s control http://127.0.0.1:%u%s\n",
           lab->netns.enabled ? "FAULT NETNS" : "FAULT PROXY", (int)p->pid,
           lab_proc_state_name(lab_proxy_state(lab)), p->control_port,
           p->wan ? "  WAN profile" : "");
    printf("               aragora-chaos fault show --dir %s\n", lab->dir);
}
