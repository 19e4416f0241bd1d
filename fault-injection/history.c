/*
 * History files (chaos.h, workload.h), pure: the workload appends one JSON object per write to
 * history.jsonl, and `workload --readback` writes one per row of chaos_writes to rows.jsonl; the
 * runner reads both back into a chaos_record for the checkers.
 *
 *   history.jsonl: {"region":"us-east-2","seq":17,"start_us":...,"end_us":...,"result":"ok",
 *                   "error":""}
 *   rows.jsonl:    {"region":"us-east-2","seq":17}
 *
 * Every line is flushed on its own, so a SIGKILLed workload leaves at most its last line torn: a
 * last line without its newline that does not parse is that torn line and is ignored. Anything
 * else malformed is an error naming the file and the line.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chaos.h"
#include "workload.h"

const char *chaos_result_name(enum chaos_result r)
{
    switch (r) {
    case CHAOS_OK:
        return "ok";
    case CHAOS_FAIL:
        return "fail";
    case CHAOS_UNKNOWN:
        return "unknown";
    }
    return "?";
}

const char *chaos_verdict_name(enum chaos_verdict v)
{
    switch (v) {
    case CHAOS_PASS:
        return "PASS";
    case CHAOS_FAILED:
        return "FAILED";
    case CHAOS_SKIPPED:
        return "SKIPPED";
    }
    return "?";
}

static int result_from_name(const char *s, enum chaos_result *out)
{
    static const enum chaos_result all[] = {CHAOS_OK, CHAOS_FAIL, CHAOS_UNKNOWN};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        if (strcmp(s, chaos_result_name(all[i])) == 0) {
            *out = all[i];
            return 0;
        }
    }
    return -1;
}

int chaos_region_find(const struct chaos_record *rec, const char *name)
{
    for (unsigned i = 0; i < rec->n_regions && i < CHAOS_MAX_REGIONS; i++) {
        if (strcmp(rec->regions[i], name) == 0)
            return (int)i;
    }
    return -1;
}

void chaos_record_free(struct chaos_record *rec)
{
    free(rec->ops);
    free(rec->events);
    free(rec->samples);
    free(rec->intervals);
    free(rec->rows);
    rec->ops = NULL;
    rec->events = NULL;
    rec->samples = NULL;
    rec->intervals = NULL;
    rec->rows = NULL;
    rec->n_ops = rec->n_events = rec->n_samples = rec->n_intervals = rec->n_rows = 0;
    rec->rows_read = false;
}

/* ---- reading JSON lines ---- */

/* One line's parsed object, or NULL with the reason in why. */
static json_t *parse_line(const char *line, char *why, size_t why_size)
{
    json_error_t err;
    json_t *doc = json_loads(line, JSON_REJECT_DUPLICATES, &err);
    if (doc == NULL) {
        snprintf(why, why_size, "not JSON: %s (column %d)", err.text, err.column);
        return NULL;
    }
    if (!json_is_object(doc)) {
        snprintf(why, why_size, "not a JSON object");
        json_decref(doc);
        return NULL;
    }
    return doc;
}

static int get_region(const struct chaos_record *rec, json_t *doc, unsigned *out, char *why,
                      size_t why_size)
{
    const char *name = json_string_value(json_object_get(doc, "region"));
    if (name == NULL) {
        snprintf(why, why_size, "\"region\" missing or not a string");
        return -1;
    }
    int r = chaos_region_find(rec, name);
    if (r < 0) {
        snprintf(why, why_size, "unknown region \"%.40s\"", name);
        return -1;
    }
    *out = (unsigned)r;
    return 0;
}

static int get_int(json_t *doc, const char *key, int64_t min, int64_t *out, char *why,
                   size_t why_size)
{
    json_t *v = json_object_get(doc, key);
    if (!json_is_integer(v)) {
        snprintf(why, why_size, "\"%s\" missing or not an integer", key);
        return -1;
    }
    if (json_integer_value(v) < min) {
        snprintf(why, why_size, "\"%s\" is %" PRId64 ", below %" PRId64, key,
                 (int64_t)json_integer_value(v), min);
        return -1;
    }
    *out = json_integer_value(v);
    return 0;
}

static int parse_op(const struct chaos_record *rec, json_t *doc, struct chaos_op *op, char *why,
                    size_t why_size)
{
    int64_t seq;
    memset(op, 0, sizeof *op);
    if (get_region(rec, doc, &op->region, why, why_size) != 0 ||
        get_int(doc, "seq", 1, &seq, why, why_size) != 0 ||
        get_int(doc, "start_us", 0, &op->start_us, why, why_size) != 0 ||
        get_int(doc, "end_us", 0, &op->end_us, why, why_size) != 0)
        return -1;
    op->seq = (uint64_t)seq;
    if (op->end_us < op->start_us) {
        snprintf(why, why_size, "end_us before start_us");
        return -1;
    }
    const char *result = json_string_value(json_object_get(doc, "result"));
    if (result == NULL || result_from_name(result, &op->result) != 0) {
        snprintf(why, why_size, "\"result\" must be \"ok\", \"fail\" or \"unknown\"");
        return -1;
    }
    json_t *error = json_object_get(doc, "error");
    if (error != NULL && !json_is_string(error)) {
        snprintf(why, why_size, "\"error\" not a string");
        return -1;
    }
    snprintf(op->error, sizeof op->error, "%s", error ? json_string_value(error) : "");
    return 0;
}

/* A growable array of fixed-size items. */
struct vec {
    void *p;
    size_t n, cap, size;
};

static void *vec_push(struct vec *v)
{
    if (v->n == v->cap) {
        size_t cap = v->cap ? 2 * v->cap : 256;
        void *p = realloc(v->p, cap * v->size);
        if (p == NULL)
            return NULL;
        v->p = p;
        v->cap = cap;
    }
    return (char *)v->p + v->size * v->n++;
}

/* What to do with one parsed line: fill the next item of the vector. */
typedef int (*line_fn)(const struct chaos_record *rec, json_t *doc, void *item, char *why,
                       size_t why_size);

static int op_line(const struct chaos_record *rec, json_t *doc, void *item, char *why,
                   size_t why_size)
{
    return parse_op(rec, doc, item, why, why_size);
}

struct row {
    unsigned region;
    uint64_t seq;
};

static int row_line(const struct chaos_record *rec, json_t *doc, void *item, char *why,
                    size_t why_size)
{
    struct row *row = item;
    int64_t seq;
    if (get_region(rec, doc, &row->region, why, why_size) != 0 ||
        get_int(doc, "seq", 1, &seq, why, why_size) != 0)
        return -1;
    row->seq = (uint64_t)seq;
    return 0;
}

/* One line into the vector; 1 when it is a torn last line to ignore. */
static int load_line(const struct chaos_record *rec, char *line, ssize_t len, bool last, line_fn fn,
                     struct vec *v, char *why, size_t why_size)
{
    bool torn = len == 0 || line[len - 1] != '\n';
    line[strcspn(line, "\n")] = '\0';
    if (line[0] == '\0')
        return 1; /* blank lines are allowed */
    json_t *doc = parse_line(line, why, why_size);
    if (doc == NULL)
        return last && torn ? 1 : -1;
    void *item = vec_push(v);
    if (item == NULL) {
        snprintf(why, why_size, "out of memory");
        json_decref(doc);
        return -1;
    }
    int rc = fn(rec, doc, item, why, why_size);
    json_decref(doc);
    if (rc != 0)
        v->n--;
    return rc;
}

static int load_lines(const char *path, const struct chaos_record *rec, line_fn fn, struct vec *v,
                      char *why, size_t why_size)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        snprintf(why, why_size, "%s: %s", path, strerror(errno));
        return -1;
    }
    char *line = NULL, reason[200];
    size_t cap = 0;
    unsigned lineno = 0;
    ssize_t len;
    int rc = 0;
    while (rc == 0 && (len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        int c = fgetc(f);
        bool last = c == EOF;
        if (!last)
            ungetc(c, f);
        if (load_line(rec, line, len, last, fn, v, reason, sizeof reason) < 0) {
            snprintf(why, why_size, "%s:%u: %s", path, lineno, reason);
            rc = -1;
        }
    }
    if (rc == 0 && ferror(f)) {
        snprintf(why, why_size, "%s: read: %s", path, strerror(errno));
        rc = -1;
    }
    free(line);
    fclose(f);
    return rc;
}

int chaos_history_load(const char *path, struct chaos_record *rec, char *why, size_t why_size)
{
    struct vec v = {.size = sizeof(struct chaos_op)};
    if (load_lines(path, rec, op_line, &v, why, why_size) != 0) {
        free(v.p);
        return -1;
    }
    free(rec->ops);
    rec->ops = v.p;
    rec->n_ops = v.n;
    return 0;
}

static int row_cmp(const void *a, const void *b)
{
    const struct row *x = a, *y = b;
    if (x->region != y->region)
        return x->region < y->region ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

int chaos_rows_load(const char *path, struct chaos_record *rec, char *why, size_t why_size)
{
    struct vec v = {.size = sizeof(struct row)};
    free(rec->rows);
    rec->rows = NULL;
    rec->n_rows = 0;
    rec->rows_read = false;
    if (load_lines(path, rec, row_line, &v, why, why_size) != 0) {
        free(v.p);
        return -1;
    }
    if (v.n > 0)
        qsort(v.p, v.n, sizeof(struct row), row_cmp);
    /* struct row has the layout of chaos_record's anonymous row struct */
    _Static_assert(sizeof(struct row) == sizeof *rec->rows, "row layout");
    rec->rows = v.p;
    rec->n_rows = v.n;
    rec->rows_read = true;
    return 0;
}

bool chaos_rows_has(const struct chaos_record *rec, unsigned region, uint64_t seq)
{
    size_t lo = 0, hi = rec->n_rows;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (rec->rows[mid].region == region && rec->rows[mid].seq == seq)
            return true;
        if (rec->rows[mid].region < region ||
            (rec->rows[mid].region == region && rec->rows[mid].seq < seq))
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

/* ---- writing ---- */

/* PostgreSQL's messages may be cut in the middle of a UTF-8 sequence: keep printable ASCII. */
static void ascii_copy(char *out, size_t size, const char *in)
{
    size_t i = 0;
    for (; i + 1 < size && in[i] != '\0'; i++) {
        unsigned char c = (unsigned char)in[i];
        out[i] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    out[i] = '\0';
}

int chaos_history_write_op(FILE *f, const struct chaos_record *rec, const struct chaos_op *op)
{
    char error[sizeof op->error];
    if (op->region >= rec->n_regions || op->region >= CHAOS_MAX_REGIONS)
        return -1;
    ascii_copy(error, sizeof error, op->error);
    json_t *doc =
        json_pack("{s:s, s:I, s:I, s:I, s:s, s:s}", "region", rec->regions[op->region], "seq",
                  (json_int_t)op->seq, "start_us", (json_int_t)op->start_us, "end_us",
                  (json_int_t)op->end_us, "result", chaos_result_name(op->result), "error", error);
    if (doc == NULL)
        return -1;
    char *text = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII);
    json_decref(doc);
    if (text == NULL)
        return -1;
    int rc = fprintf(f, "%s\n", text) < 0 ? -1 : 0;
    free(text);
    return rc;
}
