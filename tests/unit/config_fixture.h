/*
 * The YAML fixtures shared by test_config.c and test_config_env.c: three members whose lines are
 * counted (error rows name a line), the same with addresses for the dns rows, a PowerDNS section.
 */
#ifndef AFC_TESTS_CONFIG_FIXTURE_H
#define AFC_TESTS_CONFIG_FIXTURE_H

#include <string.h>

#include "afc/config.h"

#define SRC "node.yaml"

/* One member as four block-style lines. */
#define MEMBER(name, id, raft, api)                                                                \
    "  - name: " name "\n"                                                                         \
    "    id: " id "\n"                                                                             \
    "    raft: " raft "\n"                                                                         \
    "    api: " api "\n"

#define M1 MEMBER("us-east-2", "1", "127.0.0.1:7001", "http://127.0.0.1:8081")  /* lines 4-7 */
#define M2 MEMBER("eu-west-1", "2", "127.0.0.1:7002", "http://127.0.0.1:8082")  /* lines 8-11 */
#define M3 MEMBER("ap-south-1", "3", "127.0.0.1:7003", "http://127.0.0.1:8083") /* 12-15 */

/* Lines 1-3; members follow. */
#define TOP "region: us-east-2\ndata_dir: /var/lib/aragora\nmembers:\n"

/* A valid file of 15 lines; error rows append from line 16. */
#define BASE TOP M1 M2 M3

/* The same three members with an address each (5 lines apiece): a valid file of 18 lines for the
 * dns rows, which append from line 19. */
#define MEMBER_A(name, id, raft, api, address)                                                     \
    MEMBER(name, id, raft, api) "    address: " address "\n"
#define BASE_A                                                                                     \
    TOP MEMBER_A("us-east-2", "1", "127.0.0.1:7001", "http://127.0.0.1:8081", "10.0.1.5")          \
        MEMBER_A("eu-west-1", "2", "127.0.0.1:7002", "http://127.0.0.1:8082", "2001:db8::5")       \
            MEMBER_A("ap-south-1", "3", "127.0.0.1:7003", "http://127.0.0.1:8083", "10.0.3.5")

/* A dns section for PowerDNS, lines 19-24 after BASE_A. */
#define DNS_PDNS                                                                                   \
    "dns:\n"                                                                                       \
    "  provider: powerdns\n"                                                                       \
    "  name: primary.db.example.\n"                                                                \
    "  zone: db.example.\n"                                                                        \
    "  powerdns:\n"                                                                                \
    "    api_url: http://127.0.0.1:8081\n"

#define FLOW(i)                                                                                    \
    "  - {name: m" #i ", id: " #i ", raft: '127.0.0.1:" #i "', api: 'http://127.0.0.1:80'}\n"

static inline int parse(struct afc_config *c, const char *text, struct afc_err *err)
{
    memset(err, 0, sizeof *err);
    return afc_config_parse(c, SRC, text, strlen(text), err);
}

#endif
