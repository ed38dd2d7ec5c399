/*
 * test_ndfile.c — the container: round trip, every corruption class, truncation at every
 * byte offset, single-byte damage anywhere, and atomic writes that fail (file size limit,
 * a full filesystem) leaving the old file intact and no temporary file behind.
 */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <zlib.h>

#include "check.h"
#include "nd.h"
#include "tmpdir.h"

#define TAG_A ND_FOURCC('A', 'A', 'A', 'A')
#define TAG_B ND_FOURCC('B', 'B', 'B', 'B')
#define TAG_C ND_FOURCC('C', 'C', 'C', 'C')
#define TAG_D ND_FOURCC('D', 'D', 'D', 'D')

static const char payload_b[] = "hello";                              /* 5 bytes: padded */
static const char payload_c[] = "0123456789abcdef";                   /* 16: no padding */
static const char *const pieces_d[] = {"stream", "ed in ", "pieces"}; /* 18 */

/* A small file with an empty section, padded and unpadded ones, and a streamed one. */
static void write_small(const char *path, uint32_t kind)
{
    nd_error e = {0};
    ndf_writer *w = ndf_writer_open(path, kind, &e);
    if (!w) CHECK_FAIL_("ndf_writer_open: %s", e.msg);
    CHECK_EQ(ndf_write_section(w, TAG_A, NULL, 0, &e), 0);
    CHECK_EQ(ndf_write_section(w, TAG_B, payload_b, 5, &e), 0);
    CHECK_EQ(ndf_write_section(w, TAG_C, payload_c, 16, &e), 0);
    CHECK_EQ(ndf_section_begin(w, TAG_D, &e), 0);
    for (int i = 0; i < 3; i++) CHECK_EQ(ndf_section_write(w, pieces_d[i], 6, &e), 0);
    CHECK_EQ(ndf_section_end(w, &e), 0);
    int rc = ndf_writer_commit(w, &e);
    if (rc) CHECK_FAIL_("commit: %s", e.msg);
}

/* Opens bytes both from a file and from memory (an exact-size copy, so that ASan sees any
 * read past the end); both must agree. Returns the error code, 0 on success. */
static int open_both(const unsigned char *data, size_t len, uint32_t kind, nd_error *e)
{
    const char *p = tmp_path("probe.ndd");
    write_bytes(p, data, len);
    nd_error e2 = {0};
    ndf_reader *r = ndf_open(p, kind, e);
    int rc1 = r ? 0 : e->code;
    ndf_close(r);
    unsigned char *copy = malloc(len ? len : 1);
    memcpy(copy, data, len);
    r = ndf_open_mem(copy, len, "probe.ndd", kind, &e2);
    int rc2 = r ? 0 : e2.code;
    ndf_close(r);
    free(copy);
    if (rc1 != rc2)
        CHECK_FAIL_("file and memory disagree at %zu bytes: %d vs %d", len, rc1, rc2);
    return rc1;
}

static void fix_header_crc(unsigned char *d) { nd_put_u32(d + 36, (uint32_t)crc32(0, d, 36)); }

static void test_round_trip(void)
{
    const char *p = tmp_path("small.ndd");
    write_small(p, NDF_KIND_DATASET);
    nd_error e = {0};
    ndf_reader *r = ndf_open(p, NDF_KIND_DATASET, &e);
    if (!r) CHECK_FAIL_("ndf_open: %s", e.msg);
    CHECK_EQ(ndf_kind(r), NDF_KIND_DATASET);
    CHECK_EQ(ndf_version(r), NDF_VERSION);
    CHECK_EQ(ndf_section_count(r), 4);
    CHECK_STR_EQ(ndf_path(r), p);
    uint32_t tag;
    const void *d;
    size_t len;
    ndf_section_at(r, 0, &tag, &d, &len);
    CHECK_EQ(tag, TAG_A);
    CHECK_EQ(len, 0);
    ndf_section_at(r, 1, &tag, &d, &len);
    CHECK_EQ(tag, TAG_B);
    CHECK_EQ(len, 5);
    CHECK(!memcmp(d, payload_b, 5));
    CHECK_EQ(ndf_find(r, TAG_C, &d, &len, &e), 0);
    CHECK_EQ(len, 16);
    CHECK(!memcmp(d, payload_c, 16));
    CHECK_EQ(ndf_find(r, TAG_D, &d, &len, &e), 0);
    CHECK_EQ(len, 18);
    CHECK(!memcmp(d, "streamed in pieces", 18));
    /* Offsets: header 40, A at 40 (16), B at 56 (16 + 5 + 3 padding), C at 80, D at 112. */
    uint64_t off;
    uint32_t crc;
    ndf_section_info(r, 1, &off, &crc);
    CHECK_U64_EQ(off, 56);
    ndf_section_info(r, 3, &off, &crc);
    CHECK_U64_EQ(off, 112);
    CHECK_U64_EQ(ndf_file_size(r), 112 + 16 + 18 + 6);
    CHECK_EQ(ndf_find(r, ND_FOURCC('Z', 'Z', 'Z', 'Z'), &d, &len, &e), ND_EFORMAT);
    CHECK_CONTAINS(e.msg, "missing section ZZZZ");
    ndf_close(r);

    /* Kind is checked when asked for, any kind accepted with 0. */
    CHECK(!ndf_open(p, NDF_KIND_MODEL, &e));
    CHECK_EQ(e.code, ND_EFORMAT);
    CHECK_CONTAINS(e.msg, "is a dataset file (.ndd), expected a model file (.ndm)");
    r = ndf_open(p, 0, &e);
    CHECK(r);
    ndf_close(r);

    /* The file gets the usual mode, not mkstemp's 0600. */
    struct stat st;
    CHECK_EQ(stat(p, &st), 0);
    CHECK_EQ(st.st_mode & 0777, 0644);
    CHECK_EQ(tmp_count(), 1);

    /* A file with no sections at all. */
    ndf_writer *w = ndf_writer_open(p, NDF_KIND_MODEL, &e);
    CHECK(w);
    CHECK_EQ(ndf_writer_commit(w, &e), 0);
    r = ndf_open(p, NDF_KIND_MODEL, &e);
    CHECK(r);
    CHECK_EQ(ndf_section_count(r), 0);
    ndf_close(r);

    char t[5];
    ndf_tag_str(ND_FOURCC('M', 'E', 'T', 'A'), t);
    CHECK_STR_EQ(t, "META");
    ndf_tag_str(ND_FOURCC('a', 0, '\n', 0xff), t);
    CHECK_STR_EQ(t, "a???");
}

static void test_corruption(void)
{
    const char *p = tmp_path("small.ndd");
    write_small(p, NDF_KIND_DATASET);
    size_t n;
    unsigned char *good = read_bytes(p, &n);
    unsigned char *d = malloc(n + 64);
    nd_error e = {0};

#define RESET() memcpy(d, good, n)
    /* Foreign: wrong magic, and text files. */
    RESET();
    d[0] = 'X';
    CHECK_EQ(open_both(d, n, 0, &e), ND_EFORMAT);
    CHECK_CONTAINS(e.msg, "not a netdiffus dataset or model file");
    CHECK_CONTAINS(e.msg, tmp_dir());
    CHECK_EQ(open_both((const unsigned char *)"hello, world\n", 13, 0, &e), ND_EFORMAT);
    CHECK_EQ(open_both((const unsigned char *)"h", 1, 0, &e), ND_EFORMAT);
    /* A text-mode transfer turned "\r\n" into "\n". */
    RESET();
    memmove(d + 4, d + 5, n - 5);
    CHECK_EQ(open_both(d, n - 1, 0, &e), ND_EFORMAT);
    CHECK_CONTAINS(e.msg, "text-mode transfer");

    /* Newer: a version this build does not know, with and without a valid header CRC. */
    RESET();
    nd_put_u32(d + 8, NDF_VERSION + 1);
    CHECK_EQ(open_both(d, n, 0, &e), ND_EVERSION);
    fix_header_crc(d);
    CHECK_EQ(open_both(d, n, 0, &e), ND_EVERSION);
    CHECK_CONTAINS(e.msg, "format version 2 is newer");

    /* Header CRC. */
    RESET();
    d[20] ^= 1; /* reserved field */
    CHECK_EQ(open_both(d, n, 0, &e), ND_ECRC);
    CHECK_CONTAINS(e.msg, "header CRC mismatch at offset 36");

    /* Section CRC: payload, tag, length and the CRC field itself. */
    RESET();
    d[56 + 16 + 2] ^= 0x20; /* "hello" → "heLlo" */
    CHECK_EQ(open_both(d, n, 0, &e), ND_ECRC);
    CHECK_CONTAINS(e.msg, "section 'BBBB' (#1) at offset 56: CRC mismatch");
    RESET();
    d[56] = 'X'; /* tag BBBB → XBBB */
    CHECK_EQ(open_both(d, n, 0, &e), ND_ECRC);
    CHECK_CONTAINS(e.msg, "'XBBB'");
    RESET();
    nd_put_u64(d + 56 + 8, 4); /* shorter length: the walk would go astray */
    CHECK(open_both(d, n, 0, &e) != 0);
    RESET();
    d[56 + 16 + 5] = 1; /* padding */
    CHECK_EQ(open_both(d, n, 0, &e), ND_ECRC);
    CHECK_CONTAINS(e.msg, "padding");

    /* Lengths past the end, and absurd ones: errors, no huge allocation, no wrap. */
    uint64_t lens[] = {n,          n - 80 - 16 + 1,  UINT64_MAX, UINT64_MAX - 7,
                       1ull << 62, (1ull << 32) + 16};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        RESET();
        nd_put_u64(d + 80 + 8, lens[i]);
        CHECK_EQ(open_both(d, n, 0, &e), ND_EFORMAT);
        CHECK_CONTAINS(e.msg, "section 'CCCC' (#2) at offset 80 declares");
    }
    /* Section count that the file cannot hold, and one more than there is. */
    RESET();
    nd_put_u32(d + 16, UINT32_MAX);
    fix_header_crc(d);
    CHECK_EQ(open_both(d, n, 0, &e), ND_EFORMAT);
    CHECK_CONTAINS(e.msg, "4294967295 sections");
    RESET();
    nd_put_u32(d + 16, 5);
    fix_header_crc(d);
    CHECK_EQ(open_both(d, n, 0, &e), ND_EFORMAT);
    RESET();
    nd_put_u32(d + 16, 3);
    fix_header_crc(d);
    CHECK_EQ(open_both(d, n, 0, &e), ND_EFORMAT);
    CHECK_CONTAINS(e.msg, "after the last of 3 sections at offset 112");
    /* Bytes appended after the declared end. */
    RESET();
    memcpy(d + n, "garbage", 7);
    CHECK_EQ(open_both(d, n + 7, 0, &e), ND_EFORMAT);
    CHECK_CONTAINS(e.msg, "7 unexpected bytes after the declared end");

    /* Truncated at every byte offset: always ND_ETRUNC, never anything else. */
    for (size_t k = 0; k < n; k++) {
        RESET();
        int rc = open_both(d, k, 0, &e);
        if (rc != ND_ETRUNC)
            CHECK_FAIL_("truncated to %zu of %zu bytes: code %d (%s)", k, n, rc, e.msg);
        CHECK_CONTAINS(e.msg, "truncated");
    }

    /* Any one damaged byte is caught, with the class its place implies. */
    for (size_t k = 0; k < n; k++)
        for (int flip = 1; flip <= 0x80; flip <<= 7) {
            RESET();
            d[k] ^= (unsigned char)flip;
            int rc = open_both(d, n, 0, &e);
            int ok;
            if (k < 8) ok = rc == ND_EFORMAT;
            else if (k < 12) ok = rc == ND_EVERSION || rc == ND_ECRC;
            else if (k < 40) ok = rc == ND_ECRC;
            else ok = rc == ND_ECRC || rc == ND_EFORMAT;
            if (!ok) CHECK_FAIL_("byte %zu ^ 0x%02x: code %d (%s)", k, flip, rc, e.msg);
        }
#undef RESET
    free(d);
    free(good);
}

/* In a child: fills the target with old content, then a write that fails must leave
 * it and the directory as they were. expect is the failure code. */
static void failing_write(const char *path, size_t section_bytes, int expect)
{
    write_small(path, NDF_KIND_DATASET);
    size_t n0;
    unsigned char *before = read_bytes(path, &n0);
    int entries = tmp_count();
    char *big = calloc(1, section_bytes);
    nd_error e = {0};
    ndf_writer *w = ndf_writer_open(path, NDF_KIND_DATASET, &e);
    if (!w) CHECK_FAIL_("ndf_writer_open: %s", e.msg);
    int rc1 = ndf_write_section(w, TAG_A, big, section_bytes, &e);
    int rc2 = ndf_writer_commit(w, &e);
    CHECK_EQ(rc2, expect);
    CHECK(rc1 == 0 || rc1 == expect);
    CHECK_CONTAINS(e.msg, path);
    CHECK_CONTAINS(e.msg, strerror(-expect));
    size_t n1;
    unsigned char *after = read_bytes(path, &n1);
    CHECK_EQ(n1, n0);
    CHECK(!memcmp(before, after, n0));
    CHECK_EQ(tmp_count(), entries);
    free(big);
    free(before);
    free(after);
}

static int wait_child(pid_t pid)
{
    int st;
    CHECK_EQ(waitpid(pid, &st, 0), pid);
    if (WIFSIGNALED(st)) CHECK_FAIL_("child killed by signal %d", WTERMSIG(st));
    return WEXITSTATUS(st);
}

static void test_atomic(void)
{
    nd_error e = {0};
    const char *p = tmp_path("atomic.ndd");

    /* Abort leaves the old file and nothing else. */
    write_small(p, NDF_KIND_DATASET);
    int entries = tmp_count();
    ndf_writer *w = ndf_writer_open(p, NDF_KIND_MODEL, &e);
    CHECK(w);
    CHECK_EQ(tmp_count(), entries + 1);
    CHECK_EQ(ndf_write_section(w, TAG_A, "x", 1, &e), 0);
    ndf_writer_abort(w);
    ndf_writer_abort(NULL);
    CHECK_EQ(tmp_count(), entries);
    ndf_reader *r = ndf_open(p, NDF_KIND_DATASET, &e);
    CHECK(r);
    ndf_close(r);

    /* A directory that does not exist: the message names the path. */
    CHECK(!ndf_writer_open("/nonexistent-nd-dir/x.ndd", NDF_KIND_DATASET, &e));
    CHECK_EQ(e.code, -ENOENT);
    CHECK_CONTAINS(e.msg, "/nonexistent-nd-dir/x.ndd");
    /* Reading: missing file, a directory. */
    CHECK(!ndf_open(tmp_path("missing.ndd"), 0, &e));
    CHECK_EQ(e.code, -ENOENT);
    CHECK_CONTAINS(e.msg, "missing.ndd: cannot open");
    CHECK(!ndf_open(tmp_dir(), 0, &e));
    CHECK_EQ(e.code, -EISDIR);

    /* Write failure past a file size limit (EFBIG): no root needed. In a child, so that
     * the limit stays there. */
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl = {1 << 20, 1 << 20};
        CHECK_EQ(setrlimit(RLIMIT_FSIZE, &rl), 0);
        failing_write(p, 4 << 20, -EFBIG);
        _exit(0);
    }
    CHECK_EQ(wait_child(pid), 0);

    /* A full filesystem (ENOSPC): a small tmpfs in a private mount namespace of a child,
     * gone with it. Needs privileges; skipped (with a note) without them. */
    pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
            mount("nd-test", tmp_dir(), "tmpfs", 0, "size=256k") < 0)
            _exit(77);
        failing_write(tmp_path("full.ndd"), 1 << 20, -ENOSPC);
        _exit(0);
    }
    int rc = wait_child(pid);
    if (rc == 77) fprintf(stderr, "note: ENOSPC case skipped (cannot mount a tmpfs here)\n");
    else CHECK_EQ(rc, 0);
    /* The mount lived only in the child: the scratch directory still has its files. */
    r = ndf_open(p, 0, &e);
    if (!r) CHECK_FAIL_("%s", e.msg);
    ndf_close(r);
}

/* Sections streamed in pieces of every size class around the writer's 64 KiB buffer
 * (tiny, buffer-filling, larger than the buffer) come back byte for byte. */
static void test_streaming(void)
{
    const size_t total = 3 * 65536 + 12345;
    unsigned char *src = malloc(total);
    for (size_t i = 0; i < total; i++) src[i] = (unsigned char)(i * 2654435761u >> 13);
    const char *p = tmp_path("stream.ndm");
    nd_error e = {0};
    ndf_writer *w = ndf_writer_open(p, NDF_KIND_MODEL, &e);
    CHECK(w);
    CHECK_EQ(ndf_write_section(w, TAG_A, "abc", 3, &e), 0); /* misaligns what follows */
    CHECK_EQ(ndf_section_begin(w, TAG_B, &e), 0);
    const size_t pieces[] = {1, 7, 65535, 2, 70000, 65536, 100};
    size_t off = 0;
    for (size_t i = 0; off < total; i = (i + 1) % 7) {
        size_t n = pieces[i] < total - off ? pieces[i] : total - off;
        CHECK_EQ(ndf_section_write(w, src + off, n, &e), 0);
        off += n;
    }
    CHECK_EQ(ndf_section_end(w, &e), 0);
    CHECK_EQ(ndf_write_section(w, TAG_C, src, 65536, &e), 0);
    CHECK_EQ(ndf_writer_commit(w, &e), 0);

    ndf_reader *r = ndf_open(p, NDF_KIND_MODEL, &e);
    if (!r) CHECK_FAIL_("%s", e.msg);
    const void *d;
    size_t len;
    CHECK_EQ(ndf_find(r, TAG_B, &d, &len, &e), 0);
    CHECK_EQ(len, total);
    CHECK(!memcmp(d, src, total));
    CHECK_EQ((uintptr_t)d % 8, 0); /* payloads are 8-byte aligned in the mapping */
    CHECK_EQ(ndf_find(r, TAG_C, &d, &len, &e), 0);
    CHECK_EQ(len, 65536);
    CHECK(!memcmp(d, src, 65536));
    ndf_close(r);
    free(src);
}

/* A file that is not a regular file (a pipe: process substitution, /dev/stdin) is read
 * instead of mapped, growing its buffer past the first 64 KiB. */
static void test_pipe(void)
{
    const char *p = tmp_path("piped.ndm");
    nd_error e = {0};
    ndf_writer *w = ndf_writer_open(p, NDF_KIND_MODEL, &e);
    CHECK(w);
    char *big = calloc(1, 200000);
    CHECK_EQ(ndf_write_section(w, TAG_A, big, 200000, &e), 0);
    CHECK_EQ(ndf_writer_commit(w, &e), 0);
    free(big);
    size_t n;
    unsigned char *bytes = read_bytes(p, &n);
    int fds[2];
    CHECK_EQ(pipe(fds), 0);
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        size_t off = 0;
        while (off < n) {
            ssize_t k = write(fds[1], bytes + off, n - off);
            if (k <= 0) _exit(1);
            off += (size_t)k;
        }
        _exit(0);
    }
    close(fds[1]);
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fds[0]);
    ndf_reader *r = ndf_open(path, NDF_KIND_MODEL, &e);
    if (!r) CHECK_FAIL_("%s", e.msg);
    CHECK_U64_EQ(ndf_file_size(r), n);
    ndf_close(r);
    close(fds[0]);
    int st;
    CHECK_EQ(waitpid(pid, &st, 0), pid);
    free(bytes);
}

int main(void)
{
    umask(022);
    test_round_trip();
    test_streaming();
    test_pipe();
    test_corruption();
    test_atomic();
    printf("ndfile: ok\n");
    return 0;
}
