/*
 * fuzz_http.c — fuzz target for the metrics endpoint's request parser (nd_http_parse):
 * any bytes, as one read and as every shorter read before it. Method and path lie
 * within the bytes, a whole head is as long as it says and no longer than the bound,
 * every prefix of a whole head asks for more bytes, and a verdict never changes back:
 * once an error, always that error; once whole, always whole with the same head.
 * libFuzzer target with ND_LIBFUZZER=ON; otherwise replay_main.c runs it over seeds.
 */
#include <stdlib.h>

#include "nd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { MAX = 512 }; /* a small bound, so that the fuzzer reaches 431 too */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    nd_http_req r, first = {0};
    int verdict = ND_HTTP_INCOMPLETE;
    for (size_t n = 0; n <= size; n++) {
        int rc = nd_http_parse(buf, n, MAX, &r);
        if (rc != ND_HTTP_INCOMPLETE && rc != ND_HTTP_COMPLETE && rc != ND_HTTP_BAD &&
            rc != ND_HTTP_TOO_LARGE)
            abort();
        if (verdict != ND_HTTP_INCOMPLETE && rc != verdict) abort();
        if (rc == ND_HTTP_COMPLETE) {
            if (r.head_len > n || r.head_len > MAX || !r.method_len ||
                r.method + r.method_len > buf + r.head_len || r.path < buf ||
                r.path + r.path_len > buf + r.head_len || r.path[0] != '/' || r.minor > 1)
                abort();
            if (verdict == ND_HTTP_COMPLETE &&
                (r.head_len != first.head_len || r.path_len != first.path_len))
                abort();
            first = r;
        }
        if (rc == ND_HTTP_TOO_LARGE && n < MAX) abort();
        verdict = rc;
    }
    return 0;
}
