/*
 * sink_pcapng.c — the pcapng:FILE sink: the same records as the pcap sink, as pcapng
 * blocks written here (libpcap reads pcapng but, in Debian 12's 1.10, cannot write it).
 *
 * The file is one section: a Section Header Block, an Interface Description Block per
 * interface (Ethernet, nanosecond timestamps: if_tsresol 9) and an Enhanced Packet Block
 * per frame, all in host byte order, which the section's byte-order magic tells readers.
 * A one-sided replay has one interface, "netdiffus"; when both sides of a two-sided replay
 * name the same file, it has two, "client" (0) and "server" (1), and each frame is on the
 * side it leaves from: client-to-server frames on 0, server-to-client on 1
 * (docs/FORMATS.md §7).
 */
#include "replay_impl.h"

enum { SHB = 0x0a0d0d0a, IDB = 1, EPB = 6, BYTE_ORDER_MAGIC = 0x1a2b3c4d };
enum { OPT_END = 0, OPT_SHB_USERAPPL = 4, OPT_IF_NAME = 2, OPT_IF_TSRESOL = 9 };
#define EPB_HEAD 28 /* type, length, interface, timestamp (2), captured and wire lengths */

static inline uint32_t pad4(uint32_t n) { return (n + 3) & ~3u; }

/* Appends a 32-bit word at *p. */
static void put_u32(uint8_t **p, uint32_t v)
{
    memcpy(*p, &v, 4);
    *p += 4;
}

/* Appends two 16-bit words at *p, a first. */
static void put_u16x2(uint8_t **p, uint16_t a, uint16_t b)
{
    memcpy(*p, &a, 2);
    memcpy(*p + 2, &b, 2);
    *p += 4;
}

/* Appends option code with its value (len bytes), padded to 32 bits. */
static void put_opt(uint8_t **p, uint16_t code, const void *val, uint16_t len)
{
    memcpy(*p, &code, 2);
    memcpy(*p + 2, &len, 2);
    memset(*p + 4, 0, pad4(len));
    memcpy(*p + 4, val, len);
    *p += 4 + pad4(len);
}

/* Closes the block that starts at b and ends at *p: the end-of-options, then its length
 * at both ends. */
static void end_block(uint8_t *b, uint8_t **p)
{
    put_u32(p, OPT_END); /* code 0, length 0 */
    uint32_t len = (uint32_t)(*p - b) + 4;
    memcpy(b + 4, &len, 4);
    put_u32(p, len);
}

static void put_idb(uint8_t **p, const char *name)
{
    uint8_t *b = *p;
    const uint8_t tsresol = 9; /* 10^-9 s */
    put_u32(p, IDB);
    put_u32(p, 0);
    put_u16x2(p, 1, 0); /* LINKTYPE_ETHERNET, reserved */
    put_u32(p, 65535);
    put_opt(p, OPT_IF_NAME, name, (uint16_t)strlen(name));
    put_opt(p, OPT_IF_TSRESOL, &tsresol, 1);
    end_block(b, p);
}

static uint8_t *pcapng_alloc(replay_sink *s, uint32_t len, const replay_pkt_info *info,
                             nd_error *e)
{
    uint8_t *rec = sink_file_room((sink_file *)s, EPB_HEAD + pad4(len) + 4, e);
    return rec ? rec + EPB_HEAD : NULL;
}

static int pcapng_send(replay_sink *s, uint32_t len, uint64_t deadline,
                       const replay_pkt_info *info, nd_error *e)
{
    sink_file *p = (sink_file *)s;
    uint8_t *b = p->buf + p->len, *q = b;
    const uint32_t total = EPB_HEAD + pad4(len) + 4;
    put_u32(&q, EPB);
    put_u32(&q, total);
    put_u32(&q, p->sides && info->dir == ND_DOWN ? 1 : 0);
    put_u32(&q, (uint32_t)(deadline >> 32));
    put_u32(&q, (uint32_t)deadline);
    put_u32(&q, len);
    put_u32(&q, len);
    q += len; /* the frame, built in place */
    memset(q, 0, pad4(len) - len);
    q += pad4(len) - len;
    put_u32(&q, total);
    p->len += total;
    s->packets++;
    s->bytes += len;
    return 0;
}

static const sink_ops pcapng_ops = {
    "pcapng", 0, pcapng_alloc, pcapng_send, sink_flush_none, sink_file_close};

replay_sink *sink_pcapng_open(const char *path, int sides, nd_error *e)
{
    uint8_t head[256], *q = head;
    put_u32(&q, SHB);
    put_u32(&q, 0);
    put_u32(&q, BYTE_ORDER_MAGIC);
    put_u16x2(&q, 1, 0);     /* version 1.0 */
    put_u32(&q, UINT32_MAX); /* section length -1: not given */
    put_u32(&q, UINT32_MAX);
    put_opt(&q, OPT_SHB_USERAPPL, "netdiffus", 9);
    end_block(head, &q);
    if (sides) {
        put_idb(&q, "client");
        put_idb(&q, "server");
    } else {
        put_idb(&q, "netdiffus");
    }
    sink_file *p = sink_file_open(path, "pcapng", &pcapng_ops, head, (size_t)(q - head), e);
    if (!p) return NULL;
    p->sides = sides;
    return &p->base;
}
