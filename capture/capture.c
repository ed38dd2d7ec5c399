/*
 * capture.c — the capture context: flow table, class rules, binner and per-class replay
 * statistics. Sits between the parser (parse.c) and the window consumer (a dataset, or
 * the online trainer): packets in, windows of (C, L) per-flow series out.
 *
 * Flow table: a fixed array of `capacity` flows (free list, LIFO so that few pages are
 * touched) indexed by an open-addressing hash with linear probing and backward-shift
 * deletion (no tombstones, so probes stay short however long it runs). The index starts
 * at INDEX_MIN slots and doubles (whole rehash) whenever it would pass half full, up to
 * the power of two ≥ 2·capacity: it costs what the flows present need, and stays small
 * enough to sit in cache when they are few.
 * Flows sit on an LRU list, exact to within idle_timeout/16: its head is the least
 * recently active flow, the next idle timeout and the victim when the table is full.
 * Packets go through in groups of 32 with the hash slots and flows prefetched.
 *
 * Binner: bins are aligned to a flow's first packet (bin k covers [t0 + k·bin,
 * t0 + (k+1)·bin)), windows are bins [w·L, (w+1)·L). The open bin accumulates in 64-bit
 * integers and is stored in the float window only when it closes, so that large byte
 * counts stay exact until the final conversion.
 */
#include <errno.h>
#include <pcap/pcap.h>
#include <sys/mman.h>
#include <stdlib.h>
#include <string.h>

#include "capture.h"
#include "capture_impl.h"

/* ------------------------------------------------------------------------------------ */
/* Counters                                                                              */
/* ------------------------------------------------------------------------------------ */

/* After the parse reasons (indices 1..PARSE_N_STATUS-1, parse_status_name). */
enum {
    CNT_ORPHAN_FRAG = PARSE_N_STATUS,
    CNT_EVICTED,
    CNT_IDLE,
    CNT_ACTIVE,
    CNT_END,
    CNT_UNMATCHED,
    CNT_UNMATCHED_DROPPED,
    CNT_TS_BACKWARDS,
    CNT_WIN_SPARSE,
    CNT_WINDOWS,
    CNT_PACKETS,
    CNT_BYTES,
    CNT_N
};

static const char *const counter_names[CNT_N] = {
    [CNT_ORPHAN_FRAG] = "flow.orphan_fragment", /* later fragment, first one unseen */
    [CNT_EVICTED] = "flow.evicted",             /* table full: least recent flow ended */
    [CNT_IDLE] = "flow.idle_timeout",
    [CNT_ACTIVE] = "flow.active_timeout",
    [CNT_END] = "flow.input_end",                        /* still open when an input ended */
    [CNT_UNMATCHED] = "class.unmatched",                 /* flows no rule matched */
    [CNT_UNMATCHED_DROPPED] = "class.unmatched_dropped", /* ... and no default class */
    [CNT_TS_BACKWARDS] = "bin.ts_backwards",             /* packet older than its flow's last */
    [CNT_WIN_SPARSE] = "bin.window_sparse",              /* fewer than min_active_bins */
    [CNT_WINDOWS] = "bin.windows",
    [CNT_PACKETS] = "capture.packets",
    [CNT_BYTES] = "capture.bytes",
};

/* ------------------------------------------------------------------------------------ */
/* Types                                                                                 */
/* ------------------------------------------------------------------------------------ */

#define NIL           UINT32_MAX
#define INDEX_MIN     4096 /* initial hash slots: 32 KiB, in L1/L2 */
#define FRAG_SLOTS    4096 /* direct-mapped: fragments of one datagram arrive close together */
#define MAX_LINKTYPES 8

/* Canonical bidirectional key: side a is the smaller (address, port). 48 bytes, padding
 * zeroed, so that equality is memcmp. */
typedef struct flow_key {
    uint8_t a[16], b[16];
    uint32_t vlan;
    uint16_t pa, pb;
    uint8_t proto, ipver;
    uint8_t pad[6];
} flow_key;

/* Three cache lines, 64-byte aligned: every packet reads the first two (the lookup and
 * the open bin), only flow starts and ends touch the third. */
typedef struct flow {
    /* line 0 */
    flow_key key;     /* 48 */
    uint64_t last_ts; /* latest packet (per-flow timestamps never go back) */
    uint32_t hash;
    int16_t class_idx; /* -1: unmatched and dropped; packets only keep it alive */
    uint8_t client_is_a;
    uint8_t pad0;
    /* line 1 */
    uint64_t t0;             /* first packet: bin origin */
    uint64_t bin_end;        /* the open bin is [bin_end - bin, bin_end) */
    uint64_t bytes[2];       /* open bin, by enum nd_dir */
    uint32_t pkts[2];        /* open bin; saturates (2^32 packets of one flow in one bin) */
    uint64_t last_dir_ts[2]; /* [dir] latest packet of that direction, 0 none */
    uint64_t lru_ts;         /* last_ts when the flow last moved to the LRU tail */
    /* line 2 */
    uint64_t group;
    uint8_t pad2[56];
} flow;
_Static_assert(sizeof(flow) == 192, "flow is three cache lines");

/* LRU (and free-list) links, apart from the flows: a move rewrites its two neighbours'
 * links, which stay in cache here (8 bytes a flow) but would be two misses in the flows. */
typedef struct lru_link {
    uint32_t prev, next;
} lru_link;

typedef struct frag_entry {
    uint8_t src[16], dst[16];
    uint64_t ts;
    uint32_t id, vlan;
    uint16_t sport, dport;
    uint8_t proto, used;
} frag_entry;

typedef struct class_state {
    char name[ND_NAME_MAX];
    char *filter; /* owned; "" matches everything (forced or default class) */
    nd_class_stats st;
    uint64_t *port_counts; /* (65536) server ports, allocated with the class's first flow */
    uint64_t *mss_counts;  /* (65536) */
    uint64_t windows;
    uint64_t arrival_prev; /* the class's last flow start in this input */
    int arrival_seen;      /* it has one */
} class_state;

typedef struct linktype_filters {
    int linktype;
    struct bpf_program *progs; /* (n_rules), bf_insns NULL when it does not compile here */
} linktype_filters;

struct capture_ctx {
    /* config */
    uint32_t C, L, min_active;
    uint64_t bin_ns, idle_ns, active_ns;
    uint64_t lru_gran;       /* a flow moves to the LRU tail at most once per this much time */
    uint32_t capacity, mask; /* flows; hash slots - 1 */
    uint32_t mask_max;       /* the index stops growing at mask_max + 1 slots */
    uint32_t limit;          /* flows held before the LRU one is evicted: capacity, unless
                                the index could not grow */

    /* classes: rules [0, n_rules) then possibly the default class */
    class_state *classes;
    uint32_t n_classes, n_rules;
    int32_t default_class; /* -1: drop unmatched */
    linktype_filters lt[MAX_LINKTYPES];
    uint32_t n_lt;

    /* flow table */
    flow *flows;     /* (capacity) */
    lru_link *lru;   /* (capacity) */
    float *windows;  /* (capacity, C, L) */
    uint64_t *slots; /* (mask + 1): hash << 32 | (flow index + 1), 0 empty */
    uint32_t free_head, lru_head, lru_tail, n_active;
    uint32_t unused; /* flows [unused, capacity) were never used: no free-list threading,
                        so their pages are never touched */
    size_t flows_bytes, windows_bytes, slots_bytes; /* mmap lengths */
    uint64_t next_group, now;
    frag_entry *frags; /* (FRAG_SLOTS) */

    capture_window_fn on_window;
    void *user;
    const flow *emitting; /* the flow whose window on_window holds, for window_flow */
    int error;
    uint64_t cnt[CNT_N];
    uint64_t flows_started;
    uint64_t input_first; /* first flow start of this input: its time span begins */
    int input_started;
    uint32_t arrival_share; /* reads 1/arrival_share of an input's flows (lcores) */
};

/* ------------------------------------------------------------------------------------ */
/* Classes                                                                               */
/* ------------------------------------------------------------------------------------ */

int capture_check_filters(const capture_opts *o, int linktype, nd_error *e)
{
    pcap_t *dead = pcap_open_dead(linktype, 262144);
    if (!dead) return nd_error_set(e, -ENOMEM, "capture: out of memory");
    int rc = 0;
    for (uint32_t r = 0; !rc && r < o->n_classes && r < ND_MAX_CLASSES; r++) {
        const capture_class *cc = &o->classes[r];
        const char *f = cc->filter ? cc->filter : "";
        struct bpf_program prog;
        if (pcap_compile(dead, &prog, f, 1, PCAP_NETMASK_UNKNOWN) == 0) pcap_freecode(&prog);
        else
            rc = nd_error_set(e, ND_ECONFIG, "class '%s': filter \"%s\": %s", cc->name, f,
                              pcap_geterr(dead));
    }
    pcap_close(dead);
    return rc;
}

/* Compiles every rule for one link type; keeps the programs for the context's life. A
 * rule that does not compile for this link type (e.g. "ether host" on raw IP) never
 * matches there, with one warning (capture_ctx_new has checked them all for Ethernet).
 * NULL when the link-type table is full. */
static linktype_filters *filters_for(capture_ctx *c, int linktype)
{
    for (uint32_t i = 0; i < c->n_lt; i++)
        if (c->lt[i].linktype == linktype) return &c->lt[i];
    if (c->n_lt == MAX_LINKTYPES) return NULL;
    linktype_filters *lf = &c->lt[c->n_lt];
    lf->progs = calloc(c->n_rules ? c->n_rules : 1, sizeof *lf->progs);
    if (!lf->progs) return NULL;
    lf->linktype = linktype;
    c->n_lt++;
    pcap_t *dead = pcap_open_dead(linktype, 262144);
    if (!dead) return lf;
    for (uint32_t r = 0; r < c->n_rules; r++) {
        if (pcap_compile(dead, &lf->progs[r], c->classes[r].filter, 1, PCAP_NETMASK_UNKNOWN) ==
            0)
            continue;
        lf->progs[r].bf_insns = NULL;
        nd_warn("class '%s': filter \"%s\" does not apply to link type %s (%s); it matches "
                "no packet of that input",
                c->classes[r].name, c->classes[r].filter,
                pcap_datalink_val_to_name(linktype) ? pcap_datalink_val_to_name(linktype) : "?",
                pcap_geterr(dead));
    }
    pcap_close(dead);
    return lf;
}

/* Class of a flow from its first packet: first matching rule, else the default. */
static int32_t classify(capture_ctx *c, int linktype, const capture_pkt *p)
{
    if (c->n_rules == 0) return c->default_class;
    linktype_filters *lf = filters_for(c, linktype);
    if (lf) {
        struct pcap_pkthdr h = {.caplen = p->caplen, .len = p->wirelen};
        for (uint32_t r = 0; r < c->n_rules; r++)
            if (lf->progs[r].bf_insns && pcap_offline_filter(&lf->progs[r], &h, p->data))
                return (int32_t)r;
    }
    c->cnt[CNT_UNMATCHED]++;
    if (c->default_class < 0) c->cnt[CNT_UNMATCHED_DROPPED]++;
    return c->default_class;
}

/* Returns the index of class name (added with filter when new), or -ENOMEM. */
static int class_add(capture_ctx *c, const char *name, const char *filter)
{
    for (uint32_t i = 0; i < c->n_classes; i++)
        if (!strcmp(c->classes[i].name, name)) return (int)i;
    class_state *cs = &c->classes[c->n_classes];
    memset(cs, 0, sizeof *cs);
    snprintf(cs->name, sizeof cs->name, "%s", name);
    cs->filter = strdup(filter ? filter : "");
    if (!cs->filter) return -ENOMEM;
    return (int)c->n_classes++;
}

/* ------------------------------------------------------------------------------------ */
/* Context                                                                               */
/* ------------------------------------------------------------------------------------ */

/* Zeroed, page-aligned memory that the kernel backs only where it is touched. */
static void *map_zero(size_t len)
{
    void *p =
        mmap(NULL, len ? len : 1, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return NULL;
    /* Flows are hit at random: with 4 KiB pages a large table misses the TLB on most
     * packets, and a prefetch that misses the TLB does little. Transparent huge pages
     * where the kernel allows them (a hint; failure is harmless). */
    madvise(p, len, MADV_HUGEPAGE);
    return p;
}

void capture_opts_defaults(capture_opts *o)
{
    memset(o, 0, sizeof *o);
    o->bin_ns = ND_NS_PER_SEC;
    o->window = 64;
    o->min_active_bins = 1;
    o->channels = 2;
    o->flow_capacity = 1u << 20;
    o->idle_timeout_ns = 15 * ND_NS_PER_SEC;
    o->active_timeout_ns = 1800 * ND_NS_PER_SEC;
    o->default_class = "other";
    o->snaplen = 256;
    o->promisc = true;
    o->buffer_size = 64u << 20;
    o->dpdk_eal = "";
    o->rx_queues = 1;
    o->mbufs = 8191;
}

capture_ctx *capture_ctx_new(const capture_opts *o, const char *force_class,
                             capture_window_fn on_window, void *user, nd_error *e)
{
    if (o->channels != 2 && o->channels != 4) {
        nd_error_set(e, ND_ECONFIG, "capture.channels: %u, expected 2 or 4", o->channels);
        return NULL;
    }
    if (o->window < 1 || o->bin_ns < 1 || o->flow_capacity < 1) {
        nd_error_set(e, ND_ECONFIG, "capture: window, bin and flow_capacity must be > 0");
        return NULL;
    }
    if (o->n_classes > ND_MAX_CLASSES) {
        nd_error_set(e, ND_ECONFIG, "capture: %u classes, at most %d", o->n_classes,
                     ND_MAX_CLASSES);
        return NULL;
    }
    /* every filter now, so that a typo fails before any packet is read */
    if (!force_class && capture_check_filters(o, CAPTURE_LINK_ETHERNET, e)) return NULL;
    capture_ctx *c = calloc(1, sizeof *c);
    if (!c) goto nomem;
    c->C = o->channels;
    c->L = o->window;
    c->min_active = o->min_active_bins ? o->min_active_bins : 1;
    c->bin_ns = o->bin_ns;
    c->idle_ns = o->idle_timeout_ns ? o->idle_timeout_ns : UINT64_MAX;
    c->active_ns = o->active_timeout_ns ? o->active_timeout_ns : UINT64_MAX;
    c->capacity = o->flow_capacity;
    /* Moving a flow to the LRU tail on every packet costs two cache misses (its list
     * neighbours); once per idle_timeout/16 keeps the order exact to within that, which is
     * all eviction needs. Timeouts stay exact: they are checked on each flow's packets. */
    c->lru_gran = c->idle_ns == UINT64_MAX ? ND_NS_PER_SEC : c->idle_ns / 16;
    c->on_window = on_window;
    c->user = user;
    c->next_group = 1;
    c->arrival_share = 1;

    c->classes = calloc((size_t)o->n_classes + 1, sizeof *c->classes);
    if (!c->classes) goto nomem;
    c->default_class = -1;
    if (force_class) {
        c->default_class = class_add(c, force_class, "");
        if (c->default_class < 0) goto nomem;
    } else {
        for (uint32_t i = 0; i < o->n_classes; i++)
            if (class_add(c, o->classes[i].name, o->classes[i].filter) < 0) goto nomem;
        c->n_rules = c->n_classes;
        if (o->default_class && o->default_class[0]) {
            c->default_class = class_add(c, o->default_class, "");
            if (c->default_class < 0) goto nomem;
        }
        /* A default class named like a rule is that rule's class: unmatched flows join
         * it (class_add returns the existing index). */
    }

    uint64_t slots = 1;
    while (slots < 2 * (uint64_t)c->capacity) slots <<= 1;
    c->mask_max = (uint32_t)(slots - 1);
    c->limit = c->capacity;
    if (slots > INDEX_MIN) slots = INDEX_MIN;
    c->mask = (uint32_t)(slots - 1);
    /* The kernel hands out zero pages lazily, so a large capacity costs only what the
     * concurrent flows touch (the free list is LIFO). */
    c->flows_bytes = (size_t)c->capacity * sizeof *c->flows;
    c->windows_bytes = (size_t)c->capacity * c->C * c->L * sizeof *c->windows;
    c->flows = map_zero(c->flows_bytes);
    c->windows = map_zero(c->windows_bytes);
    c->slots_bytes = slots * sizeof *c->slots;
    c->slots = map_zero(c->slots_bytes);
    c->frags = calloc(FRAG_SLOTS, sizeof *c->frags);
    c->lru = map_zero((size_t)c->capacity * sizeof *c->lru);
    if (!c->flows || !c->windows || !c->slots || !c->frags || !c->lru) goto nomem;
    c->free_head = NIL;
    c->lru_head = c->lru_tail = NIL;
    return c;
nomem:
    capture_ctx_free(c);
    nd_error_set(e, -ENOMEM, "capture: out of memory for %u flows of %u x %u bins",
                 o->flow_capacity, o->channels, o->window);
    return NULL;
}

void capture_ctx_free(capture_ctx *c)
{
    if (!c) return;
    for (uint32_t i = 0; i < c->n_lt; i++) {
        for (uint32_t r = 0; r < c->n_rules; r++)
            if (c->lt[i].progs[r].bf_insns) pcap_freecode(&c->lt[i].progs[r]);
        free(c->lt[i].progs);
    }
    if (c->classes)
        for (uint32_t i = 0; i < c->n_classes; i++) {
            free(c->classes[i].filter);
            free(c->classes[i].port_counts);
            free(c->classes[i].mss_counts);
        }
    free(c->classes);
    if (c->flows) munmap(c->flows, c->flows_bytes);
    if (c->windows) munmap(c->windows, c->windows_bytes);
    if (c->slots) munmap(c->slots, c->slots_bytes);
    free(c->frags);
    if (c->lru) munmap(c->lru, (size_t)c->capacity * sizeof *c->lru);
    free(c);
}

int capture_ctx_error(const capture_ctx *c) { return c->error; }

/* ------------------------------------------------------------------------------------ */
/* Hashing                                                                               */
/* ------------------------------------------------------------------------------------ */

static inline uint64_t load64(const void *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* Six 64-bit words mixed by multiply-xorshift: fast, and good enough that linear probing
 * at load ≤ 0.5 stays short (keys are not chosen by an attacker who knows the seed-less
 * function; a mirror port could be, which is why the table is bounded and evicts). */
static inline uint32_t key_hash(const flow_key *k)
{
    const uint8_t *p = (const uint8_t *)k;
    uint64_t h = 0x9E3779B97F4A7C15ull;
    for (int i = 0; i < 48; i += 8) {
        h ^= load64(p + i);
        h *= 0xff51afd7ed558ccdull;
        h ^= h >> 32;
    }
    return (uint32_t)(h ^ (h >> 29));
}

static inline int key_eq(const flow_key *x, const flow_key *y)
{
    const uint8_t *a = (const uint8_t *)x, *b = (const uint8_t *)y;
    uint64_t d = 0;
    for (int i = 0; i < 48; i += 8) d |= load64(a + i) ^ load64(b + i);
    return d == 0;
}

/* Canonical key of a parsed packet; *from_a says whether the sender is side a. */
static inline void make_key(const parse_info *pi, flow_key *k, int *from_a)
{
    memset(k, 0, sizeof *k);
    /* Any total order will do for a canonical key: compare as big-endian words. */
    uint64_t s0 = __builtin_bswap64(load64(pi->src)), d0 = __builtin_bswap64(load64(pi->dst));
    uint64_t s1 = __builtin_bswap64(load64(pi->src + 8)),
             d1 = __builtin_bswap64(load64(pi->dst + 8));
    int a_is_src = s0 != d0 ? s0 < d0 : s1 != d1 ? s1 < d1 : pi->sport <= pi->dport;
    if (a_is_src) {
        memcpy(k->a, pi->src, 16);
        memcpy(k->b, pi->dst, 16);
        k->pa = pi->sport;
        k->pb = pi->dport;
    } else {
        memcpy(k->a, pi->dst, 16);
        memcpy(k->b, pi->src, 16);
        k->pa = pi->dport;
        k->pb = pi->sport;
    }
    k->vlan = pi->vlan;
    k->proto = pi->proto;
    k->ipver = pi->ipver;
    *from_a = a_is_src;
}

/* Slot holding flow index fi, or where key would go: returns the slot; *found = index or
 * NIL. */
static inline uint32_t table_find(const capture_ctx *c, const flow_key *k, uint32_t h,
                                  uint32_t *found)
{
    uint32_t s = h & c->mask;
    for (;;) {
        uint64_t v = c->slots[s];
        if (!v) {
            *found = NIL;
            return s;
        }
        if ((uint32_t)(v >> 32) == h) {
            uint32_t fi = (uint32_t)v - 1;
            if (key_eq(&c->flows[fi].key, k)) {
                *found = fi;
                return s;
            }
        }
        s = (s + 1) & c->mask;
    }
}

/* Backward-shift deletion: entries after the hole that could live in it move back. */
static void table_remove(capture_ctx *c, uint32_t s)
{
    for (;;) {
        c->slots[s] = 0;
        uint32_t j = s;
        for (;;) {
            j = (j + 1) & c->mask;
            uint64_t v = c->slots[j];
            if (!v) return;
            uint32_t home = (uint32_t)(v >> 32) & c->mask;
            /* v may fill the hole at s when its home is not in (s, j] cyclically. */
            int movable = s <= j ? (home <= s || home > j) : (home <= s && home > j);
            if (movable) {
                c->slots[s] = v;
                s = j;
                break;
            }
        }
    }
}

/* Doubles the index, every entry reinserted from its stored hash (the flows are not read).
 * Whole rather than incremental: an incremental rehash would put a second probe on every
 * lookup until it ends, and the doublings cost one reinsertion per flow present (all of
 * them together about 5 ms of a capture of 100 k flows, perf). When the memory cannot be had,
 * the table stops growing and holds at most half as many flows as the index has slots from then
 * on (evicting the least recently active ones), with one warning. */
static void table_grow(capture_ctx *c)
{
    size_t n = (size_t)c->mask + 1, bytes = 2 * n * sizeof *c->slots;
    uint64_t *slots = map_zero(bytes);
    if (!slots) {
        c->limit = (uint32_t)(n / 2);
        nd_warn("capture: out of memory for a flow index of %zu slots; the table holds at "
                "most %u flows (capture.flow_capacity %u)",
                2 * n, c->limit, c->capacity);
        return;
    }
    uint32_t mask = (uint32_t)(2 * n - 1);
    for (size_t j = 0; j < n; j++) {
        uint64_t v = c->slots[j];
        if (!v) continue;
        uint32_t s = (uint32_t)(v >> 32) & mask;
        while (slots[s]) s = (s + 1) & mask;
        slots[s] = v;
    }
    munmap(c->slots, c->slots_bytes);
    c->slots = slots;
    c->slots_bytes = bytes;
    c->mask = mask;
}

void capture_ctx_index_grow_full(capture_ctx *c)
{
    while (c->mask < c->mask_max && c->limit == c->capacity) table_grow(c);
}

uint32_t capture_ctx_index_check(const capture_ctx *c)
{
    uint32_t n = 0;
    for (uint32_t j = 0; j <= c->mask; j++) {
        uint64_t v = c->slots[j];
        if (!v) continue;
        uint32_t i = (uint32_t)v - 1, h = (uint32_t)(v >> 32);
        if (i >= c->unused || c->flows[i].hash != h) return 0;
        for (uint32_t s = h & c->mask; s != j; s = (s + 1) & c->mask)
            if (!c->slots[s]) return 0; /* a lookup from its home would stop here */
        n++;
    }
    if (n != c->n_active) return 0;
    for (uint32_t i = c->lru_head; i != NIL; i = c->lru[i].next) {
        uint32_t found;
        table_find(c, &c->flows[i].key, c->flows[i].hash, &found);
        if (found != i) return 0;
    }
    return c->mask + 1;
}

/* ------------------------------------------------------------------------------------ */
/* LRU list                                                                              */
/* ------------------------------------------------------------------------------------ */

static inline void lru_unlink(capture_ctx *c, uint32_t i)
{
    lru_link *f = &c->lru[i];
    if (f->prev != NIL) c->lru[f->prev].next = f->next;
    else c->lru_head = f->next;
    if (f->next != NIL) c->lru[f->next].prev = f->prev;
    else c->lru_tail = f->prev;
}

static inline void lru_push_tail(capture_ctx *c, uint32_t i)
{
    lru_link *f = &c->lru[i];
    f->prev = c->lru_tail;
    f->next = NIL;
    if (c->lru_tail != NIL) c->lru[c->lru_tail].next = i;
    else c->lru_head = i;
    c->lru_tail = i;
}

/* ------------------------------------------------------------------------------------ */
/* Binner                                                                                */
/* ------------------------------------------------------------------------------------ */

static inline float *flow_window(const capture_ctx *c, uint32_t i)
{
    return c->windows + (size_t)i * c->C * c->L;
}

/* Index of the open bin, counted from t0. Derived from bin_end (a division per bin
 * change) rather than stored, which would put a third cache line on that path. */
static inline uint64_t open_bin(const capture_ctx *c, const flow *f)
{
    return (f->bin_end - f->t0) / c->bin_ns - 1;
}

/* Moves the open bin's accumulators into the window. */
static inline void bin_close(capture_ctx *c, flow *f, float *w)
{
    uint32_t b = (uint32_t)(open_bin(c, f) % c->L);
    for (int d = 0; d < 2; d++) {
        if (f->bytes[d]) w[d * c->L + b] = (float)f->bytes[d];
        if (c->C == 4 && f->pkts[d]) w[(2 + d) * c->L + b] = (float)f->pkts[d];
        f->bytes[d] = 0;
        f->pkts[d] = 0;
    }
}

/* Hands the window to the consumer if it has enough active bins, then clears it. */
static void window_emit(capture_ctx *c, flow *f, float *w)
{
    uint32_t active = 0;
    for (uint32_t b = 0; b < c->L; b++)
        for (uint32_t ch = 0; ch < c->C; ch++)
            if (w[ch * c->L + b] != 0) {
                active++;
                break;
            }
    if (active >= c->min_active) {
        c->cnt[CNT_WINDOWS]++;
        c->classes[f->class_idx].windows++;
        if (c->on_window) {
            c->emitting = f;
            int rc = c->on_window(c->user, (uint32_t)f->class_idx, f->group, w);
            if (rc && !c->error) c->error = rc;
        }
    } else if (active) {
        c->cnt[CNT_WIN_SPARSE]++;
    }
    memset(w, 0, (size_t)c->C * c->L * sizeof *w);
}

/* Ends flow i: last window out, slot and LRU entry freed. */
static void flow_end(capture_ctx *c, uint32_t i, int reason)
{
    flow *f = &c->flows[i];
    if (f->class_idx >= 0) {
        float *w = flow_window(c, i);
        bin_close(c, f, w);
        window_emit(c, f, w);
        nd_class_stats *st = &c->classes[f->class_idx].st;
        uint64_t bins = (f->last_ts - f->t0) / c->bin_ns + 1;
        st->duration_hist[nd_duration_bucket(bins)]++;
        st->duration_bins += bins;
    }
    c->cnt[reason]++;
    uint32_t found;
    uint32_t s = table_find(c, &f->key, f->hash, &found);
    ND_ASSERT(found == i);
    table_remove(c, s);
    lru_unlink(c, i);
    c->lru[i].next = c->free_head;
    c->free_head = i;
    c->n_active--;
}

/* The list is ordered by lru_ts, and last_ts < lru_ts + lru_gran: the walk stops at the
 * first flow that moved recently enough; a head that saw packets since it moved goes back
 * to the tail. */
static void expire_idle(capture_ctx *c, uint64_t now)
{
    while (c->lru_head != NIL) {
        uint32_t i = c->lru_head;
        flow *f = &c->flows[i];
        if (now - f->lru_ts <= c->idle_ns) break;
        if (now - f->last_ts > c->idle_ns) {
            flow_end(c, i, CNT_IDLE);
        } else {
            lru_unlink(c, i);
            f->lru_ts = f->last_ts;
            lru_push_tail(c, i);
        }
    }
}

void capture_ctx_advance(capture_ctx *c, uint64_t now_ns)
{
    if (now_ns > c->now) c->now = now_ns;
    expire_idle(c, c->now);
}

/* What flow_end reads of flow i besides its first line: the other two, its hash slot and
 * its window (the flow's first line must be in cache already). */
static inline void prefetch_end(const capture_ctx *c, uint32_t i)
{
    const flow *f = &c->flows[i];
    capture_prefetch(&c->slots[f->hash & c->mask]);
    if (f->class_idx < 0) return;
    const char *w = (const char *)flow_window(c, i);
    for (size_t b = 0; b < (size_t)c->C * c->L * sizeof(float); b += 64)
        capture_prefetch(w + b);
}

/* Adds the time [a, b) of one input to every class's hours of the day (what its flows
 * per hour are divided by), as 1/arrival_share of it on an lcore. */
static void stats_input_span(capture_ctx *c, uint64_t a, uint64_t b)
{
    uint64_t seen[ND_DAY_HOURS] = {0}, share = c->arrival_share;
    uint64_t days = (b - a) / (ND_DAY_HOURS * ND_NS_PER_HOUR);
    for (int h = 0; h < ND_DAY_HOURS; h++) seen[h] = days * ND_NS_PER_HOUR;
    for (uint64_t t = a + days * ND_DAY_HOURS * ND_NS_PER_HOUR; t < b;) {
        uint64_t end = (t / ND_NS_PER_HOUR + 1) * ND_NS_PER_HOUR;
        if (end > b) end = b;
        seen[t / ND_NS_PER_HOUR % ND_DAY_HOURS] += end - t;
        t = end;
    }
    for (uint32_t i = 0; i < c->n_classes; i++)
        for (int h = 0; h < ND_DAY_HOURS; h++)
            c->classes[i].st.hour_seen_ns[h] += seen[h] / share;
}

void capture_ctx_flush(capture_ctx *c)
{
    /* Every flow ends, in LRU order. In a large table they are all in memory, not in cache
     * (about ten misses each): flows are prefetched FLUSH_AHEAD places before their turn,
     * then their slot and window half as far ahead. flow_end only unlinks the head, so
     * the links ahead stay valid. */
    enum { FLUSH_AHEAD = 16 };
    uint32_t far = c->lru_head, near = c->lru_head;
    for (int k = 0; k < FLUSH_AHEAD && far != NIL; k++, far = c->lru[far].next) {
        capture_prefetch(&c->flows[far]);
        if (k >= FLUSH_AHEAD / 2) prefetch_end(c, near), near = c->lru[near].next;
    }
    while (c->lru_head != NIL) {
        if (far != NIL) {
            const char *f = (const char *)&c->flows[far];
            capture_prefetch(f), capture_prefetch(f + 64), capture_prefetch(f + 128);
            far = c->lru[far].next;
        }
        if (near != NIL) prefetch_end(c, near), near = c->lru[near].next;
        /* one idle longer than the timeout timed out, whether or not expiry reached it */
        const flow *f = &c->flows[c->lru_head];
        flow_end(c, c->lru_head, c->now - f->last_ts > c->idle_ns ? CNT_IDLE : CNT_END);
    }
    /* The next input's clock is unrelated to this one's. */
    if (c->input_started && c->now > c->input_first)
        stats_input_span(c, c->input_first, c->now);
    c->input_started = 0;
    for (uint32_t i = 0; i < c->n_classes; i++) c->classes[i].arrival_seen = 0;
    c->now = 0;
    memset(c->frags, 0, FRAG_SLOTS * sizeof *c->frags);
}

/* ------------------------------------------------------------------------------------ */
/* Statistics                                                                            */
/* ------------------------------------------------------------------------------------ */

static void stats_flow_start(capture_ctx *c, class_state *cs, const parse_info *pi,
                             uint16_t server_port, uint64_t ts)
{
    nd_class_stats *st = &cs->st;
    if (!cs->port_counts) {
        cs->port_counts = calloc(65536, sizeof *cs->port_counts);
        cs->mss_counts = calloc(65536, sizeof *cs->mss_counts);
    }
    st->l4_flows[pi->proto == 6 ? ND_L4_TCP : pi->proto == 17 ? ND_L4_UDP : ND_L4_OTHER]++;
    if (pi->ipver == 6) st->ipv6_flows++;
    if (cs->port_counts && (pi->proto == 6 || pi->proto == 17)) cs->port_counts[server_port]++;
    if (!st->flows || ts < st->first_flow_ns) st->first_flow_ns = ts;
    if (ts > st->last_flow_ns) st->last_flow_ns = ts;
    st->flows++;
    /* Gaps only within one input: the clocks of two inputs are unrelated (files of
     * different years). An lcore sees every arrival_share-th flow of the input, on
     * average: its gaps are that many times longer than the input's. */
    if (cs->arrival_seen) {
        uint64_t gap = ts > cs->arrival_prev ? (ts - cs->arrival_prev) / c->arrival_share : 0;
        st->arrival_hist[nd_arrival_bucket(gap)]++;
        st->arrival_gap_ns += gap;
    } else {
        cs->arrival_seen = 1;
        st->arrival_inputs++;
    }
    cs->arrival_prev = ts;
    st->hour_flows[ts / ND_NS_PER_HOUR % ND_DAY_HOURS]++;
    if (!c->input_started) c->input_started = 1, c->input_first = ts;
}

static inline uint32_t iat_bucket(uint64_t gap)
{
    return gap < 2 ? 0 : (uint32_t)(63 - __builtin_clzll(gap));
}

/* Top-k of counts[0..65535] into vals/cnts, most frequent first (ties: smaller value). */
static void top_k(const uint64_t *counts, uint16_t *vals, uint64_t *cnts, int k, int skip0)
{
    memset(vals, 0, (size_t)k * sizeof *vals);
    memset(cnts, 0, (size_t)k * sizeof *cnts);
    if (!counts) return;
    for (uint32_t v = skip0 ? 1 : 0; v < 65536; v++) {
        uint64_t n = counts[v];
        if (!n || n <= cnts[k - 1]) continue;
        int j = k - 1;
        while (j > 0 && cnts[j - 1] < n) {
            vals[j] = vals[j - 1];
            cnts[j] = cnts[j - 1];
            j--;
        }
        vals[j] = (uint16_t)v;
        cnts[j] = n;
    }
}

const nd_class_stats *capture_ctx_class_stats(capture_ctx *c, uint32_t i)
{
    ND_ASSERT(i < c->n_classes);
    class_state *cs = &c->classes[i];
    top_k(cs->port_counts, cs->st.port, cs->st.port_count, ND_PORT_TOP, 0);
    top_k(cs->mss_counts, cs->st.mss, cs->st.mss_count, ND_MSS_TOP, 1);
    return &cs->st;
}

/* ------------------------------------------------------------------------------------ */
/* Fragments                                                                             */
/* ------------------------------------------------------------------------------------ */

static inline uint32_t frag_slot(const parse_info *pi)
{
    uint64_t h = load64(pi->src) ^ load64(pi->src + 8) * 3 ^ load64(pi->dst) * 5 ^
                 load64(pi->dst + 8) * 7 ^ ((uint64_t)pi->frag_id << 8 | pi->proto);
    h *= 0x9E3779B97F4A7C15ull;
    return (uint32_t)(h >> 52) & (FRAG_SLOTS - 1);
}

static inline int frag_match(const frag_entry *fe, const parse_info *pi)
{
    return fe->used && fe->id == pi->frag_id && fe->proto == pi->proto &&
           fe->vlan == pi->vlan && !memcmp(fe->src, pi->src, 16) &&
           !memcmp(fe->dst, pi->dst, 16);
}

/* First fragments leave their ports; later ones take them. 0 when a later fragment's
 * datagram is unknown (first fragment lost, reordered, or overwritten). */
static int frag_resolve(capture_ctx *c, parse_info *pi, uint64_t ts)
{
    frag_entry *fe = &c->frags[frag_slot(pi)];
    if (pi->frag == PARSE_FRAG_FIRST) {
        memcpy(fe->src, pi->src, 16);
        memcpy(fe->dst, pi->dst, 16);
        fe->id = pi->frag_id;
        fe->vlan = pi->vlan;
        fe->proto = pi->proto;
        fe->sport = pi->sport;
        fe->dport = pi->dport;
        fe->ts = ts;
        fe->used = 1;
        return 1;
    }
    /* Reassembly gives up after 60 s in Linux; so does this. */
    if (!frag_match(fe, pi) || ts - fe->ts > 60 * ND_NS_PER_SEC) return 0;
    pi->sport = fe->sport;
    pi->dport = fe->dport;
    return 1;
}

/* ------------------------------------------------------------------------------------ */
/* The packet path                                                                       */
/* ------------------------------------------------------------------------------------ */

/* Ends the least recently active flow (to within lru_gran) to make room. */
static void evict(capture_ctx *c)
{
    for (;;) {
        uint32_t i = c->lru_head;
        flow *f = &c->flows[i];
        if (f->last_ts == f->lru_ts || c->lru[i].next == NIL) {
            flow_end(c, i, CNT_EVICTED);
            return;
        }
        /* It saw packets since it last moved: its place is further back. */
        lru_unlink(c, i);
        f->lru_ts = f->last_ts;
        lru_push_tail(c, i);
    }
}

static uint32_t flow_start(capture_ctx *c, int linktype, const capture_pkt *p,
                           const parse_info *pi, const flow_key *k, uint32_t h, int from_a,
                           uint64_t ts)
{
    if (c->n_active == c->limit) evict(c);
    /* Half full at most, so that probes stay short. */
    if (2 * (c->n_active + 1) > c->mask + 1 && c->mask < c->mask_max) table_grow(c);
    if (c->n_active == c->limit) evict(c); /* the index could not grow */
    /* Probe again: the eviction or the growth may have moved slots. */
    uint32_t found;
    uint32_t s = table_find(c, k, h, &found);
    uint32_t i;
    if (c->free_head != NIL) {
        i = c->free_head;
        c->free_head = c->lru[i].next;
    } else {
        i = c->unused++;
    }
    flow *f = &c->flows[i];
    c->slots[s] = (uint64_t)h << 32 | (i + 1);
    c->n_active++;

    memset(f, 0, sizeof *f);
    f->key = *k;
    f->hash = h;
    f->t0 = f->last_ts = f->lru_ts = ts;
    f->bin_end = ts + c->bin_ns;
    f->group = c->next_group++;
    /* Client: the sender of the first packet, except that a SYN-ACK seen first (the SYN
     * was missed) comes from the server. */
    int synack = pi->proto == 6 && (pi->tcp_flags & (PARSE_TCP_SYN | PARSE_TCP_ACK)) ==
                                       (PARSE_TCP_SYN | PARSE_TCP_ACK);
    f->client_is_a = (uint8_t)(synack ? !from_a : from_a);
    f->class_idx = (int16_t)classify(c, linktype, p);
    c->flows_started++;
    lru_push_tail(c, i);
    if (f->class_idx >= 0) {
        uint16_t server_port = f->client_is_a ? k->pb : k->pa;
        /* Its window is zero: fresh pages, or cleared by the last window_emit. */
        stats_flow_start(c, &c->classes[f->class_idx], pi, server_port, ts);
    }
    return i;
}

/* One packet that parsed. k/h/from_a come from the burst's first stage, except for later
 * fragments, whose ports are only known here (their first fragment may be in the same
 * burst). */
static void packet(capture_ctx *c, int linktype, const capture_pkt *p, parse_info *pi,
                   const flow_key *k, uint32_t h, int from_a)
{
    uint64_t ts = p->ts_ns;
    flow_key kf;
    if (pi->frag) {
        if (!frag_resolve(c, pi, ts)) {
            c->cnt[CNT_ORPHAN_FRAG]++;
            return;
        }
        if (pi->frag == PARSE_FRAG_LATER) {
            make_key(pi, &kf, &from_a);
            h = key_hash(&kf);
            k = &kf;
        }
    }
    c->cnt[CNT_BYTES] += pi->bytes;
    if (ts > c->now) {
        c->now = ts;
        if (c->lru_head != NIL && ts - c->flows[c->lru_head].lru_ts > c->idle_ns)
            expire_idle(c, ts);
    }

    uint32_t i;
    table_find(c, k, h, &i);
    if (i != NIL) {
        flow *f = &c->flows[i];
        if (ts > f->last_ts && ts - f->last_ts > c->idle_ns) {
            flow_end(c, i, CNT_IDLE);
            i = NIL;
        } else if (ts > f->t0 && ts - f->t0 > c->active_ns) {
            flow_end(c, i, CNT_ACTIVE);
            i = NIL;
        }
    }
    if (i == NIL) i = flow_start(c, linktype, p, pi, k, h, from_a, ts);
    flow *f = &c->flows[i];
    if (ts < f->last_ts) { /* clock stepped back: count it, keep the flow's time monotonic */
        c->cnt[CNT_TS_BACKWARDS]++;
        ts = f->last_ts;
    }
    if (ts - f->lru_ts >= c->lru_gran) {
        if (i != c->lru_tail) {
            lru_unlink(c, i);
            lru_push_tail(c, i);
        }
        f->lru_ts = ts;
    }
    f->last_ts = ts;
    if (f->class_idx < 0) return;

    int dir = (from_a == f->client_is_a) ? ND_UP : ND_DOWN;
    if (ts >= f->bin_end) { /* the open bin is over: divisions per bin, not per packet */
        uint64_t bin = (ts - f->t0) / c->bin_ns, old = open_bin(c, f);
        float *w = flow_window(c, i);
        bin_close(c, f, w);
        if (bin / c->L != old / c->L) window_emit(c, f, w);
        f->bin_end = f->t0 + (bin + 1) * c->bin_ns;
    }
    f->bytes[dir] += pi->bytes;
    f->pkts[dir] += f->pkts[dir] != UINT32_MAX;

    nd_class_stats *cst = &c->classes[f->class_idx].st;
    cst->size_hist[dir][pi->bytes < ND_SIZE_HIST - 1 ? pi->bytes : ND_SIZE_HIST - 1]++;
    cst->ttl_hist[dir][pi->ttl]++;
    uint64_t prev = f->last_dir_ts[dir];
    if (prev && prev >= f->bin_end - c->bin_ns) cst->iat_hist[dir][iat_bucket(ts - prev)]++;
    f->last_dir_ts[dir] = ts;
    if (pi->mss) {
        uint64_t *mc = c->classes[f->class_idx].mss_counts;
        if (mc) mc[pi->mss]++;
    }
}

#define STAGE 32
#define AHEAD 12

/* The first two lines and the LRU links of the flow a parsed packet belongs to, if it has
 * one yet. */
static inline void prefetch_flow(const capture_ctx *c, int st, const parse_info *pi, uint32_t h)
{
    if (st != PARSE_OK || pi->frag == PARSE_FRAG_LATER) return;
    uint64_t v = c->slots[h & c->mask];
    if (!v) return;
    const char *f = (const char *)&c->flows[(uint32_t)v - 1];
    capture_prefetch(f);
    capture_prefetch(f + 64);
    capture_prefetch(&c->lru[(uint32_t)v - 1]);
}

/* Second stage, half as far ahead, once the flow's lines and links have arrived: when the
 * packet will move its flow to the LRU tail, the links of the flow's list neighbours (a
 * table of 100k flows has 800 KB of links: they miss the cache at random). */
static inline void prefetch_links(const capture_ctx *c, int st, const parse_info *pi,
                                  uint32_t h, uint64_t ts)
{
    if (st != PARSE_OK || pi->frag == PARSE_FRAG_LATER) return;
    uint64_t v = c->slots[h & c->mask];
    if (!v || (uint32_t)(v >> 32) != h) return;
    uint32_t i = (uint32_t)v - 1;
    if (ts - c->flows[i].lru_ts < c->lru_gran) return;
    const lru_link *l = &c->lru[i];
    if (l->prev != NIL) capture_prefetch(&c->lru[l->prev]);
    if (l->next != NIL) capture_prefetch(&c->lru[l->next]);
}

/* Two passes per group of up to 32 packets, so that the cache misses of one packet
 * overlap those of the others instead of adding up (as DPDK l3fwd's bulk lookup does):
 * parse and hash every packet and prefetch its hash slot; then, in order, run each packet
 * through the flow table and binner while prefetching the flow of a packet further on. */
void capture_ctx_burst(capture_ctx *c, int linktype, const capture_pkt *pkts, unsigned n)
{
    c->cnt[CNT_PACKETS] += n;
    parse_info pi[STAGE];
    flow_key k[STAGE];
    uint32_t h[STAGE];
    int st[STAGE], from_a[STAGE];
    for (unsigned base = 0; base < n; base += STAGE) {
        const capture_pkt *p = pkts + base;
        unsigned m = n - base < STAGE ? n - base : STAGE;
        for (unsigned j = 0; j < m; j++) {
            if (j + 4 < m) capture_prefetch(p[j + 4].data);
            st[j] = parse_packet(p[j].data, p[j].caplen, linktype, &pi[j]);
            if (st[j] != PARSE_OK || pi[j].frag == PARSE_FRAG_LATER) continue;
            make_key(&pi[j], &k[j], &from_a[j]);
            h[j] = key_hash(&k[j]);
            capture_prefetch(&c->slots[h[j] & c->mask]);
        }
        /* Flows are prefetched AHEAD packets before their turn: enough to hide a miss,
         * few enough not to overflow the core's miss buffers. */
        for (unsigned j = 0; j < m && j < AHEAD; j++) prefetch_flow(c, st[j], &pi[j], h[j]);
        for (unsigned j = 0; j < m; j++) {
            if (j + AHEAD < m) prefetch_flow(c, st[j + AHEAD], &pi[j + AHEAD], h[j + AHEAD]);
            if (j + AHEAD / 2 < m)
                prefetch_links(c, st[j + AHEAD / 2], &pi[j + AHEAD / 2], h[j + AHEAD / 2],
                               p[j + AHEAD / 2].ts_ns);
            if (st[j] != PARSE_OK) {
                c->cnt[st[j]]++;
                continue;
            }
            packet(c, linktype, &p[j], &pi[j], &k[j], h[j], from_a[j]);
        }
    }
}

/* ------------------------------------------------------------------------------------ */
/* Reporting                                                                             */
/* ------------------------------------------------------------------------------------ */

uint32_t capture_ctx_n_classes(const capture_ctx *c) { return c->n_classes; }

const char *capture_ctx_class_name(const capture_ctx *c, uint32_t i)
{
    ND_ASSERT(i < c->n_classes);
    return c->classes[i].name;
}

uint64_t capture_ctx_class_windows(const capture_ctx *c, uint32_t i)
{
    ND_ASSERT(i < c->n_classes);
    return c->classes[i].windows;
}

uint32_t capture_ctx_n_counters(const capture_ctx *c) { return CNT_N - 1; }

void capture_ctx_counter(const capture_ctx *c, uint32_t i, const char **name, uint64_t *value)
{
    ND_ASSERT(i < CNT_N - 1);
    uint32_t k = i + 1; /* index 0 is PARSE_OK, not a counter */
    *name = k < PARSE_N_STATUS ? parse_status_name((int)k) : counter_names[k];
    *value = c->cnt[k];
}

void capture_ctx_totals(const capture_ctx *c, capture_totals *t)
{
    memset(t, 0, sizeof *t);
    t->packets = c->cnt[CNT_PACKETS];
    t->bytes = c->cnt[CNT_BYTES];
    for (int k = 1; k < PARSE_N_STATUS; k++) t->skipped += c->cnt[k];
    t->skipped += c->cnt[CNT_ORPHAN_FRAG];
    t->flows = c->flows_started;
    t->active_flows = c->n_active;
    t->windows = c->cnt[CNT_WINDOWS];
}

/* Merges a top-k list into another (counts of equal values add). */
static void top_merge(uint16_t *dv, uint64_t *dc, const uint16_t *sv, const uint64_t *sc, int k)
{
    uint16_t v[2 * ND_PORT_TOP];
    uint64_t n[2 * ND_PORT_TOP];
    int m = 0;
    for (int i = 0; i < k && dc[i]; i++, m++) v[m] = dv[i], n[m] = dc[i];
    for (int i = 0; i < k && sc[i]; i++) {
        int j = 0;
        while (j < m && v[j] != sv[i]) j++;
        if (j < m) n[j] += sc[i];
        else v[m] = sv[i], n[m++] = sc[i];
    }
    for (int a = 1; a < m; a++) /* insertion sort, most frequent first */
        for (int b = a; b > 0 && n[b] > n[b - 1]; b--) {
            uint16_t tv = v[b];
            v[b] = v[b - 1];
            v[b - 1] = tv;
            uint64_t tn = n[b];
            n[b] = n[b - 1];
            n[b - 1] = tn;
        }
    memset(dv, 0, (size_t)k * sizeof *dv);
    memset(dc, 0, (size_t)k * sizeof *dc);
    for (int i = 0; i < m && i < k; i++) dv[i] = v[i], dc[i] = n[i];
}

void capture_stats_add(nd_class_stats *d, const nd_class_stats *s)
{
    for (int dir = 0; dir < 2; dir++) {
        for (int i = 0; i < ND_SIZE_HIST; i++) d->size_hist[dir][i] += s->size_hist[dir][i];
        for (int i = 0; i < ND_IAT_HIST; i++) d->iat_hist[dir][i] += s->iat_hist[dir][i];
        for (int i = 0; i < 256; i++) d->ttl_hist[dir][i] += s->ttl_hist[dir][i];
    }
    for (int i = 0; i < 3; i++) d->l4_flows[i] += s->l4_flows[i];
    d->ipv6_flows += s->ipv6_flows;
    top_merge(d->port, d->port_count, s->port, s->port_count, ND_PORT_TOP);
    top_merge(d->mss, d->mss_count, s->mss, s->mss_count, ND_MSS_TOP);
    if (s->flows) {
        if (!d->flows || s->first_flow_ns < d->first_flow_ns)
            d->first_flow_ns = s->first_flow_ns;
        if (s->last_flow_ns > d->last_flow_ns) d->last_flow_ns = s->last_flow_ns;
    }
    d->flows += s->flows;
    d->arrival_inputs += s->arrival_inputs;
    for (int i = 0; i < ND_ARRIVAL_HIST; i++) d->arrival_hist[i] += s->arrival_hist[i];
    d->arrival_gap_ns += s->arrival_gap_ns;
    for (int h = 0; h < ND_DAY_HOURS; h++) {
        d->hour_flows[h] += s->hour_flows[h];
        d->hour_seen_ns[h] += s->hour_seen_ns[h];
    }
    for (int b = 0; b < ND_DURATION_HIST; b++) d->duration_hist[b] += s->duration_hist[b];
    d->duration_bins += s->duration_bins;
}

int capture_ctx_to_dataset(capture_ctx *c, nd_dataset *ds, nd_error *e)
{
    for (uint32_t i = 0; i < c->n_classes; i++) {
        int k = nd_dataset_class(ds, c->classes[i].name);
        if (k < 0)
            return nd_error_set(e, -ENOMEM, "dataset: cannot add class '%s'",
                                c->classes[i].name);
        capture_stats_add(&ds->stats[k], capture_ctx_class_stats(c, i));
    }
    for (uint32_t i = 0; i < capture_ctx_n_counters(c); i++) {
        const char *name;
        uint64_t v;
        capture_ctx_counter(c, i, &name, &v);
        nd_dataset_count(ds, name, v);
    }
    return 0;
}

/* ------------------------------------------------------------------------------------ */
/* Hooks of the lcore runner (lcores.c)                                                  */
/* ------------------------------------------------------------------------------------ */

void capture_ctx_window_flow(const capture_ctx *c, capture_window_flow *wf)
{
    const flow *f = c->emitting;
    _Static_assert(sizeof wf->key == sizeof f->key, "window_flow key holds a flow_key");
    memcpy(wf->key, &f->key, sizeof wf->key);
    wf->t0 = f->t0;
    wf->index = open_bin(c, f) / c->L;
}

int capture_ctx_emit(capture_ctx *c, uint32_t class_idx, uint64_t group, const float *values)
{
    c->cnt[CNT_WINDOWS]++;
    c->classes[class_idx].windows++;
    int rc = c->on_window ? c->on_window(c->user, class_idx, group, values) : 0;
    if (rc && !c->error) c->error = rc;
    return rc;
}

void capture_ctx_arrival_share(capture_ctx *c, uint32_t n) { c->arrival_share = n ? n : 1; }

void capture_ctx_absorb(capture_ctx *c, capture_ctx *src)
{
    for (uint32_t i = 0; i < c->n_classes; i++) {
        class_state *d = &c->classes[i], *s = &src->classes[i];
        capture_stats_add(&d->st, &s->st); /* top lists: redone from the counts below */
        if (s->port_counts && !d->port_counts) {
            d->port_counts = calloc(65536, sizeof *d->port_counts);
            d->mss_counts = calloc(65536, sizeof *d->mss_counts);
        }
        for (uint32_t v = 0; d->port_counts && s->port_counts && v < 65536; v++)
            d->port_counts[v] += s->port_counts[v];
        for (uint32_t v = 0; d->mss_counts && s->mss_counts && v < 65536; v++)
            d->mss_counts[v] += s->mss_counts[v];
    }
    for (int k = 0; k < CNT_N; k++)
        if (k != CNT_WINDOWS) c->cnt[k] += src->cnt[k];
    c->flows_started += src->flows_started;
}
