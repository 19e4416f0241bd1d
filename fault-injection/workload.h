/*
 * The workload's files beside history.jsonl (chaos.h): the read-back of the rows the final
 * primary holds, written by `aragora-chaos workload --readback CONNINFO --out FILE` as one JSON
 * object per row, {"region":"us-east-2","seq":17}, and read into chaos_record.rows by
 * chaos_rows_load (history.c, pure). The workload itself is chaos_workload_main (chaos_cmd.h).
 */
#ifndef AFC_CHAOS_WORKLOAD_H
#define AFC_CHAOS_WORKLOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chaos.h"

/* Read a read-back file into rec->rows (regions by name from rec->regions; any rows already there
 * are freed), sort them by (region, seq) and set rec->rows_read. Returns 0, or -1 with
 * "FILE:LINE: reason" in why (rec->rows_read then false, rec->rows empty). */
int chaos_rows_load(const char *path, struct chaos_record *rec, char *why, size_t why_size);

/* Does rec->rows (sorted, as chaos_rows_load leaves them) hold (region, seq)? O(log n). */
bool chaos_rows_has(const struct chaos_record *rec, unsigned region, uint64_t seq);

/* The index of region `name` in rec->regions, or -1. */
int chaos_region_find(const struct chaos_record *rec, const char *name);

#endif
