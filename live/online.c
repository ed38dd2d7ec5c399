/*
 * online.c — the online trainer of `netdiffus live`: a reservoir per class plus recent
 * windows, classes that join while running, per-class scales fitted after a warm-up and
 * refit by a rule, checkpoints with the reservoirs inside the model file, exact state on
 * resume (docs/LIVE.md).
 *
 *   capture thread ──nd_wring_push──► ring ──nd_wring_peek/pop──► nd_online_add
 *                                                                   │ reservoirs, recent
 *                                        nd_online_step ◄───────────┘ nd_dm_train_step
 *
 * Checkpoint = a model file (nd_dm_save_with) with one more section, LIVE:
 *   u32 version (1), n_classes, wf (C·L floats per window), recent_cap, recent_n,
 *       recent_head; u64 rng[4], windows, images
 *   per class: name[64], u64 seen, clipped, since_fit, clipped_since_fit; u32 kept,
 *       refits; then kept × (u64 group, wf × f32)
 *   recent_n × (u32 class, u64 group, wf × f32), oldest first
 * All little-endian. Programs that only sample (`sample`, `replay MODEL.ndm`) ignore it.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "live_impl.h"

#define TAG_LIVE     ND_FOURCC('L', 'I', 'V', 'E')
#define LIVE_VERSION 1
/* recent capacity and windows kept per class: the bounds of live.recent and
 * live.reservoir */
#define LIVE_MAX_WINDOWS 16777216u

/* ---- online trainer --------------------------------------------------------------- */

typedef struct online_class {
    char name[ND_NAME_MAX];
    nd_reservoir res;
    int model_class; /* -1 while warming up */
    nd_gaf_scale scale;
    uint64_t clipped, since_fit, clipped_since_fit;
    uint32_t refits;
} online_class;

struct nd_online {
    nd_online_opts lo;
    nd_dm_settings ms; /* the model's, until it exists (then the model keeps its own) */
    char *provenance;  /* for the model file; NULL: none */
    nd_dataset *hdr;   /* channels, L, bin; classes grow with restored ones */
    size_t wf;
    int C, L;
    uint32_t n_classes, cap_classes;
    online_class *cls;
    /* recent buffer: a circular array of recent_cap windows */
    uint32_t recent_cap, recent_n, recent_head; /* head: next slot to write */
    float *recent_x;
    uint32_t *recent_cls;
    uint64_t *recent_group;
    nd_rng rng; /* reservoir replacement and batch picks */
    nd_dm *m;
    uint64_t windows, images, steps_run;
    double loss, last_loss;
    int batch;
    float *bx;   /* (batch, wf) */
    int *by;     /* (batch) */
    int *models; /* (max model classes) online class of each model class */
};

size_t nd_online_memory_bound(const nd_online_opts *o, uint32_t n_classes, size_t wf)
{
    size_t per = wf * sizeof(float) + sizeof(uint64_t);
    return (size_t)n_classes * o->reservoir * per +
           (size_t)o->recent * (per + sizeof(uint32_t));
}

static int online_grow_classes(nd_online *o, uint32_t n)
{
    if (n <= o->cap_classes) return 0;
    online_class *c = realloc(o->cls, n * sizeof *c);
    if (!c) return -ENOMEM;
    o->cls = c;
    o->cap_classes = n;
    return 0;
}

/* Adds a class name to the trainer's list (not yet to the model). */
static int online_class_new(nd_online *o, const char *name)
{
    if (online_grow_classes(o, o->n_classes + 1)) return -ENOMEM;
    online_class *c = &o->cls[o->n_classes];
    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "%s", name);
    nd_reservoir_init(&c->res, o->lo.reservoir, o->wf);
    c->model_class = -1;
    return (int)o->n_classes++;
}

/* A trainer without a model; seed: its RNG's (a resume restores the RNG). */
static nd_online *online_alloc(const nd_online_opts *lo, uint64_t seed, const nd_dataset *hdr,
                               nd_error *e)
{
    nd_online *o = calloc(1, sizeof *o);
    if (!o) {
        nd_error_set(e, -ENOMEM, "live: out of memory");
        return NULL;
    }
    o->lo = *lo;
    const char *names[ND_MAX_CHANNELS];
    for (uint32_t c = 0; c < hdr->n_channels; c++) names[c] = hdr->channel_names[c];
    o->hdr = nd_dataset_new(hdr->n_channels, names, hdr->L, hdr->bin_ns);
    o->C = (int)hdr->n_channels;
    o->L = (int)hdr->L;
    o->wf = (size_t)o->C * o->L;
    o->recent_cap = lo->recent;
    o->recent_x = malloc((size_t)o->recent_cap * o->wf * sizeof(float));
    o->recent_cls = malloc((size_t)o->recent_cap * sizeof *o->recent_cls);
    o->recent_group = malloc((size_t)o->recent_cap * sizeof *o->recent_group);
    if (!o->hdr || !o->recent_x || !o->recent_cls || !o->recent_group) goto oom;
    for (uint32_t k = 0; k < hdr->n_classes; k++)
        if (online_class_new(o, hdr->class_names[k]) < 0) goto oom;
    nd_rng_seed(&o->rng, seed ^ 0x11BEull);
    return o;
oom:
    nd_online_free(o);
    nd_error_set(e, -ENOMEM, "live: out of memory");
    return NULL;
}

/* Batch buffers and the model-class map, once the model exists. */
static int online_model_ready(nd_online *o, nd_error *e)
{
    const nd_dm_settings *ms = nd_dm_get_settings(o->m);
    o->batch = (int)ms->train.batch;
    o->bx = malloc((size_t)o->batch * o->wf * sizeof(float));
    o->by = malloc((size_t)o->batch * sizeof(int));
    o->models = malloc(((size_t)ms->net.max_classes + 1) * sizeof(int));
    if (!o->bx || !o->by || !o->models) return nd_error_set(e, -ENOMEM, "live: out of memory");
    for (uint32_t k = 0; k < o->n_classes; k++)
        if (o->cls[k].model_class >= 0) o->models[o->cls[k].model_class] = (int)k;
    return 0;
}

nd_online *nd_online_new(const nd_online_opts *lo, const nd_dm_settings *ms,
                         const char *provenance, const nd_dataset *hdr, nd_error *e)
{
    if (ms->context) {
        /* its windows come one by one: the planes would stay untrained, then read */
        nd_error_set(e, ND_ECONFIG,
                     "live: model.context: live trains windows one by one, not as flows; "
                     "train a context model with `netdiffus train` on a capture");
        return NULL;
    }
    nd_online *o = online_alloc(lo, ms->train.seed, hdr, e);
    if (!o) return NULL;
    o->ms = *ms;
    if (provenance && !(o->provenance = strdup(provenance))) {
        nd_online_free(o);
        nd_error_set(e, -ENOMEM, "live: out of memory");
        return NULL;
    }
    return o;
}

void nd_online_free(nd_online *o)
{
    if (!o) return;
    for (uint32_t k = 0; k < o->n_classes; k++) nd_reservoir_free(&o->cls[k].res);
    free(o->cls);
    free(o->recent_x);
    free(o->recent_cls);
    free(o->recent_group);
    free(o->bx);
    free(o->by);
    free(o->models);
    nd_dm_free(o->m);
    nd_dataset_free(o->hdr);
    free(o->provenance);
    free(o);
}

nd_dm *nd_online_model(nd_online *o) { return o->m; }

/* Whether any non-zero value of window x falls outside scale s (log1p domain). */
static int out_of_scale(const float *x, const nd_gaf_scale *s, int C, int L)
{
    for (int c = 0; c < C; c++)
        for (int i = 0; i < L; i++) {
            float v = x[(size_t)c * L + i];
            if (!(v > 0.0f)) continue;
            float l = log1pf(v);
            if (l > s->hi[c] * (1.0f + 1e-6f) || l < s->lo[c] * (1.0f - 1e-6f)) return 1;
        }
    return 0;
}

/* Scale from the class's reservoir (a uniform sample of every window seen). */
static void fit_from_reservoir(nd_gaf_scale *s, const online_class *c, int C, int L)
{
    nd_gaf_fit_scale(s, c->res.x, c->res.n, C, L);
}

/* The class's warm-up is over: fit its scale and give it a model row (creating the
 * model for the first class). */
static int online_join(nd_online *o, uint32_t k, nd_error *e)
{
    online_class *c = &o->cls[k];
    fit_from_reservoir(&c->scale, c, o->C, o->L);
    if (!o->m) {
        /* nd_dm_new takes a dataset: this class's reservoir, as one */
        const char *names[ND_MAX_CHANNELS];
        for (int ch = 0; ch < o->C; ch++) names[ch] = o->hdr->channel_names[ch];
        nd_dataset *ds = nd_dataset_new((uint32_t)o->C, names, (uint32_t)o->L, o->hdr->bin_ns);
        int rc = ds && nd_dataset_class(ds, c->name) == 0 ? 0 : -ENOMEM;
        for (uint32_t i = 0; !rc && i < c->res.n; i++)
            rc = nd_dataset_append(ds, 0, c->res.groups[i], c->res.x + (size_t)i * o->wf);
        if (rc) {
            nd_dataset_free(ds);
            return nd_error_set(e, rc, "live: out of memory");
        }
        o->m = nd_dm_new(&o->ms, ds, o->provenance, e);
        nd_dataset_free(ds);
        if (!o->m) return e ? e->code : ND_EFORMAT;
        nd_dm_set_scale(o->m, 0, &c->scale);
        c->model_class = 0;
        if (online_model_ready(o, e)) return e->code;
    } else {
        int mk = nd_dm_add_class(o->m, c->name, &c->scale, e);
        if (mk == ND_ECONFIG) {
            /* no row left: the class is counted but not learnt; the run goes on */
            nd_warn("live: %s; its windows are kept but not learnt (raise "
                    "model.max_classes for a new run)",
                    e ? e->msg : c->name);
            c->model_class = ND_ONLINE_NO_ROW;
            return 0;
        }
        if (mk < 0) return mk;
        c->model_class = mk;
        o->models[mk] = (int)k;
    }
    c->since_fit = c->clipped_since_fit = 0;
    nd_info("live: class '%s' joins the model as row %d after %llu windows (scale fitted "
            "on %u)",
            c->name, c->model_class, (unsigned long long)c->res.seen, c->res.n);
    return 0;
}

int nd_online_add(nd_online *o, uint32_t k, uint64_t group, const float *x, nd_error *e)
{
    ND_ASSERT(k < o->n_classes);
    online_class *c = &o->cls[k];
    if (nd_reservoir_add(&c->res, x, group, &o->rng) == -ENOMEM)
        return nd_error_set(e, -ENOMEM, "live: out of memory (reservoir of '%s')", c->name);
    uint32_t slot = o->recent_head;
    memcpy(o->recent_x + (size_t)slot * o->wf, x, o->wf * sizeof(float));
    o->recent_cls[slot] = k;
    o->recent_group[slot] = group;
    o->recent_head = (slot + 1) % o->recent_cap;
    if (o->recent_n < o->recent_cap) o->recent_n++;
    o->windows++;
    uint32_t warm = o->lo.warmup < o->lo.reservoir ? o->lo.warmup : o->lo.reservoir;
    if (c->model_class == ND_ONLINE_NO_ROW) return 0;
    if (c->model_class < 0) return c->res.n >= warm ? online_join(o, k, e) : 0;
    /* scale rule (docs/LIVE.md): count windows outside the fitted scale; refit from the
     * reservoir when their share since the last fit passes live.scale_refit */
    c->since_fit++;
    if (out_of_scale(x, &c->scale, o->C, o->L)) {
        c->clipped++;
        c->clipped_since_fit++;
    }
    double share = o->lo.scale_refit;
    if (share > 0 && c->since_fit >= warm &&
        (double)c->clipped_since_fit > share * c->since_fit) {
        nd_gaf_scale s;
        fit_from_reservoir(&s, c, o->C, o->L);
        /* never narrower than before: what the model could represent it still can */
        for (int ch = 0; ch < o->C; ch++) {
            if (c->scale.hi[ch] > s.hi[ch]) s.hi[ch] = c->scale.hi[ch];
            if (c->scale.lo[ch] > 0 && c->scale.lo[ch] < s.lo[ch]) s.lo[ch] = c->scale.lo[ch];
        }
        c->scale = s;
        nd_dm_set_scale(o->m, c->model_class, &s);
        c->refits++;
        nd_info("live: class '%s': %llu of %llu windows since the last fit were outside its "
                "scale; refit from its reservoir (refit %u)",
                c->name, (unsigned long long)c->clipped_since_fit,
                (unsigned long long)c->since_fit, c->refits);
        c->since_fit = c->clipped_since_fit = 0;
    }
    return 0;
}

/* A batch into o->bx, o->by from model classes 0..K-1: recent_share of it from the
 * recent windows of those classes, the rest class-balanced from their reservoirs. */
static void draw_batch(nd_online *o, uint32_t K)
{
    int B = o->batch;
    int n_recent = (int)lround(o->lo.recent_share * B);
    for (int i = 0; i < B; i++) {
        const float *src = NULL;
        int mk = -1;
        if (i < n_recent && o->recent_n) {
            /* a recent window, when its class is in the model */
            uint32_t j = nd_rng_below(&o->rng, o->recent_n);
            uint32_t slot = (o->recent_head + o->recent_cap - o->recent_n + j) % o->recent_cap;
            mk = o->cls[o->recent_cls[slot]].model_class;
            if (mk >= 0 && (uint32_t)mk < K) src = o->recent_x + (size_t)slot * o->wf;
        }
        if (!src) {
            /* class-balanced: a model class uniformly, then a window of its reservoir */
            mk = (int)nd_rng_below(&o->rng, K);
            const nd_reservoir *r = &o->cls[o->models[mk]].res;
            src = r->x + (size_t)nd_rng_below(&o->rng, r->n) * o->wf;
        }
        memcpy(o->bx + (size_t)i * o->wf, src, o->wf * sizeof(float));
        o->by[i] = mk;
    }
}

int nd_online_step(nd_online *o, nd_error *e)
{
    if (!o->m) return 0;
    draw_batch(o, nd_dm_dataset(o->m)->n_classes);
    float loss;
    int rc = nd_dm_train_step(o->m, o->bx, o->by, o->batch, &loss, e);
    if (rc) return rc;
    o->last_loss = loss;
    o->loss = o->steps_run ? 0.98 * o->loss + 0.02 * loss : loss;
    o->steps_run++;
    o->images += (uint64_t)o->batch;
    return 1;
}

int nd_online_distill_step(nd_online *o, nd_dm *s, float *loss, nd_error *e)
{
    uint32_t K = nd_dm_dataset(s)->n_classes;
    ND_ASSERT(o->m && K && K <= nd_dm_dataset(o->m)->n_classes);
    draw_batch(o, K);
    return nd_dm_train_step(s, o->bx, o->by, o->batch, loss, e);
}

void nd_online_set_stats(nd_online *o, uint32_t k, const nd_class_stats *st)
{
    ND_ASSERT(k < o->n_classes);
    if (!o->m || o->cls[k].model_class < 0) return;
    nd_dm_dataset_mut(o->m)->stats[o->cls[k].model_class] = *st;
}

void nd_online_get_info(const nd_online *o, nd_online_info *in)
{
    memset(in, 0, sizeof *in);
    in->step = o->m ? nd_dm_step(o->m) : 0;
    in->steps_run = o->steps_run;
    in->images = o->images;
    in->windows = o->windows;
    in->loss = o->loss;
    in->last_loss = o->last_loss;
    in->n_classes = o->n_classes;
    in->model_classes = o->m ? nd_dm_dataset(o->m)->n_classes : 0;
    in->memory_bytes = nd_online_memory_bound(&o->lo, o->n_classes, o->wf);
}

void nd_online_class(const nd_online *o, uint32_t i, nd_online_class_info *ci)
{
    ND_ASSERT(i < o->n_classes);
    const online_class *c = &o->cls[i];
    ci->name = c->name;
    ci->seen = c->res.seen;
    ci->kept = c->res.n;
    ci->model_class = c->model_class;
    ci->clipped = c->clipped;
    ci->refits = c->refits;
}

/* ---- checkpoint ------------------------------------------------------------------- */

/* Little-endian writer of the LIVE section, in pieces through a small buffer. */
typedef struct live_out {
    ndf_writer *w;
    nd_error *e;
    unsigned char buf[8192];
    size_t n;
    int rc;
} live_out;

static void out_flush(live_out *q)
{
    if (!q->rc && q->n) q->rc = ndf_section_write(q->w, q->buf, q->n, q->e);
    q->n = 0;
}
static unsigned char *out_room(live_out *q, size_t k)
{
    if (q->n + k > sizeof q->buf) out_flush(q);
    unsigned char *p = q->buf + q->n;
    q->n += k;
    return p;
}
static void out_u32(live_out *q, uint32_t v) { nd_put_u32(out_room(q, 4), v); }
static void out_u64(live_out *q, uint64_t v) { nd_put_u64(out_room(q, 8), v); }
static void out_floats(live_out *q, const float *v, size_t n)
{
    for (size_t i = 0; i < n; i++) nd_put_f32(out_room(q, 4), v[i]);
}

static int write_live(ndf_writer *w, void *arg, nd_error *e)
{
    nd_online *o = arg;
    live_out *q = malloc(sizeof *q);
    if (!q) return nd_error_set(e, -ENOMEM, "live: out of memory");
    q->w = w;
    q->e = e;
    q->n = 0;
    q->rc = ndf_section_begin(w, TAG_LIVE, e);
    uint32_t hdr[6] = {LIVE_VERSION,  o->n_classes, (uint32_t)o->wf,
                       o->recent_cap, o->recent_n,  o->recent_head};
    for (int i = 0; i < 6; i++) out_u32(q, hdr[i]);
    for (int i = 0; i < 4; i++) out_u64(q, o->rng.s[i]);
    out_u64(q, o->windows);
    out_u64(q, o->images);
    for (uint32_t k = 0; k < o->n_classes && !q->rc; k++) {
        const online_class *c = &o->cls[k];
        memcpy(out_room(q, ND_NAME_MAX), c->name, ND_NAME_MAX);
        out_u64(q, c->res.seen);
        out_u64(q, c->clipped);
        out_u64(q, c->since_fit);
        out_u64(q, c->clipped_since_fit);
        out_u32(q, c->res.n);
        out_u32(q, c->refits);
        for (uint32_t i = 0; i < c->res.n && !q->rc; i++) {
            out_u64(q, c->res.groups[i]);
            out_floats(q, c->res.x + (size_t)i * o->wf, o->wf);
        }
    }
    for (uint32_t j = 0; j < o->recent_n && !q->rc; j++) {
        uint32_t slot = (o->recent_head + o->recent_cap - o->recent_n + j) % o->recent_cap;
        out_u32(q, o->recent_cls[slot]);
        out_u64(q, o->recent_group[slot]);
        out_floats(q, o->recent_x + (size_t)slot * o->wf, o->wf);
    }
    out_flush(q);
    int rc = q->rc ? q->rc : ndf_section_end(w, e);
    free(q);
    return rc;
}

int nd_online_save(nd_online *o, const char *path, int *written, nd_error *e)
{
    if (written) *written = 0;
    if (!o->m) return 0;
    /* decode calibration targets from the reservoirs: what the classes look like now */
    for (uint32_t k = 0; k < o->n_classes; k++) {
        const online_class *c = &o->cls[k];
        if (c->model_class >= 0 && nd_dm_set_target(o->m, c->model_class, c->res.x, c->res.n))
            return nd_error_set(e, -ENOMEM, "live: out of memory");
    }
    int rc = nd_dm_save_with(o->m, path, write_live, o, e);
    if (!rc && written) *written = 1;
    return rc;
}

/* Bounds-checked little-endian reader over the LIVE section. */
typedef struct live_in {
    const unsigned char *p, *end;
    int bad;
} live_in;
static const unsigned char *in_take(live_in *r, size_t k)
{
    if (r->bad || (size_t)(r->end - r->p) < k) {
        r->bad = 1;
        return NULL;
    }
    const unsigned char *p = r->p;
    r->p += k;
    return p;
}
static uint32_t in_u32(live_in *r)
{
    const unsigned char *p = in_take(r, 4);
    return p ? nd_get_u32(p) : 0;
}
static uint64_t in_u64(live_in *r)
{
    const unsigned char *p = in_take(r, 8);
    return p ? nd_get_u64(p) : 0;
}
/* n floats of one window into v (NULL: skipped); -1 with *bad set when one is not a
 * count (finite and >= 0). */
static int in_window(live_in *r, float *v, size_t n, float *bad)
{
    const unsigned char *p = in_take(r, 4 * n);
    for (size_t i = 0; p && i < n; i++) {
        float x = nd_get_f32(p + 4 * i);
        if (!(x >= 0.0f) || !isfinite(x)) {
            *bad = x;
            return -1;
        }
        if (v) v[i] = x;
    }
    return 0;
}

/* Index of class name in o, adding it when absent. */
static int online_find_or_add(nd_online *o, const char *name)
{
    for (uint32_t k = 0; k < o->n_classes; k++)
        if (!strcmp(o->cls[k].name, name)) return (int)k;
    return online_class_new(o, name);
}

static int read_live(nd_online *o, const void *data, size_t len, const char *path, nd_error *e)
{
    live_in r = {data, (const unsigned char *)data + len, 0};
    uint32_t ver = in_u32(&r), n = in_u32(&r), wf = in_u32(&r), rcap = in_u32(&r);
    uint32_t rn = in_u32(&r), head = in_u32(&r);
    float bad;
    if (ver != LIVE_VERSION)
        return nd_error_set(e, ND_EVERSION, "%s: section LIVE version %u, this build reads %d",
                            path, ver, LIVE_VERSION);
    if (wf != o->wf)
        return nd_error_set(e, ND_EFORMAT,
                            "%s: section LIVE: windows of %u values, the config makes %zu "
                            "(capture.window or capture.channels changed?)",
                            path, wf, o->wf);
    if (n > ND_MAX_CLASSES)
        return nd_error_set(e, ND_EFORMAT, "%s: section LIVE: class count %u, at most %d", path,
                            n, ND_MAX_CLASSES);
    if (rcap < 1 || rcap > LIVE_MAX_WINDOWS)
        return nd_error_set(e, ND_EFORMAT,
                            "%s: section LIVE: recent capacity %u out of range 1..%u", path,
                            rcap, LIVE_MAX_WINDOWS);
    if (rn > rcap || head >= rcap)
        return nd_error_set(e, ND_EFORMAT,
                            "%s: section LIVE: recent count %u and head %u, expected count <= "
                            "capacity %u and head < capacity",
                            path, rn, head, rcap);
    for (int i = 0; i < 4; i++) o->rng.s[i] = in_u64(&r);
    o->windows = in_u64(&r);
    (void)in_u64(&r); /* images of earlier runs: this process counts its own */
    const nd_dataset *md = nd_dm_dataset(o->m);
    for (uint32_t k = 0; k < n && !r.bad; k++) {
        char name[ND_NAME_MAX];
        const unsigned char *p = in_take(&r, ND_NAME_MAX);
        if (!p) break;
        if (!memchr(p, 0, ND_NAME_MAX) || !p[0])
            return nd_error_set(e, ND_EFORMAT,
                                "%s: section LIVE: class %u: empty name or no NUL in its %d "
                                "bytes",
                                path, k, ND_NAME_MAX);
        memcpy(name, p, ND_NAME_MAX);
        int ok = online_find_or_add(o, name);
        if (ok < 0) return nd_error_set(e, -ENOMEM, "live: out of memory");
        online_class *c = &o->cls[ok];
        uint64_t seen = in_u64(&r);
        c->clipped = in_u64(&r);
        c->since_fit = in_u64(&r);
        c->clipped_since_fit = in_u64(&r);
        uint32_t kept = in_u32(&r);
        c->refits = in_u32(&r);
        if (kept > seen || kept > LIVE_MAX_WINDOWS)
            return nd_error_set(e, ND_EFORMAT,
                                "%s: section LIVE: class '%s': %u windows kept of %llu seen, "
                                "expected kept <= seen and <= %u",
                                path, name, kept, (unsigned long long)seen, LIVE_MAX_WINDOWS);
        if ((uint64_t)kept * (8 + 4 * (uint64_t)wf) > (uint64_t)(r.end - r.p)) {
            r.bad = 1;
            break;
        }
        /* the reservoir as it was: a smaller live.reservoir keeps the first cap */
        for (uint32_t i = 0; i < kept && !r.bad; i++) {
            uint64_t g = in_u64(&r);
            float *slot = NULL;
            if (c->res.n < c->res.cap && !(slot = nd_reservoir_append(&c->res, g)))
                return nd_error_set(e, -ENOMEM, "live: out of memory");
            if (in_window(&r, slot, o->wf, &bad))
                return nd_error_set(e, ND_EFORMAT,
                                    "%s: section LIVE: class '%s': reservoir window %u holds "
                                    "%g, expected a finite value >= 0",
                                    path, name, i, (double)bad);
        }
        c->res.seen = seen;
        for (uint32_t mk = 0; mk < md->n_classes; mk++)
            if (!strcmp(md->class_names[mk], name)) {
                c->model_class = (int)mk;
                c->scale = *nd_dm_scale(o->m, (int)mk);
            }
    }
    /* the stored head is not used: the buffer is refilled oldest first */
    for (uint32_t j = 0; j < rn && !r.bad; j++) {
        uint32_t k = in_u32(&r);
        uint64_t g = in_u64(&r);
        if (k >= o->n_classes) {
            r.bad = 1;
            break;
        }
        uint32_t slot = o->recent_head;
        if (in_window(&r, o->recent_x + (size_t)slot * o->wf, o->wf, &bad))
            return nd_error_set(e, ND_EFORMAT,
                                "%s: section LIVE: recent window %u holds %g, expected a "
                                "finite value >= 0",
                                path, j, (double)bad);
        o->recent_cls[slot] = k;
        o->recent_group[slot] = g;
        o->recent_head = (slot + 1) % o->recent_cap;
        if (o->recent_n < o->recent_cap) o->recent_n++;
    }
    if (r.bad || r.p != r.end)
        return nd_error_set(e, ND_EFORMAT,
                            "%s: section LIVE is malformed (lengths do not "
                            "add up)",
                            path);
    for (uint32_t mk = 0; mk < md->n_classes; mk++) {
        int found = 0;
        for (uint32_t k = 0; k < o->n_classes; k++)
            if (o->cls[k].model_class == (int)mk) found = 1;
        if (!found)
            return nd_error_set(e, ND_EFORMAT,
                                "%s: model class '%s' has no reservoir in "
                                "section LIVE",
                                path, md->class_names[mk]);
    }
    return 0;
}

nd_online *nd_online_resume(const char *path, const nd_online_opts *lo, nd_dm_legacy_fn legacy,
                            const nd_dataset *hdr, nd_error *e)
{
    nd_online *o = online_alloc(lo, 0, hdr, e);
    if (!o) return NULL;
    o->m = nd_dm_load(path, ND_DM_BATCH_TRAIN, legacy, e);
    if (!o->m) goto fail;
    if (nd_dm_get_settings(o->m)->context) {
        nd_error_set(e, ND_ECONFIG,
                     "%s: a model with context planes (model.context): live trains windows "
                     "one by one, not as flows, and cannot go on training it",
                     path);
        goto fail;
    }
    const nd_dataset *md = nd_dm_dataset(o->m);
    if (md->n_channels != hdr->n_channels || md->L != hdr->L) {
        nd_error_set(e, ND_ECONFIG,
                     "%s: the model's windows (channels, capture.window) are "
                     "not the config's: resume with the config it was made with",
                     path);
        goto fail;
    }
    ndf_reader *r = ndf_open(path, NDF_KIND_MODEL, e);
    if (!r) goto fail;
    const void *data;
    size_t len;
    int rc = ndf_find(r, TAG_LIVE, &data, &len, e);
    if (rc)
        nd_error_set(e, ND_EFORMAT,
                     "%s: no LIVE section: not a checkpoint of `netdiffus "
                     "live` (a model from `train` cannot be resumed online)",
                     path);
    else rc = read_live(o, data, len, path, e);
    ndf_close(r);
    if (rc || online_model_ready(o, e)) goto fail;
    return o;
fail:
    nd_online_free(o);
    return NULL;
}
