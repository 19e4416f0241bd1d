/*
 * The lab's PowerDNS Authoritative server (lab-recipes.md §3.1–3.2; the same pdns.conf as
 * tests/dns/dnslab.py): one pdns_server for the whole lab, sqlite3 backend, HTTP API and RFC 2136
 * updates with TSIG, on loopback.
 *
 *   ports: DNS (UDP and TCP) on BASE+10*N, API and webserver on BASE+10*N+1 (N = regions)
 *   DIR/pdns/          pdns.conf (0600: it holds the API key), pdns.sqlite3, the control socket;
 *                      mode 0700, owned by the service user
 *   DIR/pdns.log       its stdout and stderr
 *   DIR/pdns-api-key   the API key (0600), the coordinators' dns.powerdns.api_key_file
 *   DIR/tsig-secret    the TSIG key's base64 secret (0600), their dns.rfc2136.tsig_secret_file
 *
 * Up: create the database from the packaged schema with the sqlite3 CLI (as the service user),
 * write pdns.conf, start pdns_server --config-dir=DIR/pdns (daemon=no, guardian=no: one process,
 * recognised by that argument), wait for its API, then through the API make sure that the zone
 * exists — created with the adopted primary's A record and its TXT stamp "epoch=1 region=R" when
 * the lab has PostgreSQL — and that the TSIG key and the zone's TSIG-ALLOW-DNSUPDATE metadata
 * exist. Everything is idempotent, so a lab brought up again keeps its zone as the coordinators
 * left it. pdns_server never runs as root: as root, the lab starts it as the service user itself
 * (rather than through pdns's setuid/setgid settings, which would run its start-up as root).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "lab.h"

#define PDNS_SERVER     "/usr/sbin/pdns_server"
#define SQLITE3         "/usr/bin/sqlite3"
#define PDNS_SCHEMA     "/usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql"
#define PDNS_READY_MS   20000u
#define PDNS_STOP_MS    10000u
#define PDNS_HTTP_MS    5000L
#define LAB_ZONE        "aragora.lab."
#define LAB_NAME        "primary.aragora.lab."
#define LAB_TSIG_NAME   "aragora-lab-key."
#define LAB_FIRST_EPOCH 1 /* the epoch the first leader gives the adopted primary */

const char *lab_dns_mode_name(enum lab_dns_mode mode)
{
    return mode == LAB_DNS_POWERDNS ? "powerdns" : mode == LAB_DNS_RFC2136 ? "rfc2136" : "none";
}

static int join(char *out, size_t size, const char *dir, const char *name)
{
    int n = snprintf(out, size, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= size) {
        fprintf(stderr, "aragora-chaos: path too long: %s/%s\n", dir, name);
        return -1;
    }
    return 0;
}

int lab_dns_prepare(struct lab *lab, enum lab_dns_mode mode)
{
    struct lab_dns *d = &lab->dns;
    memset(d, 0, sizeof *d);
    d->mode = mode;
    if (mode == LAB_DNS_OFF)
        return 0;
    d->dns_port = lab->base_port + 10 * lab->n_regions;
    d->api_port = d->dns_port + 1;
    /* namespace mode: the regions reach it over the bridge, at this machine's address there */
    snprintf(d->host, sizeof d->host, "%s",
             lab->netns.enabled ? lab->netns.host_addr : "127.0.0.1");
    snprintf(d->api_url, sizeof d->api_url, "http://%s:%u", d->host, d->api_port);
    snprintf(d->zone, sizeof d->zone, "%s", LAB_ZONE);
    snprintf(d->name, sizeof d->name, "%s", LAB_NAME);
    snprintf(d->tsig_name, sizeof d->tsig_name, "%s", LAB_TSIG_NAME);
    if (join(d->dir, sizeof d->dir, lab->dir, "pdns") != 0 ||
        join(d->log, sizeof d->log, lab->dir, "pdns.log") != 0 ||
        join(d->api_key_file, sizeof d->api_key_file, lab->dir, "pdns-api-key") != 0 ||
        join(d->tsig_secret_file, sizeof d->tsig_secret_file, lab->dir, "tsig-secret") != 0)
        return -1;
    /* sun_path holds 108 bytes: DIR/pdns/pdns.controlsocket */
    if (strlen(d->dir) + sizeof "/pdns.controlsocket" > 107) {
        fprintf(stderr, "aragora-chaos: %s: too long for a unix socket path; use a shorter --dir\n",
                d->dir);
        return -1;
    }
    return 0;
}

/* "--config-dir=DIR/pdns": how pdns_server is started, and so recognised. */
static const char *config_arg(const struct lab_dns *d, char *buf, size_t size)
{
    snprintf(buf, size, "--config-dir=%s", d->dir);
    return buf;
}

enum lab_proc_state lab_dns_state(const struct lab_dns *d)
{
    char arg[LAB_PATH_MAX + 16];
    return d->mode != LAB_DNS_OFF ? lab_pid_state(d->pid, config_arg(d, arg, sizeof arg))
                                  : LAB_PROC_DEAD;
}

void lab_dns_write_config(FILE *f, const struct lab *lab)
{
    const struct lab_dns *d = &lab->dns;
    fprintf(f,
            "dns:\n  provider: %s\n  name: %s\n  zone: %s\n  ttl: 5\n"
            "  verify_servers: [\"%s:%u\"]\n",
            lab_dns_mode_name(d->mode), d->name, d->zone, d->host, d->dns_port);
    /* both sections: dns.provider picks one, so switching is a one-line edit; the API through
     * the fault layer's front when there is one (`dns 429`) */
    char front[96];
    fprintf(f, "  powerdns:\n    api_url: \"%s\"\n    api_key_file: \"%s\"\n",
            lab_dns_front_url(lab, front, sizeof front) == 0 ? front : d->api_url, d->api_key_file);
    fprintf(f,
            "  rfc2136:\n    server: \"%s:%u\"\n    tsig_name: %s\n"
            "    tsig_algorithm: hmac-sha256\n    tsig_secret_file: \"%s\"\n",
            d->host, d->dns_port, d->tsig_name, d->tsig_secret_file);
}

/* ---- files ---- */

/* The API key: the first line of DIR/pdns-api-key. */
static int read_api_key(const struct lab_dns *d, char *out, size_t size)
{
    FILE *f = fopen(d->api_key_file, "r");
    if (f == NULL || fgets(out, (int)size, f) == NULL) {
        fprintf(stderr, "aragora-chaos: reading %s: %s\n", d->api_key_file, strerror(errno));
        if (f != NULL)
            fclose(f);
        return -1;
    }
    fclose(f);
    out[strcspn(out, "\r\n")] = '\0';
    return 0;
}

/* Write `text` to path with `mode`, owned by `user` when not "" (root). */
static int write_private(const char *path, const char *text, mode_t mode, const char *user)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    struct passwd *pw = user[0] != '\0' ? getpwnam(user) : NULL;
    bool ok = fd >= 0 && fchmod(fd, mode) == 0 &&
              (pw == NULL || fchown(fd, pw->pw_uid, pw->pw_gid) == 0) &&
              write(fd, text, strlen(text)) == (ssize_t)strlen(text);
    if (fd >= 0 && close(fd) != 0)
        ok = false;
    if (!ok) {
        fprintf(stderr, "aragora-chaos: writing %s: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

static int write_pdns_conf(const struct lab *lab, const char *api_key)
{
    const struct lab_dns *d = &lab->dns;
    char path[LAB_PATH_MAX + 16], text[4096];
    /* namespace mode: also on this machine's bridge address, for the regions' subnet */
    bool netns = lab->netns.enabled;
    const char *subnet = netns ? lab->netns.subnet : "";
    snprintf(path, sizeof path, "%s/pdns.conf", d->dir);
    int n = snprintf(text, sizeof text,
                     "# Generated by aragora-chaos lab up (docs/operations.md).\n"
                     "launch=gsqlite3\n"
                     "gsqlite3-database=%s/pdns.sqlite3\n"
                     "local-address=127.0.0.1%s%s\n"
                     "local-port=%u\n"
                     "api=yes\n"
                     "api-key=%s\n"
                     "webserver=yes\n"
                     "webserver-address=%s\n"
                     "webserver-port=%u\n"
                     "webserver-allow-from=127.0.0.0/8%s%s%s\n"
                     "daemon=no\n"
                     "guardian=no\n"
                     "disable-syslog=yes\n"
                     "socket-dir=%s\n"
                     "security-poll-suffix=\n"
                     "dnsupdate=yes\n"
                     "allow-dnsupdate-from=127.0.0.0/8%s%s%s\n"
                     "default-soa-content=ns1.@ hostmaster.@ 0 10800 3600 604800 5\n",
                     d->dir, netns ? ", " : "", netns ? d->host : "", d->dns_port, api_key, d->host,
                     d->api_port, netns ? ", " : "", subnet, netns ? ".0/24" : "", d->dir,
                     netns ? ", " : "", subnet, netns ? ".0/24" : "");
    if (n < 0 || (size_t)n >= sizeof text)
        return -1;
    return write_private(path, text, 0600, lab->svc_run_as);
}

/* A new database from the packaged schema, through the sqlite3 CLI, as the service user (so that
 * pdns_server can write it). An existing one is kept. */
static int create_database(const struct lab *lab)
{
    const struct lab_dns *d = &lab->dns;
    char db[LAB_PATH_MAX + 16];
    snprintf(db, sizeof db, "%s/pdns.sqlite3", d->dir);
    if (access(db, F_OK) == 0)
        return 0;
    const char *argv[] = {SQLITE3, db, ".read " PDNS_SCHEMA, NULL};
    if (lab_exec(lab->svc_run_as, NULL, argv, d->log, NULL, 0, 30000) != 0) {
        fprintf(stderr, "aragora-chaos: dns: creating %s failed\n", db);
        lab_print_file_tail(d->log, "pdns", 10);
        unlink(db);
        return -1;
    }
    return 0;
}

/* ---- the process ---- */

static long api(const struct lab_dns *d, const char *key, const char *method, const char *path,
                const char *body, char *out)
{
    char url[256];
    snprintf(url, sizeof url, "%s/api/v1/servers/localhost%s", d->api_url, path);
    return lab_http(method, url, key, body, PDNS_HTTP_MS, out);
}

/* Start pdns_server and wait until its API answers 200. */
static int start_pdns(struct lab *lab, const char *key)
{
    struct lab_dns *d = &lab->dns;
    char arg[LAB_PATH_MAX + 16];
    const char *argv[] = {PDNS_SERVER, config_arg(d, arg, sizeof arg), NULL};
    if (lab_spawn_service(lab->svc_run_as, NULL, argv, d->log, d->dir, &d->pid) != 0)
        return -1;
    unsigned long long start = lab_now_ms();
    while (lab_now_ms() - start < PDNS_READY_MS) {
        if (lab_dns_state(d) == LAB_PROC_DEAD) {
            fprintf(stderr, "aragora-chaos: dns: pdns_server (pid %d) exited during start-up\n",
                    (int)d->pid);
            lab_print_file_tail(d->log, "pdns", 20);
            return -1;
        }
        if (api(d, key, "GET", "", NULL, NULL) == 200)
            return 0;
        lab_sleep_ms(20);
    }
    fprintf(stderr, "aragora-chaos: dns: the PowerDNS API (%s) not ready after %u s\n", d->api_url,
            PDNS_READY_MS / 1000);
    lab_print_file_tail(d->log, "pdns", 20);
    return -1;
}

/* The primary the lab created (the one PostgreSQL created or found as primary), or NULL. */
static const struct lab_region *created_primary(const struct lab *lab)
{
    const struct lab_region *p = NULL;
    for (unsigned i = 0; lab->postgres && i < lab->n_regions; i++) {
        if (strcmp(lab->regions[i].pg.role, "primary") == 0) {
            if (p != NULL)
                return NULL;
            p = &lab->regions[i];
        }
    }
    return p;
}

static json_t *rrset(const char *name, const char *type, const char *content)
{
    return json_pack("{s:s, s:s, s:i, s:s, s:[{s:s, s:b}]}", "name", name, "type", type, "ttl", 5,
                     "changetype", "REPLACE", "records", "content", content, "disabled", 0);
}

/* The zone: created if absent, with the primary's address and its stamp when there is one. */
static int ensure_zone(const struct lab *lab, const char *key)
{
    const struct lab_dns *d = &lab->dns;
    const struct lab_region *primary = created_primary(lab);
    char path[128], out[8192], ns[80], stamp[96];
    snprintf(path, sizeof path, "/zones/%s", d->zone);
    long st = api(d, key, "GET", path, NULL, NULL);
    if (st == 200) {
        printf("dns: reusing zone %s\n", d->zone);
        return 0;
    }
    snprintf(ns, sizeof ns, "ns1.%s", d->zone);
    json_t *rrsets = json_array();
    if (primary != NULL) {
        /* the TXT record's text, as afc_dns_stamp_format() writes it (include/afc/dns.h) */
        snprintf(stamp, sizeof stamp, "\"epoch=%d region=%s\"", LAB_FIRST_EPOCH, primary->name);
        json_array_append_new(rrsets, rrset(d->name, "A", primary->address));
        json_array_append_new(rrsets, rrset(d->name, "TXT", stamp));
    }
    json_t *doc = json_pack("{s:s, s:s, s:[s], s:o}", "name", d->zone, "kind", "Native",
                            "nameservers", ns, "rrsets", rrsets);
    char *body = doc != NULL ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    st = body != NULL ? api(d, key, "POST", "/zones", body, out) : 0;
    free(body);
    if (st != 201) {
        fprintf(stderr, "aragora-chaos: dns: creating zone %s: HTTP %ld %s\n", d->zone, st, out);
        return -1;
    }
    if (primary != NULL)
        printf("dns: zone %s: %s A %s, TXT \"epoch=%d region=%s\"\n", d->zone, d->name,
               primary->address, LAB_FIRST_EPOCH, primary->name);
    else
        printf("dns: zone %s, %s not set (no PostgreSQL, so no primary)\n", d->zone, d->name);
    return 0;
}

/* The TSIG key (created if absent), allowed to update the zone; its secret to DIR/tsig-secret. */
static int ensure_tsig(const struct lab *lab, const char *key)
{
    const struct lab_dns *d = &lab->dns;
    char path[128], out[8192], name[64], body[256], secret[256];
    snprintf(name, sizeof name, "%.*s", (int)strlen(d->tsig_name) - 1, d->tsig_name);
    snprintf(path, sizeof path, "/tsigkeys/%s", d->tsig_name);
    long st = api(d, key, "GET", path, NULL, out);
    if (st == 404) {
        snprintf(body, sizeof body, "{\"name\": \"%s\", \"algorithm\": \"hmac-sha256\"}", name);
        st = api(d, key, "POST", "/tsigkeys", body, out) == 201 ? 200 : 0;
    }
    json_t *doc = st == 200 ? json_loads(out, 0, NULL) : NULL;
    const char *b64 = json_string_value(json_object_get(doc, "key"));
    int rc = b64 != NULL && strlen(b64) + 2 < sizeof secret ? 0 : -1;
    if (rc == 0) {
        snprintf(secret, sizeof secret, "%s\n", b64);
        rc = write_private(d->tsig_secret_file, secret, 0600, "");
        explicit_bzero(secret, sizeof secret);
    } else {
        fprintf(stderr, "aragora-chaos: dns: TSIG key %s: no secret in the API's answer\n",
                d->tsig_name);
    }
    json_decref(doc);
    snprintf(path, sizeof path, "/zones/%s/metadata/TSIG-ALLOW-DNSUPDATE", d->zone);
    snprintf(body, sizeof body, "{\"metadata\": [\"%s\"]}", name);
    if (rc == 0 && api(d, key, "PUT", path, body, out) != 200) {
        fprintf(stderr, "aragora-chaos: dns: TSIG-ALLOW-DNSUPDATE on %s: %s\n", d->zone, out);
        rc = -1;
    }
    return rc;
}

static int check_installed(void)
{
    static const char *const need[] = {PDNS_SERVER, SQLITE3, PDNS_SCHEMA};
    for (size_t i = 0; i < sizeof need / sizeof need[0]; i++) {
        if (access(need[i], R_OK) != 0) {
            fprintf(stderr,
                    "aragora-chaos: %s: %s (install pdns-server, pdns-backend-sqlite3 and "
                    "sqlite3, or use --no-dns)\n",
                    need[i], strerror(errno));
            return -1;
        }
    }
    return 0;
}

int lab_dns_up(struct lab *lab)
{
    struct lab_dns *d = &lab->dns;
    char key[128];
    unsigned long long t0 = lab_now_ms();
    if (check_installed() != 0 || lab_ensure_secret(d->api_key_file, 24) != 0 ||
        read_api_key(d, key, sizeof key) != 0 ||
        lab_make_owned(d->dir, false, lab->svc_run_as) != 0 || write_pdns_conf(lab, key) != 0 ||
        create_database(lab) != 0)
        return -1;
    int rc = start_pdns(lab, key);
    if (lab_save(lab) != 0 || rc != 0)
        return -1;
    printf("%-14s pdns pid %-7d dns 127.0.0.1:%u  api %s  (%llu ms)\n", "dns", (int)d->pid,
           d->dns_port, d->api_url, lab_now_ms() - t0);
    fflush(stdout);
    rc = ensure_zone(lab, key) == 0 && ensure_tsig(lab, key) == 0 ? 0 : -1;
    explicit_bzero(key, sizeof key);
    return rc;
}

/* ---- faults ---- */

static int not_enabled(void)
{
    fprintf(stderr, "aragora-chaos: dns: no PowerDNS in this lab (--no-dns or --no-postgres)\n");
    return 1;
}

int lab_dns_signal(struct lab *lab, int sig)
{
    char arg[LAB_PATH_MAX + 16];
    if (lab->dns.mode == LAB_DNS_OFF)
        return not_enabled();
    return lab_signal_service(lab->dns.pid, config_arg(&lab->dns, arg, sizeof arg),
                              "dns: pdns_server", sig);
}

int lab_dns_restart(struct lab *lab)
{
    struct lab_dns *d = &lab->dns;
    char key[128];
    if (d->mode == LAB_DNS_OFF)
        return not_enabled();
    pid_t old = d->pid;
    if (lab_dns_state(d) != LAB_PROC_DEAD) {
        kill(old, SIGKILL);
        if (!lab_pid_wait_gone(old, 5000)) {
            fprintf(stderr, "aragora-chaos: dns: pdns_server pid %d survives SIGKILL\n", (int)old);
            return 1;
        }
    }
    if (read_api_key(d, key, sizeof key) != 0)
        return 1;
    int rc = start_pdns(lab, key);
    explicit_bzero(key, sizeof key);
    if (lab_save(lab) != 0 || rc != 0)
        return 1;
    printf("dns: pdns_server restarted (pid %d, was %d)\n", (int)d->pid, (int)old);
    return 0;
}

int lab_dns_down(struct lab *lab)
{
    char arg[LAB_PATH_MAX + 16];
    if (lab->dns.mode == LAB_DNS_OFF)
        return 0;
    return lab_stop_service(lab->dns.pid, config_arg(&lab->dns, arg, sizeof arg),
                            "dns: pdns_server", PDNS_STOP_MS);
}

/* ---- status ---- */

/* The first record of `type` at d->name in the zone document, or NULL. */
static const char *record_at(json_t *zone, const char *name, const char *type)
{
    json_t *set;
    size_t i;
    json_array_foreach(json_object_get(zone, "rrsets"), i, set)
    {
        const char *n = json_string_value(json_object_get(set, "name"));
        const char *t = json_string_value(json_object_get(set, "type"));
        if (n != NULL && t != NULL && strcmp(n, name) == 0 && strcmp(t, type) == 0)
            return json_string_value(
                json_object_get(json_array_get(json_object_get(set, "records"), 0), "content"));
    }
    return NULL;
}

/* "A 127.0.10.1  TXT "epoch=1 region=us-east-2"": what the name holds, read through the API. */
static void name_holds(const struct lab_dns *d, const char *key, char *out, size_t size)
{
    static const char *const types[] = {"A", "AAAA", "TXT"};
    char path[128], body[8192];
    size_t used = 0;
    snprintf(out, size, "-");
    snprintf(path, sizeof path, "/zones/%s", d->zone);
    if (api(d, key, "GET", path, NULL, body) != 200)
        return;
    json_t *doc = json_loads(body, 0, NULL);
    out[0] = '\0';
    for (size_t i = 0; i < sizeof types / sizeof types[0] && used < size; i++) {
        const char *content = record_at(doc, d->name, types[i]);
        if (content != NULL)
            used += (size_t)snprintf(out + used, size - used, "%s%s %s", used ? "  " : "", types[i],
                                     content);
    }
    if (out[0] == '\0')
        snprintf(out, size, "(not set)");
    json_decref(doc);
}

void lab_dns_print_status(const struct lab *lab)
{
    const struct lab_dns *d = &lab->dns;
    enum lab_proc_state st = lab_dns_state(d);
    char key[128], holds[512] = "-";
    if (st == LAB_PROC_ALIVE && read_api_key(d, key, sizeof key) == 0) {
        name_holds(d, key, holds, sizeof holds);
        explicit_bzero(key, sizeof key);
    }
    printf("\n%-14s %-7s %-8s %-6s %-6s %-9s %s\n", "DNS", "PID", "PROCESS", "PORT", "API",
           "PROVIDER", d->name);
    printf("%-14s %-7d %-8s %-6u %-6u %-9s %s\n", "powerdns", (int)d->pid, lab_proc_state_name(st),
           d->dns_port, d->api_port, lab_dns_mode_name(d->mode), holds);
}
