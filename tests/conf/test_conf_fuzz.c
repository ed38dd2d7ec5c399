/*
 * test_conf_fuzz.c — the YAML config parser on damaged input: seeded mutations of every
 * example config (byte flips, YAML punctuation inserted, lines cut and doubled,
 * truncation). Each must give a config that round-trips, or ND_ECONFIG with a message
 * naming the file; never a crash, a leak or undefined behaviour (run it under the
 * sanitizer build). Built with -DND_LIBFUZZER it is a libFuzzer target instead.
 */
#include <dirent.h>

#include "conf_test.h"

static void fuzz_one(const char *data, size_t len)
{
    nd_config cfg;
    nd_error e = {0};
    int rc = nd_config_parse(&cfg, data, len, "fuzz.yaml", &e);
    if (rc) {
        if (rc != ND_ECONFIG) CHECK_FAIL_("rc %d (%s) for:\n%.*s", rc, e.msg, (int)len, data);
        if (strncmp(e.msg, "fuzz.yaml", 9)) CHECK_FAIL_("message without the file: %s", e.msg);
        nd_config_free(&cfg);
        return;
    }
    char *y = nd_config_to_yaml(&cfg);
    nd_config back;
    if (nd_config_parse(&back, y, strlen(y), "again.yaml", &e))
        CHECK_FAIL_("accepted input does not round-trip: %s\ninput:\n%.*s\noutput:\n%s", e.msg,
                    (int)len, data, y);
    char *y2 = nd_config_to_yaml(&back);
    CHECK_STR_EQ(y2, y);
    free(y);
    free(y2);
    nd_config_free(&back);
    nd_config_free(&cfg);
}

#ifdef ND_LIBFUZZER
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_one((const char *)data, size);
    return 0;
}
#else

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t next(void) /* xorshift64*: the same mutations on every run */
{
    rng ^= rng >> 12, rng ^= rng << 25, rng ^= rng >> 27;
    return rng * 2685821657736338717ull;
}

/* One to four random edits of buf (len bytes, cap room); returns the new length. */
static size_t mutate(char *buf, size_t len, size_t cap)
{
    static const char alphabet[] = ":-[]{},#&*!|>'\"\\ \n\t0123456789.eLkMsmh/~";
    int edits = 1 + (int)(next() % 4);
    for (int i = 0; i < edits && len; i++) {
        size_t at = next() % len;
        switch (next() % 6) {
        case 0: buf[at] = (char)(next() & 0xff); break;
        case 1:
            if (len + 1 < cap) {
                memmove(buf + at + 1, buf + at, len - at);
                buf[at] = alphabet[next() % (sizeof alphabet - 1)];
                len++;
            }
            break;
        case 2: { /* cut a run */
            size_t n = next() % 16;
            if (at + n > len) n = len - at;
            memmove(buf + at, buf + at + n, len - at - n);
            len -= n;
            break;
        }
        case 3: { /* double the line at 'at' */
            size_t s = at, e = at;
            while (s && buf[s - 1] != '\n') s--;
            while (e < len && buf[e] != '\n') e++;
            size_t n = e - s + (e < len);
            if (len + n < cap) {
                memmove(buf + e + (e < len), buf + s, len - s);
                len += n;
            }
            break;
        }
        case 4: len = at; break;
        default: { /* swap a digit for another */
            if (buf[at] >= '0' && buf[at] <= '9') buf[at] = (char)('0' + next() % 10);
            else buf[at] = ' ';
        }
        }
    }
    return len;
}

int main(void)
{
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/conf/examples", ND_SOURCE_DIR);
    DIR *d = opendir(dir);
    if (!d) CHECK_FAIL_("cannot open %s", dir);
    size_t runs = 0, accepted = 0;
    for (struct dirent *de; (de = readdir(d));) {
        size_t n = strlen(de->d_name);
        if (n < 6 || strcmp(de->d_name + n - 5, ".yaml")) continue;
        char path[1280];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        char *seed = conf_test_read(path);
        CHECK(seed != NULL);
        size_t len = strlen(seed), cap = len * 2 + 64;
        char *buf = malloc(cap);
        CHECK(buf != NULL);
        for (int i = 0; i < 2000; i++, runs++) {
            memcpy(buf, seed, len);
            size_t m = mutate(buf, len, cap);
            nd_error e = {0};
            nd_config probe;
            int ok = !nd_config_parse(&probe, buf, m, "fuzz.yaml", &e);
            nd_config_free(&probe);
            accepted += (size_t)ok;
            fuzz_one(buf, m);
        }
        free(buf);
        free(seed);
    }
    closedir(d);
    CHECK_INT(runs, >=, 8000);
    /* both outcomes must occur, or the mutations test nothing */
    CHECK_INT(accepted, >, runs / 20);
    CHECK_INT(accepted, <, runs);
    printf("ok: %zu mutated configs, %zu accepted\n", runs, accepted);
    return 0;
}
#endif
