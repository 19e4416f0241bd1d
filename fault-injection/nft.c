/*
 * Namespace mode's packet filter (chaos.h, docs/chaos.md "Namespace mode"): the combined state
 * of every ordered pair of regions as the text of one nftables transaction. Pure: the
 * controller (proxy_netns.c) feeds it to `nft -f -` inside the bridge's namespace.
 */
#include <stdio.h>
#include <string.h>

#include "chaos.h"

/* The rules of one direction; `m` is "ip saddr A ip daddr B". Drops come first: a packet that is
 * lost is not also delayed. */
static void put_pair(struct chaos_buf *b, const char *m, const struct chaos_link_state *st,
                     unsigned from, unsigned to)
{
    if (st->cut || st->blackhole) {
        chaos_buf_put(b, "    %s drop\n", m);
        return;
    }
    if (st->reset) {
        chaos_buf_put(b, "    %s meta l4proto tcp reject with tcp reset\n", m);
        chaos_buf_put(b, "    %s drop\n", m);
        return;
    }
    if (st->loss_pct > 0) {
        unsigned per10k = (unsigned)(st->loss_pct * 100.0 + 0.5);
        if (per10k >= 10000) {
            chaos_buf_put(b, "    %s drop\n", m);
            return;
        }
        if (per10k > 0)
            chaos_buf_put(b, "    %s numgen random mod 10000 < %u drop\n", m, per10k);
    }
    if (st->rate_bps > 0) {
        unsigned long long bytes = st->rate_bps / 8 > 0 ? st->rate_bps / 8 : 1;
        /* a burst of a tenth of a second, at least two full-size packets */
        unsigned long long burst = bytes / 10 > 3000 ? bytes / 10 : 3000;
        chaos_buf_put(b, "    %s limit rate over %llu bytes/second burst %llu bytes drop\n", m,
                      bytes, burst);
    }
    if (st->delay_ms > 0 || st->jitter_ms > 0)
        chaos_buf_put(b, "    %s meta mark set 0x%x\n", m, CHAOS_NFT_MARK(from, to));
}

int chaos_nft_ruleset(const struct chaos_link_state *state, unsigned n, const char *const *addrs,
                      char *out, size_t size)
{
    struct chaos_buf b = {.p = out, .size = size};
    char m[96];
    if (n < 1 || n > CHAOS_MAX_REGIONS || size == 0)
        return -1;
    /* creating the table first makes the delete harmless when it did not exist yet */
    chaos_buf_put(&b, "table ip %s\ndelete table ip %s\ntable ip %s {\n", CHAOS_NFT_TABLE,
                  CHAOS_NFT_TABLE, CHAOS_NFT_TABLE);
    chaos_buf_put(&b,
                  "  chain links {\n    type filter hook forward priority -10; policy accept;\n");
    for (unsigned f = 0; f < n; f++) {
        for (unsigned t = 0; t < n; t++) {
            if (f == t)
                continue;
            snprintf(m, sizeof m, "ip saddr %s ip daddr %s", addrs[f], addrs[t]);
            put_pair(&b, m, &state[f * n + t], f, t);
        }
    }
    chaos_buf_put(&b, "  }\n}\n");
    return b.overflow ? -1 : 0;
}
