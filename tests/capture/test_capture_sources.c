/*
 * test_capture_sources.c — many sources in one capture_run: a folder of 40 pcap files
 * (pcap:DIR) gives the windows of the same files named one by one in byte order of their
 * names, hidden names, a subfolder and a FIFO in it are skipped, at most one file is
 * open at any time (the open descriptors of the process, counted while windows arrive),
 * and an empty folder, an entry that cannot be examined and a file that is no capture
 * fail naming what is wrong.
 */
#include <dirent.h>
#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pktgen.h"

enum { N_FILES = 40 };

static char dir[64];

/* Open descriptors of this process (the count's own included, the same every time). */
static int open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    CHECK(d);
    int n = 0;
    while (readdir(d)) n++;
    closedir(d);
    return n;
}

static int max_fds;

/* Collects the window, and the most descriptors seen open while windows arrive. */
static int collect_counting(void *user, uint32_t cls, uint64_t group, const float *values)
{
    int n = open_fds();
    if (n > max_fds) max_fds = n;
    return win_collect(user, cls, group, values);
}

static const char *in_dir(const char *name)
{
    static char p[8][160];
    static int next;
    char *s = p[next++ % 8];
    int n = snprintf(s, 160, "%s/%s", dir, name);
    CHECK(n > 0 && n < 160);
    return s;
}

/* Captures specs into l (emptied first): capture_run's result, e its message. */
static int capture_specs(const char *const *specs, unsigned n, win_list *l, nd_error *e)
{
    capture_opts o;
    capture_opts_defaults(&o);
    memset(l, 0, sizeof *l);
    l->C = o.channels;
    l->L = o.window;
    capture_ctx *c = capture_ctx_new(&o, "all", collect_counting, l, e);
    if (!c) CHECK_FAIL_("capture_ctx_new: %s", e->msg);
    int rc = capture_run(c, specs, n, &o, NULL, 0, e);
    capture_ctx_free(c);
    return rc;
}

static void test_folder(void)
{
    /* Created out of name order: the folder's order on disk is not the one read. */
    char names[N_FILES][32];
    for (int i = 0; i < N_FILES; i++) {
        int k = (i * 17) % N_FILES;
        snprintf(names[k], sizeof names[k], "h%02d.pcap", k);
        write_mixed_pcap(in_dir(names[k]), 3, 40, 4, 1000u + (unsigned)k);
    }
    /* What must be skipped: each would add windows, or block, if read. */
    write_mixed_pcap(in_dir(".hidden.pcap"), 3, 40, 4, 7);
    CHECK_EQ(mkdir(in_dir("sub"), 0755), 0);
    write_mixed_pcap(in_dir("sub/inner.pcap"), 3, 40, 4, 8);
    CHECK_EQ(mkfifo(in_dir("fifo"), 0644), 0);

    static char specs[N_FILES][192];
    const char *spec_ptrs[N_FILES];
    for (int i = 0; i < N_FILES; i++) {
        snprintf(specs[i], sizeof specs[i], "pcap:%s/h%02d.pcap", dir, i);
        spec_ptrs[i] = specs[i];
    }
    nd_error e = {0};
    win_list by_name, whole;
    CHECK_EQ(capture_specs(spec_ptrs, N_FILES, &by_name, &e), 0);
    CHECK(by_name.n > N_FILES);

    char folder[96];
    snprintf(folder, sizeof folder, "pcap:%s", dir);
    const char *one[] = {folder};
    int before = open_fds();
    max_fds = 0;
    if (capture_specs(one, 1, &whole, &e)) CHECK_FAIL_("%s", e.msg);
    win_list_check_equal(&by_name, &whole, "folder vs its files by name");
    /* One file open at a time: the counting saw it, and never a second one. */
    CHECK(max_fds >= before + 1);
    CHECK(max_fds <= before + 1);

    /* Another order gives other windows (groups follow the order): the check above can
     * fail. */
    const char *rev[N_FILES];
    for (int i = 0; i < N_FILES; i++) rev[i] = spec_ptrs[N_FILES - 1 - i];
    win_list reversed;
    CHECK_EQ(capture_specs(rev, N_FILES, &reversed, &e), 0);
    int same = reversed.n == whole.n;
    for (size_t i = 0; same && i < whole.n; i++)
        same = !memcmp(reversed.w[i].v, whole.w[i].v, (size_t)whole.C * whole.L * 4);
    CHECK(!same);
    win_list_free(&reversed);
    win_list_free(&by_name);
    win_list_free(&whole);

    /* A folder is no source of its own for the one-source interface (live's). */
    capture_opts o;
    capture_opts_defaults(&o);
    CHECK(!capture_source_open(folder, &o, &e));
    CHECK_EQ(e.code, ND_EUSAGE);
    CHECK_CONTAINS(e.msg, "is a folder");

    unlink(in_dir("sub/inner.pcap"));
    rmdir(in_dir("sub"));
    unlink(in_dir("fifo"));
    unlink(in_dir(".hidden.pcap"));
    for (int i = 0; i < N_FILES; i++) unlink(in_dir(names[i]));
}

static void test_folder_errors(void)
{
    char folder[96];
    snprintf(folder, sizeof folder, "pcap:%s", dir);
    const char *one[] = {folder};
    nd_error e = {0};
    win_list l;

    CHECK_EQ(capture_specs(one, 1, &l, &e), ND_EUSAGE);
    CHECK_CONTAINS(e.msg, "holds no capture file");
    win_list_free(&l);

    write_mixed_pcap(in_dir("a.pcap"), 2, 20, 2, 1);
    CHECK_EQ(symlink("/nonexistent/x.pcap", in_dir("b.pcap")), 0);
    CHECK_EQ(capture_specs(one, 1, &l, &e), -ENOENT);
    CHECK_CONTAINS(e.msg, "b.pcap");
    win_list_free(&l);
    unlink(in_dir("b.pcap"));

    FILE *f = fopen(in_dir("c.txt"), "w");
    CHECK(f);
    fputs("not a capture\n", f);
    fclose(f);
    CHECK(capture_specs(one, 1, &l, &e) != 0);
    CHECK_CONTAINS(e.msg, "c.txt");
    CHECK(l.n > 0); /* a.pcap, before it in name order, was read */
    win_list_free(&l);
    unlink(in_dir("c.txt"));
    unlink(in_dir("a.pcap"));
}

int main(void)
{
    snprintf(dir, sizeof dir, "%s/ndsrc.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    CHECK(mkdtemp(dir));
    test_folder();
    test_folder_errors();
    CHECK_EQ(rmdir(dir), 0);
    return 0;
}
