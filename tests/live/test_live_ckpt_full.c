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

/* A tmpfs at dir, holding a copy of prev as name (its path into file), with room for
 * half a copy more. */
static void small_fs_with(const char *dir, const char *prev, const char *name, char *file,
                          size_t len)
{
    snprintf(file, len, "%s/%s", dir, name);
    CHECK_EQ(mkdir(dir, 0755), 0);
    char opt[64];
    snprintf(opt, sizeof opt, "size=%lld", file_size(prev) * 3 / 2);
    CHECK_EQ(mount("tmpfs", dir, "tmpfs", 0, opt), 0);
    CHECK_EQ(test_sh("cp %s %s", prev, file), 0);
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

/* Runs netdiffus with the arguments fmt makes, which must fail with exit 1 on the full
 * disk; returns its output (malloc'd), shown on stderr. */
static char *run_full(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *run_full(const char *fmt, ...)
{
    char args[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    const char *log = tmp_path("log.txt");
    CHECK_EQ(run_nd(args, log), 1);
    char *text = live_text(log);
    fprintf(stderr, "%s", text);
    CHECK_CONTAINS(text, "No space left on device");
    return text;
}

/* The tmpfs at dir holds file as it was (a copy of prev) and nothing else. */
static void check_kept(const char *dir, const char *file, const char *prev)
{
    CHECK_EQ(test_sh("cmp -s %s %s", file, prev), 0);
    CHECK_EQ(test_sh("test $(ls -A %s | wc -l) = 1", dir), 0); /* no temporary file */
}

/* The fallback file is in $TMPDIR and holds the model trained to step steps. */
static void check_fallback(const char *path, int steps)
{
    CHECK_CONTAINS(path, tmp_dir());
    CHECK_EQ(test_sh("%s inspect %s | grep -q 'training: %d steps'", nd, path, steps), 0);
}

static void test_live(const char *conf)
{
    char a[4096], ckpt[600];
    const char *small = tmp_path("small"), *stats = tmp_path("full.jsonl");
    /* an earlier run's checkpoint, then a run whose checkpoints find no room */
    snprintf(a, sizeof a, "live -c %s --speed 0 --steps 20", conf);
    if (run_nd(a, tmp_path("log.txt"))) CHECK_FAIL_("live: %s", live_text(tmp_path("log.txt")));
    small_fs_with(small, tmp_path("prev.ndm"), "live.ndm", ckpt, sizeof ckpt);
    char *text = run_full("live -c %s --speed 0 --steps 60 --stats %s --set live.checkpoint=%s "
                          "--set live.checkpoint_every=20 --set live.checkpoint_interval=0s",
                          conf, stats, ckpt);
    CHECK_CONTAINS(text, "checkpoint at step 20 not written");
    CHECK_CONTAINS(text, "training goes on");
    CHECK_CONTAINS(text, "the last checkpoint is in ");
    free(text);
    check_kept(small, ckpt, tmp_path("prev.ndm"));
    const char *l = live_last_line(stats);
    CHECK_CONTAINS(l, "\"final\":true");
    CHECK_EQ(live_json(l, "step"), 60); /* trained on to --steps */
    check_fallback(json_str(l, "checkpoint_fallback"), 60);
}

static void test_train(const char *conf)
{
    char a[4096], model[600], fallback[1024];
    const char *ds = tmp_path("two.ndd"), *model0 = tmp_path("train0.ndm");
    const char *small = tmp_path("small2"), *log = tmp_path("log.txt");
    snprintf(a, sizeof a, "capture -c %s -o %s", conf, ds);
    if (run_nd(a, log)) CHECK_FAIL_("capture: %s", live_text(log));
    snprintf(a, sizeof a, "train -c %s %s -o %s --steps 10 --set sample.calibrate=0", conf, ds,
             model0);
    if (run_nd(a, log)) CHECK_FAIL_("train: %s", live_text(log));
    small_fs_with(small, model0, "m.ndm", model, sizeof model);
    char *text = run_full("train -c %s %s -o %s --steps 30 --set train.checkpoint_every=10 "
                          "--set sample.calibrate=0",
                          conf, ds, model);
    CHECK_CONTAINS(text, "step 10: checkpoint not written");
    CHECK_CONTAINS(text, "step 20: checkpoint not written");
    const char *in = strstr(text, "the trained model is in ");
    CHECK(in && strstr(in, " instead"));
    snprintf(fallback, sizeof fallback, "%.*s", (int)(strstr(in, " instead") - in - 24),
             in + 24);
    free(text);
    check_kept(small, model, model0);
    check_fallback(fallback, 30);
}

/* A failed check exits: the tmpfs mounts go first, so that the scratch directory can. */
static void unmount_all(void)
{
    const char *dirs[] = {"small", "small2"};
    for (int i = 0; i < 2; i++) {
        umount(tmp_path(dirs[i]));
        rmdir(tmp_path(dirs[i]));
    }
}

int main(void)
{
    if (geteuid() != 0 || unshare(CLONE_NEWNS) != 0 ||
        mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) {
        fprintf(stderr, "skipped: needs root and a mount namespace\n");
        return 77;
    }
    snprintf(nd, sizeof nd, "%s", ND_BINARY);
    tmp_dir();
    atexit(unmount_all); /* after tmp_dir's: runs before its cleanup */
    char src[600];
    snprintf(src, sizeof src, "pcap:%s", tmp_path("two.pcap"));
    live_write_two_class_pcap(tmp_path("two.pcap"), 12, 48, 200, 1);
    live_write_config(tmp_path("live.yaml"), src, tmp_path("prev.ndm"), NULL);
    test_live(tmp_path("live.yaml"));
    test_train(tmp_path("live.yaml"));
    printf("live and train checkpoints on a full disk: ok\n");
    return 0;
}
