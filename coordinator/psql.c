/*
 * psql command lines for the local PostgreSQL (psql.h).
 */
#include <stdio.h>

#include "coordinator/psql.h"

unsigned afc_psql_build(struct afc_psql *p, const struct afc_config *c, const char *const *stmts)
{
    unsigned n = 0, taken = 0;
    snprintf(p->program, sizeof p->program, "%s/psql", c->pg_bin_dir);
    p->argv[n++] = p->program;
    p->argv[n++] = "-X";
    p->argv[n++] = "-A";
    p->argv[n++] = "-t";
    p->argv[n++] = "-q";
    p->argv[n++] = "-v";
    p->argv[n++] = "ON_ERROR_STOP=1";
    p->argv[n++] = "-d";
    p->argv[n++] = c->database_url;
    for (; stmts[taken] != NULL && n + 3 <= AFC_PSQL_ARGV_MAX; taken++) {
        p->argv[n++] = "-c";
        p->argv[n++] = stmts[taken];
    }
    p->argv[n] = NULL;
    return taken;
}
