/*
 * ndfile.c — the sectioned, checksummed container under dataset (.ndd) and model (.ndm)
 * files, the atomic writer every output file is written with, and the registry of the
 * run's input files that writer refuses to replace.
 *
 * Layout (docs/FORMATS.md has the tables):
 *   header, 40 bytes: magic[8] "\x89NDF\r\n\x1a\n", u32 version, u32 kind, u32 section
 *     count, u32 reserved, u64 file size, u32 reserved, u32 CRC32 of bytes 0..35;
 *   then per section: u32 tag, u32 CRC32, u64 length, payload, zero padding to a multiple
 *     of 8 bytes. The section CRC covers the payload, then the tag and the length (as
 *     stored), so that a damaged section header is caught as well as a damaged payload.
 * All little-endian. The reader checks the whole file before it hands out anything; no
 * length is used before it has been checked against the file size.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "ndfile_impl.h"

#define HDR_SIZE 40
#define SEC_HDR  16
#define ALIGN    8

static const unsigned char magic[8] = {0x89, 'N', 'D', 'F', '\r', '\n', 0x1a, '\n'};

/* ------------------------------------------------------------------------------------ */
/* Small helpers                                                                        */
/* ------------------------------------------------------------------------------------ */

void nd_put_f32(unsigned char *p, float v)
{
    uint32_t u;
    memcpy(&u, &v, 4);
    nd_put_u32(p, u);
}

float nd_get_f32(const unsigned char *p)
{
    uint32_t u = nd_get_u32(p);
    float v;
    memcpy(&v, &u, 4);
    return v;
}

void ndf_tag_str(uint32_t tag, char out[5])
{
    for (int i = 0; i < 4; i++) {
        unsigned c = tag >> 8 * i & 0xff;
        out[i] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    out[4] = 0;
}

uint32_t nd_crc32(uint32_t crc, const void *data, uint64_t len)
{
    const unsigned char *p = data;
    while (len) {
        uInt n = len > (1u << 30) ? 1u << 30 : (uInt)len;
        crc = (uint32_t)crc32(crc, p, n);
        p += n;
        len -= n;
    }
    return crc;
}

static uint64_t pad_of(uint64_t len) { return (ALIGN - len % ALIGN) % ALIGN; }

/* ------------------------------------------------------------------------------------ */
/* Inputs of the run                                                                    */
/* ------------------------------------------------------------------------------------ */

/* The regular files this process has read, by device and inode (a path can change, and
 * one file has many paths). Few entries: a linear search is enough. */
typedef struct file_id {
    dev_t dev;
    ino_t ino;
} file_id;

static pthread_mutex_t inputs_mu = PTHREAD_MUTEX_INITIALIZER;
static file_id *inputs;
static size_t n_inputs, cap_inputs;
static int inputs_on;

void nd_input_guard(void)
{
    pthread_mutex_lock(&inputs_mu);
    inputs_on = 1;
    pthread_mutex_unlock(&inputs_mu);
}

static int input_index(dev_t dev, ino_t ino)
{
    for (size_t i = 0; i < n_inputs; i++)
        if (inputs[i].dev == dev && inputs[i].ino == ino) return (int)i;
    return -1;
}

void nd_input_note(int fd)
{
    struct stat st;
    if (fstat(fd, &st) || !S_ISREG(st.st_mode)) return; /* outputs are regular files only */
    pthread_mutex_lock(&inputs_mu);
    if (inputs_on && input_index(st.st_dev, st.st_ino) < 0) {
        if (n_inputs == cap_inputs) {
            size_t cap = cap_inputs ? 2 * cap_inputs : 16;
            file_id *v = realloc(inputs, cap * sizeof *v);
            /* Out of memory: the file goes unguarded, which is what it was before. */
            if (v) inputs = v, cap_inputs = cap;
        }
        if (n_inputs < cap_inputs) inputs[n_inputs++] = (file_id){st.st_dev, st.st_ino};
    }
    pthread_mutex_unlock(&inputs_mu);
}

void nd_input_forget(const char *path)
{
    struct stat st;
    if (stat(path, &st)) return;
    pthread_mutex_lock(&inputs_mu);
    int i = input_index(st.st_dev, st.st_ino);
    if (i >= 0) inputs[i] = inputs[--n_inputs];
    pthread_mutex_unlock(&inputs_mu);
}

static int is_input(const struct stat *st)
{
    pthread_mutex_lock(&inputs_mu);
    int found = input_index(st->st_dev, st->st_ino) >= 0;
    pthread_mutex_unlock(&inputs_mu);
    return found;
}

/* Standard input and output: one file each per run. */
static int stdio_taken[2];

int nd_stdio_claim(int fd, nd_error *e)
{
    ND_ASSERT(fd == 0 || fd == 1);
    pthread_mutex_lock(&inputs_mu);
    int taken = stdio_taken[fd];
    stdio_taken[fd] = 1;
    pthread_mutex_unlock(&inputs_mu);
    if (!taken) return 0;
    return nd_error_set(e, ND_EUSAGE,
                        fd ? "-: standard output already carries another output of this run: "
                             "one output at most can be '-'"
                           : "-: standard input is already read by another input of this "
                             "run: one input at most can be '-'");
}

/* ------------------------------------------------------------------------------------ */
/* Atomic file                                                                          */
/* ------------------------------------------------------------------------------------ */

#define AFILE_BUF (1u << 16)

/* Where the bytes go: a temporary file renamed over the target, standard output as
 * they come, or (for containers, whose headers are patched at the end) an unlinked
 * temporary file copied to standard output on commit. */
enum { AFILE_RENAME, AFILE_STDOUT, AFILE_SPOOL };

struct nd_afile {
    char *path; /* target: the file the name given resolves to through its symlinks */
    char *tmp;  /* temporary file beside it, locked (flock) while it is ours */
    char *dir;  /* directory of both, for the fsync after rename */
    int mode;   /* AFILE_* */
    int fd;
    int err;        /* first failure, sticky */
    nd_error saved; /* its message */
    uint64_t off;   /* bytes written (flushed or buffered) */
    uint64_t sent;  /* bytes standard output took (AFILE_STDOUT, AFILE_SPOOL's copy) */
    size_t used;    /* bytes in buf */
    unsigned char buf[AFILE_BUF];
};

static int afile_fail(nd_afile *f, nd_error *e, int code, const char *what)
{
    if (!f->err) {
        f->err = code;
        nd_error_set(&f->saved, code, "%s: %s: %s", f->path, what, nd_strerror(code));
    }
    if (e) *e = f->saved;
    return f->err;
}

/* Mode for a new file as open(2) would give it: 0666 less the umask. The umask is read
 * from /proc because umask(2) can only be read by setting it, which would race with
 * files other threads create meanwhile. */
static mode_t new_file_mode(void)
{
    mode_t mask = 022;
    FILE *st = fopen("/proc/self/status", "r");
    if (st) {
        char line[128];
        unsigned m;
        while (fgets(line, sizeof line, st))
            if (sscanf(line, "Umask: %o", &m) == 1) {
                mask = (mode_t)m;
                break;
            }
        fclose(st);
    }
    return 0666 & ~mask;
}

/* The file a write to path lands in: path, or the end of its chain of symbolic links
 * (a link is followed, not replaced: it keeps pointing at the new file). A dangling
 * link resolves to the file it names, which the write creates. malloc'd; NULL with e. */
static char *resolve_links(const char *path, nd_error *e)
{
    char *cur = strdup(path);
    for (int hops = 0; cur; hops++) {
        struct stat st;
        if (lstat(cur, &st) || !S_ISLNK(st.st_mode)) return cur;
        if (hops == 40) {
            free(cur);
            nd_error_set(e, -ELOOP, "%s: %s", path, nd_strerror(-ELOOP));
            return NULL;
        }
        char link[PATH_MAX];
        ssize_t n = readlink(cur, link, sizeof link - 1);
        if (n < 0) {
            int code = -errno;
            free(cur);
            nd_error_set(e, code, "%s: cannot read the symbolic link: %s", path,
                         nd_strerror(code));
            return NULL;
        }
        link[n] = 0;
        const char *slash = strrchr(cur, '/');
        int dlen = link[0] != '/' && slash ? (int)(slash - cur) + 1 : 0;
        size_t len = (size_t)dlen + (size_t)n + 1;
        char *next = malloc(len);
        if (next) snprintf(next, len, "%.*s%s", dlen, cur, link);
        free(cur);
        cur = next;
    }
    nd_error_set(e, -ENOMEM, "%s: out of memory", path);
    return NULL;
}

static const char *file_type_name(mode_t m)
{
    return S_ISDIR(m)    ? "a directory"
           : S_ISCHR(m)  ? "a character device"
           : S_ISBLK(m)  ? "a block device"
           : S_ISFIFO(m) ? "a FIFO (named pipe)"
           : S_ISSOCK(m) ? "a socket"
                         : "not a regular file";
}

/* Whether a write may replace target (named path by the caller): only a regular file
 * that is none of the run's inputs, or nothing yet. 0, or ND_EUSAGE with e filled. *st
 * is target's, st->st_mode 0 when it does not exist. */
static int check_target(const char *path, const char *target, struct stat *st, nd_error *e)
{
    const char *via = strcmp(path, target) ? " (through a symbolic link)" : "";
    if (stat(target, st)) {
        int code = -errno;
        st->st_mode = 0;
        if (code == -ENOENT) return 0;
        return nd_error_set(e, code, "%s: cannot check the output file: %s", path,
                            nd_strerror(code));
    }
    if (!S_ISREG(st->st_mode))
        return nd_error_set(e, ND_EUSAGE,
                            "%s%s is %s, not a regular file: refusing to write an output "
                            "there",
                            path, via, file_type_name(st->st_mode));
    if (is_input(st))
        return nd_error_set(e, ND_EUSAGE,
                            "%s%s is also an input of this run: refusing to replace it "
                            "(write the output to another file)",
                            path, via);
    return 0;
}

/* Whether name is ".BASE.XXXXXX", a temporary file of ours for target file name base. */
static int is_temp_of(const char *name, const char *base)
{
    size_t bl = strlen(base);
    if (name[0] != '.' || strncmp(name + 1, base, bl) || name[1 + bl] != '.') return 0;
    const char *x = name + 2 + bl;
    if (strlen(x) != 6) return 0;
    for (int i = 0; i < 6; i++)
        if (!((x[i] >= 'a' && x[i] <= 'z') || (x[i] >= 'A' && x[i] <= 'Z') ||
              (x[i] >= '0' && x[i] <= '9')))
            return 0;
    return 1;
}

/* Removes temporary files that writes to target left behind when they were killed
 * (SIGKILL, power loss). A writer holds an exclusive flock on its temporary file until
 * it is renamed or removed, so one whose lock can be taken has no writer any more; one
 * that a concurrent writer still holds is left alone. */
static void remove_stale_temps(const nd_afile *f, const char *base)
{
    DIR *d = opendir(f->dir);
    if (!d) return;
    const char *own = strrchr(f->tmp, '/');
    own = own ? own + 1 : f->tmp;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!is_temp_of(de->d_name, base) || !strcmp(de->d_name, own)) continue;
        int fd = openat(dirfd(d), de->d_name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0) continue;
        struct stat st, now;
        /* Still the file that was locked (not replaced meanwhile), then gone. */
        if (!fstat(fd, &st) && S_ISREG(st.st_mode) && !flock(fd, LOCK_EX | LOCK_NB) &&
            !fstatat(dirfd(d), de->d_name, &now, AT_SYMLINK_NOFOLLOW) &&
            now.st_dev == st.st_dev && now.st_ino == st.st_ino &&
            !unlinkat(dirfd(d), de->d_name, 0))
            nd_debug("%s/%s: removed a temporary file an interrupted write left", f->dir,
                     de->d_name);
        close(fd);
    }
    closedir(d);
}

/* Creates f->tmp from its template and locks it. A cleaner in another process may have
 * taken the lock between mkstemp and flock and removed the file: then a new name. */
static int create_temp(nd_afile *f, size_t tlen, const char *base)
{
    const char *slash = strrchr(f->path, '/');
    int dlen = slash ? (int)(slash - f->path) + 1 : 0;
    for (int tries = 0; tries < 16; tries++) {
        snprintf(f->tmp, tlen, "%.*s.%s.XXXXXX", dlen, f->path, base);
        f->fd = mkstemp(f->tmp);
        if (f->fd < 0) return -errno;
        struct stat st;
        if (!flock(f->fd, LOCK_EX) && !fstat(f->fd, &st) && st.st_nlink > 0) return 0;
        close(f->fd);
        f->fd = -1;
    }
    return -EAGAIN;
}

static void afile_free(nd_afile *f)
{
    if (f->fd >= 0 && f->mode != AFILE_STDOUT) close(f->fd);
    free(f->path);
    free(f->dir);
    free(f->tmp);
    free(f);
}

/* The file "-": standard output, directly or through a spool that is a temporary file
 * in $TMPDIR (/tmp without it), unlinked at once, so that nothing is left behind. */
static nd_afile *afile_stdout(int spool, nd_error *e)
{
    if (nd_stdio_claim(1, e)) return NULL;
    nd_afile *f = calloc(1, sizeof *f);
    if (f) f->path = strdup("standard output");
    if (!f || !f->path) {
        free(f);
        nd_error_set(e, -ENOMEM, "standard output: out of memory");
        return NULL;
    }
    f->mode = spool ? AFILE_SPOOL : AFILE_STDOUT;
    f->fd = STDOUT_FILENO;
    if (spool) {
        const char *dir = getenv("TMPDIR");
        f->fd = open(dir && *dir ? dir : "/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
        if (f->fd < 0) {
            int code = -errno;
            nd_error_set(e, code, "standard output: cannot create a temporary file in %s: %s",
                         dir && *dir ? dir : "/tmp", nd_strerror(code));
            afile_free(f);
            return NULL;
        }
    }
    return f;
}

nd_afile *nd_afile_spooled_open(const char *path, nd_error *e)
{
    return nd_is_stdio(path) ? afile_stdout(1, e) : nd_afile_open(path, e);
}

nd_afile *nd_afile_open(const char *path, nd_error *e)
{
    if (nd_is_stdio(path)) return afile_stdout(0, e);
    nd_afile *f = calloc(1, sizeof *f);
    if (!f) {
        nd_error_set(e, -ENOMEM, "%s: out of memory", path);
        return NULL;
    }
    f->fd = -1;
    struct stat st;
    const char *end = strrchr(path, '/');
    if (!*(end ? end + 1 : path)) {
        nd_error_set(e, -EISDIR, "%s: is a directory, expected a file name", path);
        goto fail;
    }
    if (!(f->path = resolve_links(path, e)) || check_target(path, f->path, &st, e)) goto fail;
    const char *slash = strrchr(f->path, '/');
    size_t dlen = slash ? (size_t)(slash - f->path) : 0;
    const char *base = slash ? slash + 1 : f->path;
    f->dir = slash ? (dlen ? strndup(f->path, dlen) : strdup("/")) : strdup(".");
    size_t tlen = strlen(f->path) + 16;
    f->tmp = malloc(tlen);
    if (!f->dir || !f->tmp) {
        nd_error_set(e, -ENOMEM, "%s: out of memory", path);
        goto fail;
    }
    /* Hidden name in the same directory: rename(2) is atomic only within a filesystem. */
    int code = create_temp(f, tlen, base);
    if (code) {
        nd_error_set(e, code, "%s: cannot create a temporary file beside it: %s", path,
                     nd_strerror(code));
        goto fail;
    }
    remove_stale_temps(f, base);
    /* mkstemp makes 0600; keep the mode of the file we replace, else the usual one. */
    mode_t mode = st.st_mode ? st.st_mode & 07777 : new_file_mode();
    if (fchmod(f->fd, mode) < 0) nd_debug("%s: fchmod: %s", f->tmp, strerror(errno));
    return f;
fail:
    if (f->fd >= 0) {
        unlink(f->tmp);
        close(f->fd);
    }
    free(f->path);
    free(f->dir);
    free(f->tmp);
    free(f);
    return NULL;
}

char *nd_fallback_path(const char *path)
{
    const char *dir = getenv("TMPDIR"), *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    if (!dir || !*dir) dir = "/tmp";
    size_t len = strlen(dir) + strlen(base) + 40;
    char *p = malloc(len);
    if (p) snprintf(p, len, "%s/netdiffus-%ld-%s", dir, (long)getpid(), base);
    return p;
}

static int write_all(int fd, const unsigned char *p, size_t len)
{
    while (len) {
        ssize_t n = write(fd, p, len > (1u << 30) ? 1u << 30 : len);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int afile_flush(nd_afile *f, nd_error *e)
{
    if (f->err) return afile_fail(f, e, f->err, "");
    int rc = write_all(f->fd, f->buf, f->used);
    if (!rc && f->mode == AFILE_STDOUT) f->sent += f->used;
    f->used = 0;
    return rc ? afile_fail(f, e, rc, "cannot write") : 0;
}

int nd_afile_write(nd_afile *f, const void *data, size_t len, nd_error *e)
{
    if (f->err) return afile_fail(f, e, f->err, "");
    if (!len) return 0; /* data may be NULL then */
    if (len <= AFILE_BUF - f->used) {
        memcpy(f->buf + f->used, data, len);
        f->used += len;
    } else {
        int rc = afile_flush(f, e);
        if (rc) return rc;
        if (len < AFILE_BUF) {
            memcpy(f->buf, data, len);
            f->used = len;
        } else if ((rc = write_all(f->fd, data, len))) {
            return afile_fail(f, e, rc, "cannot write");
        } else if (f->mode == AFILE_STDOUT) {
            f->sent += len;
        }
    }
    f->off += len;
    return 0;
}

int nd_afile_pwrite(nd_afile *f, uint64_t off, const void *data, size_t len, nd_error *e)
{
    ND_ASSERT(off <= f->off && len <= f->off - off && f->mode != AFILE_STDOUT);
    int rc = afile_flush(f, e);
    if (rc) return rc;
    const unsigned char *p = data;
    while (len) {
        ssize_t n = pwrite(f->fd, p, len, (off_t)off);
        if (n < 0) {
            if (errno == EINTR) continue;
            return afile_fail(f, e, -errno, "cannot write");
        }
        p += n;
        off += (uint64_t)n;
        len -= (size_t)n;
    }
    return 0;
}

uint64_t nd_afile_offset(const nd_afile *f) { return f->off; }

void nd_afile_abort(nd_afile *f)
{
    if (!f) return;
    if (f->mode != AFILE_RENAME && f->sent)
        nd_warn("standard output: the %llu bytes written before the failure cannot be taken "
                "back: what reads them gets an incomplete file",
                (unsigned long long)f->sent);
    if (f->mode == AFILE_RENAME) unlink(f->tmp);
    afile_free(f);
}

/* The spool's content to standard output. 0, or the failure with e filled. */
static int spool_out(nd_afile *f, nd_error *e)
{
    int rc = afile_flush(f, e);
    for (off_t at = 0; !rc;) {
        ssize_t n = pread(f->fd, f->buf, AFILE_BUF, at);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return afile_fail(f, e, -errno, "cannot read its temporary file");
        if (n == 0) break;
        if ((rc = write_all(STDOUT_FILENO, f->buf, (size_t)n)))
            return afile_fail(f, e, rc, "cannot write");
        f->sent += (uint64_t)n;
        at += n;
    }
    return rc;
}

int nd_afile_commit(nd_afile *f, nd_error *e)
{
    if (f->mode != AFILE_RENAME) {
        /* Standard output is the caller's: neither synced nor closed. */
        int rc = f->mode == AFILE_SPOOL ? spool_out(f, e) : afile_flush(f, e);
        if (rc) nd_afile_abort(f);
        else afile_free(f);
        return rc;
    }
    int rc = afile_flush(f, e);
    if (!rc && fsync(f->fd) < 0) rc = afile_fail(f, e, -errno, "cannot sync");
    /* Checked again: the target may have become a device or a FIFO meanwhile. */
    struct stat st;
    if (!rc && check_target(f->path, f->path, &st, &f->saved)) {
        rc = f->err = f->saved.code;
        if (e) *e = f->saved;
    }
    /* Renamed while the lock is held: a cleaner never takes the file for a stale one. */
    if (!rc && rename(f->tmp, f->path) < 0)
        rc = afile_fail(f, e, -errno, "cannot rename into place");
    if (rc) {
        nd_afile_abort(f);
        return rc;
    }
    int fd = f->fd;
    f->fd = -1;
    /* close can report a deferred write error (NFS) that fsync did not. */
    if (close(fd) < 0) rc = afile_fail(f, e, -errno, "cannot write");
    /* Make the rename itself durable. Some filesystems cannot sync a directory (EINVAL):
     * nothing more can be done there, and the file is in place, so that is not an error. */
    int dfd = open(f->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        if (fsync(dfd) < 0 && errno != EINVAL && errno != EROFS)
            rc = afile_fail(f, e, -errno, "cannot sync its directory");
        close(dfd);
    }
    afile_free(f);
    return rc;
}

int nd_read_file(const char *path, char **data, size_t *len, nd_error *e)
{
    *data = NULL;
    *len = 0;
    int in = nd_is_stdio(path);
    if (in && nd_stdio_claim(0, e)) return e ? e->code : ND_EUSAGE;
    if (in) path = "standard input";
    int fd = in ? dup(STDIN_FILENO) : open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int code = -errno;
        return nd_error_set(e, code, "%s: cannot open: %s", path, nd_strerror(code));
    }
    nd_input_note(fd);
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
        close(fd);
        return nd_error_set(e, -EISDIR, "%s: is a directory", path);
    }
    /* Size as read, not as stat says: pipes and /proc files report 0. */
    size_t cap = S_ISREG(st.st_mode) && st.st_size > 0 ? (size_t)st.st_size + 1 : 1 << 16;
    size_t n = 0;
    char *buf = malloc(cap);
    int rc = buf ? 0 : -ENOMEM;
    while (!rc) {
        if (n + 1 >= cap) {
            char *nb = cap > SIZE_MAX / 2 ? NULL : realloc(buf, cap * 2);
            if (!nb) {
                rc = -ENOMEM;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        ssize_t got = read(fd, buf + n, cap - 1 - n);
        if (got < 0) {
            if (errno != EINTR) rc = -errno;
        } else if (got == 0) {
            break;
        } else {
            n += (size_t)got;
        }
    }
    close(fd);
    if (rc) {
        free(buf);
        return nd_error_set(e, rc, "%s: cannot read: %s", path, nd_strerror(rc));
    }
    buf[n] = 0;
    *data = buf;
    *len = n;
    return 0;
}

/* ------------------------------------------------------------------------------------ */
/* Writer                                                                               */
/* ------------------------------------------------------------------------------------ */

struct ndf_writer {
    nd_afile *f;
    uint32_t kind;
    uint32_t n_sections;
    int open_section;   /* between ndf_section_begin and ndf_section_end */
    uint32_t tag;       /* of the open section */
    uint64_t sec_start; /* offset of its header */
    uint64_t sec_len;   /* payload bytes so far */
    uint32_t crc;       /* of the payload so far */
};

static void header_encode(unsigned char h[HDR_SIZE], uint32_t version, uint32_t kind,
                          uint32_t count, uint64_t size)
{
    memset(h, 0, HDR_SIZE);
    memcpy(h, magic, 8);
    nd_put_u32(h + 8, version);
    nd_put_u32(h + 12, kind);
    nd_put_u32(h + 16, count);
    nd_put_u64(h + 24, size);
    nd_put_u32(h + 36, nd_crc32(0, h, 36));
}

ndf_writer *ndf_writer_open(const char *path, uint32_t kind, nd_error *e)
{
    ndf_writer *w = calloc(1, sizeof *w);
    if (!w) {
        nd_error_set(e, -ENOMEM, "%s: out of memory", path);
        return NULL;
    }
    w->kind = kind;
    w->f = nd_afile_spooled_open(path, e); /* headers are patched at the end */
    if (!w->f) {
        free(w);
        return NULL;
    }
    /* Placeholder: the real header (count, size, CRC) is written by commit. */
    unsigned char h[HDR_SIZE] = {0};
    if (nd_afile_write(w->f, h, HDR_SIZE, e)) {
        ndf_writer_abort(w);
        return NULL;
    }
    return w;
}

int ndf_section_begin(ndf_writer *w, uint32_t tag, nd_error *e)
{
    ND_ASSERT(!w->open_section);
    w->open_section = 1;
    w->tag = tag;
    w->sec_start = nd_afile_offset(w->f);
    w->sec_len = 0;
    w->crc = 0;
    unsigned char h[SEC_HDR] = {0}; /* patched by ndf_section_end */
    return nd_afile_write(w->f, h, SEC_HDR, e);
}

int ndf_section_write(ndf_writer *w, const void *data, size_t len, nd_error *e)
{
    ND_ASSERT(w->open_section);
    w->crc = nd_crc32(w->crc, data, len);
    w->sec_len += len;
    return nd_afile_write(w->f, data, len, e);
}

int ndf_section_end(ndf_writer *w, nd_error *e)
{
    ND_ASSERT(w->open_section);
    w->open_section = 0;
    unsigned char h[SEC_HDR];
    nd_put_u32(h, w->tag);
    nd_put_u64(h + 8, w->sec_len);
    uint32_t crc = nd_crc32(w->crc, h, 4);
    crc = nd_crc32(crc, h + 8, 8);
    nd_put_u32(h + 4, crc);
    static const unsigned char zeros[ALIGN];
    int rc = nd_afile_write(w->f, zeros, (size_t)pad_of(w->sec_len), e);
    if (!rc) rc = nd_afile_pwrite(w->f, w->sec_start, h, SEC_HDR, e);
    if (!rc) w->n_sections++;
    return rc;
}

int ndf_write_section(ndf_writer *w, uint32_t tag, const void *data, size_t len, nd_error *e)
{
    int rc = ndf_section_begin(w, tag, e);
    if (!rc) rc = ndf_section_write(w, data, len, e);
    if (!rc) rc = ndf_section_end(w, e);
    w->open_section = 0; /* after a failure too: the file is lost anyway (sticky error) */
    return rc;
}

int ndf_writer_commit(ndf_writer *w, nd_error *e)
{
    /* A section left open is a bug, unless a write failed inside it: then commit only
     * reports that failure. */
    ND_ASSERT(!w->open_section || w->f->err);
    unsigned char h[HDR_SIZE];
    header_encode(h, NDF_VERSION, w->kind, w->n_sections, nd_afile_offset(w->f));
    int rc = nd_afile_pwrite(w->f, 0, h, HDR_SIZE, e);
    if (rc) nd_afile_abort(w->f);
    else rc = nd_afile_commit(w->f, e);
    free(w);
    return rc;
}

void ndf_writer_abort(ndf_writer *w)
{
    if (!w) return;
    nd_afile_abort(w->f);
    free(w);
}

/* ------------------------------------------------------------------------------------ */
/* Reader                                                                               */
/* ------------------------------------------------------------------------------------ */

typedef struct section {
    uint32_t tag, crc;
    uint64_t off; /* of the section header */
    uint64_t len; /* payload */
} section;

struct ndf_reader {
    char *path;
    const unsigned char *data;
    uint64_t size;
    void *map; /* mmap'd file, or NULL */
    size_t map_len;
    void *heap; /* read file (non-regular inputs), or NULL */
    uint32_t version, kind;
    size_t n_sections;
    section *sec;
};

static const char *kind_name(uint32_t kind)
{
    return kind == NDF_KIND_DATASET ? "dataset file (.ndd)"
           : kind == NDF_KIND_MODEL ? "model file (.ndm)"
                                    : "netdiffus file of unknown kind";
}

/* Checks everything in r->data[0..size) and fills the section table. */
static int verify(ndf_reader *r, uint32_t want_kind, nd_error *e)
{
    const unsigned char *d = r->data;
    const uint64_t size = r->size;
    const char *p = r->path;

    if (size == 0) return nd_error_set(e, ND_ETRUNC, "%s: truncated: the file is empty", p);
    if (memcmp(d, magic, size < 8 ? size : 8)) {
        /* Files whose line endings were converted in transit fail here too: say so. */
        int text = size >= 4 && !memcmp(d, magic, 4);
        return nd_error_set(e, ND_EFORMAT,
                            "%s: not a netdiffus dataset or model file (wrong magic bytes at "
                            "offset 0%s)",
                            p, text ? "; the file looks mangled by a text-mode transfer" : "");
    }
    if (size < HDR_SIZE)
        return nd_error_set(e, ND_ETRUNC,
                            "%s: truncated: %llu bytes, shorter than the %d-byte header", p,
                            (unsigned long long)size, HDR_SIZE);
    /* The version comes before the header CRC: a newer version may lay the rest of the
     * header out differently, so its CRC would not be where this build looks. */
    r->version = nd_get_u32(d + 8);
    if (r->version > NDF_VERSION)
        return nd_error_set(e, ND_EVERSION,
                            "%s: format version %u is newer than this build reads (%d): "
                            "use a newer netdiffus",
                            p, r->version, NDF_VERSION);
    uint32_t hcrc = nd_crc32(0, d, 36), stored = nd_get_u32(d + 36);
    if (hcrc != stored)
        return nd_error_set(e, ND_ECRC,
                            "%s: corrupt: header CRC mismatch at offset 36 (stored 0x%08x, "
                            "computed 0x%08x)",
                            p, stored, hcrc);
    if (r->version == 0)
        return nd_error_set(e, ND_EFORMAT, "%s: corrupt: format version 0 at offset 8", p);
    r->kind = nd_get_u32(d + 12);
    if (want_kind && r->kind != want_kind)
        return nd_error_set(e, ND_EFORMAT, "%s: is a %s, expected a %s", p, kind_name(r->kind),
                            kind_name(want_kind));
    uint32_t count = nd_get_u32(d + 16);
    uint64_t declared = nd_get_u64(d + 24);
    if (size < declared)
        return nd_error_set(e, ND_ETRUNC,
                            "%s: truncated: the file ends at byte %llu but its header "
                            "declares %llu bytes (interrupted copy or download?)",
                            p, (unsigned long long)size, (unsigned long long)declared);
    if (size > declared)
        return nd_error_set(e, ND_EFORMAT,
                            "%s: corrupt: %llu unexpected bytes after the declared end at "
                            "offset %llu",
                            p, (unsigned long long)(size - declared),
                            (unsigned long long)declared);
    if (count > (size - HDR_SIZE) / SEC_HDR)
        return nd_error_set(e, ND_EFORMAT,
                            "%s: corrupt: header declares %u sections, more than %llu bytes "
                            "can hold",
                            p, count, (unsigned long long)size);
    r->sec = calloc(count ? count : 1, sizeof *r->sec);
    if (!r->sec) return nd_error_set(e, -ENOMEM, "%s: out of memory", p);

    uint64_t off = HDR_SIZE;
    for (uint32_t i = 0; i < count; i++) {
        section *s = &r->sec[i];
        if (size - off < SEC_HDR)
            return nd_error_set(e, ND_EFORMAT,
                                "%s: corrupt: section #%u header at offset %llu runs past the "
                                "end of the file",
                                p, i, (unsigned long long)off);
        s->off = off;
        s->tag = nd_get_u32(d + off);
        s->crc = nd_get_u32(d + off + 4);
        s->len = nd_get_u64(d + off + 8);
        char tag[5];
        ndf_tag_str(s->tag, tag);
        uint64_t room = size - off - SEC_HDR;
        /* Compared without adding first: a corrupt length near 2^64 must not wrap. */
        if (s->len > room || pad_of(s->len) > room - s->len)
            return nd_error_set(e, ND_EFORMAT,
                                "%s: corrupt: section '%s' (#%u) at offset %llu declares "
                                "%llu bytes, but only %llu remain in the file",
                                p, tag, i, (unsigned long long)off, (unsigned long long)s->len,
                                (unsigned long long)room);
        if (s->len > SIZE_MAX)
            return nd_error_set(e, -EFBIG, "%s: section '%s' is too large for this machine", p,
                                tag);
        const unsigned char *payload = d + off + SEC_HDR;
        uint32_t crc = nd_crc32(0, payload, s->len);
        crc = nd_crc32(crc, d + off, 4);
        crc = nd_crc32(crc, d + off + 8, 8);
        if (crc != s->crc)
            return nd_error_set(e, ND_ECRC,
                                "%s: corrupt: section '%s' (#%u) at offset %llu: CRC mismatch "
                                "(stored 0x%08x, computed 0x%08x)",
                                p, tag, i, (unsigned long long)off, s->crc, crc);
        off += SEC_HDR + s->len;
        for (uint64_t k = 0, n = pad_of(s->len); k < n; k++, off++)
            if (d[off])
                return nd_error_set(e, ND_ECRC,
                                    "%s: corrupt: non-zero padding after section '%s' at "
                                    "offset %llu",
                                    p, tag, (unsigned long long)off);
    }
    if (off != size)
        return nd_error_set(e, ND_EFORMAT,
                            "%s: corrupt: %llu bytes after the last of %u sections at offset "
                            "%llu",
                            p, (unsigned long long)(size - off), count,
                            (unsigned long long)off);
    r->n_sections = count;
    return 0;
}

static ndf_reader *reader_new(const char *name, nd_error *e)
{
    ndf_reader *r = calloc(1, sizeof *r);
    if (r) r->path = strdup(name);
    if (!r || !r->path) {
        free(r);
        nd_error_set(e, -ENOMEM, "%s: out of memory", name);
        return NULL;
    }
    return r;
}

ndf_reader *ndf_open_mem(const void *data, size_t len, const char *name, uint32_t kind,
                         nd_error *e)
{
    ndf_reader *r = reader_new(name, e);
    if (!r) return NULL;
    r->data = data;
    r->size = len;
    if (verify(r, kind, e)) {
        ndf_close(r);
        return NULL;
    }
    return r;
}

ndf_reader *ndf_open(const char *path, uint32_t kind, nd_error *e)
{
    int in = nd_is_stdio(path); /* standard input: read whole like a pipe */
    ndf_reader *r = reader_new(in ? "standard input" : path, e);
    if (!r) return NULL;
    int fd = -1;
    struct stat st = {0};
    if (!in) {
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || fstat(fd, &st) < 0) {
            int code = -errno;
            nd_error_set(e, code, "%s: cannot open: %s", path, nd_strerror(code));
            goto fail;
        }
        nd_input_note(fd);
    }
    if (S_ISDIR(st.st_mode)) {
        nd_error_set(e, -EISDIR, "%s: is a directory, expected a dataset or model file", path);
        goto fail;
    }
    if (S_ISREG(st.st_mode) && st.st_size > 0) {
        /* Mapped, not read: model and dataset files can be large, and pages only touched
         * by the CRC pass are dropped by the kernel under pressure. Files are replaced by
         * rename, never rewritten in place, so the mapping stays valid. */
        if ((uint64_t)st.st_size > SIZE_MAX) {
            nd_error_set(e, -EFBIG, "%s: too large for this machine", path);
            goto fail;
        }
        r->map_len = (size_t)st.st_size;
        r->map = mmap(NULL, r->map_len, PROT_READ, MAP_PRIVATE, fd, 0);
        if (r->map == MAP_FAILED) {
            r->map = NULL;
            int code = -errno;
            nd_error_set(e, code, "%s: cannot map: %s", path, nd_strerror(code));
            goto fail;
        }
        r->data = r->map;
        r->size = r->map_len;
    } else {
        if (fd >= 0) close(fd);
        fd = -1;
        char *buf;
        size_t n;
        if (nd_read_file(path, &buf, &n, e)) goto fail;
        r->heap = buf;
        r->data = (const unsigned char *)buf;
        r->size = n;
    }
    if (fd >= 0) close(fd);
    fd = -1;
    if (verify(r, kind, e)) goto fail;
    return r;
fail:
    if (fd >= 0) close(fd);
    ndf_close(r);
    return NULL;
}

void ndf_close(ndf_reader *r)
{
    if (!r) return;
    if (r->map) munmap(r->map, r->map_len);
    free(r->heap);
    free(r->sec);
    free(r->path);
    free(r);
}

uint32_t ndf_kind(const ndf_reader *r) { return r->kind; }
uint32_t ndf_version(const ndf_reader *r) { return r->version; }
uint64_t ndf_file_size(const ndf_reader *r) { return r->size; }
size_t ndf_section_count(const ndf_reader *r) { return r->n_sections; }
const char *ndf_path(const ndf_reader *r) { return r->path; }

void ndf_section_at(const ndf_reader *r, size_t i, uint32_t *tag, const void **data,
                    size_t *len)
{
    ND_ASSERT(i < r->n_sections);
    const section *s = &r->sec[i];
    if (tag) *tag = s->tag;
    if (data) *data = r->data + s->off + SEC_HDR;
    if (len) *len = (size_t)s->len;
}

void ndf_section_info(const ndf_reader *r, size_t i, uint64_t *offset, uint32_t *crc)
{
    ND_ASSERT(i < r->n_sections);
    if (offset) *offset = r->sec[i].off;
    if (crc) *crc = r->sec[i].crc;
}

int ndf_find(const ndf_reader *r, uint32_t tag, const void **data, size_t *len, nd_error *e)
{
    for (size_t i = 0; i < r->n_sections; i++)
        if (r->sec[i].tag == tag) {
            ndf_section_at(r, i, NULL, data, len);
            return 0;
        }
    char t[5];
    ndf_tag_str(tag, t);
    return nd_error_set(e, ND_EFORMAT, "%s: missing section %s", r->path, t);
}
