/*
 * timeline.svg, the picture of a run in the report (report_out.c, docs/chaos.md "Reading a
 * report"): who led, who was primary, which faults were active and where writes landed.
 *
 * The SVG is drawn in one pass over a precomputed layout (struct svg): the title and legend, the
 * time axis, then the lanes from the top -- Raft leader, authorized primary (both from the
 * samples: the value most nodes report), faults (one row per distinct label), writes per region
 * (a tick per write, or when dense a bar per bin of at least 100 ms, full height at the usual rate)
 * -- and dashed markers for the failover events (decided, promoted, done, aborted).
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "chaos.h"
#include "report_internal.h"

#define SVG_W        1200.0
#define SVG_X0       200.0 /* lanes start here; labels to the left */
#define SVG_PW       (SVG_W - SVG_X0 - 24.0)
#define LANE_H       24.0
#define WRITES_H     44.0
#define FAULT_ROW_H  16.0
#define FAULT_ROWS   24 /* distinct fault labels drawn; later ones share the last row */
#define GAP          10.0
#define MARK_ROWS    3
#define CHAR_W       6.2 /* average width of a character at font-size 11 */
#define UNKNOWN_FILL "#c8c8c8"
#define HALO         "stroke=\"#ffffff\" stroke-width=\"3\" stroke-opacity=\"0.7\" paint-order=\"stroke\""

struct svg {
    FILE *f;
    const struct report *r;
    const struct chaos_record *rec;
    int64_t t0, t1;
    double mark_y, leader_y, primary_y, faults_y, writes_y, axis_y, height;
    unsigned fault_rows; /* distinct rows in the faults lane */
    unsigned *row;       /* per interval, its row */
};

static const char *region_color(long i)
{
    static const char *const palette[] = {"#4e79a7", "#b07aa1", "#59a5a0", "#e0b22e", "#9c755f",
                                          "#f28ea8", "#7f7fd5", "#a2c865", "#6b8e9f"};
    return i >= 0 && i < CHAOS_MAX_REGIONS ? palette[i] : UNKNOWN_FILL;
}

/* XML text or attribute value: the five entities escaped, control characters dropped, bytes
 * that are not UTF-8 written as '?' (a label cut in the middle of "±" would make the file
 * unreadable). */
static void xml_text(FILE *f, const char *s)
{
    static const char *const entity[128] = {
        ['&'] = "&amp;", ['<'] = "&lt;", ['>'] = "&gt;", ['"'] = "&quot;", ['\''] = "&apos;"};
    while (s != NULL && *s) {
        unsigned char c = (unsigned char)*s;
        size_t n = report_utf8_seq(s);
        if (n == 0) {
            fputc('?', f);
        } else if (c < 128 && entity[c] != NULL) {
            fputs(entity[c], f);
        } else if (c >= 0x20 || c == '\t') {
            fwrite(s, 1, n, f);
        }
        s += n ? n : 1;
    }
}

/* An id-safe form of a region name. */
static void xml_id(FILE *f, const char *s)
{
    for (; *s; s++) {
        bool ok = (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
                  (*s >= '0' && *s <= '9') || *s == '-' || *s == '_';
        fputc(ok ? *s : '_', f);
    }
}

static double utf8_len(const char *s)
{
    double n = 0;
    for (; *s; s++) {
        n += ((unsigned char)*s & 0xc0) != 0x80;
    }
    return n;
}

static double x_of(const struct svg *g, int64_t t_us)
{
    double v = (double)(t_us - g->t0) / (double)(g->t1 - g->t0);
    return SVG_X0 + (v < 0 ? 0 : v > 1 ? 1 : v) * SVG_PW;
}

/* Each interval's row: that of the first interval with the same label (a flap's repeats share
 * one), else the next one; past FAULT_ROWS distinct labels they share the last row. */
static int fault_rows(struct svg *g)
{
    const struct chaos_record *rec = g->rec;
    g->fault_rows = 1;
    if ((g->row = calloc(rec->n_intervals + 1, sizeof *g->row)) == NULL) {
        return -1;
    }
    unsigned next = 0;
    for (size_t i = 0; i < rec->n_intervals; i++) {
        size_t j = 0;
        while (j < i && strcmp(rec->intervals[j].label, rec->intervals[i].label) != 0) {
            j++;
        }
        g->row[i] = j < i ? g->row[j] : next < FAULT_ROWS ? next++ : FAULT_ROWS - 1;
    }
    g->fault_rows = next > 1 ? next : 1;
    return 0;
}

static int svg_layout(struct svg *g)
{
    const struct chaos_record *rec = g->rec;
    int64_t last = rec->start_us;
    if (fault_rows(g) != 0) {
        return -1;
    }
    for (size_t i = 0; i < rec->n_ops; i++) {
        last = rec->ops[i].end_us > last ? rec->ops[i].end_us : last;
    }
    g->t0 = rec->start_us;
    g->t1 = rec->end_us > rec->start_us ? rec->end_us : last;
    g->t1 = g->t1 > g->t0 ? g->t1 : g->t0 + 1000000;
    g->mark_y = 96;
    g->leader_y = g->mark_y + MARK_ROWS * 14 + 6;
    g->primary_y = g->leader_y + LANE_H + GAP;
    g->faults_y = g->primary_y + LANE_H + GAP;
    g->writes_y = g->faults_y + g->fault_rows * FAULT_ROW_H + GAP;
    g->axis_y = g->writes_y + rec->n_regions * (WRITES_H + GAP);
    g->height = g->axis_y + 40;
    return 0;
}

static void svg_head(const struct svg *g)
{
    FILE *f = g->f;
    bool pass = report_passed(g->r);
    char start[40];
    fprintf(f,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
            "viewBox=\"0 0 %.0f %.0f\" font-family=\"Helvetica, Arial, sans-serif\" "
            "font-size=\"11\">\n",
            SVG_W, g->height, SVG_W, g->height);
    fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"#ffffff\"/>\n");
    fprintf(f, "<g id=\"title\"><text x=\"16\" y=\"28\" font-size=\"18\" font-weight=\"bold\">");
    xml_text(f, report_or_empty(g->r->meta->scenario));
    fprintf(f, " <tspan fill=\"%s\">%s</tspan></text>\n<text x=\"16\" y=\"48\" fill=\"#555\">",
            pass ? "#2e8540" : "#c0392b", pass ? "PASS" : "FAIL");
    xml_text(f, report_or_empty(g->r->meta->description));
    fprintf(f, "</text>\n<text x=\"16\" y=\"64\" fill=\"#777\">seed %" PRIu64 ", replication ",
            g->r->meta->seed);
    xml_text(f, report_or_empty(g->r->meta->replication));
    report_iso_time(g->t0, start, sizeof start);
    fprintf(f, ", fence %s, WAN %s; started %s, %.1f s</text></g>\n",
            g->r->meta->fence ? "on" : "off", g->r->meta->wan ? "on" : "off", start,
            (double)(g->t1 - g->t0) / 1e6);
}

static double legend_item(FILE *f, double x, const char *fill, const char *label)
{
    fprintf(f, "<rect x=\"%.1f\" y=\"74\" width=\"12\" height=\"12\" fill=\"%s\"/>", x, fill);
    fprintf(f, "<text x=\"%.1f\" y=\"84\">", x + 16);
    xml_text(f, label);
    fprintf(f, "</text>\n");
    return x + 16 + utf8_len(label) * CHAR_W + 14;
}

static void svg_legend(const struct svg *g)
{
    double x = 16;
    fprintf(g->f, "<g id=\"legend\">\n");
    for (unsigned i = 0; i < g->rec->n_regions; i++) {
        x = legend_item(g->f, x, region_color(i), g->rec->regions[i]);
    }
    x = legend_item(g->f, x, UNKNOWN_FILL, "unknown") + 20;
    x = legend_item(g->f, x, "#2e8540", "write ok");
    x = legend_item(g->f, x, "#d62728", "write failed");
    x = legend_item(g->f, x, "#ff8c00", "write unknown") + 20;
    x = legend_item(g->f, x, "#9db4d0", "fault");
    legend_item(g->f, x, "#f08a80", "failure fault");
    fprintf(g->f, "</g>\n");
}

/* Ticks every 1, 2, 5, 10... seconds: about ten over the run. */
static void svg_axis(const struct svg *g)
{
    static const double steps[] = {0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800};
    double span = (double)(g->t1 - g->t0) / 1e6, step = steps[0];
    for (size_t i = 0; i < sizeof steps / sizeof steps[0] && span / step > 12; i++) {
        step = steps[i];
    }
    fprintf(g->f, "<g id=\"axis\" stroke=\"#e3e3e3\">\n");
    for (double t = 0; t <= span + 1e-9; t += step) {
        double x = x_of(g, g->t0 + (int64_t)(t * 1e6));
        fprintf(g->f,
                "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>"
                "<text x=\"%.1f\" y=\"%.1f\" stroke=\"none\" fill=\"#555\" "
                "text-anchor=\"middle\">%g s</text>\n",
                x, g->leader_y, x, g->axis_y, x, g->axis_y + 14, t);
    }
    fprintf(g->f,
            "<text x=\"%.1f\" y=\"%.1f\" stroke=\"none\" fill=\"#555\">time since the "
            "start of the run</text>\n</g>\n",
            SVG_X0, g->axis_y + 30);
}

static void lane_open(const struct svg *g, const char *id, const char *id_suffix, double y,
                      double h, const char *label)
{
    fprintf(g->f, "<g id=\"%s", id);
    xml_id(g->f, report_or_empty(id_suffix));
    fprintf(g->f,
            "\" class=\"lane\">\n<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
            "fill=\"#f6f6f6\"/>\n<text x=\"16\" y=\"%.1f\" font-weight=\"bold\">",
            SVG_X0, y, SVG_PW, h, y + 15);
    xml_text(g->f, label);
    fprintf(g->f, "</text>\n");
}

/* The value most nodes report in sample s (ties: the lowest index); -1 if none knows. */
static int sample_majority(const struct chaos_record *rec, const int *view)
{
    unsigned votes[CHAOS_MAX_REGIONS] = {0}, best = 0;
    int who = -1;
    for (unsigned i = 0; i < rec->n_regions && i < CHAOS_MAX_REGIONS; i++) {
        if (view[i] >= 0 && view[i] < CHAOS_MAX_REGIONS) {
            votes[view[i]]++;
        }
    }
    for (int i = 0; i < CHAOS_MAX_REGIONS; i++) {
        if (votes[i] > best) {
            best = votes[i];
            who = i;
        }
    }
    return who;
}

/* The highest epoch among the nodes that name `primary`. */
static uint64_t sample_epoch(const struct chaos_record *rec, const struct chaos_sample *s,
                             int primary)
{
    uint64_t epoch = 0;
    for (unsigned i = 0; i < rec->n_regions && i < CHAOS_MAX_REGIONS; i++) {
        if (s->primary[i] == primary && s->epoch[i] > epoch) {
            epoch = s->epoch[i];
        }
    }
    return epoch;
}

/* One bar of a lane, with its name (or epoch) inside when it fits, and a tooltip. */
static void lane_segment(const struct svg *g, double y, int64_t from, int64_t to, int who,
                         const char *inside)
{
    double x1 = x_of(g, from), x2 = x_of(g, to);
    const char *name = report_region_name(g->rec, who);
    fprintf(g->f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"><title>",
            x1, y + 2, x2 - x1, LANE_H - 4, region_color(who));
    xml_text(g->f, name ? name : "unknown");
    fprintf(g->f, " t+%.1f..%.1f s</title></rect>\n", report_rel_s(g->rec, from),
            report_rel_s(g->rec, to));
    if (inside[0] != '\0' && x2 - x1 > utf8_len(inside) * CHAR_W + 6) {
        fprintf(g->f, "<text x=\"%.1f\" y=\"%.1f\" fill=\"#ffffff\">", x1 + 4, y + 16);
        xml_text(g->f, inside);
        fprintf(g->f, "</text>\n");
    }
}

/* Whom sample s shows in the leader lane (primary = false) or the primary lane, and the epoch. */
static int sample_key(const struct chaos_record *rec, const struct chaos_sample *s, bool primary,
                      uint64_t *epoch)
{
    int who = sample_majority(rec, primary ? s->primary : s->leader);
    *epoch = primary ? sample_epoch(rec, s, who) : 0;
    return who;
}

/* The leader lane or the authorized primary lane: one bar per run of equal samples. */
static void svg_view_lane(const struct svg *g, bool primary)
{
    const struct chaos_record *rec = g->rec;
    double y = primary ? g->primary_y : g->leader_y;
    char inside[48];
    size_t run = 0;
    lane_open(g, primary ? "lane-primary" : "lane-leader", NULL, y, LANE_H,
              primary ? "authorized primary" : "Raft leader");
    for (size_t i = 0; i < rec->n_samples; i++) {
        uint64_t epoch, next_epoch = 0;
        int who = sample_key(rec, &rec->samples[i], primary, &epoch);
        bool last = i + 1 == rec->n_samples;
        if (!last && sample_key(rec, &rec->samples[i + 1], primary, &next_epoch) == who &&
            next_epoch == epoch) {
            continue;
        }
        const char *name = report_region_name(rec, who);
        if (primary && name != NULL) {
            snprintf(inside, sizeof inside, "e%" PRIu64 " %s", epoch, name);
        } else {
            snprintf(inside, sizeof inside, "%s", name ? name : "");
        }
        lane_segment(g, y, rec->samples[run].t_us, last ? g->t1 : rec->samples[i + 1].t_us, who,
                     inside);
        run = i + 1;
    }
    fprintf(g->f, "</g>\n");
}

/* A fault's label, inside its bar from the left, or ending at the picture's edge; none if it
 * would start before `free_x` (the previous label in the row). Returns where free space starts. */
static double fault_label(const struct svg *g, const struct chaos_interval *v, double x1, double x2,
                          double y, double free_x)
{
    double w = utf8_len(v->label) * CHAR_W * 10 / 11; /* font-size 10 */
    bool left = x1 + 3 + w > SVG_W - 4;               /* would leave the picture */
    double x = left ? (x2 < SVG_W - 4 ? x2 : SVG_W - 4) - 3 : x1 + 3;
    if ((left ? x - w : x) < free_x) {
        return free_x;
    }
    fprintf(g->f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" text-anchor=\"%s\" %s>", x, y + 12,
            left ? "end" : "start", HALO);
    xml_text(g->f, v->label);
    fprintf(g->f, "</text>\n");
    return (left ? x : x + w) + 6;
}

/* One bar per interval, then the labels over them: one unless the previous label in its row (a
 * flap's) is in the way. */
static void svg_faults(const struct svg *g)
{
    const struct chaos_record *rec = g->rec;
    double text_end[FAULT_ROWS] = {0};
    lane_open(g, "lane-faults", NULL, g->faults_y, g->fault_rows * FAULT_ROW_H, "faults");
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < rec->n_intervals; i++) {
            const struct chaos_interval *v = &rec->intervals[i];
            double y = g->faults_y + g->row[i] * FAULT_ROW_H;
            double x1 = x_of(g, v->start_us), x2 = x_of(g, v->end_us ? v->end_us : g->t1);
            if (pass == 1) {
                text_end[g->row[i]] = fault_label(g, v, x1, x2, y, text_end[g->row[i]]);
                continue;
            }
            fprintf(g->f,
                    "<rect class=\"fault%s\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" "
                    "height=\"%.1f\" fill=\"%s\" stroke=\"%s\"><title>",
                    v->failure ? " failure" : "", x1, y + 1, x2 - x1 > 1 ? x2 - x1 : 1,
                    FAULT_ROW_H - 2, v->failure ? "#f08a80" : "#9db4d0",
                    v->failure ? "#c0392b" : "#5a7fa8");
            xml_text(g->f, v->label);
            fprintf(g->f, "</title></rect>\n");
        }
    }
    fprintf(g->f, "</g>\n");
}

static const char *result_color(enum chaos_result r)
{
    return r == CHAOS_OK ? "#2e8540" : r == CHAOS_FAIL ? "#d62728" : "#ff8c00";
}

/* Sparse writes: one thin tick per write at its answer; failures drawn over the successes. */
static void writes_ticks(const struct svg *g, unsigned region, double y)
{
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < g->rec->n_ops; i++) {
            const struct chaos_op *op = &g->rec->ops[i];
            if (op->region != region || (op->result == CHAOS_OK) != (pass == 0)) {
                continue;
            }
            double x = x_of(g, op->end_us ? op->end_us : op->start_us);
            fprintf(g->f,
                    "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                    "stroke-width=\"1\"/>\n",
                    x, y + (pass ? 2 : 12), x, y + WRITES_H - 2, result_color(op->result));
        }
    }
}

struct bins {
    int64_t width_us;
    size_t n;
    size_t (*c)[3]; /* per bin and result */
};

static size_t bin_total(const struct bins *b, size_t k)
{
    return b->c[k][0] + b->c[k][1] + b->c[k][2];
}

static int size_cmp(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : x > y;
}

/* A region's writes per bin: bins at least 100 ms, 2 px and about five writes wide (narrower
 * ones alias: 3, 4, 3, 4 writes in a row for a steady rate). */
static int bins_fill(const struct svg *g, unsigned region, size_t count, struct bins *b)
{
    int64_t span = g->t1 - g->t0, w = span / (int64_t)(SVG_PW / 2);
    int64_t five = 5 * span / (int64_t)(count ? count : 1);
    w = w > 100000 ? w : 100000;
    b->width_us = w > five ? w : five;
    b->n = (size_t)(span / b->width_us) + 1;
    if ((b->c = calloc(b->n, sizeof *b->c)) == NULL) {
        return -1;
    }
    for (size_t i = 0; i < g->rec->n_ops; i++) {
        const struct chaos_op *op = &g->rec->ops[i];
        int64_t t = (op->end_us ? op->end_us : op->start_us) - g->t0;
        if (op->region == region && t >= 0 && t <= span && (unsigned)op->result <= CHAOS_UNKNOWN) {
            b->c[t / b->width_us][op->result]++;
        }
    }
    return 0;
}

/* The usual number of writes in a bin: the median of the non-empty ones (at least 1). */
static size_t bins_median(const struct bins *b)
{
    size_t *t = malloc(b->n * sizeof *t), m = 0, median;
    if (t == NULL) {
        return 0;
    }
    for (size_t k = 0; k < b->n; k++) {
        t[m] = bin_total(b, k);
        m += t[m] > 0;
    }
    qsort(t, m, sizeof *t, size_cmp);
    median = m > 0 ? t[m / 2] : 1;
    free(t);
    return median;
}

/* Dense writes: a bar per bin, full height at the usual rate (lower when fewer writes were
 * answered), split by result: ok at the bottom, then unknown, then failed. */
static int writes_histogram(const struct svg *g, unsigned region, size_t count, double y)
{
    static const enum chaos_result order[] = {CHAOS_OK, CHAOS_UNKNOWN, CHAOS_FAIL};
    struct bins b;
    if (bins_fill(g, region, count, &b) != 0) {
        return -1;
    }
    size_t median = bins_median(&b);
    double w = SVG_PW * (double)b.width_us / (double)(g->t1 - g->t0);
    for (size_t k = 0; k < b.n && median > 0; k++) {
        double total = (double)bin_total(&b, k), base = y + WRITES_H - 2;
        double full = (WRITES_H - 4) * (total < (double)median ? total / (double)median : 1);
        double x = x_of(g, g->t0 + (int64_t)k * b.width_us);
        double bw = x + w > SVG_X0 + SVG_PW ? SVG_X0 + SVG_PW - x : w; /* the last bin: cut */
        for (size_t j = 0; j < 3 && total > 0; j++) {
            double h = full * (double)b.c[k][order[j]] / total;
            if (h > 0) {
                fprintf(g->f,
                        "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.2f\" height=\"%.1f\" "
                        "fill=\"%s\"/>\n",
                        x, base - h, bw > 1.2 ? bw - 0.2 : bw, h, result_color(order[j]));
                base -= h;
            }
        }
    }
    free(b.c);
    return median > 0 ? 0 : -1;
}

static int svg_writes(const struct svg *g)
{
    size_t counts[CHAOS_MAX_REGIONS][3];
    char label[64];
    report_count_writes(g->rec, counts);
    for (unsigned r = 0; r < g->rec->n_regions && r < CHAOS_MAX_REGIONS; r++) {
        size_t *c = counts[r], total = c[0] + c[1] + c[2];
        double y = g->writes_y + r * (WRITES_H + GAP);
        snprintf(label, sizeof label, "writes %s", g->rec->regions[r]);
        lane_open(g, "lane-writes-", g->rec->regions[r], y, WRITES_H, label);
        fprintf(g->f,
                "<text x=\"16\" y=\"%.1f\" fill=\"#555\" font-size=\"10\">ok %zu, failed %zu, "
                "unknown %zu</text>\n",
                y + 30, c[CHAOS_OK], c[CHAOS_FAIL], c[CHAOS_UNKNOWN]);
        if (total > SVG_PW / 3) {
            if (writes_histogram(g, r, total, y) != 0) {
                return -1;
            }
        } else {
            writes_ticks(g, r, y);
        }
        fprintf(g->f, "</g>\n");
    }
    return 0;
}

/* The short label of a failover event, or NULL for events that get no marker. */
static const char *marker_text(const struct chaos_record *rec, const struct chaos_event *e,
                               char *buf, size_t size, const char **color)
{
    const char *to = report_or_empty(report_region_name(rec, e->region));
    static const char *const colors[] = {"#7b3fa0", "#1f63b5", "#2e8540", "#c0392b"};
    static const char *const words[] = {"decided", "promoted", "done", "aborted"};
    if ((unsigned)e->kind > CHAOS_EV_ABORTED) {
        return NULL;
    }
    *color = colors[e->kind];
    snprintf(buf, size, "%s e%" PRIu64 "%s%s", words[e->kind], e->epoch,
             e->kind == CHAOS_EV_DECIDED    ? " → "
             : e->kind == CHAOS_EV_PROMOTED ? " "
                                            : "",
             e->kind <= CHAOS_EV_PROMOTED ? to : "");
    return buf;
}

/* Dashed lines over every lane; labels above the lanes in the first row where they fit. */
static void svg_markers(const struct svg *g)
{
    double row_end[MARK_ROWS] = {0};
    const char *color;
    char text[96];
    fprintf(g->f, "<g id=\"markers\">\n");
    for (size_t i = 0; i < g->rec->n_events; i++) {
        const struct chaos_event *e = &g->rec->events[i];
        if (marker_text(g->rec, e, text, sizeof text, &color) == NULL) {
            continue;
        }
        double x = x_of(g, e->t_us), w = utf8_len(text) * CHAR_W;
        bool left = x + 3 + w > SVG_W - 4;
        double from = left ? x - 3 - w : x + 3;
        unsigned row = 0;
        for (unsigned k = 1; k < MARK_ROWS && row_end[row] > from; k++) {
            row = row_end[k] < row_end[row] ? k : row;
        }
        row_end[row] = from + w + 6;
        double ty = g->mark_y + 11 + row * 14;
        fprintf(g->f,
                "<line class=\"marker\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
                "stroke=\"%s\" stroke-dasharray=\"4,3\"/>\n<text x=\"%.1f\" y=\"%.1f\" "
                "fill=\"%s\" text-anchor=\"%s\">",
                x, ty + 3, x, g->axis_y, color, left ? x - 3 : x + 3, ty, color,
                left ? "end" : "start");
        xml_text(g->f, text);
        fprintf(g->f, "</text>\n");
    }
    fprintf(g->f, "</g>\n");
}

int report_write_svg(FILE *f, const struct report *r)
{
    struct svg g = {.f = f, .r = r, .rec = r->rec};
    if (svg_layout(&g) != 0) {
        return -1;
    }
    svg_head(&g);
    svg_legend(&g);
    svg_axis(&g);
    svg_view_lane(&g, false);
    svg_view_lane(&g, true);
    svg_faults(&g);
    int rv = svg_writes(&g);
    svg_markers(&g);
    fprintf(f, "</svg>\n");
    free(g.row);
    return rv;
}
