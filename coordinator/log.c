/*
 * Logging and named events (include/afc/log.h).
 *
 * One line per message, wall-clock timestamp in UTC with milliseconds (wall time is for logs only),
 * the level, the subject (this node's region) and the text. Events ("+name k=v ...") are logged at
 * notice and counted in a small fixed table that /metrics reads. The log configuration is one of
 * the two globals CONVENTIONS.md allows.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>

#include "afc/log.h"

#define EVENT_NAMES_MAX 128
#define EVENT_NAME_LEN  48

static struct {
    int level;
    bool json;
    char subject[64];
    FILE *out;
    unsigned n_events;
    char event_names[EVENT_NAMES_MAX][EVENT_NAME_LEN];
    uint64_t event_counts[EVENT_NAMES_MAX];
} log_cfg = {.level = AFC_LOG_INFO};

static const char *const level_names[] = {"debug", "info", "notice", "warn", "error"};

void afc_log_setup(int level, int json, const char *subject, FILE *out)
{
    log_cfg.level = level;
    log_cfg.json = json != 0;
    snprintf(log_cfg.subject, sizeof log_cfg.subject, "%s", subject ? subject : "-");
    log_cfg.out = out;
}

int afc_log_level_parse(const char *s)
{
    for (int i = 0; i < (int)(sizeof level_names / sizeof level_names[0]); i++) {
        if (strcmp(s, level_names[i]) == 0) {
            return i;
        }
    }
    return -1;
}

const char *afc_log_level_name(int level)
{
    if (level < AFC_LOG_DEBUG || level > AFC_LOG_ERROR) {
        return "unknown";
    }
    return level_names[level];
}

static void format_time(char *buf, size_t len)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, len - n, ".%03ldZ", ts.tv_nsec / 1000000);
}

/* JSON string escaping for the json log format: quotes, backslashes and control characters. */
static void write_json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            fputc('\\', f);
            fputc(c, f);
        } else if (c < 0x20) {
            fprintf(f, "\\u%04x", c);
        } else {
            fputc(c, f);
        }
    }
    fputc('"', f);
}

static void emit(int level, const char *text)
{
    FILE *f = log_cfg.out ? log_cfg.out : stderr;
    char ts[40];
    format_time(ts, sizeof ts);
    if (log_cfg.json) {
        fprintf(f, "{\"time\":\"%s\",\"level\":\"%s\",\"region\":", ts, afc_log_level_name(level));
        write_json_string(f, log_cfg.subject);
        fputs(",\"msg\":", f);
        write_json_string(f, text);
        fputs("}\n", f);
    } else {
        fprintf(f, "%s %s [%s] %s\n", ts, afc_log_level_name(level), log_cfg.subject, text);
    }
    fflush(f);
}

void afc_log(int level, const char *fmt, ...)
{
    if (level < log_cfg.level) {
        return;
    }
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    emit(level, text);
}

static void count_event(const char *name)
{
    for (unsigned i = 0; i < log_cfg.n_events; i++) {
        if (strcmp(log_cfg.event_names[i], name) == 0) {
            log_cfg.event_counts[i]++;
            return;
        }
    }
    if (log_cfg.n_events < EVENT_NAMES_MAX) {
        snprintf(log_cfg.event_names[log_cfg.n_events], EVENT_NAME_LEN, "%s", name);
        log_cfg.event_counts[log_cfg.n_events++] = 1;
    }
}

void afc_event(const char *name, const char *fmt, ...)
{
    count_event(name);
    if (AFC_LOG_NOTICE < log_cfg.level) {
        return;
    }
    char args[896];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    char text[1024];
    snprintf(text, sizeof text, "+%s%s%s", name, args[0] ? " " : "", args);
    emit(AFC_LOG_NOTICE, text);
}

unsigned afc_event_count(unsigned i, const char **name, uint64_t *count)
{
    if (i < log_cfg.n_events) {
        *name = log_cfg.event_names[i];
        *count = log_cfg.event_counts[i];
    }
    return log_cfg.n_events;
}
