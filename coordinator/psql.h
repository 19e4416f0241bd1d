/*
 * The one way the coordinator builds a psql command line against its local PostgreSQL
 * (executor.c, syncrep.c, fence.c): quiet, unaligned, tuples only, stop at the first error, each
 * statement its own -c (ALTER SYSTEM refuses to run inside a multi-statement string).
 */
#ifndef AFC_PSQL_H
#define AFC_PSQL_H

#include <stddef.h>

#include "afc/config.h"

#define AFC_PSQL_ARGV_MAX 24 /* room for 7 statements */

struct afc_psql {
    char program[AFC_PATH_MAX + 8];
    const char *argv[AFC_PSQL_ARGV_MAX];
};

/* Fill p for the NULL-terminated stmts (the strings are borrowed: they must outlive the run).
 * Statements beyond the room are dropped; returns how many were taken. */
unsigned afc_psql_build(struct afc_psql *p, const struct afc_config *c, const char *const *stmts);

#endif
