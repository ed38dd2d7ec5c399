/*
 * test_outputs.c — what the atomic writer may replace: never a device, FIFO, socket or
 * directory (refused, left as it was), never a file the run read (the input registry),
 * a symbolic link followed to its target and kept; temporary files that killed writers
 * left are removed by the next write to the same file, but not one a live writer still
 * holds locked, nor names that only look alike. "-" writes to standard output (a
 * container through a spool: nothing when it fails) and reads standard input, once each.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "check.h"
#include "nd.h"
#include "tmpdir.h"

#define TAG ND_FOURCC('T', 'E', 'S', 'T')

/* Writes a container with one section holding text; returns the code, e filled. */
static int write_text_file(const char *path, const char *text, nd_error *e)
{
    ndf_writer *w = ndf_writer_open(path, NDF_KIND_DATASET, e);
    if (!w) return e->code;
    int rc = ndf_write_section(w, TAG, text, strlen(text), e);
    return rc ? (ndf_writer_abort(w), rc) : ndf_writer_commit(w, e);
}

/* The text of the one section of the container at path (read as a check, not as an
 * input: the test writes the file again). */
static void check_text(const char *path, const char *want)
{
    nd_error e = {0};
    ndf_reader *r = ndf_open(path, NDF_KIND_DATASET, &e);
    if (!r) CHECK_FAIL_("%s", e.msg);
    const void *d;
    size_t len;
    CHECK_EQ(ndf_find(r, TAG, &d, &len, &e), 0);
    CHECK_EQ(len, strlen(want));
    CHECK(!memcmp(d, want, len));
    ndf_close(r);
    nd_input_forget(path);
}

static void expect_refused(const char *path, const char *what)
{
    nd_error e = {0};
    CHECK_EQ(write_text_file(path, "x", &e), ND_EUSAGE);
    CHECK_CONTAINS(e.msg, path);
    CHECK_CONTAINS(e.msg, what);
    fprintf(stderr, "  expected error: %s\n", e.msg);
}

static void test_not_regular(void)
{
    struct stat st;
    expect_refused("/dev/full", "is a character device, not a regular file");
    CHECK(!stat("/dev/full", &st) && S_ISCHR(st.st_mode)); /* still the device */
    expect_refused("/dev/null", "is a character device");
    CHECK(!stat("/dev/null", &st) && S_ISCHR(st.st_mode));

    const char *fifo = tmp_path("out.fifo");
    CHECK_EQ(mkfifo(fifo, 0600), 0);
    expect_refused(fifo, "is a FIFO");
    CHECK(!lstat(fifo, &st) && S_ISFIFO(st.st_mode));

    const char *dir = tmp_path("out.dir");
    CHECK_EQ(mkdir(dir, 0700), 0);
    expect_refused(dir, "is a directory");
    CHECK_EQ(rmdir(dir), 0);

    const char *sock = tmp_path("out.sock");
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "%s", sock);
    CHECK_EQ(bind(s, (struct sockaddr *)&a, sizeof a), 0);
    expect_refused(sock, "is a socket");
    CHECK(!lstat(sock, &st) && S_ISSOCK(st.st_mode));
    close(s);

    /* a link to a device is refused too, naming the link */
    const char *dev_link = tmp_path("full.link");
    CHECK_EQ(symlink("/dev/full", dev_link), 0);
    expect_refused(dev_link, "(through a symbolic link) is a character device");
    CHECK(!lstat(dev_link, &st) && S_ISLNK(st.st_mode));
}

static void test_symlinks(void)
{
    nd_error e = {0};
    struct stat st;
    /* a link to an existing file: the file is replaced, the link kept */
    const char *target = tmp_path("target.ndd"), *link = tmp_path("link.ndd");
    CHECK_EQ(write_text_file(target, "old", &e), 0);
    CHECK_EQ(symlink("target.ndd", link), 0); /* relative to the link's folder */
    CHECK_EQ(write_text_file(link, "new", &e), 0);
    CHECK(!lstat(link, &st) && S_ISLNK(st.st_mode));
    check_text(target, "new");
    /* a chain of two links, and a dangling one: the file it names is created */
    const char *link2 = tmp_path("link2.ndd"), *dangling = tmp_path("dangling.ndd");
    CHECK_EQ(symlink(link, link2), 0);
    CHECK_EQ(write_text_file(link2, "newer", &e), 0);
    check_text(target, "newer");
    CHECK_EQ(symlink("created.ndd", dangling), 0);
    CHECK_EQ(write_text_file(dangling, "made", &e), 0);
    CHECK(!lstat(dangling, &st) && S_ISLNK(st.st_mode));
    check_text(tmp_path("created.ndd"), "made");
    /* a loop is an error, not a hang */
    const char *loop = tmp_path("loop.ndd");
    CHECK_EQ(symlink("loop.ndd", loop), 0);
    CHECK_EQ(write_text_file(loop, "x", &e), -ELOOP);
}

/* Without the guard (library users, tests) a file read may be rewritten. */
static void test_inputs_off(void)
{
    nd_error e = {0};
    const char *p = tmp_path("reread.ndd");
    CHECK_EQ(write_text_file(p, "one", &e), 0);
    ndf_reader *r = ndf_open(p, NDF_KIND_DATASET, &e);
    CHECK(r);
    ndf_close(r);
    CHECK_EQ(write_text_file(p, "two", &e), 0);
    check_text(p, "two");
}

static void test_inputs(void)
{
    nd_error e = {0};
    const char *in = tmp_path("input.ndd"), *alias = tmp_path("input-alias.ndd");
    CHECK_EQ(write_text_file(in, "data", &e), 0);
    CHECK_EQ(write_text_file(in, "data2", &e), 0); /* written, never read: replaceable */
    ndf_reader *r = ndf_open(in, NDF_KIND_DATASET, &e);
    CHECK(r);
    ndf_close(r);
    expect_refused(in, "is also an input of this run");
    /* the same file under another name (hard link) or through a symlink */
    CHECK_EQ(link(in, alias), 0);
    expect_refused(alias, "is also an input of this run");
    const char *sl = tmp_path("input.link");
    CHECK_EQ(symlink(in, sl), 0);
    expect_refused(sl, "is also an input of this run");
    check_text(in, "data2");
    /* a series CSV read is an input too */
    const char *csv = tmp_path("in.csv");
    write_bytes(csv, "class,bytes_down_0\nweb,1\n", 25);
    nd_dataset *ds = nd_csv_read(csv, ND_NS_PER_SEC, &e);
    if (!ds) CHECK_FAIL_("%s", e.msg);
    CHECK_EQ(nd_csv_write(ds, csv, &e), ND_EUSAGE);
    CHECK_CONTAINS(e.msg, "is also an input of this run");
    nd_dataset_free(ds);
    /* a run that updates its input says so: then it may */
    nd_input_forget(in);
    CHECK_EQ(write_text_file(in, "updated", &e), 0);
    check_text(in, "updated");
    /* nd_input_note of a descriptor: what a reader outside libnd_base calls */
    const char *other = tmp_path("other.ndd");
    CHECK_EQ(write_text_file(other, "o", &e), 0);
    int fd = open(other, O_RDONLY);
    nd_input_note(fd);
    close(fd);
    expect_refused(other, "is also an input of this run");
}

/* A file in the scratch directory with that name, optionally kept open and locked. */
static int make_temp(const char *name, int lock)
{
    const char *p = tmp_path(name);
    write_bytes(p, "stale", 5);
    if (!lock) return -1;
    int fd = open(p, O_RDONLY);
    CHECK(fd >= 0);
    CHECK_EQ(flock(fd, LOCK_EX | LOCK_NB), 0);
    return fd;
}

static int exists(const char *name) { return access(tmp_path(name), F_OK) == 0; }

static void test_stale_temps(void)
{
    nd_error e = {0};
    /* what kill -9 during a checkpoint leaves: .NAME.XXXXXX beside NAME */
    make_temp(".model.ndm.a1B2c3", 0);
    make_temp(".model.ndm.ZZZZZZ", 0);
    int held = make_temp(".model.ndm.Held00", 1); /* a concurrent writer's */
    /* names that only look alike stay */
    make_temp(".model.ndm.abc12", 0);      /* five characters */
    make_temp(".model.ndm.abc12!", 0);     /* not a mkstemp character */
    make_temp(".model.ndm.bak.a1B2c3", 0); /* another file's temporary */
    make_temp(".other.ndm.a1B2c3", 0);
    make_temp("model.ndm.a1B2c3", 0); /* not hidden */
    CHECK_EQ(write_text_file(tmp_path("model.ndm"), "m", &e), 0);
    CHECK(!exists(".model.ndm.a1B2c3"));
    CHECK(!exists(".model.ndm.ZZZZZZ"));
    CHECK(exists(".model.ndm.Held00"));
    CHECK(exists(".model.ndm.abc12"));
    CHECK(exists(".model.ndm.abc12!"));
    CHECK(exists(".model.ndm.bak.a1B2c3"));
    CHECK(exists(".other.ndm.a1B2c3"));
    CHECK(exists("model.ndm.a1B2c3"));
    check_text(tmp_path("model.ndm"), "m");
    /* once its writer is gone, the next write removes it */
    close(held);
    CHECK_EQ(write_text_file(tmp_path("model.ndm"), "m2", &e), 0);
    CHECK(!exists(".model.ndm.Held00"));
    /* the writer's own temporary file is locked while it writes: a cleaner (here: the
     * test taking the lock) cannot take it */
    CHECK_EQ(unlink(tmp_path(".model.ndm.abc12!")), 0); /* of the same length */
    ndf_writer *w = ndf_writer_open(tmp_path("model.ndm"), NDF_KIND_DATASET, &e);
    CHECK(w);
    DIR *d = opendir(tmp_dir());
    struct dirent *de;
    int seen = 0;
    while ((de = readdir(d)))
        if (!strncmp(de->d_name, ".model.ndm.", 11) && strlen(de->d_name) == 17) {
            int fd = open(tmp_path(de->d_name), O_RDONLY);
            CHECK(fd >= 0);
            CHECK_EQ(flock(fd, LOCK_EX | LOCK_NB), -1);
            CHECK_EQ(errno, EWOULDBLOCK);
            close(fd);
            seen++;
        }
    closedir(d);
    CHECK_EQ(seen, 1);
    ndf_writer_abort(w);
}

/* Runs fn in a child whose standard input reads in and whose standard output goes to
 * out (scratch names; in may be NULL), with TMPDIR the scratch folder; a failed check
 * in fn fails the child, and so the test. */
static void with_stdio(const char *in, const char *out, void (*fn)(void))
{
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        int i = in ? open(tmp_path(in), O_RDONLY) : 0,
            o = open(tmp_path(out), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (i < 0 || o < 0 || dup2(i, 0) < 0 || dup2(o, 1) < 0) _exit(126);
        setenv("TMPDIR", tmp_dir(), 1); /* the spool's folder, counted below */
        fn();
        fflush(NULL);
        _exit(0);
    }
    int st;
    CHECK_EQ(waitpid(pid, &st, 0), pid);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

/* "-" as an output: the bytes go to standard output as written (no temporary file
 * beside anything), a second output there is refused. */
static void stdout_stream(void)
{
    nd_error e = {0};
    nd_afile *f = nd_afile_open("-", &e);
    CHECK(f);
    CHECK_EQ(nd_afile_write(f, "abc", 3, &e), 0);
    CHECK_EQ(nd_afile_commit(f, &e), 0);
    CHECK(!nd_afile_open("-", &e));
    CHECK_EQ(e.code, ND_EUSAGE);
    CHECK_CONTAINS(e.msg, "one output at most can be '-'");
}

/* A container to standard output: patched headers, so through a spool; the same bytes
 * as the file. */
static void stdout_container(void)
{
    nd_error e = {0};
    CHECK_EQ(write_text_file("-", "spooled", &e), 0);
}

/* A container that fails before its commit puts nothing on standard output. */
static void stdout_container_abort(void)
{
    nd_error e = {0};
    ndf_writer *w = ndf_writer_open("-", NDF_KIND_DATASET, &e);
    CHECK(w);
    CHECK_EQ(ndf_write_section(w, TAG, "lost", 4, &e), 0);
    ndf_writer_abort(w);
}

/* "-" as an input: standard input, read once. */
static void stdin_container(void)
{
    check_text("-", "spooled");
    nd_error e = {0};
    CHECK(!ndf_open("-", NDF_KIND_DATASET, &e));
    CHECK_EQ(e.code, ND_EUSAGE);
    CHECK_CONTAINS(e.msg, "standard input is already read");
}

static void test_stdio(void)
{
    int before = tmp_count();
    with_stdio(NULL, "out1", stdout_stream);
    size_t len;
    unsigned char *b = read_bytes(tmp_path("out1"), &len);
    CHECK(b && len == 3 && !memcmp(b, "abc", 3));
    free(b);
    with_stdio(NULL, "out2", stdout_container);
    nd_error e = {0};
    CHECK_EQ(write_text_file(tmp_path("file2"), "spooled", &e), 0);
    unsigned char *f = read_bytes(tmp_path("file2"), &len);
    size_t len2;
    b = read_bytes(tmp_path("out2"), &len2);
    CHECK(b && f && len == len2 && !memcmp(b, f, len));
    free(b);
    free(f);
    with_stdio(NULL, "out3", stdout_container_abort);
    b = read_bytes(tmp_path("out3"), &len);
    CHECK_EQ(len, 0);
    free(b);
    with_stdio("out2", "out4", stdin_container);
    CHECK_EQ(tmp_count(), before + 5); /* out1..4, file2: no temporary file left */
}

int main(void)
{
    nd_log_set_level(ND_LOG_WARN);
    test_stdio();
    test_not_regular();
    test_symlinks();
    test_inputs_off();
    nd_input_guard(); /* as the program's main does */
    test_inputs();
    test_stale_temps();
    printf("outputs: ok\n");
    return 0;
}
