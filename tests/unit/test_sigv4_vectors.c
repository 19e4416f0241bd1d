/*
 * AWS's signing test suite against the SigV4 signer (dns/sigv4.c): `test_sigv4_vectors DIR` runs
 * every case folder in DIR, in the layout of AWS's signing test suite
 * (tests/vectors/sigv4/README.md): request.txt is parsed, signed with the settings of context.json,
 * and EVERY header-*.txt file of the case is compared with what the signer produced. One line per
 * mismatch (with the first differing line), one ok/FAIL line per case, then "N passed, M failed"
 * counted per case; exit non-zero if anything failed or nothing ran. query-*.txt (pre-signed URLs)
 * are not checked: the signer does header signing only (docs/dns.md). The built-in cases:
 * test_sigv4.c.
 */
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "afc/sigv4.h"

#define N(a)    (sizeof(a) / sizeof((a)[0]))
#define WHY_MAX 512

/* ======================================================================================== */
/* The vectors                                                                              */
/* ======================================================================================== */

/* ---- files and folders ---- */

/* The whole file, NUL-terminated (the length excludes the NUL); NULL with errno on failure. */
static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return NULL;
    }
    char *buf = NULL;
    size_t size = 0, used = 0;
    for (;;) {
        if (used + 4096 + 1 > size) {
            size = 2 * size + 4096 + 1;
            char *bigger = realloc(buf, size);
            if (bigger == NULL) {
                free(buf);
                fclose(f);
                errno = ENOMEM;
                return NULL;
            }
            buf = bigger;
        }
        size_t n = fread(buf + used, 1, 4096, f);
        used += n;
        if (n < 4096) {
            break;
        }
    }
    bool failed = ferror(f);
    fclose(f);
    if (failed) {
        free(buf);
        errno = EIO;
        return NULL;
    }
    buf[used] = '\0';
    *len = used;
    return buf;
}

struct names {
    char **v;
    size_t n;
};

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void names_free(struct names *ns)
{
    for (size_t i = 0; i < ns->n; i++) {
        free(ns->v[i]);
    }
    free(ns->v);
    ns->v = NULL;
    ns->n = 0;
}

/* Sorted entries of dir that are folders (want_dirs) or files starting with prefix; -1 if the
 * folder cannot be read or memory runs out. Hidden entries are skipped. */
static int list_names(const char *dir, bool want_dirs, const char *prefix, struct names *out)
{
    DIR *d = opendir(dir);
    out->v = NULL;
    out->n = 0;
    if (d == NULL) {
        return -1;
    }
    for (struct dirent *e = readdir(d); e != NULL; e = readdir(d)) {
        char path[4096];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (e->d_name[0] == '.' || stat(path, &st) != 0 || S_ISDIR(st.st_mode) != want_dirs ||
            (prefix != NULL && strncmp(e->d_name, prefix, strlen(prefix)) != 0)) {
            continue;
        }
        char **bigger = realloc(out->v, (out->n + 1) * sizeof *out->v);
        char *copy = strdup(e->d_name);
        if (bigger == NULL || copy == NULL) {
            free(copy);
            out->v = bigger != NULL ? bigger : out->v;
            names_free(out);
            closedir(d);
            return -1;
        }
        out->v = bigger;
        out->v[out->n++] = copy;
    }
    closedir(d);
    if (out->n > 1) {
        qsort(out->v, out->n, sizeof *out->v, compare_names);
    }
    return 0;
}

/* ---- context.json ---- */

struct context {
    json_t *root; /* owns every string below */
    const char *key_id, *secret, *token, *region, *service;
    char amz_date[AFC_SIGV4_DATE_LEN + 1];
    bool normalize, sign_body, omit_session_token;
};

static bool fail_why(char *why, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static bool fail_why(char *why, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, WHY_MAX, fmt, ap);
    va_end(ap);
    return false;
}

static bool get_bool(json_t *root, const char *key, bool dflt, bool *out, char *why)
{
    json_t *v = json_object_get(root, key);
    if (v != NULL && !json_is_boolean(v)) {
        return fail_why(why, "context.json: \"%s\" is not a boolean", key);
    }
    *out = v != NULL ? json_is_true(v) : dflt;
    return true;
}

/* "2015-08-30T12:36:00Z" (the suite's form) → "20150830T123600Z" (the signer checks digits). */
static bool convert_timestamp(const char *iso, char out[AFC_SIGV4_DATE_LEN + 1], char *why)
{
    if (iso == NULL || strlen(iso) != 20 || iso[4] != '-' || iso[7] != '-' || iso[10] != 'T' ||
        iso[13] != ':' || iso[16] != ':' || iso[19] != 'Z') {
        return fail_why(why, "context.json: timestamp \"%s\" not YYYY-MM-DDTHH:MM:SSZ",
                        iso != NULL ? iso : "(missing)");
    }
    snprintf(out, AFC_SIGV4_DATE_LEN + 1, "%.4s%.2s%.2sT%.2s%.2s%.2sZ", iso, iso + 5, iso + 8,
             iso + 11, iso + 14, iso + 17);
    return true;
}

/* A setting the test does not know could change what is expected: fail the case, naming it. */
static bool check_known_keys(json_t *obj, const char *const *known, size_t n, const char *where,
                             char *why)
{
    const char *key;
    json_t *value;
    json_object_foreach(obj, key, value)
    {
        bool ok = false;
        for (size_t i = 0; i < n && !ok; i++) {
            ok = strcmp(key, known[i]) == 0;
        }
        if (!ok) {
            return fail_why(why, "context.json: unknown setting %s\"%s\" (not supported)", where,
                            key);
        }
    }
    return true;
}

static bool load_context(const char *path, struct context *c, char *why)
{
    /* expiration_in_seconds is for pre-signed URLs only. */
    static const char *const top[] = {
        "credentials", "expiration_in_seconds", "normalize", "region", "service", "sign_body",
        "timestamp",   "omit_session_token"};
    static const char *const creds[] = {"access_key_id", "secret_access_key", "token"};
    json_error_t jerr;
    memset(c, 0, sizeof *c);
    c->root = json_load_file(path, 0, &jerr);
    if (c->root == NULL || !json_is_object(c->root)) {
        return fail_why(why, "context.json: %s (line %d)", c->root ? "not an object" : jerr.text,
                        jerr.line);
    }
    json_t *cr = json_object_get(c->root, "credentials");
    if (!json_is_object(cr)) {
        return fail_why(why, "context.json: no \"credentials\" object");
    }
    if (!check_known_keys(c->root, top, N(top), "", why) ||
        !check_known_keys(cr, creds, N(creds), "credentials.", why)) {
        return false;
    }
    c->key_id = json_string_value(json_object_get(cr, "access_key_id"));
    c->secret = json_string_value(json_object_get(cr, "secret_access_key"));
    c->token = json_string_value(json_object_get(cr, "token"));
    c->region = json_string_value(json_object_get(c->root, "region"));
    c->service = json_string_value(json_object_get(c->root, "service"));
    if (c->key_id == NULL || c->secret == NULL || c->region == NULL || c->service == NULL) {
        return fail_why(why, "context.json: a key, the secret, region or service is missing");
    }
    return convert_timestamp(json_string_value(json_object_get(c->root, "timestamp")), c->amz_date,
                             why) &&
           get_bool(c->root, "normalize", true, &c->normalize, why) &&
           get_bool(c->root, "sign_body", false, &c->sign_body, why) &&
           get_bool(c->root, "omit_session_token", false, &c->omit_session_token, why);
}

/* ---- request.txt ---- */

struct line {
    const char *p;
    size_t len;
};

struct vreq {
    char *text; /* the file (owned); raw lines point into it, unchanged */
    size_t len;
    char *work; /* a copy cut into NUL-terminated pieces (owned) */
    struct line request_line;
    struct line raw[AFC_SIGV4_MAX_HEADERS]; /* header lines as written, continuations included */
    size_t n_raw;
    const char *method, *path, *query;
    struct afc_sigv4_header headers[AFC_SIGV4_MAX_HEADERS];
    size_t n_headers;
    const char *body;
    size_t body_len;
};

static void vreq_free(struct vreq *r)
{
    free(r->text);
    free(r->work);
}

/* "METHOD SP target SP HTTP/x.y": the target may itself hold spaces ("/example space/"). */
static bool parse_request_line(struct vreq *r, char *line, char *why)
{
    char *first = strchr(line, ' '), *last = strrchr(line, ' ');
    if (first == NULL || first == last || strncmp(last + 1, "HTTP/", 5) != 0) {
        return fail_why(why, "request.txt: request line \"%s\" not METHOD TARGET HTTP/x.y", line);
    }
    *first = '\0';
    *last = '\0';
    r->method = line;
    r->path = first + 1;
    char *q = strchr(first + 1, '?');
    if (q != NULL) {
        *q = '\0';
        r->query = q + 1;
    }
    return true;
}

/* "Name:value"; a line starting with a space or tab continues the previous header and, as in the
 * suite's get-header-value-multiline case, is signed as one more value of the same name. */
static bool parse_header_line(struct vreq *r, char *line, char *why)
{
    if (r->n_headers == AFC_SIGV4_MAX_HEADERS) {
        return fail_why(why, "request.txt: more than %d header lines", AFC_SIGV4_MAX_HEADERS);
    }
    struct afc_sigv4_header *h = &r->headers[r->n_headers];
    if (line[0] == ' ' || line[0] == '\t') {
        if (r->n_headers == 0) {
            return fail_why(why, "request.txt: continuation line before any header");
        }
        h->name = r->headers[r->n_headers - 1].name;
        h->value = line;
    } else {
        char *colon = strchr(line, ':');
        if (colon == NULL) {
            return fail_why(why, "request.txt: header line \"%s\" has no ':'", line);
        }
        *colon = '\0';
        h->name = line;
        h->value = colon + 1;
    }
    r->n_headers++;
    return true;
}

static bool parse_request(const char *path, struct vreq *r, char *why)
{
    memset(r, 0, sizeof *r);
    r->text = slurp(path, &r->len);
    r->work = r->text != NULL ? malloc(r->len + 1) : NULL;
    if (r->work == NULL) {
        return fail_why(why, "request.txt: %s", strerror(errno));
    }
    memcpy(r->work, r->text, r->len + 1);
    r->body = r->text + r->len; /* no blank line: no body */
    for (size_t pos = 0, n = 0; pos < r->len; n++) {
        const char *nl = memchr(r->text + pos, '\n', r->len - pos);
        size_t eol = nl != NULL ? (size_t)(nl - r->text) : r->len, next = nl ? eol + 1 : eol;
        size_t len = eol - pos - (eol > pos && r->text[eol - 1] == '\r' ? 1 : 0);
        char *line = r->work + pos;
        struct line raw = {r->text + pos, len};
        line[len] = '\0';
        if (n == 0) {
            r->request_line = raw;
            if (!parse_request_line(r, line, why)) {
                return false;
            }
        } else if (len == 0) {
            r->body = r->text + next;
            break;
        } else {
            if (!parse_header_line(r, line, why)) {
                return false;
            }
            r->raw[r->n_raw++] = raw;
        }
        pos = next;
    }
    r->body_len = (size_t)(r->text + r->len - r->body);
    if (r->method == NULL) {
        return fail_why(why, "request.txt: empty");
    }
    return true;
}

/* ---- one case ---- */

struct produced {
    char creq[64 * 1024];
    char authz[8 * 1024];
    struct afc_sigv4_result r;
    char *signed_request; /* malloc'd: the request as it would be sent */
    size_t signed_len;
};

/*
 * The request as sent: the original lines, then the headers the signer asks for, in the order the
 * suite's header-signed-request.txt files use (token, date, content hash, authorization), a blank
 * line and the body.
 */
static bool build_signed_request(const struct vreq *r, const struct context *c, struct produced *p,
                                 char *why)
{
    FILE *f = open_memstream(&p->signed_request, &p->signed_len);
    if (f == NULL) {
        return fail_why(why, "open_memstream: %s", strerror(errno));
    }
    fprintf(f, "%.*s\n", (int)r->request_line.len, r->request_line.p);
    for (size_t i = 0; i < r->n_raw; i++) {
        fprintf(f, "%.*s\n", (int)r->raw[i].len, r->raw[i].p);
    }
    if (c->token != NULL && c->token[0] != '\0') {
        fprintf(f, "X-Amz-Security-Token:%s\n", c->token);
    }
    fprintf(f, "X-Amz-Date:%s\n", c->amz_date);
    if (c->sign_body) {
        fprintf(f, "x-amz-content-sha256:%s\n", p->r.payload_hash);
    }
    fprintf(f, "Authorization:%s\n\n", p->r.authorization);
    fwrite(r->body, 1, r->body_len, f);
    if (fclose(f) != 0) {
        return fail_why(why, "open_memstream: %s", strerror(errno));
    }
    return true;
}

static bool sign_case(const struct vreq *r, const struct context *c, struct produced *p, char *why)
{
    struct afc_sigv4_request req = {r->method,    r->path, r->query,   r->headers,
                                    r->n_headers, r->body, r->body_len};
    struct afc_sigv4_credentials cred = {c->key_id, c->secret, c->token};
    struct afc_sigv4_params params = {c->region,    c->service,   c->amz_date,
                                      c->normalize, c->sign_body, c->omit_session_token};
    struct afc_err err = {0};
    p->r.canonical_request = p->creq;
    p->r.canonical_request_size = sizeof p->creq;
    p->r.authorization = p->authz;
    p->r.authorization_size = sizeof p->authz;
    if (afc_sigv4_sign(&req, &cred, &params, &p->r, &err) != 0) {
        return fail_why(why, "signer: %s (%s)", err.msg, afc_errname(err.code));
    }
    return build_signed_request(r, c, p, why);
}

/* `s` (up to len bytes, stopping at a newline) quoted with escapes, at most ~100 characters. */
static void quote_line(const char *s, size_t len, char *out, size_t out_size)
{
    size_t o = 0;
    for (size_t i = 0; i < len && s[i] != '\n' && o + 8 < out_size; i++) {
        unsigned char c = (unsigned char)s[i];
        if (i == 100) {
            o += (size_t)snprintf(out + o, out_size - o, "...");
            break;
        }
        if (c == '"' || c == '\\') {
            o += (size_t)snprintf(out + o, out_size - o, "\\%c", c);
        } else if (c < 0x20 || c >= 0x7f) {
            o += (size_t)snprintf(out + o, out_size - o, "\\x%02x", c);
        } else {
            out[o++] = (char)c;
        }
    }
    out[o] = '\0';
}

/* Exact comparison; on a mismatch one line naming the first differing line and column. */
static bool compare(const char *case_name, const char *file, const char *want, size_t want_len,
                    const char *got, size_t got_len)
{
    if (want_len == got_len && memcmp(want, got, want_len) == 0) {
        return true;
    }
    size_t i = 0, line = 1, line_start = 0;
    for (; i < want_len && i < got_len && want[i] == got[i]; i++) {
        if (want[i] == '\n') {
            line++;
            line_start = i + 1;
        }
    }
    char w[512], g[512];
    quote_line(want + line_start, want_len - line_start, w, sizeof w);
    quote_line(got + line_start, got_len - line_start, g, sizeof g);
    printf("  FAIL %s/%s: differs at line %zu col %zu (%s): expected \"%s\" got \"%s\"\n",
           case_name, file, line, i - line_start + 1,
           i == want_len  ? "got more"
           : i == got_len ? "got less"
                          : "different byte",
           w, g);
    return false;
}

/* A header-*.txt file → what the signer produced for it; NULL if the test does not know it. */
static const char *produced_for(const char *file, const struct produced *p, size_t *len, bool *trim)
{
    *trim = true; /* an editor's final newline is not part of these values */
    const char *s = NULL;
    if (strcmp(file, "header-canonical-request.txt") == 0) {
        s = p->r.canonical_request;
    } else if (strcmp(file, "header-string-to-sign.txt") == 0) {
        s = p->r.string_to_sign;
    } else if (strcmp(file, "header-signature.txt") == 0) {
        s = p->r.signature;
    } else if (strcmp(file, "header-signed-request.txt") == 0) {
        *trim = false; /* its trailing blank line and body are significant */
        *len = p->signed_len;
        return p->signed_request;
    }
    *len = s != NULL ? strlen(s) : 0;
    return s;
}

static bool compare_file(const char *dir, const char *case_name, const char *file,
                         const struct produced *p)
{
    char path[4096];
    size_t want_len = 0, got_len = 0;
    bool trim = false;
    const char *got = produced_for(file, p, &got_len, &trim);
    if (got == NULL) {
        printf("  FAIL %s/%s: no such output of the signer (unknown header-* file)\n", case_name,
               file);
        return false;
    }
    snprintf(path, sizeof path, "%s/%s/%s", dir, case_name, file);
    char *want = slurp(path, &want_len);
    if (want == NULL) {
        printf("  FAIL %s/%s: cannot read: %s\n", case_name, file, strerror(errno));
        return false;
    }
    while (trim && want_len > 0 && (want[want_len - 1] == '\n' || want[want_len - 1] == '\r')) {
        want_len--;
    }
    bool ok = compare(case_name, file, want, want_len, got, got_len);
    free(want);
    return ok;
}

static bool run_case(const char *dir, const char *name)
{
    char path[4096], why[WHY_MAX] = "";
    struct context ctx = {0};
    struct vreq req = {0};
    struct names files = {NULL, 0};
    struct produced *p = calloc(1, sizeof *p);
    bool ok = p != NULL;

    snprintf(path, sizeof path, "%s/%s/context.json", dir, name);
    ok = ok && load_context(path, &ctx, why);
    snprintf(path, sizeof path, "%s/%s/request.txt", dir, name);
    ok = ok && parse_request(path, &req, why) && sign_case(&req, &ctx, p, why);
    if (!ok) {
        printf("  FAIL %s: %s\n", name, p == NULL ? "out of memory" : why);
    }
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (ok && (list_names(path, false, "header-", &files) != 0 || files.n == 0)) {
        printf("  FAIL %s: no header-*.txt file to compare with\n", name);
        ok = false;
    }
    /* Every file is compared, so one run reports every mismatch of the case. */
    for (size_t i = 0, n = ok ? files.n : 0; i < n; i++) {
        bool same = compare_file(dir, name, files.v[i], p);
        ok = same && ok;
    }
    names_free(&files);
    json_decref(ctx.root);
    vreq_free(&req);
    if (p != NULL) {
        free(p->signed_request);
    }
    free(p);
    return ok;
}

static int run_vectors(const char *dir)
{
    struct names cases;
    int passed = 0, failed = 0;
    if (list_names(dir, true, NULL, &cases) != 0) {
        fprintf(stderr, "%s: %s\n", dir, strerror(errno));
        printf("0 passed, 1 failed\n");
        return 1;
    }
    /* query-*.txt are pre-signed URLs, which the signer does not make (docs/dns.md). */
    printf("# %zu case folders in %s: header-*.txt compared, query-*.txt not checked\n", cases.n,
           dir);
    for (size_t i = 0; i < cases.n; i++) {
        if (run_case(dir, cases.v[i])) {
            passed++;
            printf("ok   %s\n", cases.v[i]);
        } else {
            failed++;
            printf("FAIL %s\n", cases.v[i]);
        }
    }
    names_free(&cases);
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 && passed > 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s VECTORS_DIR\n", argv[0]);
        return 2;
    }
    return run_vectors(argv[1]);
}
