/*
 * Pure helpers of the HTTP DNS providers (dns/parse.h): names and addresses, the TXT
 * presentation form, the accumulation of what a name holds, a small tolerant XML reader, and
 * Route53's documents (ListResourceRecordSets, ChangeInfo, errors, the ChangeBatch we send).
 * libc only; no I/O, no allocation.
 *
 * Route53's formats: API reference "ChangeResourceRecordSets", "ListResourceRecordSets",
 * "GetChange" and "Common Errors" (docs.aws.amazon.com/Route53/latest/APIReference/).
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dns/parse.h"

/* ---- names, addresses, URLs ---- */

static size_t name_len(const char *s)
{
    size_t n = strlen(s);
    return n > 0 && s[n - 1] == '.' ? n - 1 : n;
}

bool dns_name_equal(const char *a, const char *b)
{
    size_t na = name_len(a), nb = name_len(b);
    return na == nb && strncasecmp(a, b, na) == 0;
}

bool dns_name_no_dot(const char *name, char *out, size_t cap)
{
    size_t n = name_len(name);
    if (n + 1 > cap) {
        return false;
    }
    memcpy(out, name, n);
    out[n] = '\0';
    return true;
}

bool dns_name_under_zone(const char *name, const char *zone)
{
    size_t nn = name_len(name), nz = name_len(zone);
    if (nz == 0) {
        return true; /* the root */
    }
    if (nn < nz || strncasecmp(name + nn - nz, zone, nz) != 0) {
        return false;
    }
    return nn == nz || name[nn - nz - 1] == '.';
}

const char *dns_addr_type(const char *addr)
{
    unsigned char buf[16];
    if (addr == NULL) {
        return NULL;
    }
    if (inet_pton(AF_INET, addr, buf) == 1) {
        return "A";
    }
    if (inet_pton(AF_INET6, addr, buf) == 1) {
        return "AAAA";
    }
    return NULL;
}

bool dns_url_encode(const char *in, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)in; *p; p++) {
        bool plain = isalnum(*p) || *p == '-' || *p == '.' || *p == '_' || *p == '~';
        size_t need = plain ? 1 : 3;
        if (o + need + 1 > cap) {
            return false;
        }
        if (plain) {
            out[o++] = (char)*p;
        } else {
            out[o++] = '%';
            out[o++] = hex[*p >> 4];
            out[o++] = hex[*p & 15];
        }
    }
    if (cap == 0) {
        return false;
    }
    out[o] = '\0';
    return true;
}

void dns_body_excerpt(const char *body, size_t len, char *out, size_t cap)
{
    if (cap == 0) {
        return;
    }
    size_t o = 0;
    bool space = false, cut = false;
    for (size_t i = 0; i < len && body[i] != '\0'; i++) {
        unsigned char ch = (unsigned char)body[i];
        if (ch <= ' ' || ch == 127) {
            space = o > 0;
            continue;
        }
        size_t need = space ? 2 : 1;
        if (o + need + 1 > cap) {
            cut = true;
            break;
        }
        if (space) {
            out[o++] = ' ';
            space = false;
        }
        out[o++] = ch < 128 ? (char)ch : '?';
    }
    out[o] = '\0';
    if (cut && cap > 4) {
        size_t at = o + 3 < cap ? o : cap - 4;
        memcpy(out + at, "...", 4);
    }
}

/* ---- TXT presentation form ---- */

static bool out_put(char *out, size_t cap, size_t *o, char ch)
{
    if (*o + 1 >= cap) {
        return false;
    }
    out[(*o)++] = ch;
    return true;
}

/* One quoted character-string starting after its opening quote; *pp moves past the closing one. */
static bool unquote_one(const char **pp, char *out, size_t cap, size_t *o)
{
    const char *p = *pp;
    for (; *p != '"'; p++) {
        if (*p == '\0') {
            return false;
        }
        char ch = *p;
        if (ch == '\\') {
            p++;
            if (isdigit((unsigned char)p[0]) && isdigit((unsigned char)p[1]) &&
                isdigit((unsigned char)p[2])) {
                int v = (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
                if (v > 255) {
                    return false;
                }
                ch = (char)v;
                p += 2;
            } else if (*p == '\0') {
                return false;
            } else {
                ch = *p;
            }
        }
        if (!out_put(out, cap, o, ch)) {
            return false;
        }
    }
    *pp = p + 1;
    return true;
}

bool dns_txt_unquote(const char *in, char *out, size_t cap)
{
    size_t o = 0;
    const char *p = in;
    while (*p == ' ' || *p == '\t') {
        p++;
    }
    if (cap == 0) {
        return false;
    }
    if (*p != '"') {
        size_t n = strlen(p);
        if (n + 1 > cap) {
            return false;
        }
        memcpy(out, p, n + 1);
        return true;
    }
    while (*p == '"') {
        p++;
        if (!unquote_one(&p, out, cap, &o)) {
            return false;
        }
        while (*p == ' ' || *p == '\t') {
            p++;
        }
    }
    if (*p != '\0') {
        return false; /* text after the last string */
    }
    out[o] = '\0';
    return true;
}

bool dns_txt_quote(const char *in, char *out, size_t cap)
{
    size_t o = 0;
    if (!out_put(out, cap, &o, '"')) {
        return false;
    }
    for (const char *p = in; *p; p++) {
        if ((*p == '"' || *p == '\\') && !out_put(out, cap, &o, '\\')) {
            return false;
        }
        if (!out_put(out, cap, &o, *p)) {
            return false;
        }
    }
    if (!out_put(out, cap, &o, '"')) {
        return false;
    }
    out[o] = '\0';
    return true;
}

/* ---- building what a name holds ---- */

void dns_seen_address(struct afc_dns_value *v, struct dns_seen *s, const char *addr, unsigned ttl)
{
    s->n_addr++;
    if (!v->exists) {
        v->exists = true;
        v->ttl = ttl;
        snprintf(v->address, sizeof v->address, "%s", addr);
        return;
    }
    size_t n = strlen(v->address);
    snprintf(v->address + n, sizeof v->address - n, ",%s", addr);
}

void dns_seen_txt(struct dns_seen *s, const char *text, unsigned ttl)
{
    s->n_txt++;
    s->txt_ttl = ttl;
    if (s->n_txt == 1) {
        size_t n = strlen(text);
        s->txt_bad = n + 1 > sizeof s->txt;
        memcpy(s->txt, text, s->txt_bad ? 0 : n + 1);
    }
}

bool dns_seen_foreign_txt(const struct dns_seen *s, const struct afc_dns_value *v)
{
    return s->n_txt > 1 || (s->n_txt == 1 && !v->stamped);
}

void dns_value_text(const struct afc_dns_value *v, char *out, size_t cap)
{
    char addr[AFC_DNS_ADDR_MAX + 32] = "no address";
    if (v->exists) {
        snprintf(addr, sizeof addr, "%s ttl=%u", v->address, v->ttl);
    }
    if (v->stamped) {
        snprintf(out, cap, "%s epoch=%llu region=%s", addr, (unsigned long long)v->epoch,
                 v->region);
    } else {
        snprintf(out, cap, "%s, no stamp", addr);
    }
}

/* ---- Cloudflare ---- */

unsigned dns_cloudflare_ttl(unsigned ttl)
{
    return ttl < 60 ? 60 : ttl > 86400 ? 86400 : ttl;
}

/* ---- XML ---- */

enum tag_kind { TAG_OPEN, TAG_CLOSE, TAG_EMPTY };

struct tag {
    enum tag_kind kind;
    const char *name; /* the local name (after any prefix) */
    size_t name_len;
    size_t end; /* index just after '>' */
};

static const char *find_str(const char *s, size_t n, size_t from, const char *needle)
{
    size_t k = strlen(needle);
    for (size_t i = from; i + k <= n; i++) {
        if (memcmp(s + i, needle, k) == 0) {
            return s + i;
        }
    }
    return NULL;
}

static bool starts(const char *s, size_t n, size_t i, const char *lit)
{
    size_t k = strlen(lit);
    return i + k <= n && memcmp(s + i, lit, k) == 0;
}

/* At s[i] == '<': a comment, PI, CDATA or declaration? Returns the index after it, 0 if it is
 * none of them (an element tag), -1 when malformed. */
static long skip_special(const char *s, size_t n, size_t i)
{
    static const struct {
        const char *open, *close;
    } kinds[] = {{"<!--", "-->"}, {"<![CDATA[", "]]>"}, {"<?", "?>"}};
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        if (starts(s, n, i, kinds[k].open)) {
            const char *e = find_str(s, n, i + strlen(kinds[k].open), kinds[k].close);
            return e == NULL ? -1 : (long)(e - s + (long)strlen(kinds[k].close));
        }
    }
    if (!starts(s, n, i, "<!")) {
        return 0;
    }
    for (size_t j = i + 2; j < n; j++) { /* <!DOCTYPE ...>: refused with an internal subset */
        if (s[j] == '[') {
            return -1;
        }
        if (s[j] == '>') {
            return (long)j + 1;
        }
    }
    return -1;
}

static bool is_space(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n';
}

static bool is_name_end(char ch)
{
    return is_space(ch) || ch == '/' || ch == '>';
}

static void set_local_name(struct tag *t, const char *q, size_t qlen)
{
    const char *colon = memchr(q, ':', qlen);
    while (colon != NULL) {
        size_t skip = (size_t)(colon - q) + 1;
        q += skip;
        qlen -= skip;
        colon = memchr(q, ':', qlen);
    }
    t->name = q;
    t->name_len = qlen;
}

/* At s[i] == '<' (not special): read one tag. 0, or -1 when malformed. */
static int read_tag(const char *s, size_t n, size_t i, struct tag *t)
{
    size_t j = i + 1;
    t->kind = TAG_OPEN;
    if (j < n && s[j] == '/') {
        t->kind = TAG_CLOSE;
        j++;
    }
    size_t name_at = j;
    while (j < n && !is_name_end(s[j])) {
        j++;
    }
    if (j == name_at || j >= n) {
        return -1;
    }
    set_local_name(t, s + name_at, j - name_at);
    char quote = 0, last = 0;
    for (; j < n; j++) {
        if (quote != 0) {
            quote = s[j] == quote ? 0 : quote;
        } else if (s[j] == '"' || s[j] == '\'') {
            quote = s[j];
        } else if (s[j] == '>') {
            break;
        } else if (s[j] == '<') {
            return -1;
        }
        if (!is_space(s[j])) {
            last = s[j];
        }
    }
    if (j >= n) {
        return -1;
    }
    if (last == '/') {
        if (t->kind == TAG_CLOSE) {
            return -1;
        }
        t->kind = TAG_EMPTY;
    }
    t->end = j + 1;
    return 0;
}

static bool tag_is(const struct tag *t, const char *name)
{
    return t->name_len == strlen(name) && memcmp(t->name, name, t->name_len) == 0;
}

int dns_xml_child(struct dns_xml in, const char *name, struct dns_xml *content,
                  struct dns_xml *rest)
{
    const char *s = in.p;
    size_t n = in.n, i = 0, open_end = 0;
    int depth = 0;
    bool inside = false; /* in the element we are after */
    while (i < n) {
        const char *lt = memchr(s + i, '<', n - i);
        if (lt == NULL) {
            break;
        }
        i = (size_t)(lt - s);
        long after = skip_special(s, n, i);
        if (after != 0) {
            if (after < 0) {
                return -1;
            }
            i = (size_t)after;
            continue;
        }
        struct tag t;
        if (read_tag(s, n, i, &t) != 0) {
            return -1;
        }
        if (t.kind == TAG_OPEN) {
            if (depth == 0 && tag_is(&t, name)) {
                inside = true;
                open_end = t.end;
            }
            depth++;
        } else if (t.kind == TAG_EMPTY && depth == 0 && tag_is(&t, name)) {
            *content = (struct dns_xml){s + t.end, 0};
            *rest = (struct dns_xml){s + t.end, n - t.end};
            return 1;
        } else if (t.kind == TAG_CLOSE) {
            if (depth == 0) {
                return -1; /* an end tag without its start */
            }
            if (--depth == 0 && inside) {
                if (!tag_is(&t, name)) {
                    return -1;
                }
                *content = (struct dns_xml){s + open_end, i - open_end};
                *rest = (struct dns_xml){s + t.end, n - t.end};
                return 1;
            }
        }
        i = t.end;
    }
    return depth == 0 ? 0 : -1;
}

static void put_utf8(unsigned long cp, char *buf, size_t *k)
{
    if (cp < 0x80) {
        buf[(*k)++] = (char)cp;
    } else if (cp < 0x800) {
        buf[(*k)++] = (char)(0xC0 | (cp >> 6));
        buf[(*k)++] = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        buf[(*k)++] = (char)(0xE0 | (cp >> 12));
        buf[(*k)++] = (char)(0x80 | ((cp >> 6) & 0x3F));
        buf[(*k)++] = (char)(0x80 | (cp & 0x3F));
    } else {
        buf[(*k)++] = (char)(0xF0 | (cp >> 18));
        buf[(*k)++] = (char)(0x80 | ((cp >> 12) & 0x3F));
        buf[(*k)++] = (char)(0x80 | ((cp >> 6) & 0x3F));
        buf[(*k)++] = (char)(0x80 | (cp & 0x3F));
    }
}

/* An entity reference at s[i] == '&' into buf (1..4 bytes, *k set); returns its length or -1. */
static long decode_entity(const char *s, size_t n, size_t i, char *buf, size_t *k)
{
    static const struct {
        const char *name;
        char ch;
    } named[] = {{"lt", '<'}, {"gt", '>'}, {"amp", '&'}, {"quot", '"'}, {"apos", '\''}};
    const char *semi = memchr(s + i, ';', n - i < 12 ? n - i : 12);
    if (semi == NULL) {
        return -1;
    }
    size_t len = (size_t)(semi - (s + i)) + 1; /* "&...;" */
    const char *body = s + i + 1;
    size_t blen = len - 2;
    *k = 0;
    if (blen >= 2 && body[0] == '#') {
        bool hexa = body[1] == 'x';
        size_t d = hexa ? 2 : 1;
        if (d >= blen) {
            return -1;
        }
        unsigned long cp = 0;
        for (size_t j = d; j < blen; j++) {
            int v = isdigit((unsigned char)body[j]) ? body[j] - '0'
                    : hexa && isxdigit((unsigned char)body[j])
                        ? tolower((unsigned char)body[j]) - 'a' + 10
                        : -1;
            if (v < 0) {
                return -1;
            }
            cp = cp * (hexa ? 16 : 10) + (unsigned long)v;
            if (cp > 0x10FFFF) {
                return -1;
            }
        }
        if (cp == 0) {
            return -1;
        }
        put_utf8(cp, buf, k);
        return (long)len;
    }
    for (size_t j = 0; j < sizeof named / sizeof named[0]; j++) {
        if (strlen(named[j].name) == blen && memcmp(body, named[j].name, blen) == 0) {
            buf[(*k)++] = named[j].ch;
            return (long)len;
        }
    }
    return -1;
}

static bool out_bytes(char *out, size_t cap, size_t *o, const char *b, size_t k)
{
    if (*o + k + 1 > cap) {
        return false;
    }
    memcpy(out + *o, b, k);
    *o += k;
    return true;
}

int dns_xml_text(struct dns_xml c, char *out, size_t cap)
{
    const char *s = c.p;
    size_t n = c.n, o = 0, i = 0;
    if (cap == 0) {
        return -1;
    }
    while (i < n) {
        if (s[i] == '<') {
            if (starts(s, n, i, "<![CDATA[")) {
                const char *e = find_str(s, n, i + 9, "]]>");
                if (e == NULL || !out_bytes(out, cap, &o, s + i + 9, (size_t)(e - s) - i - 9)) {
                    return -1;
                }
                i = (size_t)(e - s) + 3;
                continue;
            }
            long after = skip_special(s, n, i);
            if (after <= 0) {
                return -1; /* an element: not a leaf */
            }
            i = (size_t)after;
            continue;
        }
        char buf[4];
        size_t k = 1;
        long used = 1;
        buf[0] = s[i];
        if (s[i] == '&' && (used = decode_entity(s, n, i, buf, &k)) < 0) {
            return -1;
        }
        if (!out_bytes(out, cap, &o, buf, k)) {
            return -1;
        }
        i += (size_t)used;
    }
    size_t a = 0;
    while (a < o && is_space(out[a])) {
        a++;
    }
    while (o > a && is_space(out[o - 1])) {
        o--;
    }
    memmove(out, out + a, o - a);
    out[o - a] = '\0';
    return 0;
}

int dns_xml_path_text(struct dns_xml in, const char *path, char *out, size_t cap)
{
    char part[64];
    struct dns_xml cur = in, content, rest;
    const char *p = path;
    while (*p) {
        const char *slash = strchr(p, '/');
        size_t k = slash ? (size_t)(slash - p) : strlen(p);
        if (k == 0 || k >= sizeof part) {
            return -1;
        }
        memcpy(part, p, k);
        part[k] = '\0';
        int rc = dns_xml_child(cur, part, &content, &rest);
        if (rc <= 0) {
            return rc;
        }
        cur = content;
        p += k + (slash ? 1 : 0);
    }
    return dns_xml_text(cur, out, cap) == 0 ? 1 : -1;
}

bool dns_xml_escape(const char *in, char *out, size_t cap)
{
    size_t o = 0;
    for (const char *p = in; *p; p++) {
        const char *rep = *p == '&'    ? "&amp;"
                          : *p == '<'  ? "&lt;"
                          : *p == '>'  ? "&gt;"
                          : *p == '"'  ? "&quot;"
                          : *p == '\'' ? "&apos;"
                                       : NULL;
        if (!(rep ? out_bytes(out, cap, &o, rep, strlen(rep)) : out_bytes(out, cap, &o, p, 1))) {
            return false;
        }
    }
    if (cap == 0) {
        return false;
    }
    out[o] = '\0';
    return true;
}

/* ---- Route53 ---- */

static struct dns_xml xml_of(const char *body, size_t len)
{
    return (struct dns_xml){body != NULL ? body : "", body != NULL ? len : 0};
}

bool dns_route53_read_error(const char *body, size_t len, struct dns_r53_error *e)
{
    struct dns_xml doc = xml_of(body, len), content, rest;
    memset(e, 0, sizeof *e);
    if (dns_xml_path_text(doc, "ErrorResponse/Error/Code", e->code, sizeof e->code) == 1) {
        if (dns_xml_path_text(doc, "ErrorResponse/Error/Message", e->message, sizeof e->message) !=
            1) {
            e->message[0] = '\0';
        }
        return true;
    }
    /* <InvalidChangeBatch><Messages><Message>…</Message>…</Messages></InvalidChangeBatch> */
    if (dns_xml_child(doc, "InvalidChangeBatch", &content, &rest) != 1) {
        return false;
    }
    snprintf(e->code, sizeof e->code, "InvalidChangeBatch");
    if (dns_xml_path_text(content, "Messages/Message", e->message, sizeof e->message) != 1 &&
        dns_xml_path_text(content, "Message", e->message, sizeof e->message) != 1) {
        e->message[0] = '\0';
    }
    return true;
}

/* Route53's codes (API reference, ChangeResourceRecordSets and Common Errors). */
enum afc_dns_outcome dns_route53_classify(long status, const char *code, unsigned *retry_after_ms)
{
    static const struct {
        const char *code;
        enum afc_dns_outcome outcome;
        unsigned wait_ms;
    } table[] = {
        {"InvalidChangeBatch", AFC_DNS_CONFLICT, 0},
        {"Throttling", AFC_DNS_RETRY, 1000},
        {"ThrottlingException", AFC_DNS_RETRY, 1000},
        {"PriorRequestNotComplete", AFC_DNS_RETRY, 2000},
        {"ServiceUnavailable", AFC_DNS_RETRY, 0},
        {"InternalFailure", AFC_DNS_RETRY, 0},
        {"SignatureDoesNotMatch", AFC_DNS_FAILED, 0},
        {"IncompleteSignature", AFC_DNS_FAILED, 0},
        {"InvalidClientTokenId", AFC_DNS_FAILED, 0},
        {"ExpiredToken", AFC_DNS_FAILED, 0},
        {"AccessDenied", AFC_DNS_FAILED, 0},
        {"MissingAuthenticationToken", AFC_DNS_FAILED, 0},
        {"RequestExpired", AFC_DNS_FAILED, 0},
        {"NoSuchHostedZone", AFC_DNS_FAILED, 0},
        {"NoSuchChange", AFC_DNS_FAILED, 0},
        {"InvalidInput", AFC_DNS_FAILED, 0},
    };
    *retry_after_ms = 0;
    for (size_t i = 0; code != NULL && i < sizeof table / sizeof table[0]; i++) {
        if (strcmp(code, table[i].code) == 0) {
            *retry_after_ms = table[i].wait_ms;
            return table[i].outcome;
        }
    }
    if (status >= 200 && status < 300) {
        return AFC_DNS_OK;
    }
    return status == 429 || status >= 500 ? AFC_DNS_RETRY : AFC_DNS_FAILED;
}

static bool parse_uint(const char *s, unsigned *out)
{
    char *end;
    if (!isdigit((unsigned char)s[0])) {
        return false;
    }
    unsigned long v = strtoul(s, &end, 10);
    if (*end != '\0' || v > 0x7fffffffUL) {
        return false;
    }
    *out = (unsigned)v;
    return true;
}

/* Route53 writes names with special characters as \ooo (octal); ours are plain: compare as is. */
static void read_one_rrset(struct dns_xml set, const char *name, struct afc_dns_value *v,
                           struct dns_seen *s, int *bad)
{
    char rname[AFC_DNS_NAME_MAX], type[16], ttl_text[16], value[512];
    struct dns_xml content, rest, recs;
    unsigned ttl = 0;
    if (dns_xml_path_text(set, "Name", rname, sizeof rname) != 1 ||
        dns_xml_path_text(set, "Type", type, sizeof type) != 1) {
        *bad = 1;
        return;
    }
    bool addr = strcmp(type, "A") == 0 || strcmp(type, "AAAA") == 0;
    if (!dns_name_equal(rname, name) || (!addr && strcmp(type, "TXT") != 0)) {
        return;
    }
    if (dns_xml_path_text(set, "TTL", ttl_text, sizeof ttl_text) == 1 &&
        !parse_uint(ttl_text, &ttl)) {
        *bad = 1;
        return;
    }
    bool alias = dns_xml_child(set, "AliasTarget", &content, &rest) == 1;
    bool policy = dns_xml_child(set, "SetIdentifier", &content, &rest) == 1;
    if (alias || policy) { /* not a simple record set: never matches one address */
        if (addr) {
            dns_seen_address(v, s, alias ? "(alias)" : "(routing policy)", ttl);
        } else {
            dns_seen_txt(s, "", ttl); /* not a stamp: foreign */
        }
        return;
    }
    if (dns_xml_child(set, "ResourceRecords", &recs, &rest) != 1) {
        *bad = 1;
        return;
    }
    struct dns_xml it = recs, rr;
    int rc;
    while ((rc = dns_xml_child(it, "ResourceRecord", &rr, &it)) == 1) {
        char text[512];
        if (dns_xml_path_text(rr, "Value", value, sizeof value) != 1) {
            *bad = 1;
            return;
        }
        if (addr) {
            dns_seen_address(v, s, value, ttl);
        } else {
            dns_seen_txt(s, dns_txt_unquote(value, text, sizeof text) ? text : "", ttl);
        }
    }
    if (rc < 0) {
        *bad = 1;
    }
}

int dns_route53_read_rrsets(const char *body, size_t len, const char *name, struct afc_dns_value *v,
                            struct dns_seen *s, struct dns_r53_page *page)
{
    struct dns_xml doc = xml_of(body, len), root, rest, sets, set;
    char truncated[16] = "";
    memset(page, 0, sizeof *page);
    if (dns_xml_child(doc, "ListResourceRecordSetsResponse", &root, &rest) != 1 ||
        dns_xml_child(root, "ResourceRecordSets", &sets, &rest) != 1) {
        return -1;
    }
    int bad = 0, rc;
    struct dns_xml it = sets;
    while ((rc = dns_xml_child(it, "ResourceRecordSet", &set, &it)) == 1 && !bad) {
        read_one_rrset(set, name, v, s, &bad);
    }
    if (rc < 0 || bad || dns_xml_path_text(root, "IsTruncated", truncated, sizeof truncated) < 0) {
        return -1;
    }
    if (strcmp(truncated, "true") == 0 &&
        dns_xml_path_text(root, "NextRecordName", page->next_name, sizeof page->next_name) == 1 &&
        dns_xml_path_text(root, "NextRecordType", page->next_type, sizeof page->next_type) == 1) {
        page->more = dns_name_equal(page->next_name, name);
    }
    return 0;
}

int dns_route53_read_change(const char *body, size_t len, char *id, size_t id_cap, char *status,
                            size_t status_cap)
{
    struct dns_xml doc = xml_of(body, len), root, rest;
    char raw[128];
    if (dns_xml_child(doc, "ChangeResourceRecordSetsResponse", &root, &rest) != 1 &&
        dns_xml_child(doc, "GetChangeResponse", &root, &rest) != 1) {
        return -1;
    }
    if (dns_xml_path_text(root, "ChangeInfo/Id", raw, sizeof raw) != 1 ||
        dns_xml_path_text(root, "ChangeInfo/Status", status, status_cap) != 1) {
        return -1;
    }
    const char *bare = strncmp(raw, "/change/", 8) == 0 ? raw + 8 : raw;
    if (bare[0] == '\0' || strchr(bare, '/') != NULL || strlen(bare) + 1 > id_cap) {
        return -1;
    }
    for (const char *p = bare; *p; p++) {
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_') {
            return -1; /* it goes into a URL path */
        }
    }
    memcpy(id, bare, strlen(bare) + 1);
    return 0;
}

struct buf {
    char *p;
    size_t cap, len;
    bool full;
};

static void buf_add(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void buf_add(struct buf *b, const char *fmt, ...)
{
    if (b->full) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= b->cap - b->len) {
        b->full = true;
        return;
    }
    b->len += (size_t)n;
}

static void add_change(struct buf *b, const char *action, const char *name, const char *type,
                       unsigned ttl, const char *value_xml)
{
    buf_add(b,
            "<Change><Action>%s</Action><ResourceRecordSet><Name>%s</Name><Type>%s</Type>"
            "<TTL>%u</TTL><ResourceRecords><ResourceRecord><Value>%s</Value></ResourceRecord>"
            "</ResourceRecords></ResourceRecordSet></Change>",
            action, name, type, ttl, value_xml);
}

/* The stamp as a TXT value (quoted), escaped for XML. */
static bool txt_value_xml(const char *stamp, char *out, size_t cap)
{
    char quoted[256];
    return dns_txt_quote(stamp, quoted, sizeof quoted) && dns_xml_escape(quoted, out, cap);
}

int dns_route53_change_batch(const char *name, const struct afc_dns_value *expect,
                             const char *old_stamp, unsigned txt_ttl, const char *address,
                             const char *stamp, unsigned ttl, const char *comment, char *out,
                             size_t cap)
{
    const char *new_type = dns_addr_type(address);
    const char *old_type = expect->exists ? dns_addr_type(expect->address) : "A";
    char name_xml[AFC_DNS_NAME_MAX * 6], comment_xml[512], value[256];
    if (new_type == NULL || old_type == NULL || (old_stamp != NULL && !expect->exists)) {
        return AFC_EINVAL;
    }
    if (!dns_xml_escape(name, name_xml, sizeof name_xml) ||
        !dns_xml_escape(comment, comment_xml, sizeof comment_xml)) {
        return AFC_ETOOBIG;
    }
    struct buf b = {out, cap, 0, cap == 0};
    buf_add(&b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ChangeResourceRecordSetsRequest "
                "xmlns=\"https://route53.amazonaws.com/doc/2013-04-01/\"><ChangeBatch>");
    buf_add(&b, "<Comment>%s</Comment><Changes>", comment_xml);
    if (expect->exists) {
        if (!dns_xml_escape(expect->address, value, sizeof value)) {
            return AFC_ETOOBIG;
        }
        add_change(&b, "DELETE", name_xml, old_type, expect->ttl, value);
    }
    if (old_stamp != NULL) {
        if (!txt_value_xml(old_stamp, value, sizeof value)) {
            return AFC_ETOOBIG;
        }
        add_change(&b, "DELETE", name_xml, "TXT", txt_ttl, value);
    }
    if (!dns_xml_escape(address, value, sizeof value)) {
        return AFC_ETOOBIG;
    }
    add_change(&b, "CREATE", name_xml, new_type, ttl, value);
    if (!txt_value_xml(stamp, value, sizeof value)) {
        return AFC_ETOOBIG;
    }
    add_change(&b, "CREATE", name_xml, "TXT", ttl, value);
    buf_add(&b, "</Changes></ChangeBatch></ChangeResourceRecordSetsRequest>\n");
    return b.full ? AFC_ETOOBIG : 0;
}
