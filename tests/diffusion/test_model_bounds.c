/*
 * test_model_bounds.c — model files whose fields are out of their bounds (docs/FORMATS.md,
 * §3), crafted from a good file section by section: each is refused by nd_dm_load, before
 * anything is sized by it, with a message naming file, section, field, value and bound,
 * and `inspect` exits 1 on it; a tiny file claiming a huge network is refused without
 * allocating it (in a child with little address space); a model whose weights overflow
 * fails `sample` and `replay` instead of writing nan or sending nothing; a dataset whose
 * values are not counts fails `replay --series` and `inspect`.
 */
#include <math.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../base/tmpdir.h"
#include "check.h"
#include "model.h"
#include "run_cli.h"
#include "tiny_model.h"

enum { L = 8, C = 2 };

/* DMCF offsets (docs/FORMATS.md): u32 fields, then the u64 parameter count; the sampling
 * part after the version-1 record (148 bytes) and the training part (88). */
#define DMCF_U32(i)     (4 * (i))
#define DMCF_NPARAMS    (23 * 4)
#define DMCF_STEP       (23 * 4 + 8)
#define DMCF_SAMPLE_BAT (148 + 88 + 6 * 4)
#define DECO_TARGETS    80 /* DECO's header; the first target's idle share follows */

/* One change to a section of the good file: a u32, u64 or f32 at off, or every f32. */
typedef struct edit {
    uint32_t tag;
    size_t off;
    char kind; /* '4', '8', 'f', 'F' (every float of the section) */
    double v;
} edit;
static edit edits[8];
static int n_edits;

static void apply_edits(ndf_writer *w, uint32_t tag, const void *data, size_t len)
{
    unsigned char *b = malloc(len + 1);
    CHECK(b);
    memcpy(b, data, len);
    for (int i = 0; i < n_edits; i++) {
        const edit *x = &edits[i];
        if (x->tag != tag) continue;
        if (x->kind == '4') nd_put_u32(b + x->off, (uint32_t)x->v);
        if (x->kind == '8') nd_put_u64(b + x->off, (uint64_t)x->v);
        if (x->kind == 'f') nd_put_f32(b + x->off, (float)x->v);
        for (size_t j = 0; x->kind == 'F' && j + 4 <= len; j += 4)
            nd_put_f32(b + j, (float)x->v);
    }
    nd_error e = {0};
    CHECK_EQ(ndf_write_section(w, tag, b, len, &e), 0);
    free(b);
}

static char good[512];

/* good with the edits, as a file named name (its path, in a ring of 8). */
#define craft(name, ...)                                                                       \
    craft_((name), (const edit[]){__VA_ARGS__},                                                \
           sizeof((const edit[]){__VA_ARGS__}) / sizeof(edit))
static const char *craft_(const char *name, const edit *e, size_t n)
{
    static char ring[8][512];
    static int at;
    char *p = ring[at++ % 8];
    snprintf(p, 512, "%s", tmp_path(name));
    memcpy(edits, e, n * sizeof *e);
    n_edits = (int)n;
    tiny_rewrite(good, p, apply_edits);
    return p;
}

#define DMCF ND_FOURCC('D', 'M', 'C', 'F')

/* nd_dm_load refuses path with ND_EFORMAT and a message holding path and each needle;
 * `inspect` exits 1 saying the same. */
static void refused(const char *path, const char *n1, const char *n2)
{
    nd_error e = {0};
    nd_dm *m = nd_dm_load(path, ND_DM_BATCH_SAMPLE, NULL, &e);
    if (m) CHECK_FAIL_("%s loaded", path);
    CHECK_EQ(e.code, ND_EFORMAT);
    CHECK_CONTAINS(e.msg, path);
    CHECK_CONTAINS(e.msg, n1);
    CHECK_CONTAINS(e.msg, n2);
    EXPECT(1, "inspect", path);
    CHECK_CONTAINS(err_text, n1);
    CHECK_CONTAINS(err_text, n2);
}

static void make_good(void)
{
    nd_config cfg;
    tiny_model_config(&cfg, "model.max_classes=2", "sample.steps=2", "sample.batch=4",
                      "sample.calibrate=0", "sample.guidance=1");
    const char *names[] = {"bytes_down", "bytes_up"};
    nd_dataset *ds = nd_dataset_new(C, names, L, 100000000ull);
    CHECK(ds);
    CHECK_EQ(nd_dataset_class(ds, "web"), 0);
    CHECK_EQ(nd_dataset_class(ds, "voip"), 1);
    for (int w = 0; w < 8; w++) {
        float x[C * L];
        for (int i = 0; i < C * L; i++) x[i] = (float)((w + i) % 3 ? 0 : 1000 * (w % 2 + 1));
        CHECK_EQ(nd_dataset_append(ds, (uint16_t)(w % 2), (uint64_t)w, x), 0);
    }
    nd_error e = {0};
    nd_dm *m = tiny_dm_new(&cfg, ds, &e);
    if (!m) CHECK_FAIL_("new: %s", e.msg);
    snprintf(good, sizeof good, "%s", tmp_path("good.ndm"));
    CHECK_EQ(nd_dm_save(m, good, &e), 0);
    nd_dm_free(m);
    nd_dataset_free(ds);
    nd_config_free(&cfg);
}

/* The network record against its bounds: a field above its bound, a combination that
 * makes more ResBlocks than the network holds, a parameter count other than the one the
 * record implies, a setting that sizes memory. */
static void test_network_record(void)
{
    /* res_blocks 100: before, sample and replay aborted on an assertion in nd_unet_new */
    const char *f = craft("rb100.ndm", {DMCF, DMCF_U32(11), '4', 100});
    refused(f, "section DMCF", "res_blocks 100 out of range 1..8");
    EXPECT(1, "sample", f, "--count", "1", "--csv", tmp_path("rb100.csv"));
    CHECK_CONTAINS(err_text, "res_blocks 100");
    /* each level's blocks within bounds, their sum not */
    nd_unet_config u;
    nd_unet_config_default(&u, 4, 32, 2);
    u.levels = 6;
    u.res_blocks = 8;
    for (int l = 0; l < 6; l++) u.mult[l] = 1;
    nd_error e = {0};
    CHECK_EQ(nd_unet_config_check(&u, &e), ND_ECONFIG);
    CHECK_CONTAINS(e.msg, "make 104 ResBlocks, at most 64");
    refused(craft("emb.ndm", {DMCF, DMCF_U32(14), '4', 1 << 20}), "section DMCF",
            "emb_dim 1048576 out of range 2..2048");
    refused(craft("classes.ndm", {DMCF, DMCF_U32(15), '4', 100000}), "section DMCF",
            "max_classes 100000 out of range 0..1024");
    refused(craft("base.ndm", {DMCF, DMCF_U32(3), '4', 0x80000000u}), "section DMCF",
            "base 2147483648 out of range");
    refused(craft("nparams.ndm", {DMCF, DMCF_NPARAMS, '8', 12345}), "section DMCF",
            "parameter count 12345, the network it describes has");
    refused(craft("batch.ndm", {DMCF, DMCF_SAMPLE_BAT, '4', 1000000}), "section DMCF",
            "sample.batch 1000000 out of range 1..4096");
}

/* A file under a megabyte whose record describes a network of billions of parameters
 * (parameter count included, so that the record agrees with itself) is refused by its
 * PARM length before anything is allocated: in a child whose address space is 1 GiB
 * (not under ASan, which reserves terabytes of shadow), the load fails with the format
 * error, not with "out of memory". */
static void test_huge_network(void)
{
    nd_error e = {0};
    nd_dm *m = nd_dm_load(good, ND_DM_BATCH_SAMPLE, NULL, &e);
    CHECK(m);
    nd_unet_config u = nd_dm_get_settings(m)->net;
    nd_dm_free(m);
    u.base = 512;
    u.mult[0] = u.mult[1] = 16;
    u.emb_dim = 2048;
    size_t n = nd_unet_config_params(&u);
    CHECK(n > (size_t)1e9);
    const char *f =
        craft("huge.ndm", {DMCF, DMCF_U32(3), '4', 512}, {DMCF, DMCF_U32(5), '4', 16},
              {DMCF, DMCF_U32(6), '4', 16}, {DMCF, DMCF_U32(14), '4', 2048},
              {DMCF, DMCF_NPARAMS, '8', (double)n});
    size_t fl;
    free(read_bytes(f, &fl));
    CHECK(fl < (1u << 20));
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
#ifndef __SANITIZE_ADDRESS__
        struct rlimit rl = {1ul << 30, 1ul << 30};
        if (setrlimit(RLIMIT_AS, &rl)) _exit(3);
#endif
        nd_error ce = {0};
        nd_dm *cm = nd_dm_load(f, ND_DM_BATCH_SAMPLE, NULL, &ce);
        if (cm) _exit(4);
        fprintf(stderr, "huge network: %s\n", ce.msg);
        _exit(ce.code == ND_EFORMAT && strstr(ce.msg, "section PARM holds") ? 0 : 5);
    }
    int st;
    CHECK_EQ(waitpid(pid, &st, 0), pid);
    CHECK(WIFEXITED(st));
    CHECK_EQ(WEXITSTATUS(st), 0);
    EXPECT(1, "inspect", f);
    CHECK_CONTAINS(err_text, "section PARM holds");
}

/* Values the decoder takes: class scales whose expm1 overflows, an idle share above 1. */
static void test_tables(void)
{
    refused(craft("scal.ndm", {ND_FOURCC('S', 'C', 'A', 'L'), 4, 'f', 1e30}), "section SCAL",
            "expected 0 <= lo <= hi <= 88");
    refused(craft("deco.ndm", {ND_FOURCC('D', 'E', 'C', 'O'), DECO_TARGETS, 'f', 10.5}),
            "section DECO", "idle[0] is 10.5, expected NaN or a share in 0..1");
}

/* Weights that overflow make inf and NaN images: sampling fails, saying so, where it
 * used to decode them as idle bins (sample --csv exited 0, replay sent no packet). */
static void test_overflowing_weights(void)
{
    /* trained, as far as replay can tell */
    const char *f = craft("inf.ndm", {ND_FOURCC('E', 'M', 'A', 'W'), 0, 'F', 1e38},
                          {DMCF, DMCF_STEP, '8', 50});
    nd_error e = {0};
    nd_dm *m = nd_dm_load(f, ND_DM_BATCH_SAMPLE, NULL, &e);
    if (!m) CHECK_FAIL_("load: %s", e.msg); /* large weights are valid numbers */
    float x[2 * C * L];
    nd_rng r;
    nd_rng_seed(&r, 1);
    CHECK_EQ(nd_dm_sample(m, 0, 2, x, NULL, &r, &e), ND_EFORMAT);
    CHECK_CONTAINS(e.msg, "class 'web': the network produced");
    nd_dm_free(m);
    const char *csv = tmp_path("inf.csv");
    EXPECT(1, "sample", f, "--count", "2", "--csv", csv);
    CHECK_CONTAINS(err_text, "overflow");
    CHECK(access(csv, F_OK) != 0);
    char to[600];
    snprintf(to, sizeof to, "pcap:%s", tmp_path("inf.pcap"));
    EXPECT(1, "replay", f, "--flows", "2", "--to", to);
    CHECK_CONTAINS(err_text, "overflow");
}

/* Dataset values that are not counts (NaN, infinity, negative): `replay --series` fails
 * where it sent no packet and exited 0, and `inspect` fails. */
static void test_dataset_values(void)
{
    const float bad[] = {NAN, INFINITY, -1.0f};
    for (int k = 0; k < 3; k++) {
        const char *names[] = {"bytes_down", "bytes_up"};
        nd_dataset *ds = nd_dataset_new(C, names, L, 100000000ull);
        CHECK_EQ(nd_dataset_class(ds, "web"), 0);
        float x[C * L] = {1500, 0, 3000};
        x[L + 5] = bad[k];
        CHECK_EQ(nd_dataset_append(ds, 0, 1, x), 0);
        char p[512];
        snprintf(p, sizeof p, "%s", tmp_path("bad.ndd"));
        nd_error e = {0};
        CHECK_EQ(nd_dataset_save(ds, p, &e), 0);
        nd_dataset_free(ds);
        char to[600];
        snprintf(to, sizeof to, "pcap:%s", tmp_path("bad.pcap"));
        EXPECT(1, "replay", "--series", p, "--to", to);
        CHECK_CONTAINS(err_text, "section VALS: window 0, channel bytes_up, bin 5");
        EXPECT(1, "inspect", p);
        CHECK_CONTAINS(err_text, "expected a finite value >= 0");
    }
}

int main(void)
{
    make_good();
    EXPECT(0, "inspect", good);
    test_network_record();
    test_huge_network();
    test_tables();
    test_overflowing_weights();
    test_dataset_values();
    return 0;
}
