/*
 * tmpdir.h — scratch files for the base and CLI tests: one private directory per test
 * program, removed at exit with everything in it, folders included.
 */
#ifndef ND_TEST_TMPDIR_H
#define ND_TEST_TMPDIR_H

#include <dirent.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char tmp_dir_[256];

/* One entry of the scratch tree, children before their folder (FTW_DEPTH); links are
 * removed, never followed (FTW_PHYS). */
static inline int tmp_remove_(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    remove(p);
    return 0;
}

static inline void tmp_cleanup_(void) { nftw(tmp_dir_, tmp_remove_, 16, FTW_DEPTH | FTW_PHYS); }

/* The scratch directory, created on first use. */
static inline const char *tmp_dir(void)
{
    if (!tmp_dir_[0]) {
        const char *base = getenv("TMPDIR");
        snprintf(tmp_dir_, sizeof tmp_dir_, "%s/ndtest.XXXXXX", base && *base ? base : "/tmp");
        if (!mkdtemp(tmp_dir_)) {
            perror("mkdtemp");
            exit(1);
        }
        atexit(tmp_cleanup_);
    }
    return tmp_dir_;
}

/* "<dir>/name" in a static ring of buffers: the last 32 stay valid. */
static inline const char *tmp_path(const char *name)
{
    static char buf[32][512];
    static int next;
    char *p = buf[next++ % 32];
    snprintf(p, 512, "%s/%s", tmp_dir(), name);
    return p;
}

/* Number of entries in the scratch directory (temporary files left behind show here). */
static inline int tmp_count(void)
{
    DIR *d = opendir(tmp_dir());
    int n = 0;
    struct dirent *de;
    while (d && (de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) n++;
    if (d) closedir(d);
    return n;
}

static inline void write_bytes(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, len, f) != len || fclose(f)) {
        perror(path);
        exit(1);
    }
}

/* Whole file into a malloc'd buffer of exactly its size (+1 for a NUL). */
static inline unsigned char *read_bytes(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        exit(1);
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)n + 1);
    if (!b || fread(b, 1, (size_t)n, f) != (size_t)n) {
        perror(path);
        exit(1);
    }
    b[n] = 0;
    fclose(f);
    *len = (size_t)n;
    return b;
}

#endif
