/*
 * Namespace mode of the lab (`lab up --netns`, root; docs/chaos.md "Namespace mode",
 * lab-recipes.md §1.1). Each region's coordinator, PostgreSQL and Redis run in a network
 * namespace of their own, NAME-<i>, with one interface wan0 at SUBNET.<i+1>; a namespace NAME-br
 * holds the bridge br0 (SUBNET.253, which lets nft's TCP resets be routed) that joins them, and
 * one more veth reaches the machine's own namespace at SUBNET.254: the operator's and the test's
 * link, and the PowerDNS's (the DNS provider is outside every region). Faults act on the
 * bridge's forward path between region addresses only (proxy_netns.c), so that link is never
 * cut. NAME is "afc" and the base port, the subnet 10.(100 + P/256).(P%256), so labs on
 * different base ports never share either.
 *
 * Built with `ip` (iproute2): the veth ends are created directly inside their namespaces, and
 * deleting the namespaces (after their processes, lab-recipes.md P6) removes every interface,
 * the machine's end included.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "lab.h"

#define IP_BIN     "/usr/sbin/ip"
#define SYSCTL_BIN "/usr/sbin/sysctl"
#define IP_TIMEOUT 20000

int lab_netns_prepare(struct lab *lab, bool enabled)
{
    struct lab_netns *n = &lab->netns;
    memset(n, 0, sizeof *n);
    n->enabled = enabled;
    if (!enabled)
        return 0;
    if (geteuid() != 0) {
        fprintf(stderr, "aragora-chaos: --netns needs root (network namespaces, nftables); "
                        "without root the default fault proxy does the same job\n");
        return -1;
    }
    unsigned p = lab->base_port;
    snprintf(n->prefix, sizeof n->prefix, "afc%u", p);
    snprintf(n->bridge, sizeof n->bridge, "%s-br", n->prefix);
    snprintf(n->subnet, sizeof n->subnet, "10.%u.%u", 100 + p / 256, p % 256);
    snprintf(n->host_if, sizeof n->host_if, "%s", n->prefix);
    snprintf(n->host_addr, sizeof n->host_addr, "%s.254", n->subnet);
    return 0;
}

void lab_netns_region(const struct lab *lab, struct lab_region *r, unsigned i)
{
    const struct lab_netns *n = &lab->netns;
    if (!n->enabled) {
        snprintf(r->host, sizeof r->host, "127.0.0.1");
        r->netns[0] = '\0';
        return;
    }
    snprintf(r->host, sizeof r->host, "%s.%u", n->subnet, i + 1);
    snprintf(r->netns, sizeof r->netns, "%s-%u", n->prefix, i);
}

/* Run one command; print it with its output when it fails. */
static int run(const char *const argv[])
{
    char out[512];
    int rc = lab_exec(NULL, NULL, argv, NULL, out, sizeof out, IP_TIMEOUT);
    if (rc == 0)
        return 0;
    fprintf(stderr, "aragora-chaos: netns:");
    for (unsigned i = 0; argv[i] != NULL; i++)
        fprintf(stderr, " %s", argv[i]);
    fprintf(stderr, ": exit %d%s%s\n", rc, out[0] != '\0' ? ": " : "", out);
    return -1;
}

static bool netns_exists(const char *name)
{
    char path[LAB_PATH_MAX];
    snprintf(path, sizeof path, "/run/netns/%s", name);
    return access(path, F_OK) == 0;
}

/* Does any process live in namespace `name`? (`ip netns pids` prints one PID per line.) */
static bool netns_busy(const char *name)
{
    char out[256];
    const char *argv[] = {IP_BIN, "netns", "pids", name, NULL};
    return lab_exec(NULL, NULL, argv, NULL, out, sizeof out, IP_TIMEOUT) == 0 && out[0] != '\0';
}

static int add_netns(const char *name)
{
    const char *add[] = {IP_BIN, "netns", "add", name, NULL};
    const char *lo[] = {IP_BIN, "-n", name, "link", "set", "lo", "up", NULL};
    return run(add) == 0 && run(lo) == 0 ? 0 : -1;
}

/* A veth with one end `inner` in namespace `ns` (NULL: this namespace) and the other, `port`,
 * on the bridge; `addr` on the inner end. */
static int add_link(const struct lab_netns *n, const char *ns, const char *inner, const char *port,
                    const char *addr)
{
    char cidr[32];
    snprintf(cidr, sizeof cidr, "%s/24", addr);
    const char *create_in[] = {IP_BIN, "link", "add",  "name", inner,   "netns",   ns,  "type",
                               "veth", "peer", "name", port,   "netns", n->bridge, NULL};
    const char *create_here[] = {IP_BIN, "link", "add", "name",  inner,     "type", "veth",
                                 "peer", "name", port,  "netns", n->bridge, NULL};
    const char *master[] = {IP_BIN, "-n", n->bridge, "link", "set", port, "master", "br0", NULL};
    const char *port_up[] = {IP_BIN, "-n", n->bridge, "link", "set", port, "up", NULL};
    const char *addr_in[] = {IP_BIN, "-n", ns, "addr", "add", cidr, "dev", inner, NULL};
    const char *up_in[] = {IP_BIN, "-n", ns, "link", "set", inner, "up", NULL};
    const char *addr_here[] = {IP_BIN, "addr", "add", cidr, "dev", inner, NULL};
    const char *up_here[] = {IP_BIN, "link", "set", inner, "up", NULL};
    if (run(ns != NULL ? create_in : create_here) != 0 || run(master) != 0 || run(port_up) != 0)
        return -1;
    if (ns != NULL)
        return run(addr_in) == 0 && run(up_in) == 0 ? 0 : -1;
    return run(addr_here) == 0 && run(up_here) == 0 ? 0 : -1;
}

static int add_bridge(const struct lab_netns *n)
{
    char cidr[32];
    snprintf(cidr, sizeof cidr, "%s.253/24", n->subnet);
    const char *br[] = {IP_BIN, "-n", n->bridge, "link", "add", "br0", "type", "bridge", NULL};
    const char *up[] = {IP_BIN, "-n", n->bridge, "link", "set", "br0", "up", NULL};
    const char *addr[] = {IP_BIN, "-n", n->bridge, "addr", "add", cidr, "dev", "br0", NULL};
    /* bridged IPv4 must pass the ip family's forward hook, where the filter and NFQUEUE act */
    const char *nf[] = {IP_BIN,
                        "netns",
                        "exec",
                        n->bridge,
                        SYSCTL_BIN,
                        "-qw",
                        "net.bridge.bridge-nf-call-iptables=1",
                        NULL};
    if (add_netns(n->bridge) != 0 || run(br) != 0 || run(up) != 0 || run(addr) != 0 || run(nf) != 0)
        return -1;
    return 0;
}

/* This machine's end of the veth, when a lab left it: deleting a namespace removes its
 * interfaces asynchronously, so a lab brought down and up at once could still find it. Deleting
 * one end removes both. */
static int del_host_link(const struct lab_netns *n)
{
    char path[LAB_PATH_MAX];
    snprintf(path, sizeof path, "/sys/class/net/%s", n->host_if);
    if (access(path, F_OK) != 0)
        return 0;
    const char *del[] = {IP_BIN, "link", "del", n->host_if, NULL};
    return run(del);
}

/* Namespaces left by a lab that was never brought down: removed when empty, else refused. */
static int clear_stale(const struct lab *lab)
{
    const struct lab_netns *n = &lab->netns;
    char names[LAB_MAX_REGIONS + 1][48];
    unsigned k = 0;
    snprintf(names[k++], sizeof names[0], "%s", n->bridge);
    for (unsigned i = 0; i < lab->n_regions; i++)
        snprintf(names[k++], sizeof names[0], "%s", lab->regions[i].netns);
    for (unsigned i = 0; i < k; i++) {
        if (!netns_exists(names[i]))
            continue;
        if (netns_busy(names[i])) {
            fprintf(stderr,
                    "aragora-chaos: network namespace %s exists and has processes in it (another "
                    "lab on base port %u?); see `ip netns pids %s`\n",
                    names[i], lab->base_port, names[i]);
            return -1;
        }
        const char *del[] = {IP_BIN, "netns", "del", names[i], NULL};
        if (run(del) != 0)
            return -1;
    }
    return 0;
}

int lab_netns_up(struct lab *lab)
{
    const struct lab_netns *n = &lab->netns;
    if (!n->enabled)
        return 0;
    unsigned long long start = lab_now_ms();
    if (clear_stale(lab) != 0 || add_bridge(n) != 0)
        return -1;
    for (unsigned i = 0; i < lab->n_regions; i++) {
        const struct lab_region *r = &lab->regions[i];
        char port[16];
        snprintf(port, sizeof port, "p%u", i);
        if (add_netns(r->netns) != 0 || add_link(n, r->netns, "wan0", port, r->host) != 0)
            return -1;
    }
    if (del_host_link(n) != 0 || add_link(n, NULL, n->host_if, "ph", n->host_addr) != 0)
        return -1;
    printf("%-14s bridge %s, regions at %s.1-%u, this machine at %s (%llu ms)\n", "netns",
           n->bridge, n->subnet, lab->n_regions, n->host_addr, lab_now_ms() - start);
    return 0;
}

int lab_netns_down(const struct lab *lab)
{
    const struct lab_netns *n = &lab->netns;
    int rc = 0;
    if (!n->enabled)
        return 0;
    if (del_host_link(n) != 0)
        rc = -1;
    for (unsigned i = 0; i <= lab->n_regions; i++) {
        const char *name = i < lab->n_regions ? lab->regions[i].netns : n->bridge;
        if (!netns_exists(name))
            continue;
        if (netns_busy(name)) {
            fprintf(stderr, "aragora-chaos: network namespace %s still has processes; kept\n",
                    name);
            rc = -1;
            continue;
        }
        const char *del[] = {IP_BIN, "netns", "del", name, NULL};
        if (run(del) != 0)
            rc = -1;
    }
    return rc;
}
