/*
 * test_live_ring.c — the window ring between capture and trainer (nd_wring): order and
 * contents across two threads, a full ring drops and counts without blocking, and
 * pushed + dropped always equals what the producer offered.
 */
#include <pthread.h>
#include <unistd.h>

#include "check.h"
#include "live.h"

enum { WF = 24, N = 200000 };

typedef struct prod {
    nd_wring *r;
    uint64_t offered, taken;
} prod;

static void fill(float *v, uint64_t seq)
{
    for (int i = 0; i < WF; i++) v[i] = (float)((seq * 31 + (uint64_t)i) % 100003);
}

static void *producer(void *arg)
{
    prod *p = arg;
    float v[WF];
    for (uint64_t s = 0; s < N; s++) {
        fill(v, s);
        p->taken += (uint64_t)nd_wring_push(p->r, (uint32_t)(s % 7), s, v);
        p->offered++;
    }
    return NULL;
}

int main(void)
{
    /* one thread: fill, overflow, drain, wrap around */
    CHECK(nd_wring_new(100, WF) == NULL); /* not a power of two */
    nd_wring *r = nd_wring_new(16, WF);
    CHECK(r);
    float v[WF], w[WF];
    uint32_t cls;
    uint64_t grp;
    CHECK(nd_wring_peek(r, &cls, &grp) == NULL);
    for (uint64_t s = 0; s < 16; s++) {
        fill(v, s);
        CHECK_EQ(nd_wring_push(r, (uint32_t)s, s, v), 1);
    }
    fill(v, 99);
    CHECK_EQ(nd_wring_push(r, 0, 99, v), 0); /* full: dropped, counted, returns at once */
    CHECK_EQ(nd_wring_push(r, 0, 100, v), 0);
    CHECK_U64_EQ(nd_wring_dropped(r), 2);
    CHECK_U64_EQ(nd_wring_pushed(r), 16);
    for (uint64_t round = 0; round < 40; round++) { /* wraps the indices many times */
        const float *x = nd_wring_peek(r, &cls, &grp);
        CHECK(x);
        CHECK_U64_EQ(grp, round);
        fill(w, round);
        CHECK(!memcmp(x, w, sizeof w));
        nd_wring_pop(r);
        fill(v, round + 16);
        CHECK_EQ(nd_wring_push(r, (uint32_t)(round + 16), round + 16, v), 1);
    }
    CHECK_U64_EQ(nd_wring_popped(r), 40);
    nd_wring_free(r);

    /* two threads: a small ring and a consumer that sometimes pauses, so that the ring
     * is often full; everything taken arrives once, in order, intact */
    r = nd_wring_new(64, WF);
    prod p = {r, 0, 0};
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, producer, &p), 0);
    uint64_t got = 0, last = 0, bad = 0;
    int first = 1;
    for (uint64_t spins = 0;; spins++) {
        const float *x = nd_wring_peek(r, &cls, &grp);
        if (!x) {
            if (nd_wring_pushed(r) + nd_wring_dropped(r) == N &&
                nd_wring_popped(r) == nd_wring_pushed(r))
                break;
            continue;
        }
        if (!first && grp <= last) bad++;
        if (cls != grp % 7) bad++;
        fill(w, grp);
        if (memcmp(x, w, sizeof w)) bad++;
        last = grp;
        first = 0;
        nd_wring_pop(r);
        got++;
        if (spins % 1024 == 0) usleep(50);
    }
    pthread_join(t, NULL);
    CHECK_U64_EQ(bad, 0);
    CHECK_U64_EQ(p.offered, N);
    CHECK_U64_EQ(got, p.taken);
    CHECK_U64_EQ(nd_wring_pushed(r), p.taken);
    CHECK_U64_EQ(nd_wring_pushed(r) + nd_wring_dropped(r), N);
    CHECK(nd_wring_dropped(r) > 0); /* the pauses made it overflow */
    fprintf(stderr, "ring: %llu taken, %llu dropped of %d\n", (unsigned long long)got,
            (unsigned long long)nd_wring_dropped(r), N);
    nd_wring_free(r);
    nd_wring_free(NULL);
    return 0;
}
