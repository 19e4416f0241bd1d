/*
 * Logging and named events.
 *
 * A log line: "2026-11-26T12:00:00.123Z notice [us-east-2] +leader-elected term=3 leader=eu-west-1"
 * (or one JSON object per line with log.format: json). Events are failover-relevant transitions
 * with stable names (catalogued in docs/events.md); they are logged at notice, counted for
 * /metrics and asserted on by integration tests. Log transitions, not every probe.
 *
 * The log configuration is one of the two allowed globals (CONVENTIONS.md).
 */
#ifndef AFC_LOG_H
#define AFC_LOG_H

#include <stdint.h>
#include <stdio.h>

enum afc_log_level { AFC_LOG_DEBUG = 0, AFC_LOG_INFO, AFC_LOG_NOTICE, AFC_LOG_WARN, AFC_LOG_ERROR };

/* Set once at start. subject = this node's region. */
void afc_log_setup(int level, int json, const char *subject, FILE *out);
int afc_log_level_parse(const char *s); /* -1 if unknown */
const char *afc_log_level_name(int level);

void afc_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define afc_debug(...)  afc_log(AFC_LOG_DEBUG, __VA_ARGS__)
#define afc_info(...)   afc_log(AFC_LOG_INFO, __VA_ARGS__)
#define afc_notice(...) afc_log(AFC_LOG_NOTICE, __VA_ARGS__)
#define afc_warn(...)   afc_log(AFC_LOG_WARN, __VA_ARGS__)
#define afc_error(...)  afc_log(AFC_LOG_ERROR, __VA_ARGS__)

/* Emit event "+NAME key=value ..." at notice and count it. NAME without '+'. */
void afc_event(const char *name, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Iterate event counters (for /metrics). Returns number of distinct names seen. */
unsigned afc_event_count(unsigned i, const char **name, uint64_t *count);

#endif
