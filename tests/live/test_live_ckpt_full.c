/*
 * test_live_ckpt_full.c — `netdiffus live` and `train` when their checkpoints cannot be
 * written: the checkpoint's folder is a tmpfs (mounted by the test in a private mount
 * namespace: root only, else skipped) that holds the previous checkpoint but has no room
 * for a second copy, so every write fails with ENOSPC. Both warn and keep training to
 * --steps, leave the previous checkpoint as it was with no temporary file beside it, and
 * write the last one to the fallback file in $TMPDIR, which they name on stderr (and
 * live in its --stats file); the exit code is 1.
 */
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include "live_test.h"

static char nd[1024];

/* Runs netdiffus with args and TMPDIR set to the scratch directory; output to log. */
static int run_nd(const char *args, const char *log)
{
    return test_sh("TMPDIR=%s %s %s >%s 2>&1", tmp_dir(), nd, args, log);
}

static long long file_size(const char *path)
{
    struct stat st;
    CHECK_EQ(stat(path, &st), 0);
    return (long long)st.st_size;
}

/* A tmpfs at dir, holding a copy of prev as name, with room for half a copy more. */
static void small_fs_with(const char *dir, const char *prev, const char *name)
{
    CHECK_EQ(mkdir(dir, 0755), 0);
    char opt[64];
    snprintf(opt, sizeof opt, "size=%lld", file_size(prev) * 3 / 2);
    CHECK_EQ(mount("tmpfs", dir, "tmpfs", 0, opt), 0);
    CHECK_EQ(test_sh("cp %s %s/%s", prev, dir, name), 0);
}

/* The path in "key":"..." of a JSON line (static buffer), "" when absent. */
static const char *json_str(const char *line, const char *key)
{
    static char v[1024];
    char k[96];
    snprintf(k, sizeof k, "\"%s\":\"", key);
    const char *p = strstr(line, k);
    v[0] = 0;
    if (p) sscanf(p + strlen(k), "%1023[^\"]", v);
    return v;
}

int main(void)
{
    if (geteuid() != 0 || unshare(CLONE_NEWNS) != 0 ||
        mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) {
        fprintf(stderr, "skipped: needs root and a mount namespace\n");
        return 77;
    }
    snprintf(nd, sizeof nd, "%s", ND_BINARY);
    char pcap[512], conf[512], prev[512], src[600], a[4096], log[512];
    LIVE_PATH(pcap, "two.pcap");
    LIVE_PATH(conf, "live.yaml");
    LIVE_PATH(prev, "prev.ndm");
    LIVE_PATH(log, "log.txt");
    snprintf(src, sizeof src, "pcap:%s", pcap);
    live_write_two_class_pcap(pcap, 12, 48, 200, 1);
    live_write_config(conf, src, prev, NULL);

    /* live: an earlier run's checkpoint, then a run whose checkpoints find no room */
    snprintf(a, sizeof a, "live -c %s --speed 0 --steps 20", conf);
    if (run_nd(a, log)) CHECK_FAIL_("live: %s", live_text(log));
    char small[512], ckpt[600], stats[512];
    LIVE_PATH(small, "small");
    LIVE_PATH(stats, "full.jsonl");
    small_fs_with(small, prev, "live.ndm");
    snprintf(ckpt, sizeof ckpt, "%s/live.ndm", small);
    snprintf(a, sizeof a,
             "live -c %s --speed 0 --steps 60 --stats %s --set live.checkpoint=%s "
             "--set live.checkpoint_every=20",
             conf, stats, ckpt);
    CHECK_EQ(run_nd(a, log), 1);
    char *text = live_text(log);
    fprintf(stderr, "live:\n%s", text);
    CHECK_CONTAINS(text, "checkpoint at step 20 not written");
    CHECK_CONTAINS(text, "No space left on device");
    CHECK_CONTAINS(text, "training goes on");
    CHECK_CONTAINS(text, "the last checkpoint is in ");
    free(text);
    CHECK_EQ(test_sh("cmp -s %s %s", ckpt, prev), 0);             /* the previous one */
    CHECK_EQ(test_sh("test $(ls -A %s | wc -l) = 1", small), 0); /* no temporary */
    const char *l = live_last_line(stats);
    CHECK_CONTAINS(l, "\"final\":true");
    CHECK_EQ(live_json(l, "step"), 60); /* trained on to --steps */
    char fallback[1024];
    snprintf(fallback, sizeof fallback, "%s", json_str(l, "checkpoint_fallback"));
    CHECK_CONTAINS(fallback, tmp_dir());
    CHECK_CONTAINS(fallback, "live.ndm");
    snprintf(a, sizeof a, "inspect %s | grep -q 'training: 60 steps'", fallback);
    CHECK_EQ(test_sh("%s %s", nd, a), 0);
    umount(small);
    rmdir(small);

    /* train: the same, for its periodic checkpoints and the end */
    char ds[512], model0[512], small2[512], model[600];
    LIVE_PATH(ds, "two.ndd");
    LIVE_PATH(model0, "train0.ndm");
    LIVE_PATH(small2, "small2");
    snprintf(a, sizeof a, "capture -c %s -o %s", conf, ds);
    if (run_nd(a, log)) CHECK_FAIL_("capture: %s", live_text(log));
    snprintf(a, sizeof a, "train -c %s %s -o %s --steps 10 --set sample.calibrate=0", conf,
             ds, model0);
    if (run_nd(a, log)) CHECK_FAIL_("train: %s", live_text(log));
    small_fs_with(small2, model0, "m.ndm");
    snprintf(model, sizeof model, "%s/m.ndm", small2);
    snprintf(a, sizeof a,
             "train -c %s %s -o %s --steps 30 --set train.checkpoint_every=10 "
             "--set sample.calibrate=0",
             conf, ds, model);
    CHECK_EQ(run_nd(a, log), 1);
    text = live_text(log);
    fprintf(stderr, "train:\n%s", text);
    CHECK_CONTAINS(text, "step 10: checkpoint not written");
    CHECK_CONTAINS(text, "step 20: checkpoint not written");
    CHECK_CONTAINS(text, "No space left on device");
    const char *in = strstr(text, "the trained model is in ");
    CHECK(in);
    snprintf(fallback, sizeof fallback, "%s", in + strlen("the trained model is in "));
    *strstr(fallback, " instead") = 0;
    free(text);
    CHECK_CONTAINS(fallback, tmp_dir());
    CHECK_EQ(test_sh("cmp -s %s %s", model, model0), 0);
    CHECK_EQ(test_sh("test $(ls -A %s | wc -l) = 1", small2), 0);
    snprintf(a, sizeof a, "inspect %s | grep -q 'training: 30 steps'", fallback);
    CHECK_EQ(test_sh("%s %s", nd, a), 0);
    umount(small2);
    rmdir(small2);
    printf("live checkpoint on a full disk: ok\n");
    return 0;
}
