/*
 * The run report's parts (chaos.h chaos_report_write, docs/chaos.md "Reading a report"):
 *
 * report_out.c  chaos_report_write: report.json, report.md, and writing each file safely
 * report_svg.c  timeline.svg, the picture of the run
 *
 * What they share: the report being written and a few helpers over the record.
 */
#ifndef AFC_REPORT_INTERNAL_H
#define AFC_REPORT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "chaos.h"

struct report {
    const struct chaos_report_meta *meta;
    const struct chaos_record *rec;
    const struct chaos_checks *checks;
};

/* Region i's name, or NULL when i is not a region of the record (-1: none). */
const char *report_region_name(const struct chaos_record *rec, long i);
/* Seconds from the start of the run to t_us. */
double report_rel_s(const struct chaos_record *rec, int64_t t_us);
/* Whether every check passed (false without checks). */
bool report_passed(const struct report *r);
/* ISO-8601 UTC with milliseconds: "2026-11-26T23:31:18.123Z". */
void report_iso_time(int64_t us, char *buf, size_t size);
/* s, or "" for NULL. */
const char *report_or_empty(const char *s);
/* The length of the well-formed UTF-8 sequence at p, or 0. */
size_t report_utf8_seq(const char *p);
/* The workload's writes per region and result (CHAOS_OK, CHAOS_FAIL, CHAOS_UNKNOWN). */
void report_count_writes(const struct chaos_record *rec, size_t counts[][3]);

/* timeline.svg into f (report_svg.c): 0, or -1 when out of memory. */
int report_write_svg(FILE *f, const struct report *r);

#endif
