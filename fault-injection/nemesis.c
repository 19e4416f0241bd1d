/*
 * Nemesis shapes (chaos.h; lab-recipes §2.3, Jepsen's nemesis catalogue): which partition a named
 * nemesis means for the lab's regions, written as fault-set text (faultspec.c syntax). Pure.
 *
 * Like Jepsen, a shape is first a *grudge*: for every node, the set of nodes whose packets it
 * drops. A grudge "i drops j" becomes the one-way cut `j -/> i`; when the grudge is mutual the
 * canonical text prints it as `i -/- j`. "Node i sees j" below means j's bytes reach i.
 */
#include <stdio.h>
#include <string.h>

#include "chaos.h"

static const char *const shape_names[] = {
    [CHAOS_SHAPE_ISOLATE] = "isolate",
    [CHAOS_SHAPE_HALVES] = "halves",
    [CHAOS_SHAPE_RANDOM_HALVES] = "random-halves",
    [CHAOS_SHAPE_MAJORITY_RING] = "majority-ring",
    [CHAOS_SHAPE_BRIDGE] = "bridge",
    [CHAOS_SHAPE_ONE_WAY_FROM] = "one-way-from",
    [CHAOS_SHAPE_ONE_WAY_TO] = "one-way-to",
};
#define N_SHAPES (sizeof shape_names / sizeof shape_names[0])

const char *chaos_shape_name(enum chaos_shape shape)
{
    if ((unsigned)shape >= N_SHAPES)
        return "unknown";
    return shape_names[shape];
}

int chaos_shape_from_name(const char *name, enum chaos_shape *out)
{
    for (unsigned i = 0; i < N_SHAPES; i++) {
        if (name != NULL && strcmp(name, shape_names[i]) == 0) {
            *out = (enum chaos_shape)i;
            return 0;
        }
    }
    return -1;
}

/* splitmix64 (Steele, Lea, Flood 2014; the reference constants). */
uint64_t chaos_rand_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void cut(struct chaos_faultset *s, unsigned from, unsigned to)
{
    for (unsigned i = 0; i < s->n; i++)
        if (s->f[i].from == from && s->f[i].to == to)
            return;
    s->f[s->n++] = (struct chaos_fault){.kind = CHAOS_F_CUT, .from = from, .to = to};
}

/* Cut both ways between every member of `a` (in_a[i]) and every non-member. */
static void split(struct chaos_faultset *s, const bool *in_a, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        for (unsigned j = 0; j < n; j++)
            if (in_a[i] && !in_a[j]) {
                cut(s, i, j);
                cut(s, j, i);
            }
}

/* The smaller half (n/2 nodes) starts at `node` and runs around the ring. */
static void halves(struct chaos_faultset *s, unsigned n, unsigned node)
{
    bool in_a[CHAOS_MAX_REGIONS] = {false};
    for (unsigned k = 0; k < n / 2; k++)
        in_a[(node + k) % n] = true;
    split(s, in_a, n);
}

/* A seeded Fisher-Yates shuffle; the first n/2 of it are the smaller half. */
static void random_halves(struct chaos_faultset *s, unsigned n, uint64_t seed)
{
    unsigned order[CHAOS_MAX_REGIONS];
    bool in_a[CHAOS_MAX_REGIONS] = {false};
    uint64_t st = seed;
    for (unsigned i = 0; i < n; i++)
        order[i] = i;
    for (unsigned i = n - 1; i > 0; i--) {
        unsigned j = (unsigned)(chaos_rand_next(&st) % (i + 1));
        unsigned t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    for (unsigned k = 0; k < n / 2; k++)
        in_a[order[k]] = true;
    split(s, in_a, n);
}

/*
 * Majorities ring: with m = n/2 + 1, node i sees the window of m nodes around it on the ring,
 * i - (m-1)/2 .. i + m/2, and drops everyone else's packets. Consecutive windows differ, so no
 * two nodes see the same majority.
 *
 * When m is odd (n = 5: i-1, i, i+1) the window is symmetric and every cut is mutual (`-/-`).
 * When m is even the window leans one step clockwise and the grudges are one-way. For n = 3
 * (m = 2) that is the nearest equivalent there is, since every pair is already a majority:
 * node i sees {i, i+1} and drops i-1, i.e. the cuts 2 -/> 0, 0 -/> 1, 1 -/> 2. So
 *   node 0 hears from 1 (not 2), node 1 hears from 2 (not 0), node 2 hears from 0 (not 1):
 *   0 sees {0,1}, 1 sees {1,2}, 2 sees {2,0}, and each node's own messages still reach the
 *   node behind it (0 reaches 2, 1 reaches 0, 2 reaches 1).
 * Through the TCP proxy a cut direction also holds the replies, so a request/response exchange
 * works across no link; one-way messages (Raft RPCs arriving) do, which is Jepsen's meaning.
 */
static void majority_ring(struct chaos_faultset *s, unsigned n)
{
    unsigned m = n / 2 + 1, back = (m - 1) / 2, ahead = m / 2;
    for (unsigned i = 0; i < n; i++) {
        for (unsigned j = 0; j < n; j++) {
            unsigned fwd = (j + n - i) % n; /* steps clockwise from i to j */
            bool seen = fwd <= ahead || n - fwd <= back;
            if (!seen)
                cut(s, j, i); /* i drops j's packets */
        }
    }
}

/* Bridge: `node` connected to both halves of the others, the halves cut from each other. The
 * others are taken clockwise from node+1: the first (n-1)/2 are one half. */
static void bridge(struct chaos_faultset *s, unsigned n, unsigned node)
{
    bool in_a[CHAOS_MAX_REGIONS] = {false};
    for (unsigned k = 1; k <= (n - 1) / 2; k++)
        in_a[(node + k) % n] = true;
    for (unsigned i = 0; i < n; i++)
        for (unsigned j = 0; j < n; j++)
            if (in_a[i] && !in_a[j] && j != node) {
                cut(s, i, j);
                cut(s, j, i);
            }
}

static void one_way(struct chaos_faultset *s, unsigned n, unsigned node, bool from_node)
{
    for (unsigned j = 0; j < n; j++) {
        if (j == node)
            continue;
        if (from_node)
            cut(s, node, j);
        else
            cut(s, j, node);
    }
}

static unsigned min_regions(enum chaos_shape shape)
{
    return shape == CHAOS_SHAPE_MAJORITY_RING || shape == CHAOS_SHAPE_BRIDGE ? 3 : 2;
}

int chaos_shape_faults(enum chaos_shape shape, const char *const *regions, unsigned n_regions,
                       unsigned node, uint64_t seed, char *out, size_t size, char *why,
                       size_t why_size)
{
    struct chaos_faultset s = {0};
    if ((unsigned)shape >= N_SHAPES) {
        snprintf(why, why_size, "unknown nemesis shape %d", (int)shape);
        return -1;
    }
    if (n_regions < min_regions(shape) || n_regions > CHAOS_MAX_REGIONS) {
        snprintf(why, why_size, "%s needs %u to %d regions, the lab has %u",
                 chaos_shape_name(shape), min_regions(shape), CHAOS_MAX_REGIONS, n_regions);
        return -1;
    }
    if (shape != CHAOS_SHAPE_RANDOM_HALVES && shape != CHAOS_SHAPE_MAJORITY_RING &&
        node >= n_regions) {
        snprintf(why, why_size, "%s: node %u is out of range (%u regions)", chaos_shape_name(shape),
                 node, n_regions);
        return -1;
    }
    switch (shape) {
    case CHAOS_SHAPE_ISOLATE:
        one_way(&s, n_regions, node, true);
        one_way(&s, n_regions, node, false);
        break;
    case CHAOS_SHAPE_HALVES:
        halves(&s, n_regions, node);
        break;
    case CHAOS_SHAPE_RANDOM_HALVES:
        random_halves(&s, n_regions, seed);
        break;
    case CHAOS_SHAPE_MAJORITY_RING:
        majority_ring(&s, n_regions);
        break;
    case CHAOS_SHAPE_BRIDGE:
        bridge(&s, n_regions, node);
        break;
    case CHAOS_SHAPE_ONE_WAY_FROM:
    case CHAOS_SHAPE_ONE_WAY_TO:
        one_way(&s, n_regions, node, shape == CHAOS_SHAPE_ONE_WAY_FROM);
        break;
    }
    if (chaos_faultset_format(&s, regions, n_regions, out, size) != 0) {
        snprintf(why, why_size, "%s: the fault set does not fit in %zu bytes",
                 chaos_shape_name(shape), size);
        return -1;
    }
    return 0;
}
