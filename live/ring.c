/*
 * ring.c — the single-producer single-consumer window ring between a capture thread and
 * the online trainer (C11 acquire/release indices; a push into a full ring drops and
 * counts, never blocks), and reservoir sampling of a window stream (Vitter's R).
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "live_impl.h"

/* ---- ring ------------------------------------------------------------------------- */

struct nd_wring {
    /* producer and consumer indices on their own cache lines: no false sharing */
    _Alignas(64) _Atomic uint64_t head; /* next slot to write (producer) */
    uint64_t dropped_local;             /* producer-only copy, published below */
    _Alignas(64) _Atomic uint64_t tail; /* next slot to read (consumer) */
    _Alignas(64) _Atomic uint64_t dropped;
    uint32_t size, mask;
    size_t wf, slot_floats; /* slot: u32 class, u64 group, wf floats (in float units) */
    float *slots;
};

size_t nd_wring_bytes(uint32_t size, size_t wf)
{
    return sizeof(nd_wring) + (size_t)size * (wf + 4) * sizeof(float);
}

nd_wring *nd_wring_new(uint32_t size, size_t wf)
{
    if (size < 2 || (size & (size - 1)) || wf == 0) return NULL;
    nd_wring *r = aligned_alloc(64, (sizeof *r + 63) / 64 * 64);
    if (!r) return NULL;
    memset(r, 0, sizeof *r);
    r->size = size;
    r->mask = size - 1;
    r->wf = wf;
    r->slot_floats = wf + 4; /* 16 header bytes: class (u32), pad, group (u64) */
    r->slots = malloc((size_t)size * r->slot_floats * sizeof(float));
    if (!r->slots) {
        free(r);
        return NULL;
    }
    atomic_init(&r->head, 0);
    atomic_init(&r->tail, 0);
    atomic_init(&r->dropped, 0);
    return r;
}

void nd_wring_free(nd_wring *r)
{
    if (!r) return;
    free(r->slots);
    free(r);
}

int nd_wring_push(nd_wring *r, uint32_t cls, uint64_t group, const float *values)
{
    uint64_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
    uint64_t t = atomic_load_explicit(&r->tail, memory_order_acquire);
    if (h - t >= r->size) {
        atomic_store_explicit(&r->dropped, ++r->dropped_local, memory_order_relaxed);
        return 0;
    }
    float *s = r->slots + (size_t)(h & r->mask) * r->slot_floats;
    memcpy(s, &cls, sizeof cls);
    memcpy(s + 2, &group, sizeof group);
    memcpy(s + 4, values, r->wf * sizeof(float));
    /* release: the slot's contents are visible before the consumer sees the new head */
    atomic_store_explicit(&r->head, h + 1, memory_order_release);
    return 1;
}

const float *nd_wring_peek(nd_wring *r, uint32_t *cls, uint64_t *group)
{
    uint64_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
    uint64_t h = atomic_load_explicit(&r->head, memory_order_acquire);
    if (t == h) return NULL;
    const float *s = r->slots + (size_t)(t & r->mask) * r->slot_floats;
    memcpy(cls, s, sizeof *cls);
    memcpy(group, s + 2, sizeof *group);
    return s + 4;
}

void nd_wring_pop(nd_wring *r)
{
    uint64_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
    /* release: we are done reading the slot before the producer may overwrite it */
    atomic_store_explicit(&r->tail, t + 1, memory_order_release);
}

uint64_t nd_wring_pushed(const nd_wring *r)
{
    return atomic_load_explicit(&((nd_wring *)r)->head, memory_order_acquire);
}
uint64_t nd_wring_dropped(const nd_wring *r)
{
    return atomic_load_explicit(&((nd_wring *)r)->dropped, memory_order_relaxed);
}
uint64_t nd_wring_popped(const nd_wring *r)
{
    return atomic_load_explicit(&((nd_wring *)r)->tail, memory_order_acquire);
}

/* ---- reservoir -------------------------------------------------------------------- */

void nd_reservoir_init(nd_reservoir *r, uint32_t cap, size_t wf)
{
    memset(r, 0, sizeof *r);
    r->cap = cap;
    r->wf = wf;
}

void nd_reservoir_free(nd_reservoir *r)
{
    free(r->x);
    free(r->groups);
    memset(r, 0, sizeof *r);
}

/* Room for one more window (n < cap): doubles the arrays up to cap. */
static int reservoir_grow(nd_reservoir *r)
{
    if (r->n < r->alloc) return 0;
    uint32_t a = r->alloc ? r->alloc * 2 : 16;
    if (a > r->cap) a = r->cap;
    float *x = realloc(r->x, (size_t)a * r->wf * sizeof(float));
    if (!x) return -ENOMEM;
    r->x = x;
    uint64_t *g = realloc(r->groups, (size_t)a * sizeof *g);
    if (!g) return -ENOMEM;
    r->groups = g;
    r->alloc = a;
    return 0;
}

float *nd_reservoir_append(nd_reservoir *r, uint64_t group)
{
    ND_ASSERT(r->n < r->cap);
    if (reservoir_grow(r)) return NULL;
    r->groups[r->n] = group;
    return r->x + (size_t)r->n++ * r->wf;
}

long nd_reservoir_add(nd_reservoir *r, const float *x, uint64_t group, nd_rng *rng)
{
    r->seen++;
    long slot;
    if (r->n < r->cap) {
        if (reservoir_grow(r)) {
            r->seen--;
            return -ENOMEM;
        }
        slot = r->n++;
    } else {
        /* keep the seen-th window with probability cap/seen, over a uniform victim */
        uint64_t j = nd_rng_u64(rng) % r->seen;
        if (j >= r->cap) return -1;
        slot = (long)j;
    }
    memcpy(r->x + (size_t)slot * r->wf, x, r->wf * sizeof(float));
    r->groups[slot] = group;
    return slot;
}
