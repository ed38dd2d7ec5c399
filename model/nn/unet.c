/*
 * unet.c — the reference U-Net "unet-ref" (docs/MODEL.md), built from nd_unet_config:
 *
 *   t ─ sinusoid(E) ─ Linear ─ SiLU ─ Linear ─┬─ + class row ─ SiLU ─► es (B,E), to every
 * ResBlock x (B,C,L,L) ─ conv_in 3×3 ─ [level l: res_blocks × ResBlock, then 3×3/s2 down] ...
 *     ─ mid: ResBlock, attention (GN, 1×1 qkv, softmax, 1×1 proj, residual), ResBlock
 *     ─ [level l, deepest first: (res_blocks+1) × ResBlock on concat(h, skip), then
 *        nearest ×2 + 3×3 conv] ─ GN ─ SiLU ─ conv 3×3 ─► out (B,C,L,L)
 *   ResBlock(in,out): GN─SiLU─conv3×3 ─ + Linear(es) ─ GN─SiLU─conv3×3 ─ + skip(x)
 *   (skip: 1×1 conv when in ≠ out, else identity)
 *
 * Parameter names follow the PyTorch twin (scripts/torch_reference.py) so that
 * fixtures map one to one. Parameters and gradients are one block each; activations
 * are kept per layer for the backward (sized for max_batch at construction).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn_impl.h"

#define MAX_TENSORS 1024
#define MAX_BLOCKS  64
/* abuf calls: at most 10 per ResBlock (8 activations, its output, a decoder block's
 * concat), 3 per level (down and up convolutions), 10 for the embeddings, the input and
 * conv_in, 7 for attention, 3 for the head, 7 scratch and parameter blocks */
#define MAX_BUFS (10 * MAX_BLOCKS + 4 * ND_UNET_MAX_LEVELS + 32)
/* parameter tensors: at most 12 per ResBlock, 2 per convolution, 5 embedding, 6 attention
 * and 4 head tensors */
_Static_assert(12 * MAX_BLOCKS + 4 * ND_UNET_MAX_LEVELS + 2 + 15 <= MAX_TENSORS,
               "MAX_TENSORS holds the largest network config_check allows");
#define NONE ((size_t)-1)

enum init { INIT_UNIFORM, INIT_ONES, INIT_ZEROS, INIT_NORMAL };

typedef struct ptensor {
    char name[64];
    size_t off, numel;
    int ndim, shape[4]; /* PyTorch's: (out, in, kh, kw), (out, in), (rows, width), (C) */
    int fan_in;
    int init;
} ptensor;

/* A shape as palloc's two arguments: its dimension count and its sizes. */
#define DIMS(...)                                                                              \
    (int)(sizeof((int[]){__VA_ARGS__}) / sizeof(int)), (const int[]) { __VA_ARGS__ }

/* A stream tensor: value and gradient (B,C,H,H). */
typedef struct stream {
    float *v, *g;
    int C, H;
} stream;

typedef struct resblock {
    int cin, cout, H;
    size_t gn1w, gn1b, c1w, c1b, ew, eb, gn2w, gn2b, c2w, c2b, skw, skb; /* offsets */
    stream *in;   /* input (a concat buffer for decoder blocks) */
    stream *skip; /* decoder: the encoder stream concatenated after prev; else NULL */
    stream *prev; /* decoder: the stream before the concat */
    float *a1, *m1, *r1, *h1, *ep, *a2, *m2, *r2;
    stream out;
} resblock;

typedef struct convl {
    size_t w, b;
    int cin, cout, Hin, stride;
    stream *in;
    float *up; /* upsample conv: the (B,cin,Hin,Hin) upsampled input it reads */
    stream out;
} convl;

struct nd_unet {
    nd_unet_config cfg;
    int max_batch, B;
    float *params, *grads;
    size_t n_params;
    ptensor tens[MAX_TENSORS];
    size_t n_tens;
    double flops;

    /* embeddings */
    size_t l1w, l1b, l2w, l2b, ctab, ptab, gtab;
    float *tsin, *e1, *e1s, *e, *es, *des, *de1;
    int *y, *prow;      /* each image's class row and position row (for the backward) */
    float *grow;        /* each image's guidance row (for the backward) */
    const int *pos;     /* nd_unet_set_pos's rows for the next forward, or NULL */
    const float *guide; /* nd_unet_set_guide's rows for the next forward, or NULL */

    float *xin;        /* (B,C+cond+2·coords,L,L) the input, with its other planes */
    float *dxin;       /* the same shape: its gradient (with other planes only) */
    const float *cond; /* nd_unet_set_cond's planes for the next forward, or NULL */
    convl conv_in;
    resblock rb[MAX_BLOCKS];
    int n_rb;
    convl down[ND_UNET_MAX_LEVELS], up[ND_UNET_MAX_LEVELS];
    /* order of execution: indices into rb for encoder, mid, decoder */
    int enc_first, enc_n, mid0, mid1, dec_first, dec_n;
    int use_attn;
    /* attention block at the lowest resolution */
    size_t agw, agb, aqw, aqb, apw, apb;
    float *an, *am, *ar, *qkv, *att, *ao;
    stream attn_out;
    int attn_C, attn_H;
    /* output head */
    size_t ogw, ogb, ocw, ocb;
    float *oa, *om, *or_;
    stream *last;

    /* backward scratch, each max_batch · max(C·P) floats */
    float *s1, *s2, *s3, *s4;
    size_t smax;
    float *grad_arena; /* every stream's gradient, zeroed at the start of a backward */
    size_t grad_n;

    void *bufs[MAX_BUFS]; /* as allocated, for free: abuf hands out their aligned starts */
    int n_bufs;
    int failed;
    int dry; /* only lay out: count parameters, allocate nothing (nd_unet_config_params) */
};

static size_t P_(int H) { return (size_t)H * H; }

static size_t palloc(nd_unet *m, const char *name, int ndim, const int *shape, int fan_in,
                     int init)
{
    ND_ASSERT(m->n_tens < MAX_TENSORS && ndim >= 1 && ndim <= 4);
    ptensor *t = &m->tens[m->n_tens++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->off = m->n_params;
    t->ndim = ndim;
    size_t numel = 1;
    for (int d = 0; d < ndim; d++) numel *= (size_t)(t->shape[d] = shape[d]);
    t->numel = numel;
    t->fan_in = fan_in;
    t->init = init;
    m->n_params += numel;
    return t->off;
}

static float *abuf(nd_unet *m, size_t n)
{
    if (m->dry) return NULL;
    if (m->n_bufs >= (int)(sizeof m->bufs / sizeof m->bufs[0])) {
        m->failed = 1;
        return NULL;
    }
    /* Zeroed by calloc, whose large blocks are fresh pages that are zero already, so a
     * page costs a fault only when a pass first writes it. A memset here would touch
     * every page of a network sized for its largest batch, gradients included, which a
     * sampling run never writes (6 GB of a videoTrain student's `sample`,
     * docs/PERFORMANCE.md). The spare 64-byte block leaves room to align the start and
     * keeps the end rounded up to a whole block. */
    size_t bytes = ((n ? n : 1) * sizeof(float) + 63) & ~(size_t)63;
    char *raw = calloc(1, bytes + 64);
    if (!raw) {
        m->failed = 1;
        return NULL;
    }
    m->bufs[m->n_bufs++] = raw;
    return (float *)(raw + (64 - (uintptr_t)raw % 64) % 64);
}

/* Stream gradients come from one arena: sizes are summed in a first pass (grad_n),
 * pointers handed out in a second (after the arena exists). */
static void stream_init(nd_unet *m, stream *s, int C, int H)
{
    s->C = C;
    s->H = H;
    s->v = abuf(m, (size_t)m->max_batch * C * P_(H));
    s->g = (float *)(uintptr_t)m->grad_n; /* offset for now, see fix_grads */
    m->grad_n += (size_t)m->max_batch * C * P_(H);
}

static void fix_grad(nd_unet *m, stream *s) { s->g = m->grad_arena + (size_t)(uintptr_t)s->g; }

static void note_scratch(nd_unet *m, int C, int H)
{
    size_t n = (size_t)m->max_batch * C * P_(H);
    if (n > m->smax) m->smax = n;
}

static void rb_build(nd_unet *m, resblock *r, const char *pfx, int cin, int cout, int H)
{
    const nd_unet_config *c = &m->cfg;
    char nm[48];
    r->cin = cin;
    r->cout = cout;
    r->H = H;
#define P(field, suffix, fan, init, ...)                                                       \
    do {                                                                                       \
        snprintf(nm, sizeof nm, "%s.%s", pfx, suffix);                                         \
        r->field = palloc(m, nm, DIMS(__VA_ARGS__), fan, init);                                \
    } while (0)
    P(gn1w, "gn1.w", 0, INIT_ONES, cin);
    P(gn1b, "gn1.b", 0, INIT_ZEROS, cin);
    P(c1w, "conv1.w", cin * 9, INIT_UNIFORM, cout, cin, 3, 3);
    P(c1b, "conv1.b", cin * 9, INIT_UNIFORM, cout);
    P(ew, "emb.w", c->emb_dim, INIT_UNIFORM, cout, c->emb_dim);
    P(eb, "emb.b", c->emb_dim, INIT_UNIFORM, cout);
    P(gn2w, "gn2.w", 0, INIT_ONES, cout);
    P(gn2b, "gn2.b", 0, INIT_ZEROS, cout);
    P(c2w, "conv2.w", cout * 9, INIT_UNIFORM, cout, cout, 3, 3);
    P(c2b, "conv2.b", cout * 9, INIT_UNIFORM, cout);
    if (cin != cout) {
        P(skw, "skip.w", cin, INIT_UNIFORM, cout, cin, 1, 1);
        P(skb, "skip.b", cin, INIT_UNIFORM, cout);
    } else {
        r->skw = r->skb = NONE;
    }
#undef P
    size_t B = (size_t)m->max_batch, p = P_(H);
    int G = c->groups;
    r->a1 = abuf(m, B * cin * p);
    r->m1 = abuf(m, B * G);
    r->r1 = abuf(m, B * G);
    r->h1 = abuf(m, B * cout * p);
    r->ep = abuf(m, B * cout);
    r->a2 = abuf(m, B * cout * p);
    r->m2 = abuf(m, B * G);
    r->r2 = abuf(m, B * G);
    stream_init(m, &r->out, cout, H);
    note_scratch(m, cin, H);
    note_scratch(m, cout, H);
    m->flops += 2.0 * p * 9 * ((double)cin * cout + (double)cout * cout);
    if (cin != cout) m->flops += 2.0 * p * cin * cout;
}

static void conv_build(nd_unet *m, convl *cv, const char *pfx, int cin, int cout, int Hin,
                       int stride, int upsample)
{
    char nm[48];
    cv->cin = cin;
    cv->cout = cout;
    cv->Hin = Hin;
    cv->stride = stride;
    snprintf(nm, sizeof nm, "%s.w", pfx);
    cv->w = palloc(m, nm, DIMS(cout, cin, 3, 3), cin * 9, INIT_UNIFORM);
    snprintf(nm, sizeof nm, "%s.b", pfx);
    cv->b = palloc(m, nm, DIMS(cout), cin * 9, INIT_UNIFORM);
    int Hout = (Hin - 1) / stride + 1;
    if (upsample) {
        cv->up = abuf(m, (size_t)m->max_batch * cin * P_(Hin));
        note_scratch(m, cin, Hin);
    }
    stream_init(m, &cv->out, cout, Hout);
    m->flops += 2.0 * P_(Hout) * 9 * cin * cout;
}

/* xorshift64* → uniform [0,1) and Box–Muller normals: the initial weights are a
 * function of the seed alone. */
static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}
static double rng_uniform(uint64_t *s) { return (double)(rng_next(s) >> 11) * 0x1.0p-53; }

static void init_params(nd_unet *m, uint64_t seed)
{
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull;
    if (!s) s = 1;
    for (size_t i = 0; i < m->n_tens; i++) {
        ptensor *t = &m->tens[i];
        float *p = m->params + t->off;
        double bound = t->fan_in > 0 ? 1.0 / sqrt((double)t->fan_in) : 0.0;
        for (size_t j = 0; j < t->numel; j++) {
            switch (t->init) {
            case INIT_UNIFORM: p[j] = (float)((2.0 * rng_uniform(&s) - 1.0) * bound); break;
            case INIT_ONES: p[j] = 1.0f; break;
            case INIT_ZEROS: p[j] = 0.0f; break;
            default: {
                double u1 = rng_uniform(&s), u2 = rng_uniform(&s);
                p[j] = (float)(sqrt(-2.0 * log(u1 + 1e-300)) * cos(2.0 * M_PI * u2));
            }
            }
        }
    }
}

void nd_unet_config_default(nd_unet_config *uc, int C, int L, int max_classes)
{
    memset(uc, 0, sizeof *uc);
    uc->channels = C;
    uc->L = L;
    uc->base = 32;
    uc->levels = 3;
    uc->mult[0] = 1;
    uc->mult[1] = 2;
    uc->mult[2] = 2;
    uc->res_blocks = 2;
    uc->attn_min_res = L / 4;
    uc->groups = 8;
    uc->emb_dim = 128;
    uc->max_classes = max_classes;
}

/* ResBlocks of the network c describes: res_blocks per encoder level, one more per
 * decoder level, two in the middle. */
static long blocks_of(const nd_unet_config *c)
{
    return (long)c->levels * (2L * c->res_blocks + 1) + 2;
}

static int config_check(const nd_unet_config *c, char *why, size_t len)
{
    /* each field against its bounds, naming the first one out of them */
    const struct {
        const char *name;
        int v, lo, hi;
    } f[] = {
        {"image channels", c->channels, 1, ND_UNET_MAX_CHANNELS},
        {"L", c->L, 1, ND_UNET_MAX_L},
        {"base", c->base, 1, ND_UNET_MAX_BASE},
        {"levels", c->levels, 1, ND_UNET_MAX_LEVELS},
        {"res_blocks", c->res_blocks, 1, ND_UNET_MAX_RES_BLOCKS},
        {"attn_min_res", c->attn_min_res, 0, ND_UNET_MAX_L},
        {"groups", c->groups, 1, ND_UNET_MAX_GROUPS},
        {"emb_dim", c->emb_dim, 2, ND_UNET_MAX_EMB},
        {"max_classes", c->max_classes, 0, ND_UNET_MAX_CLASSES},
        {"coords", c->coords, 0, 1},
        {"cond", c->cond, 0, ND_UNET_MAX_COND},
        {"pos_rows", c->pos_rows, 0, ND_UNET_MAX_POS_ROWS},
        {"guide_rows", c->guide_rows, 0, ND_UNET_MAX_GUIDE_ROWS},
    };
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        if (f[i].v < f[i].lo || f[i].v > f[i].hi) {
            snprintf(why, len, "%s %d out of range %d..%d", f[i].name, f[i].v, f[i].lo,
                     f[i].hi);
            return -1;
        }
    if (c->guide_rows == 1) {
        snprintf(why, len, "guide_rows 1: a guidance table has 0 or at least 2 rows");
        return -1;
    }
    if (blocks_of(c) > MAX_BLOCKS) {
        snprintf(why, len, "%d levels of res_blocks %d make %ld ResBlocks, at most %d",
                 c->levels, c->res_blocks, blocks_of(c), MAX_BLOCKS);
        return -1;
    }
    if (c->emb_dim % 2) {
        snprintf(why, len, "emb_dim %d is odd", c->emb_dim);
        return -1;
    }
    if (c->L % (1 << (c->levels - 1))) {
        snprintf(why, len, "L=%d is not divisible by 2^%d (levels-1)", c->L, c->levels - 1);
        return -1;
    }
    for (int l = 0; l < c->levels; l++) {
        if (c->mult[l] < 1 || c->mult[l] > ND_UNET_MAX_MULT) {
            snprintf(why, len, "mult[%d] %d out of range 1..%d", l, c->mult[l],
                     ND_UNET_MAX_MULT);
            return -1;
        }
        if ((c->base * c->mult[l]) % c->groups) {
            snprintf(why, len, "channels %d (base·mult[%d]) not divisible by groups %d",
                     c->base * c->mult[l], l, c->groups);
            return -1;
        }
    }
    return 0;
}

int nd_unet_config_check(const nd_unet_config *uc, nd_error *e)
{
    char why[160];
    if (config_check(uc, why, sizeof why))
        return nd_error_set(e, ND_ECONFIG, "model: %s (at L=%d, %d channels)", why, uc->L,
                            uc->channels);
    return 0;
}

/* The network for uc laid out and, unless dry, allocated and initialised from seed; a dry
 * one holds the parameter table and counts but no memory, and is only freed. */
static nd_unet *build(const nd_unet_config *uc, int max_batch, uint64_t seed, int dry)
{
    char nm[48];
    nd_unet *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->cfg = *uc;
    m->max_batch = max_batch;
    m->dry = dry;
    const nd_unet_config *c = &m->cfg;
    int E = c->emb_dim, G = c->groups;
    size_t B = (size_t)max_batch;

    m->l1w = palloc(m, "temb.lin1.w", DIMS(E, E), E, INIT_UNIFORM);
    m->l1b = palloc(m, "temb.lin1.b", DIMS(E), E, INIT_UNIFORM);
    m->l2w = palloc(m, "temb.lin2.w", DIMS(E, E), E, INIT_UNIFORM);
    m->l2b = palloc(m, "temb.lin2.b", DIMS(E), E, INIT_UNIFORM);
    m->ctab = palloc(m, "cemb.table", DIMS(c->max_classes + 1, E), 0, INIT_NORMAL);
    if (c->pos_rows) m->ptab = palloc(m, "pemb.table", DIMS(c->pos_rows, E), 0, INIT_NORMAL);
    m->tsin = abuf(m, B * E);
    m->e1 = abuf(m, B * E);
    m->e1s = abuf(m, B * E);
    m->e = abuf(m, B * E);
    m->es = abuf(m, B * E);
    m->des = abuf(m, B * E);
    m->de1 = abuf(m, B * E);
    m->y = calloc(B, sizeof(int));
    m->prow = calloc(B, sizeof(int));
    m->grow = calloc(B, sizeof(float));
    int cin = c->channels + c->cond + 2 * c->coords;
    m->xin = abuf(m, B * cin * P_(c->L));
    if (cin != c->channels) m->dxin = abuf(m, B * cin * P_(c->L));

    conv_build(m, &m->conv_in, "conv_in", cin, c->base, c->L, 1, 0);
    stream *skips[MAX_BLOCKS];
    int n_skips = 0;
    skips[n_skips++] = &m->conv_in.out;
    stream *h = &m->conv_in.out;
    int ch = c->base, H = c->L;
    m->enc_first = m->n_rb;
    for (int l = 0; l < c->levels; l++) {
        for (int i = 0; i < c->res_blocks; i++) {
            ND_ASSERT(m->n_rb < MAX_BLOCKS);
            resblock *r = &m->rb[m->n_rb++];
            snprintf(nm, sizeof nm, "enc.%d.%d", l, i);
            rb_build(m, r, nm, ch, c->base * c->mult[l], H);
            r->in = h;
            h = &r->out;
            ch = r->cout;
            skips[n_skips++] = h;
        }
        if (l + 1 < c->levels) {
            snprintf(nm, sizeof nm, "down.%d", l);
            conv_build(m, &m->down[l], nm, ch, ch, H, 2, 0);
            m->down[l].in = h;
            h = &m->down[l].out;
            H /= 2;
            skips[n_skips++] = h;
        }
    }
    m->enc_n = m->n_rb - m->enc_first;

    m->mid0 = m->n_rb++;
    rb_build(m, &m->rb[m->mid0], "mid.b0", ch, ch, H);
    m->rb[m->mid0].in = h;
    h = &m->rb[m->mid0].out;
    m->use_attn = c->attn_min_res > 0 && H <= c->attn_min_res;
    if (m->use_attn) {
        m->attn_C = ch;
        m->attn_H = H;
        m->agw = palloc(m, "mid.attn.gn.w", DIMS(ch), 0, INIT_ONES);
        m->agb = palloc(m, "mid.attn.gn.b", DIMS(ch), 0, INIT_ZEROS);
        m->aqw = palloc(m, "mid.attn.qkv.w", DIMS(3 * ch, ch, 1, 1), ch, INIT_UNIFORM);
        m->aqb = palloc(m, "mid.attn.qkv.b", DIMS(3 * ch), ch, INIT_UNIFORM);
        m->apw = palloc(m, "mid.attn.proj.w", DIMS(ch, ch, 1, 1), ch, INIT_UNIFORM);
        m->apb = palloc(m, "mid.attn.proj.b", DIMS(ch), ch, INIT_UNIFORM);
        size_t p = P_(H);
        m->an = abuf(m, B * ch * p);
        m->am = abuf(m, B * G);
        m->ar = abuf(m, B * G);
        m->qkv = abuf(m, B * 3 * ch * p);
        m->att = abuf(m, B * p * p);
        m->ao = abuf(m, B * ch * p);
        stream_init(m, &m->attn_out, ch, H);
        note_scratch(m, 3 * ch, H);
        m->flops += 2.0 * p * (4.0 * ch * ch) + 2.0 * 2.0 * p * p * ch;
        h = &m->attn_out;
    }
    m->mid1 = m->n_rb++;
    rb_build(m, &m->rb[m->mid1], "mid.b1", ch, ch, H);
    m->rb[m->mid1].in = h;
    h = &m->rb[m->mid1].out;

    m->dec_first = m->n_rb;
    for (int l = c->levels - 1; l >= 0; l--) {
        for (int i = 0; i < c->res_blocks + 1; i++) {
            ND_ASSERT(m->n_rb < MAX_BLOCKS && n_skips > 0);
            resblock *r = &m->rb[m->n_rb++];
            stream *sk = skips[--n_skips];
            snprintf(nm, sizeof nm, "dec.%d.%d", l, i);
            rb_build(m, r, nm, ch + sk->C, c->base * c->mult[l], H);
            r->prev = h;
            r->skip = sk;
            r->in = dry ? NULL : calloc(1, sizeof(stream)); /* the concat; grad: scratch */
            if (!r->in) m->failed |= !dry;
            else {
                r->in->C = ch + sk->C;
                r->in->H = H;
                r->in->v = abuf(m, B * r->in->C * P_(H));
            }
            h = &r->out;
            ch = r->cout;
        }
        if (l > 0) {
            snprintf(nm, sizeof nm, "up.%d", l);
            conv_build(m, &m->up[l], nm, ch, ch, 2 * H, 1, 1);
            m->up[l].in = h;
            h = &m->up[l].out;
            H *= 2;
        }
    }
    m->dec_n = m->n_rb - m->dec_first;
    m->last = h;
    m->ogw = palloc(m, "out.gn.w", DIMS(ch), 0, INIT_ONES);
    m->ogb = palloc(m, "out.gn.b", DIMS(ch), 0, INIT_ZEROS);
    m->ocw = palloc(m, "out.conv.w", DIMS(c->channels, ch, 3, 3), ch * 9, INIT_UNIFORM);
    m->ocb = palloc(m, "out.conv.b", DIMS(c->channels), ch * 9, INIT_UNIFORM);
    /* last, and zero: the same network without the table is a prefix of this one */
    if (c->guide_rows) m->gtab = palloc(m, "gemb.table", DIMS(c->guide_rows, E), 0, INIT_ZEROS);
    m->oa = abuf(m, B * ch * P_(H));
    m->om = abuf(m, B * G);
    m->or_ = abuf(m, B * G);
    m->flops += 2.0 * P_(H) * 9 * ch * c->channels;
    ND_ASSERT(n_skips == 0);

    m->s1 = abuf(m, m->smax);
    m->s2 = abuf(m, m->smax);
    m->s3 = abuf(m, m->smax);
    m->s4 = abuf(m, m->smax);
    m->params = abuf(m, m->n_params);
    m->grads = abuf(m, m->n_params);
    m->grad_arena = abuf(m, m->grad_n);
    if (dry) return m;
    if (m->failed || !m->y || !m->prow || !m->grow) {
        nd_unet_free(m);
        return NULL;
    }
    fix_grad(m, &m->conv_in.out);
    for (int i = 0; i < m->n_rb; i++) fix_grad(m, &m->rb[i].out);
    for (int l = 0; l < c->levels; l++) {
        if (l + 1 < c->levels) fix_grad(m, &m->down[l].out);
        if (l > 0) fix_grad(m, &m->up[l].out);
    }
    if (m->use_attn) fix_grad(m, &m->attn_out);
    init_params(m, seed);
    return m;
}

nd_unet *nd_unet_new(const nd_unet_config *uc, int max_batch, uint64_t seed)
{
    char why[160];
    if (max_batch < 1 || config_check(uc, why, sizeof why)) {
        nd_err("unet: bad configuration: %s", max_batch < 1 ? "max_batch < 1" : why);
        return NULL;
    }
    return build(uc, max_batch, seed, 0);
}

size_t nd_unet_config_params(const nd_unet_config *uc)
{
    char why[160];
    if (config_check(uc, why, sizeof why)) return 0;
    nd_unet *m = build(uc, 1, 0, 1);
    size_t n = m ? m->n_params : 0;
    nd_unet_free(m);
    return n;
}

void nd_unet_free(nd_unet *m)
{
    if (!m) return;
    for (int i = m->dec_first; i < m->dec_first + m->dec_n; i++) free(m->rb[i].in);
    for (int i = 0; i < m->n_bufs; i++) free(m->bufs[i]);
    free(m->y);
    free(m->prow);
    free(m->grow);
    free(m);
}

const nd_unet_config *nd_unet_cfg(const nd_unet *m) { return &m->cfg; }
size_t nd_unet_num_params(const nd_unet *m) { return m->n_params; }
float *nd_unet_params(nd_unet *m) { return m->params; }
float *nd_unet_grads(nd_unet *m) { return m->grads; }
size_t nd_unet_num_tensors(const nd_unet *m) { return m->n_tens; }
double nd_unet_flops_per_image(const nd_unet *m) { return m->flops; }

void nd_unet_tensor(const nd_unet *m, size_t i, const char **name, size_t *offset,
                    size_t *numel)
{
    ND_ASSERT(i < m->n_tens);
    if (name) *name = m->tens[i].name;
    if (offset) *offset = m->tens[i].off;
    if (numel) *numel = m->tens[i].numel;
}

int nd_unet_tensor_shape(const nd_unet *m, size_t i, int shape[4])
{
    ND_ASSERT(i < m->n_tens);
    const ptensor *t = &m->tens[i];
    memcpy(shape, t->shape, sizeof t->shape);
    return t->ndim;
}

void nd_unet_zero_grad(nd_unet *m) { memset(m->grads, 0, sizeof(float) * m->n_params); }

/* ------------------------------------------------------------------------------------ */
/* Forward                                                                                */
/* ------------------------------------------------------------------------------------ */

#define PW(off) (m->params + (off))
#define GW(off) (m->grads + (off))

static void add_inplace(float *restrict y, const float *restrict x, size_t n)
{
    for (size_t i = 0; i < n; i++) y[i] += x[i];
}

static void rb_forward(nd_unet *m, nd_ctx *ctx, resblock *r, int B)
{
    int G = m->cfg.groups, E = m->cfg.emb_dim;
    size_t p = P_(r->H);
    if (r->skip)
        nd_concat_forward(ctx, r->in->v, r->prev->v, r->skip->v, B, r->prev->C, r->skip->C,
                          (int)p);
    const float *x = r->in->v;
    nd_groupnorm_forward(ctx, r->a1, r->m1, r->r1, x, PW(r->gn1w), PW(r->gn1b), B, r->cin,
                         (int)p, G, 1);
    nd_conv2d_forward(ctx, r->h1, r->a1, PW(r->c1w), PW(r->c1b), B, r->cin, r->H, r->H, r->cout,
                      3, 1);
    uint64_t t0 = nd_prof_begin(ctx);
    nd_linear_forward(ctx, r->ep, m->es, PW(r->ew), PW(r->eb), B, E, r->cout);
    nd_add_channel_forward(r->h1, r->ep, B, r->cout, (int)p);
    nd_prof_end(ctx, ND_PROF_EMB, 0, t0);
    nd_groupnorm_forward(ctx, r->a2, r->m2, r->r2, r->h1, PW(r->gn2w), PW(r->gn2b), B, r->cout,
                         (int)p, G, 1);
    nd_conv2d_forward(ctx, r->out.v, r->a2, PW(r->c2w), PW(r->c2b), B, r->cout, r->H, r->H,
                      r->cout, 3, 1);
    if (r->skw != NONE) {
        nd_conv2d_forward(ctx, m->s1, x, PW(r->skw), PW(r->skb), B, r->cin, r->H, r->H, r->cout,
                          1, 1);
        x = m->s1;
    }
    t0 = nd_prof_begin(ctx);
    add_inplace(r->out.v, x, (size_t)B * r->cout * p);
    nd_prof_end(ctx, ND_PROF_OTHER, 0, t0);
}

static void attn_forward(nd_unet *m, nd_ctx *ctx, const stream *in, int B)
{
    int C = m->attn_C, p = (int)P_(m->attn_H);
    nd_groupnorm_forward(ctx, m->an, m->am, m->ar, in->v, PW(m->agw), PW(m->agb), B, C, p,
                         m->cfg.groups, 0);
    nd_conv2d_forward(ctx, m->qkv, m->an, PW(m->aqw), PW(m->aqb), B, C, m->attn_H, m->attn_H,
                      3 * C, 1, 1);
    nd_attention_forward(ctx, m->ao, m->att, m->qkv, B, C, p);
    nd_conv2d_forward(ctx, m->attn_out.v, m->ao, PW(m->apw), PW(m->apb), B, C, m->attn_H,
                      m->attn_H, C, 1, 1);
    uint64_t t0 = nd_prof_begin(ctx);
    add_inplace(m->attn_out.v, in->v, (size_t)B * C * p);
    nd_prof_end(ctx, ND_PROF_OTHER, 0, t0);
}

static void conv_forward(nd_ctx *ctx, nd_unet *m, convl *cv, const float *x, int B)
{
    nd_conv2d_forward(ctx, cv->out.v, x, PW(cv->w), PW(cv->b), B, cv->cin, cv->Hin, cv->Hin,
                      cv->cout, 3, cv->stride);
}

/* The first layer's input: the images, each followed by its conditioning planes (zeros
 * without nd_unet_set_cond) and its coordinate planes (row i and column j as
 * 2i/(L-1) - 1) when the network has them. */
static void set_input(nd_unet *m, const float *x, int B)
{
    const nd_unet_config *c = &m->cfg;
    size_t P = P_(c->L), img = (size_t)c->channels * P, nc = (size_t)c->cond * P;
    if (!c->coords && !c->cond) {
        memcpy(m->xin, x, sizeof(float) * B * img);
        m->cond = NULL;
        return;
    }
    int L = c->L;
    float step = L > 1 ? 2.0f / (float)(L - 1) : 0.0f;
    for (int b = 0; b < B; b++) {
        float *in = m->xin + (size_t)b * (img + nc + 2 * P * c->coords);
        memcpy(in, x + (size_t)b * img, sizeof(float) * img);
        if (nc && m->cond) memcpy(in + img, m->cond + (size_t)b * nc, sizeof(float) * nc);
        else if (nc) memset(in + img, 0, sizeof(float) * nc);
        for (int i = 0; c->coords && i < L; i++)
            for (int j = 0; j < L; j++) {
                in[img + nc + (size_t)i * L + j] = (float)i * step - 1.0f;
                in[img + nc + P + (size_t)i * L + j] = (float)j * step - 1.0f;
            }
    }
    m->cond = NULL;
}

void nd_unet_set_cond(nd_unet *m, const float *cond) { m->cond = cond; }

void nd_unet_set_pos(nd_unet *m, const int *rows) { m->pos = rows; }

void nd_unet_set_guide(nd_unet *m, const float *rows) { m->guide = rows; }

void nd_unet_forward(nd_unet *m, nd_ctx *ctx, float *out, const float *x, const float *t,
                     const int *y, int B)
{
    ND_ASSERT(B >= 1 && B <= m->max_batch);
    const nd_unet_config *c = &m->cfg;
    int E = c->emb_dim, K = c->max_classes + 1;
    m->B = B;
    set_input(m, x, B);
    memcpy(m->y, y, sizeof(int) * B);

    uint64_t t0 = nd_prof_begin(ctx);
    nd_timestep_embedding(m->tsin, t, B, E);
    nd_linear_forward(ctx, m->e1, m->tsin, PW(m->l1w), PW(m->l1b), B, E, E);
    nd_silu_forward(m->e1s, m->e1, (size_t)B * E);
    nd_linear_forward(ctx, m->e, m->e1s, PW(m->l2w), PW(m->l2b), B, E, E);
    nd_class_embedding_forward(m->es, PW(m->ctab), y, B, K, E); /* es as a temporary */
    add_inplace(m->e, m->es, (size_t)B * E);
    if (c->pos_rows) {
        for (int b = 0; b < B; b++) {
            m->prow[b] = m->pos ? m->pos[b] : 0;
            ND_ASSERT(m->prow[b] >= 0 && m->prow[b] < c->pos_rows);
        }
        nd_class_embedding_forward(m->es, PW(m->ptab), m->prow, B, c->pos_rows, E);
        add_inplace(m->e, m->es, (size_t)B * E);
    }
    if (c->guide_rows) {
        for (int b = 0; b < B; b++) m->grow[b] = m->guide ? m->guide[b] : 0.0f;
        nd_lerp_embedding_forward(m->es, PW(m->gtab), m->grow, B, c->guide_rows, E);
        add_inplace(m->e, m->es, (size_t)B * E);
    }
    m->pos = NULL;
    m->guide = NULL;
    nd_silu_forward(m->es, m->e, (size_t)B * E);
    nd_prof_end(ctx, ND_PROF_EMB, 0, t0);

    conv_forward(ctx, m, &m->conv_in, m->xin, B);
    int ri = m->enc_first;
    for (int l = 0; l < c->levels; l++) {
        for (int i = 0; i < c->res_blocks; i++) rb_forward(m, ctx, &m->rb[ri++], B);
        if (l + 1 < c->levels) conv_forward(ctx, m, &m->down[l], m->down[l].in->v, B);
    }
    rb_forward(m, ctx, &m->rb[m->mid0], B);
    if (m->use_attn) attn_forward(m, ctx, &m->rb[m->mid0].out, B);
    rb_forward(m, ctx, &m->rb[m->mid1], B);
    ri = m->dec_first;
    for (int l = c->levels - 1; l >= 0; l--) {
        for (int i = 0; i < c->res_blocks + 1; i++) rb_forward(m, ctx, &m->rb[ri++], B);
        if (l > 0) {
            convl *cv = &m->up[l];
            nd_upsample2_forward(ctx, cv->up, cv->in->v, B, cv->cin, cv->Hin / 2, cv->Hin / 2);
            conv_forward(ctx, m, cv, cv->up, B);
        }
    }
    const stream *h = m->last;
    nd_groupnorm_forward(ctx, m->oa, m->om, m->or_, h->v, PW(m->ogw), PW(m->ogb), B, h->C,
                         (int)P_(h->H), c->groups, 1);
    nd_conv2d_forward(ctx, out, m->oa, PW(m->ocw), PW(m->ocb), B, h->C, h->H, h->H, c->channels,
                      3, 1);
}

/* ------------------------------------------------------------------------------------ */
/* Backward                                                                               */
/* ------------------------------------------------------------------------------------ */

/* dx: where the input gradient accumulates (the stream's, or scratch s4 for concat). */
static void rb_backward(nd_unet *m, nd_ctx *ctx, resblock *r, float *dx, int B)
{
    int G = m->cfg.groups, E = m->cfg.emb_dim;
    int p = (int)P_(r->H);
    const float *x = r->in->v, *dout = r->out.g;
    size_t nin = (size_t)B * r->cin * p, nout = (size_t)B * r->cout * p;
    uint64_t t0 = nd_prof_begin(ctx);
    if (r->skw == NONE) add_inplace(dx, dout, nin);
    nd_prof_end(ctx, ND_PROF_OTHER, 1, t0);
    if (r->skw != NONE)
        nd_conv2d_backward(ctx, dx, GW(r->skw), GW(r->skb), dout, x, PW(r->skw), B, r->cin,
                           r->H, r->H, r->cout, 1, 1);
    float *da2 = m->s1, *dh1 = m->s2, *da1 = m->s3;
    memset(da2, 0, sizeof(float) * nout);
    nd_conv2d_backward(ctx, da2, GW(r->c2w), GW(r->c2b), dout, r->a2, PW(r->c2w), B, r->cout,
                       r->H, r->H, r->cout, 3, 1);
    memset(dh1, 0, sizeof(float) * nout);
    nd_groupnorm_backward(ctx, dh1, GW(r->gn2w), GW(r->gn2b), da2, r->h1, r->m2, r->r2,
                          PW(r->gn2w), PW(r->gn2b), B, r->cout, p, G, 1);
    t0 = nd_prof_begin(ctx);
    float *dep = da1; /* (B,cout), consumed before da1 is needed */
    memset(dep, 0, sizeof(float) * B * r->cout);
    nd_add_channel_backward(dep, dh1, B, r->cout, p);
    nd_linear_backward(ctx, m->des, GW(r->ew), GW(r->eb), dep, m->es, PW(r->ew), B, E, r->cout);
    nd_prof_end(ctx, ND_PROF_EMB, 1, t0);
    memset(da1, 0, sizeof(float) * nin);
    nd_conv2d_backward(ctx, da1, GW(r->c1w), GW(r->c1b), dh1, r->a1, PW(r->c1w), B, r->cin,
                       r->H, r->H, r->cout, 3, 1);
    nd_groupnorm_backward(ctx, dx, GW(r->gn1w), GW(r->gn1b), da1, x, r->m1, r->r1, PW(r->gn1w),
                          PW(r->gn1b), B, r->cin, p, G, 1);
}

static void attn_backward(nd_unet *m, nd_ctx *ctx, const stream *in, int B)
{
    int C = m->attn_C, H = m->attn_H, p = (int)P_(H);
    const float *dy = m->attn_out.g;
    uint64_t t0 = nd_prof_begin(ctx);
    add_inplace(in->g, dy, (size_t)B * C * p);
    nd_prof_end(ctx, ND_PROF_OTHER, 1, t0);
    float *dao = m->s1, *dqkv = m->s2, *dan = m->s3;
    memset(dao, 0, sizeof(float) * B * C * p);
    nd_conv2d_backward(ctx, dao, GW(m->apw), GW(m->apb), dy, m->ao, PW(m->apw), B, C, H, H, C,
                       1, 1);
    memset(dqkv, 0, sizeof(float) * B * 3 * C * p);
    nd_attention_backward(ctx, dqkv, dao, m->qkv, m->att, B, C, p);
    memset(dan, 0, sizeof(float) * B * C * p);
    nd_conv2d_backward(ctx, dan, GW(m->aqw), GW(m->aqb), dqkv, m->an, PW(m->aqw), B, C, H, H,
                       3 * C, 1, 1);
    nd_groupnorm_backward(ctx, in->g, GW(m->agw), GW(m->agb), dan, in->v, m->am, m->ar,
                          PW(m->agw), PW(m->agb), B, C, p, m->cfg.groups, 0);
}

void nd_unet_backward(nd_unet *m, nd_ctx *ctx, float *dx, const float *dout)
{
    const nd_unet_config *c = &m->cfg;
    int B = m->B, E = c->emb_dim, K = c->max_classes + 1;
    ND_ASSERT(B >= 1);
    uint64_t t0 = nd_prof_begin(ctx);
    memset(m->grad_arena, 0, sizeof(float) * m->grad_n);
    memset(m->des, 0, sizeof(float) * (size_t)B * E);
    nd_prof_end(ctx, ND_PROF_OTHER, 1, t0);

    const stream *h = m->last;
    int p0 = (int)P_(h->H);
    float *doa = m->s1;
    memset(doa, 0, sizeof(float) * B * h->C * p0);
    nd_conv2d_backward(ctx, doa, GW(m->ocw), GW(m->ocb), dout, m->oa, PW(m->ocw), B, h->C, h->H,
                       h->H, c->channels, 3, 1);
    nd_groupnorm_backward(ctx, h->g, GW(m->ogw), GW(m->ogb), doa, h->v, m->om, m->or_,
                          PW(m->ogw), PW(m->ogb), B, h->C, p0, c->groups, 1);

    int ri = m->dec_first + m->dec_n;
    for (int l = 0; l < c->levels; l++) {
        if (l > 0) {
            convl *cv = &m->up[l];
            float *dup = m->s1;
            size_t n = (size_t)B * cv->cin * P_(cv->Hin);
            memset(dup, 0, sizeof(float) * n);
            nd_conv2d_backward(ctx, dup, GW(cv->w), GW(cv->b), cv->out.g, cv->up, PW(cv->w), B,
                               cv->cin, cv->Hin, cv->Hin, cv->cout, 3, 1);
            nd_upsample2_backward(ctx, cv->in->g, dup, B, cv->cin, cv->Hin / 2, cv->Hin / 2);
        }
        for (int i = 0; i < c->res_blocks + 1; i++) {
            resblock *r = &m->rb[--ri];
            float *dcat = m->s4;
            memset(dcat, 0, sizeof(float) * B * r->cin * P_(r->H));
            rb_backward(m, ctx, r, dcat, B);
            nd_concat_backward(ctx, r->prev->g, r->skip->g, dcat, B, r->prev->C, r->skip->C,
                               (int)P_(r->H));
        }
    }
    rb_backward(m, ctx, &m->rb[m->mid1], m->rb[m->mid1].in->g, B);
    if (m->use_attn) attn_backward(m, ctx, &m->rb[m->mid0].out, B);
    rb_backward(m, ctx, &m->rb[m->mid0], m->rb[m->mid0].in->g, B);
    ri = m->enc_first + m->enc_n;
    for (int l = c->levels - 1; l >= 0; l--) {
        if (l + 1 < c->levels) {
            convl *cv = &m->down[l];
            nd_conv2d_backward(ctx, cv->in->g, GW(cv->w), GW(cv->b), cv->out.g, cv->in->v,
                               PW(cv->w), B, cv->cin, cv->Hin, cv->Hin, cv->cout, 3, 2);
        }
        for (int i = 0; i < c->res_blocks; i++) {
            resblock *r = &m->rb[--ri];
            rb_backward(m, ctx, r, r->in->g, B);
        }
    }
    /* with other input planes the input gradient goes to scratch, and the images' part
     * is added to dx */
    int cin = m->conv_in.cin;
    float *dxc = dx && cin != c->channels ? m->dxin : dx;
    size_t P = P_(c->L), img = (size_t)c->channels * P;
    if (dxc != dx) memset(dxc, 0, sizeof(float) * B * cin * P);
    nd_conv2d_backward(ctx, dxc, GW(m->conv_in.w), GW(m->conv_in.b), m->conv_in.out.g, m->xin,
                       PW(m->conv_in.w), B, cin, c->L, c->L, c->base, 3, 1);
    if (dxc != dx)
        for (int b = 0; b < B; b++)
            add_inplace(dx + (size_t)b * img, dxc + (size_t)b * cin * P, img);

    t0 = nd_prof_begin(ctx);
    /* embeddings: es = silu(e), e = lin2(silu(lin1(sin(t)))) + table[y] + ptable[row] +
     * gtable[guidance row] */
    float *de = m->de1;
    memset(de, 0, sizeof(float) * (size_t)B * E);
    nd_silu_backward(de, m->des, m->e, (size_t)B * E);
    nd_class_embedding_backward(GW(m->ctab), de, m->y, B, K, E);
    if (c->pos_rows) nd_class_embedding_backward(GW(m->ptab), de, m->prow, B, c->pos_rows, E);
    if (c->guide_rows)
        nd_lerp_embedding_backward(GW(m->gtab), de, m->grow, B, c->guide_rows, E);
    float *de1s = m->des; /* des is consumed: reuse it */
    memset(de1s, 0, sizeof(float) * (size_t)B * E);
    nd_linear_backward(ctx, de1s, GW(m->l2w), GW(m->l2b), de, m->e1s, PW(m->l2w), B, E, E);
    memset(de, 0, sizeof(float) * (size_t)B * E);
    nd_silu_backward(de, de1s, m->e1, (size_t)B * E);
    nd_linear_backward(ctx, NULL, GW(m->l1w), GW(m->l1b), de, m->tsin, PW(m->l1w), B, E, E);
    nd_prof_end(ctx, ND_PROF_EMB, 1, t0);
}
