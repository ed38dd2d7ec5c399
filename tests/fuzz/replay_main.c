/*
 * replay_main.c — runs a libFuzzer-style target over files without libFuzzer (gcc
 * builds, ctest): each argument is a file or a directory of files; each file is one input.
 * Prints how many inputs ran; any crash or abort fails the test.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return 1;
    }
    size_t cap = 1 << 16, n = 0;
    uint8_t *buf = malloc(cap);
    for (size_t got; buf && (got = fread(buf + n, 1, cap - n, f)) > 0;) {
        n += got;
        if (n == cap) buf = realloc(buf, cap *= 2);
    }
    fclose(f);
    if (!buf) return 1;
    /* An exact-size copy, so that ASan catches reads past the end of the input. */
    uint8_t *exact = malloc(n ? n : 1);
    memcpy(exact, buf, n);
    free(buf);
    LLVMFuzzerTestOneInput(exact, n);
    free(exact);
    return 0;
}

int main(int argc, char **argv)
{
    int inputs = 0, failed = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode)) {
            DIR *d = opendir(argv[i]);
            struct dirent *de;
            char p[4096];
            while (d && (de = readdir(d))) {
                if (de->d_name[0] == '.') continue;
                snprintf(p, sizeof p, "%s/%s", argv[i], de->d_name);
                failed += run_file(p);
                inputs++;
            }
            if (d) closedir(d);
        } else {
            failed += run_file(argv[i]);
            inputs++;
        }
    }
    printf("%d inputs, %d unreadable\n", inputs, failed);
    return failed || !inputs;
}
