/*
 * The run report (chaos.h, docs/chaos.md "Reading a report"): a record and its checks ->
 * DIR/report.json (for machines), DIR/report.md (for people) and DIR/timeline.svg (a picture of
 * who led, who was primary, which faults were active and where writes landed). Each file is
 * written to DIR/NAME.tmp, synced and renamed, so a reader never sees half a report. DIR is
 * created if missing. chaos_report_write has no `why` argument: its message goes to stderr as
 * "report: PATH: reason".
 *
 * report.json (format 1; key names are stable, new keys may be added):
 *   format        1
 *   scenario      {name, file, description, seed, mode, wan, replication, fence}
 *   start, end    ISO-8601 UTC with milliseconds ("2026-11-26T23:31:18.123Z")
 *   duration_s    end - start in seconds
 *   verdict       "pass" | "fail" (checks->all_passed)
 *   regions       the lab's region names, in index order
 *   initial_primary  a region name or null
 *   checks        [{name, verdict: "pass"|"fail"|"skipped", value, value2, detail}]
 *   writes        {REGION: {ok, fail, unknown}} counts of the workload's writes
 *   events        [{kind, t, region, from, epoch}]: kind is failover-decided, failover-promoted,
 *                 failover-done, failover-aborted, promoted (the authorized primary changed),
 *                 promoted-here or leader-elected; t in seconds after start; from a region or
 *                 null; epoch (the term for leader-elected)
 *   faults        [{label, start_s, end_s, failure}]: end_s null when active until the end
 *   final         [{source, answered, primary, epoch}]: primary a region name or null
 *
 * timeline.svg is drawn by report_svg.c; report_internal.h holds what the two files share.
 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "chaos.h"
#include "report_internal.h"

typedef int (*writer_fn)(FILE *f, const struct report *r);

/* ---- Shared helpers -------------------------------------------------------------------------- */

const char *report_region_name(const struct chaos_record *rec, long i)
{
    return i >= 0 && i < (long)rec->n_regions ? rec->regions[i] : NULL;
}

double report_rel_s(const struct chaos_record *rec, int64_t t_us)
{
    return (double)(t_us - rec->start_us) / 1e6;
}

static const char *verdict_word(enum chaos_verdict v)
{
    return v == CHAOS_PASS ? "pass" : v == CHAOS_FAILED ? "fail" : "skipped";
}

bool report_passed(const struct report *r)
{
    return r->checks != NULL && r->checks->all_passed;
}

static unsigned n_checks(const struct report *r)
{
    if (r->checks == NULL) {
        return 0;
    }
    return r->checks->n < CHAOS_MAX_CHECKS ? r->checks->n : CHAOS_MAX_CHECKS;
}

static const char *event_kind_name(enum chaos_event_kind k)
{
    static const char *const names[] = {
        [CHAOS_EV_DECIDED] = "failover-decided", [CHAOS_EV_PROMOTED] = "failover-promoted",
        [CHAOS_EV_DONE] = "failover-done",       [CHAOS_EV_ABORTED] = "failover-aborted",
        [CHAOS_EV_AUTHORIZED] = "promoted",      [CHAOS_EV_NODE_PROMOTED_HERE] = "promoted-here",
        [CHAOS_EV_LEADER] = "leader-elected",
    };
    return (unsigned)k < sizeof names / sizeof names[0] ? names[k] : "?";
}

void report_iso_time(int64_t us, char *buf, size_t size)
{
    time_t s = (time_t)(us / 1000000);
    struct tm tm;
    char day[32];
    gmtime_r(&s, &tm);
    strftime(day, sizeof day, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, size, "%s.%03dZ", day, (int)(us % 1000000 / 1000));
}

const char *report_or_empty(const char *s)
{
    return s != NULL ? s : "";
}

/* The length of the well-formed UTF-8 sequence at s (RFC 3629: no overlongs, no surrogates, at
 * most U+10FFFF), or 0. */
size_t report_utf8_seq(const char *p)
{
    const unsigned char *s = (const unsigned char *)p;
    size_t n = s[0] < 0x80   ? 1
               : s[0] < 0xc2 ? 0
               : s[0] < 0xe0 ? 2
               : s[0] < 0xf0 ? 3
               : s[0] < 0xf5 ? 4
                             : 0;
    unsigned char lo = s[0] == 0xe0 ? 0xa0 : s[0] == 0xf0 ? 0x90 : 0x80;
    unsigned char hi = s[0] == 0xed ? 0x9f : s[0] == 0xf4 ? 0x8f : 0xbf;
    if (n > 1 && (s[1] < lo || s[1] > hi)) {
        return 0;
    }
    for (size_t i = 2; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            return 0;
        }
    }
    return n;
}

/* s with every byte that is not part of a UTF-8 sequence replaced by '?'. */
static void utf8_clean(const char *s, char *out, size_t size)
{
    size_t j = 0;
    while (*s && j + 5 < size) {
        size_t n = report_utf8_seq(s);
        if (n == 0) {
            out[j++] = '?';
        }
        memcpy(out + j, s, n);
        j += n;
        s += n ? n : 1;
    }
    out[j] = '\0';
}

/* Writes per region and result. */
void report_count_writes(const struct chaos_record *rec, size_t counts[][3])
{
    memset(counts, 0, sizeof(size_t[3]) * CHAOS_MAX_REGIONS);
    for (size_t i = 0; i < rec->n_ops; i++) {
        const struct chaos_op *op = &rec->ops[i];
        if (op->region < CHAOS_MAX_REGIONS && (unsigned)op->result <= CHAOS_UNKNOWN) {
            counts[op->region][op->result]++;
        }
    }
}

/* ---- report.json ----------------------------------------------------------------------------- */

/* A JSON string (bytes that are not UTF-8 as '?'), or null for NULL. */
static json_t *jstr(const char *s)
{
    char clean[1024];
    json_t *j = s != NULL ? json_string(s) : NULL;
    if (j == NULL && s != NULL) {
        utf8_clean(s, clean, sizeof clean);
        j = json_string(clean);
    }
    return j != NULL ? j : json_null();
}

static json_t *jnum(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

static json_t *json_meta(const struct chaos_report_meta *m)
{
    return json_pack("{s:o, s:o, s:o, s:I, s:o, s:b, s:o, s:b}", "name", jstr(m->scenario), "file",
                     jstr(m->file), "description", jstr(m->description), "seed",
                     (json_int_t)m->seed, "mode", jstr(m->mode), "wan", m->wan, "replication",
                     jstr(m->replication), "fence", m->fence);
}

static json_t *json_checks(const struct report *r)
{
    json_t *a = json_array();
    for (unsigned i = 0; i < n_checks(r); i++) {
        const struct chaos_check *c = &r->checks->c[i];
        json_array_append_new(a, json_pack("{s:o, s:s, s:o, s:o, s:o}", "name", jstr(c->name),
                                           "verdict", verdict_word(c->verdict), "value",
                                           jnum(c->value), "value2", jnum(c->value2), "detail",
                                           jstr(c->detail)));
    }
    return a;
}

static json_t *json_writes(const struct chaos_record *rec)
{
    size_t counts[CHAOS_MAX_REGIONS][3];
    json_t *o = json_object();
    report_count_writes(rec, counts);
    for (unsigned i = 0; i < rec->n_regions && i < CHAOS_MAX_REGIONS; i++) {
        json_object_set_new(o, rec->regions[i],
                            json_pack("{s:I, s:I, s:I}", "ok", (json_int_t)counts[i][CHAOS_OK],
                                      "fail", (json_int_t)counts[i][CHAOS_FAIL], "unknown",
                                      (json_int_t)counts[i][CHAOS_UNKNOWN]));
    }
    return o;
}

static json_t *json_events(const struct chaos_record *rec)
{
    json_t *a = json_array();
    for (size_t i = 0; i < rec->n_events; i++) {
        const struct chaos_event *e = &rec->events[i];
        json_array_append_new(
            a, json_pack("{s:s, s:o, s:o, s:o, s:I}", "kind", event_kind_name(e->kind), "t",
                         jnum(report_rel_s(rec, e->t_us)), "region",
                         jstr(report_region_name(rec, e->region)), "from",
                         jstr(report_region_name(rec, e->from)), "epoch", (json_int_t)e->epoch));
    }
    return a;
}

static json_t *json_faults(const struct chaos_record *rec)
{
    json_t *a = json_array();
    for (size_t i = 0; i < rec->n_intervals; i++) {
        const struct chaos_interval *v = &rec->intervals[i];
        json_array_append_new(
            a, json_pack("{s:o, s:o, s:o, s:b}", "label", jstr(v->label), "start_s",
                         jnum(report_rel_s(rec, v->start_us)), "end_s",
                         v->end_us != 0 ? jnum(report_rel_s(rec, v->end_us)) : json_null(),
                         "failure", v->failure));
    }
    return a;
}

static json_t *json_finals(const struct chaos_record *rec)
{
    json_t *a = json_array();
    for (unsigned i = 0; i < rec->n_finals && i < sizeof rec->finals / sizeof rec->finals[0]; i++) {
        const struct chaos_final_view *v = &rec->finals[i];
        json_array_append_new(a, json_pack("{s:o, s:b, s:o, s:I}", "source", jstr(v->source),
                                           "answered", v->answered, "primary",
                                           jstr(report_region_name(rec, v->primary)), "epoch",
                                           (json_int_t)v->epoch));
    }
    return a;
}

static json_t *json_regions(const struct chaos_record *rec)
{
    json_t *a = json_array();
    for (unsigned i = 0; i < rec->n_regions && i < CHAOS_MAX_REGIONS; i++) {
        json_array_append_new(a, jstr(rec->regions[i]));
    }
    return a;
}

static int write_json(FILE *f, const struct report *r)
{
    const struct chaos_record *rec = r->rec;
    char start[40], end[40];
    report_iso_time(rec->start_us, start, sizeof start);
    report_iso_time(rec->end_us, end, sizeof end);
    json_t *root =
        json_pack("{s:i, s:o, s:s, s:s, s:o, s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "format", 1,
                  "scenario", json_meta(r->meta), "start", start, "end", end, "duration_s",
                  jnum((double)(rec->end_us - rec->start_us) / 1e6), "verdict",
                  report_passed(r) ? "pass" : "fail", "regions", json_regions(rec),
                  "initial_primary", jstr(report_region_name(rec, rec->initial_primary)), "checks",
                  json_checks(r), "writes", json_writes(rec), "events", json_events(rec), "faults",
                  json_faults(rec), "final", json_finals(rec));
    if (root == NULL) {
        errno = ENOMEM;
        return -1;
    }
    int rv = json_dumpf(root, f, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
    fputc('\n', f);
    json_decref(root);
    return rv;
}

/* ---- report.md ------------------------------------------------------------------------------- */

/* Text for a Markdown table cell: no newlines, '|' escaped. */
static void md_cell(FILE *f, const char *s)
{
    for (; s != NULL && *s; s++) {
        if (*s == '|') {
            fputs("\\|", f);
        } else {
            fputc(*s == '\n' || *s == '\r' ? ' ' : *s, f);
        }
    }
}

/* The figure a check reports, with the unit its name implies. */
static void check_figure(const struct chaos_check *c, char *buf, size_t size)
{
    static const char *const in_ms[] = {"rto", "write-gap", "convergence"};
    const char *unit = "";
    if (c->verdict == CHAOS_SKIPPED) {
        snprintf(buf, size, "-");
        return;
    }
    for (size_t i = 0; i < sizeof in_ms / sizeof in_ms[0]; i++) {
        unit = strcmp(c->name, in_ms[i]) == 0 ? " ms" : unit;
    }
    int n = snprintf(buf, size, "%g%s", c->value, unit);
    if (c->value2 != 0 && n > 0 && (size_t)n < size) {
        snprintf(buf + n, size - (size_t)n, " / %g", c->value2);
    }
}

static void md_head(FILE *f, const struct report *r)
{
    const struct chaos_report_meta *m = r->meta;
    const struct chaos_record *rec = r->rec;
    char start[40];
    report_iso_time(rec->start_us, start, sizeof start);
    fprintf(f, "# Chaos run %s: %s\n\n", report_or_empty(m->scenario),
            report_passed(r) ? "PASS" : "FAIL");
    if (m->description != NULL && m->description[0] != '\0') {
        fprintf(f, "%s\n\n", m->description);
    }
    fprintf(f, "- scenario file: `%s`, seed %" PRIu64 "\n", report_or_empty(m->file), m->seed);
    fprintf(f, "- lab: mode %s, replication %s, fence %s, WAN profile %s\n",
            report_or_empty(m->mode), report_or_empty(m->replication), m->fence ? "on" : "off",
            m->wan ? "on" : "off");
    fprintf(f, "- started %s, ran %.3f s; initial primary %s\n\n", start,
            report_rel_s(rec, rec->end_us),
            report_or_empty(report_region_name(rec, rec->initial_primary)));
}

static void md_checks(FILE *f, const struct report *r)
{
    char fig[96];
    fprintf(f, "## Checks\n\n| check | verdict | figure | detail |\n|---|---|---|---|\n");
    for (unsigned i = 0; i < n_checks(r); i++) {
        const struct chaos_check *c = &r->checks->c[i];
        check_figure(c, fig, sizeof fig);
        fprintf(f, "| ");
        md_cell(f, c->name);
        fprintf(f, " | %s | %s | ",
                c->verdict == CHAOS_PASS     ? "PASS"
                : c->verdict == CHAOS_FAILED ? "**FAIL**"
                                             : "skipped",
                fig);
        md_cell(f, c->detail);
        fprintf(f, " |\n");
    }
    fprintf(f, "\n");
}

static void md_writes(FILE *f, const struct chaos_record *rec)
{
    size_t counts[CHAOS_MAX_REGIONS][3];
    report_count_writes(rec, counts);
    fprintf(f, "## Writes\n\n| region | ok | fail | unknown |\n|---|---:|---:|---:|\n");
    for (unsigned i = 0; i < rec->n_regions && i < CHAOS_MAX_REGIONS; i++) {
        fprintf(f, "| %s | %zu | %zu | %zu |\n", rec->regions[i], counts[i][CHAOS_OK],
                counts[i][CHAOS_FAIL], counts[i][CHAOS_UNKNOWN]);
    }
    fprintf(f, "\n");
}

static void event_text(const struct chaos_record *rec, const struct chaos_event *e, char *buf,
                       size_t size)
{
    const char *to = report_or_empty(report_region_name(rec, e->region));
    const char *from = report_region_name(rec, e->from);
    switch (e->kind) {
    case CHAOS_EV_DECIDED:
        snprintf(buf, size, "failover-decided epoch %" PRIu64 ": %s → %s", e->epoch,
                 from ? from : "?", to);
        break;
    case CHAOS_EV_AUTHORIZED:
        snprintf(buf, size, "authorized primary → %s (epoch %" PRIu64 ")", to, e->epoch);
        break;
    case CHAOS_EV_LEADER:
        snprintf(buf, size, "leader-elected %s (term %" PRIu64 ")", to, e->epoch);
        break;
    default:
        snprintf(buf, size, "%s epoch %" PRIu64 " %s", event_kind_name(e->kind), e->epoch, to);
    }
}

struct md_item {
    int64_t t_us;
    size_t order;
    char text[200];
};

static int md_item_cmp(const void *a, const void *b)
{
    const struct md_item *x = a, *y = b;
    if (x->t_us != y->t_us) {
        return x->t_us < y->t_us ? -1 : 1;
    }
    return x->order < y->order ? -1 : x->order > y->order;
}

/* Events, fault starts and fault ends, by time. */
static int md_timeline(FILE *f, const struct chaos_record *rec)
{
    size_t n = 0, cap = rec->n_events + 2 * rec->n_intervals;
    struct md_item *items = calloc(cap ? cap : 1, sizeof *items);
    if (items == NULL) {
        return -1;
    }
    for (size_t i = 0; i < rec->n_events; i++, n++) {
        items[n] = (struct md_item){.t_us = rec->events[i].t_us, .order = n};
        event_text(rec, &rec->events[i], items[n].text, sizeof items[n].text);
    }
    for (size_t i = 0; i < rec->n_intervals; i++) {
        const struct chaos_interval *v = &rec->intervals[i];
        items[n] = (struct md_item){.t_us = v->start_us, .order = n};
        snprintf(items[n++].text, sizeof items[0].text, "fault on: `%s`%s", v->label,
                 v->failure ? " (failure)" : "");
        if (v->end_us != 0) {
            items[n] = (struct md_item){.t_us = v->end_us, .order = n};
            snprintf(items[n++].text, sizeof items[0].text, "fault off: `%s`", v->label);
        }
    }
    qsort(items, n, sizeof *items, md_item_cmp);
    fprintf(f, "## Timeline\n\n");
    for (size_t i = 0; i < n; i++) {
        fprintf(f, "- t+%.3f s: %s\n", report_rel_s(rec, items[i].t_us), items[i].text);
    }
    fprintf(f, "%s\n", n == 0 ? "(no events)\n" : "");
    free(items);
    return 0;
}

static void md_finals(FILE *f, const struct chaos_record *rec)
{
    fprintf(f, "## Final views\n\n| source | answered | primary | epoch |\n|---|---|---|---:|\n");
    for (unsigned i = 0; i < rec->n_finals && i < sizeof rec->finals / sizeof rec->finals[0]; i++) {
        const struct chaos_final_view *v = &rec->finals[i];
        fprintf(f, "| ");
        md_cell(f, v->source);
        fprintf(f, " | %s | %s | %" PRIu64 " |\n", v->answered ? "yes" : "no",
                report_region_name(rec, v->primary) ? report_region_name(rec, v->primary) : "-",
                v->epoch);
    }
    fprintf(f, "\n");
}

static int write_md(FILE *f, const struct report *r)
{
    md_head(f, r);
    md_checks(f, r);
    md_writes(f, r->rec);
    if (md_timeline(f, r->rec) != 0) {
        return -1;
    }
    md_finals(f, r->rec);
    fprintf(f, "See timeline.svg for the picture of this run.\n");
    return 0;
}

/* ---- Files ----------------------------------------------------------------------------------- */

/* DIR/NAME.tmp, written, flushed to disk and renamed over DIR/NAME. */
static int write_file(const char *dir, const char *name, writer_fn fn, const struct report *r)
{
    char path[4096], tmp[4108];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (f == NULL) {
        fprintf(stderr, "report: %s: %s\n", tmp, strerror(errno));
        return -1;
    }
    int rv = fn(f, r);
    rv = rv == 0 && fflush(f) == 0 && !ferror(f) && fsync(fileno(f)) == 0 ? 0 : -1;
    int saved = rv != 0 ? errno : 0;
    rv = fclose(f) == 0 ? rv : -1;
    if (rv == 0 && rename(tmp, path) == 0) {
        return 0;
    }
    fprintf(stderr, "report: %s: %s\n", path, strerror(saved ? saved : errno));
    unlink(tmp);
    return -1;
}

int chaos_report_write(const char *dir, const struct chaos_report_meta *meta,
                       const struct chaos_record *rec, const struct chaos_checks *checks)
{
    static const struct chaos_report_meta no_meta = {.scenario = ""};
    const struct report r = {.meta = meta ? meta : &no_meta, .rec = rec, .checks = checks};
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "report: %s: %s\n", dir, strerror(errno));
        return -1;
    }
    if (write_file(dir, "report.json", write_json, &r) != 0 ||
        write_file(dir, "report.md", write_md, &r) != 0 ||
        write_file(dir, "timeline.svg", report_write_svg, &r) != 0) {
        return -1;
    }
    return 0;
}
