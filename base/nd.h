/*
 * nd.h — the netdiffus base library (libnd_base): what every module shares.
 *
 * Logging, error reporting, clocks, the sectioned container behind dataset (.ndd) and
 * model (.ndm) files, the in-memory dataset of windows, and the series CSV. It sits
 * under every stage of the pipeline (capture → dataset → model → replay) and depends
 * on nothing of netdiffus itself. See docs/ARCHITECTURE.md and docs/FORMATS.md.
 */
#ifndef ND_H
#define ND_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ------------------------------------------------------------------------------------ */
/* Contracts and errors                                                                 */
/* ------------------------------------------------------------------------------------ */

/* A broken contract (a bug, never bad input): stays on in release builds. */
#define ND_ASSERT(x)                                                                           \
    do {                                                                                       \
        if (!(x)) nd_assert_fail(__FILE__, __LINE__, #x);                                      \
    } while (0)
_Noreturn void nd_assert_fail(const char *file, int line, const char *expr);

/* What dpdk: sources and sinks say in a build without DPDK (-DND_DPDK=OFF; ND_HAVE_DPDK
 * is 0 then, 1 otherwise, for every target). */
#define ND_NO_DPDK "this build has no DPDK (configure with -DND_DPDK=ON; needs libdpdk-dev)"

/* Runtime failures are negative errno-style codes; these are netdiffus's own. */
enum {
    ND_OK = 0,
    ND_EFORMAT = -1000, /* input file or record is malformed / foreign */
    ND_ECRC,            /* a checksum does not match */
    ND_ETRUNC,          /* input ends early */
    ND_EVERSION,        /* file written by a newer, unknown format version */
    ND_ECONFIG,         /* configuration invalid */
    ND_EUSAGE,          /* impossible command-line options */
    ND_EINTR,           /* stopped by a signal; what was done so far is kept */
};

/* Says what went wrong and where, for a person. Functions that can fail take an
 * nd_error * (may be NULL) and fill it on failure; the code is also returned. */
typedef struct nd_error {
    int code;       /* ND_E* or -errno */
    char msg[1024]; /* complete message, e.g. "conf.yaml:3:5: capture.bin: expected ..." */
} nd_error;

/* Fills e (if not NULL) with code and a formatted message; returns code. */
int nd_error_set(nd_error *e, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Text for a code: ND_E* codes and -errno. Never NULL. */
const char *nd_strerror(int code);

/* ------------------------------------------------------------------------------------ */
/* Logging: to stderr, with levels; never per packet.                                   */
/* ------------------------------------------------------------------------------------ */

enum nd_log_level { ND_LOG_ERROR = 0, ND_LOG_WARN, ND_LOG_INFO, ND_LOG_DEBUG };

void nd_log_set_level(int level); /* default ND_LOG_INFO; -q → WARN, -v → DEBUG */
int nd_log_level(void);
void nd_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define nd_err(...)   nd_log(ND_LOG_ERROR, __VA_ARGS__)
#define nd_warn(...)  nd_log(ND_LOG_WARN, __VA_ARGS__)
#define nd_info(...)  nd_log(ND_LOG_INFO, __VA_ARGS__)
#define nd_debug(...) nd_log(ND_LOG_DEBUG, __VA_ARGS__)

/* True when stderr is a terminal and the level allows it: status lines are drawn only
 * then, with nd_status() rewriting one line in place (\r) and nd_status_end() ending it. */
int nd_status_enabled(void);
void nd_status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void nd_status_end(void);
/* A time left or taken, rounded to the second, for status lines: "42 s", "3 min 05 s",
 * "2 h 07 min" (never "0 min 60 s"). */
void nd_format_time_left(char *buf, size_t size, double seconds);

/* ------------------------------------------------------------------------------------ */
/* Time                                                                                 */
/* ------------------------------------------------------------------------------------ */

#define ND_NS_PER_SEC 1000000000ull
uint64_t nd_now_ns(void);      /* CLOCK_MONOTONIC, ns */
uint64_t nd_realtime_ns(void); /* CLOCK_REALTIME, ns since the epoch */

/* ------------------------------------------------------------------------------------ */
/* Random numbers: xoshiro256**, seeded by splitmix64. The state is four words, saved   */
/* in checkpoints as it is; replay keeps one stream per flow.                            */
/* ------------------------------------------------------------------------------------ */

typedef struct nd_rng {
    uint64_t s[4];
} nd_rng;
void nd_rng_seed(nd_rng *r, uint64_t seed);
uint64_t nd_rng_u64(nd_rng *r);
double nd_rng_uniform(nd_rng *r);             /* [0, 1) */
uint32_t nd_rng_below(nd_rng *r, uint32_t n); /* [0, n), n > 0 */
float nd_rng_normal(nd_rng *r);               /* N(0, 1), Box–Muller, one value per call */

/* ------------------------------------------------------------------------------------ */
/* Output files: every file netdiffus writes goes through the atomic writer, which never */
/* replaces what is not its own (docs/FORMATS.md, "Writing files").                      */
/* ------------------------------------------------------------------------------------ */

/* Turns the input registry on for this process, a run of the program (its main calls
 * it): from then on every file readers note is one the atomic writer refuses to replace,
 * so that no command overwrites what it reads (`export X.ndd --csv X.ndd`). Off in
 * library users that read and rewrite one file on purpose (tests, tools). */
void nd_input_guard(void);
/* Notes the file open on fd as an input of this run (every reader calls it; only
 * regular files count). Thread-safe; nothing while the registry is off. */
void nd_input_note(int fd);
/* Lets the file at path be replaced again: for runs meant to update their input (a
 * resumed checkpoint). No-op when it was not noted. */
void nd_input_forget(const char *path);

/* "-" as a file name is standard input to a reader and standard output to a writer
 * (docs/FORMATS.md, "Standard input and output"). Each serves one file of a run: a
 * second reader of standard input, or a second writer to standard output, is refused. */
static inline int nd_is_stdio(const char *path) { return path[0] == '-' && !path[1]; }
/* Takes standard input (fd 0) or output (fd 1) for one file of this run: 0, or ND_EUSAGE
 * with e filled when another file has it already. Thread-safe. */
int nd_stdio_claim(int fd, nd_error *e);

/* A file written to a temporary name beside its target (".NAME.XXXXXX", locked with
 * flock while it is written) and renamed over the target on commit, so that a failed or
 * killed run leaves the previous file whole. A symbolic link is followed (the file it
 * points to is replaced, the link kept); a target that is not a regular file (device,
 * FIFO, socket, directory) or is an input of the run is refused with ND_EUSAGE. Opening
 * removes the temporary files of this target that killed writers left (those whose lock
 * can be taken). Writes are buffered; the first failure is kept (sticky) and returned
 * again by every later call, so callers may check only at the end. */
typedef struct nd_afile nd_afile;
/* NULL and e filled ("PATH: ...") on failure. "-" writes to standard output as the data
 * comes (a pipe is read while it is written): nothing is renamed, and what was written
 * before a failure cannot be taken back (abort says so). */
nd_afile *nd_afile_open(const char *path, nd_error *e);
int nd_afile_write(nd_afile *f, const void *data, size_t len, nd_error *e);
/* Flush, fsync, rename over the target, fsync the directory. Frees f in every case; on
 * any failure the temporary file is removed and the target is untouched. */
int nd_afile_commit(nd_afile *f, nd_error *e);
void nd_afile_abort(nd_afile *f); /* removes the temporary file; NULL is a no-op */

/* Where a long run saves its result when path cannot be written (unwritable folder, full
 * disk), so that the work is not lost: ${TMPDIR:-/tmp}/netdiffus-PID-NAME, NAME being
 * path's last component. The caller says where it went. malloc'd; NULL when out of
 * memory. */
char *nd_fallback_path(const char *path);

/* ------------------------------------------------------------------------------------ */
/* Container: the sectioned, checksummed file under .ndd and .ndm (docs/FORMATS.md).   */
/* ------------------------------------------------------------------------------------ */

/* Four-character codes, stored little-endian: ND_FOURCC('M','E','T','A'). */
#define ND_FOURCC(a, b, c, d)                                                                  \
    ((uint32_t)(a) | (uint32_t)(b) << 8 | (uint32_t)(c) << 16 | (uint32_t)(d) << 24)

#define NDF_KIND_DATASET ND_FOURCC('N', 'D', 'D', 'S') /* .ndd */
#define NDF_KIND_MODEL   ND_FOURCC('N', 'D', 'M', 'D') /* .ndm */
#define NDF_VERSION      1 /* container format version this build writes and reads */

/* Little-endian fields, whatever the host: every file field goes through these. */
static inline void nd_put_u16(unsigned char *p, uint16_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}
static inline void nd_put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> 8 * i);
}
static inline void nd_put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> 8 * i);
}
static inline uint16_t nd_get_u16(const unsigned char *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}
static inline uint32_t nd_get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t nd_get_u64(const unsigned char *p)
{
    return (uint64_t)nd_get_u32(p) | (uint64_t)nd_get_u32(p + 4) << 32;
}
void nd_put_f32(unsigned char *p, float v); /* IEEE-754 binary32, bit for bit */
float nd_get_f32(const unsigned char *p);

/* "META" for a tag; bytes that are not printable ASCII show as '?'. */
void ndf_tag_str(uint32_t tag, char out[5]);

typedef struct ndf_writer ndf_writer;
typedef struct ndf_reader ndf_reader;

/* Starts writing path atomically: data goes to a temporary file beside it, which
 * ndf_writer_commit() fsyncs and renames over path. Returns NULL and fills e on failure. */
ndf_writer *ndf_writer_open(const char *path, uint32_t kind, nd_error *e);
/* Appends one section. Returns 0 or a negative code (e.g. -ENOSPC, with the path). */
int ndf_write_section(ndf_writer *w, uint32_t tag, const void *data, size_t len, nd_error *e);
/* The same in pieces, for sections too large to build in memory (u64 lengths: sections
 * over 4 GiB are fine): begin, any number of writes, end. One section open at a time. */
int ndf_section_begin(ndf_writer *w, uint32_t tag, nd_error *e);
int ndf_section_write(ndf_writer *w, const void *data, size_t len, nd_error *e);
int ndf_section_end(ndf_writer *w, nd_error *e);
/* Finishes the file: fsync, rename, fsync of the directory. Frees w in every case; after
 * any earlier failure it returns that failure and path is untouched. */
int ndf_writer_commit(ndf_writer *w, nd_error *e);
/* Drops the temporary file; path is untouched. ndf_writer_abort(NULL) is a no-op. */
void ndf_writer_abort(ndf_writer *w);

/* Reads and verifies a whole file (magic, kind, version, every length and CRC).
 * kind 0 accepts any kind. Returns NULL and fills e with a message naming the file,
 * the section and the byte offset when anything is wrong. e->code tells the class:
 * ND_EFORMAT foreign or inconsistent, ND_EVERSION newer, ND_ETRUNC shorter than its
 * header says, ND_ECRC corrupt, -errno when the file cannot be read. */
ndf_reader *ndf_open(const char *path, uint32_t kind, nd_error *e);
/* Same over bytes in memory (fuzzing, embedded files); name is used in messages. The
 * reader borrows data: it must outlive the reader. */
ndf_reader *ndf_open_mem(const void *data, size_t len, const char *name, uint32_t kind,
                         nd_error *e);
void ndf_close(ndf_reader *r); /* NULL is a no-op */
uint32_t ndf_kind(const ndf_reader *r);
uint32_t ndf_version(const ndf_reader *r);
uint64_t ndf_file_size(const ndf_reader *r);
size_t ndf_section_count(const ndf_reader *r);
/* i-th section in file order: tag, payload pointer (owned by r) and length. */
void ndf_section_at(const ndf_reader *r, size_t i, uint32_t *tag, const void **data,
                    size_t *len);
/* i-th section's byte offset in the file (of its 16-byte header) and stored CRC32. */
void ndf_section_info(const ndf_reader *r, size_t i, uint64_t *offset, uint32_t *crc);
/* First section with this tag; returns 0 and sets data/len, or ND_EFORMAT (filling e
 * with "FILE: missing section TAG") when absent. */
int ndf_find(const ndf_reader *r, uint32_t tag, const void **data, size_t *len, nd_error *e);
const char *ndf_path(const ndf_reader *r);

/* ------------------------------------------------------------------------------------ */
/* Dataset: labelled windows of per-flow time series plus what replay needs.           */
/* ------------------------------------------------------------------------------------ */

#define ND_NAME_MAX     64
#define ND_MAX_CLASSES  1024
#define ND_MAX_CHANNELS 8
#define ND_MAX_BINS     65536 /* L */

#define ND_SIZE_HIST     1519 /* frame bytes 0..1517 by byte; 1518 holds 1518 and larger */
#define ND_IAT_HIST      64  /* bucket k: inter-arrival in [2^k, 2^(k+1)) ns; 0 holds 0..1 ns */
#define ND_PORT_TOP      32  /* most frequent server ports kept per class */
#define ND_MSS_TOP       8   /* most frequent TCP MSS options kept per class */
#define ND_ARRIVAL_HIST  252 /* flow inter-arrival gaps: nd_arrival_bucket */
#define ND_DURATION_HIST 992 /* flow durations in bins: nd_duration_bucket */
#define ND_DAY_HOURS     24
#define ND_NS_PER_HOUR   (3600ull * ND_NS_PER_SEC)

enum nd_dir { ND_DOWN = 0, ND_UP = 1 }; /* down = server→client, up = client→server */
enum nd_l4 { ND_L4_TCP = 0, ND_L4_UDP = 1, ND_L4_OTHER = 2 };

/* Per class, what the replay engine draws packets from. Counts, not probabilities, so
 * that statistics of several captures add up. */
typedef struct nd_class_stats {
    uint64_t size_hist[2][ND_SIZE_HIST]; /* [dir][frame bytes incl. L2 header] */
    uint64_t iat_hist[2][ND_IAT_HIST];   /* [dir] gaps between packets inside one bin */
    uint64_t ttl_hist[2][256];           /* [dir] IPv4 TTL / IPv6 hop limit */
    uint64_t l4_flows[3];                /* flows by enum nd_l4 */
    uint64_t ipv6_flows;                 /* of all flows, how many over IPv6 */
    uint16_t port[ND_PORT_TOP];          /* server ports, most frequent first */
    uint64_t port_count[ND_PORT_TOP];
    uint16_t mss[ND_MSS_TOP]; /* TCP MSS options seen on SYNs, most frequent first */
    uint64_t mss_count[ND_MSS_TOP];
    uint64_t flows;         /* flows started in this class */
    uint64_t first_flow_ns; /* first and last flow start (capture clock), over all */
    uint64_t last_flow_ns;  /*   inputs: not a rate (inputs may be years apart) */
    /* Arrivals, measured within each input's own time span (docs/REPLAY.md, "Arrivals"):
     * files from before them have arrival_inputs 0. */
    uint64_t arrival_inputs;                /* inputs in which the class started a flow */
    uint64_t arrival_hist[ND_ARRIVAL_HIST]; /* gaps between consecutive flow starts of
                                               the class within one input */
    uint64_t arrival_gap_ns;                /* their sum (the rate: gaps / sum) */
    uint64_t hour_flows[ND_DAY_HOURS];      /* flows started in each UTC hour of the day */
    uint64_t hour_seen_ns[ND_DAY_HOURS];    /* time the inputs covered in that hour */
    /* Durations of the class's ended flows in bins, from the bin of the first packet to
     * the bin of the last one, both counted (the partial last window as far as it goes):
     * how many windows a flow spans, whatever windows capture dropped as sparse. Files
     * from before them have all zero. */
    uint64_t duration_hist[ND_DURATION_HIST]; /* nd_duration_bucket */
    uint64_t duration_bins;                   /* their sum (the mean: sum / flows ended) */
} nd_class_stats;

/* Bucket of a flow inter-arrival gap: 0..3 hold 0..3 ns, then four equal buckets per
 * octave, bucket 4(e-1)+s holding [2^e + s*2^(e-2), 2^e + (s+1)*2^(e-2)) ns: a bucket is
 * at most 25 % wide, and 252 of them reach every u64. nd_arrival_range gives bucket b's
 * first value and width. */
uint32_t nd_arrival_bucket(uint64_t gap_ns);
void nd_arrival_range(uint32_t b, uint64_t *first_ns, uint64_t *width_ns);
/* Flow starts per second of the class within its inputs (gaps / their sum); 0 when no
 * input held two of its flows, or the statistics predate per-input arrivals. */
double nd_arrival_rate(const nd_class_stats *s);
/* Bucket of a flow duration in bins: 0..63 hold 0..63 bins exactly, then sixteen equal
 * buckets per octave, bucket 64 + 16(e-6) + s holding [2^e + s*2^(e-4), 2^e +
 * (s+1)*2^(e-4)) bins: at most 6.25 % wide, 992 of them reach every u64.
 * nd_duration_range gives bucket b's first value and width. */
uint32_t nd_duration_bucket(uint64_t bins);
void nd_duration_range(uint32_t b, uint64_t *first, uint64_t *width);
/* Flows of the class whose duration is known (the histogram's total), and the duration
 * in bins at quantile q (0..1) of them (the middle of its bucket); 0 when none. */
uint64_t nd_duration_flows(const nd_class_stats *s);
double nd_duration_quantile(const nd_class_stats *s, double q);

/* The STAT record (docs/FORMATS.md §2): its size, and one class's statistics into and
 * out of it (also the STATS frames of live's window streams). */
size_t nd_stats_record_bytes(void);
void nd_stats_encode(unsigned char *rec, const nd_class_stats *s);
void nd_stats_decode(nd_class_stats *s, const unsigned char *rec);

typedef struct nd_counter {
    char name[48]; /* e.g. "parse.truncated_ipv4", "flow.evicted" */
    uint64_t value;
} nd_counter;

typedef struct nd_dataset {
    uint32_t n_channels;                              /* C */
    char channel_names[ND_MAX_CHANNELS][ND_NAME_MAX]; /* "bytes_down", "bytes_up", ... */
    uint32_t L;                                       /* bins per window */
    uint64_t bin_ns;                                  /* bin width */

    uint32_t n_classes;
    char (*class_names)[ND_NAME_MAX]; /* (n_classes) */
    nd_class_stats *stats;            /* (n_classes), zeroed when unknown (imports) */

    uint64_t n_windows, cap_windows;
    float *values;    /* (n_windows, C, L), raw units (bytes or packets per bin) */
    uint16_t *labels; /* (n_windows) class index */
    uint64_t *groups; /* (n_windows) source id: windows of one flow or trace share it, so
                         that train/test splits never cut through a flow */

    uint32_t n_counters;
    nd_counter *counters; /* capture/import counters, in insertion order */

    char *config_yaml; /* the effective config that produced the data (NUL-terminated) */
} nd_dataset;

/* A new empty dataset with C channels named by names[0..C-1]. NULL on bad arguments. */
nd_dataset *nd_dataset_new(uint32_t C, const char *const *names, uint32_t L, uint64_t bin_ns);
/* A new empty dataset shaped like h: its channels, L, bin width, classes (same indices)
 * and class statistics; no windows, counters or config. NULL on -ENOMEM. */
nd_dataset *nd_dataset_new_like(const nd_dataset *h);
void nd_dataset_free(nd_dataset *ds); /* NULL is a no-op */
/* Index of class name, adding it when new; -1 when ND_MAX_CLASSES is reached or the name
 * is not valid (empty, ND_NAME_MAX bytes or longer, control characters). */
int nd_dataset_class(nd_dataset *ds, const char *name);
/* Appends one window of C*L values (copied). label must be < n_classes (asserted: it
 * comes from nd_dataset_class). Returns 0 or -ENOMEM. */
int nd_dataset_append(nd_dataset *ds, uint16_t label, uint64_t group, const float *values);
/* Adds v to the named counter (creating it; names are cut to 47 bytes). 0 or -ENOMEM. */
int nd_dataset_count(nd_dataset *ds, const char *name, uint64_t v);
/* Value of the named counter, 0 when absent. */
uint64_t nd_dataset_counter(const nd_dataset *ds, const char *name);
/* Replaces the embedded config text (copied; NULL or "" removes it). 0 or -ENOMEM. */
int nd_dataset_set_config(nd_dataset *ds, const char *yaml);

int nd_dataset_save(const nd_dataset *ds, const char *path, nd_error *e);
nd_dataset *nd_dataset_load(const char *path, nd_error *e);
/* Same, from an open container (dataset or model file: models embed their classes,
 * channels and statistics as dataset sections with no windows). */
nd_dataset *nd_dataset_from_container(const ndf_reader *r, nd_error *e);
/* Writes the dataset's sections into an open container (used by model files too). */
int nd_dataset_write_sections(const nd_dataset *ds, ndf_writer *w, int with_windows,
                              nd_error *e);

/* The fastest line a bin is taken to carry, in bits per second (1 Tbit/s). A series value,
 * bytes or packets per bin, can be at most what a bin carries at this rate: 125 bytes per
 * nanosecond of bin width (nd_bin_max_value). Importers refuse more, and replay's line rate
 * (replay.line_rate) goes no higher. */
#define ND_MAX_LINE_BPS 1000000000000ull
double nd_bin_max_value(uint64_t bin_ns);
/* Reads one series value (a CSV field, spaces or tabs around it allowed): a plain decimal
 * number, digits with an optional fraction and exponent ("1500", "0.5", "1.5e+09"): no
 * sign (but "-0", which reads as 0), hex, inf or nan, not so small that a float loses it
 * (below 1e-38 and not 0), at most max. 0 and *out, or NULL and a reason ("is negative", ...)
 * to follow the quoted text in a message. */
const char *nd_parse_bin_value(const char *s, double max, float *out);
/* Offset of the first byte of s[0..n) that does not belong to valid UTF-8 (overlong forms,
 * surrogates and code points past U+10FFFF are invalid), or n when all of it is valid. */
size_t nd_utf8_invalid_at(const char *s, size_t n);

/* Series CSV (docs/FORMATS.md): header "class,<channel>_<bin>..." channel-major, raw units,
 * one row per window. Errors name the file, line and column. Class names that hold a
 * comma or a quote are quoted as RFC 4180 says; values are written with 9 significant
 * digits so that they read back bit for bit. Written atomically like containers. */
int nd_csv_write(const nd_dataset *ds, const char *path, nd_error *e);
/* Reads a series CSV; bin_ns is not in the CSV, so the caller gives it. Row k (from 0)
 * gets group k: the CSV does not say which windows share a flow. */
nd_dataset *nd_csv_read(const char *path, uint64_t bin_ns, nd_error *e);
/* Same over text in memory (no NUL needed); name is used in messages. */
nd_dataset *nd_csv_read_mem(const char *text, size_t len, const char *name, uint64_t bin_ns,
                            nd_error *e);
/* Windows from a dataset file or a series CSV: by the name's suffix (.ndd, .csv), else
 * (standard input "-" too) by the content, the container's magic bytes telling. bin_ns is
 * the bin width of a CSV, which does not carry one: 0 refuses a CSV (ND_EUSAGE). */
nd_dataset *nd_windows_read(const char *path, uint64_t bin_ns, nd_error *e);

/* ------------------------------------------------------------------------------------ */
/* Machine-readable output: JSON (json-c) for --json, --stats and --log lines          */
/* ------------------------------------------------------------------------------------ */

/* A JSON value built with json-c. Every field goes through these helpers, so that one
 * rule holds for all output: a NaN or an infinity, which JSON has no number for, is
 * written as null. key NULL appends to an array instead of adding to an object. A NULL
 * parent is a no-op, so that a failed allocation loses a field, never the program. */
typedef struct json_object nd_json;
nd_json *nd_json_new(void);                             /* an empty object */
nd_json *nd_json_obj(nd_json *parent, const char *key); /* a new object in parent */
nd_json *nd_json_arr(nd_json *parent, const char *key); /* a new array in parent */
void nd_json_u64(nd_json *o, const char *key, uint64_t v);
void nd_json_int(nd_json *o, const char *key, int64_t v);
void nd_json_num(nd_json *o, const char *key, double v); /* 10 significant digits */
void nd_json_bool(nd_json *o, const char *key, int v);
void nd_json_str(nd_json *o, const char *key, const char *s); /* NULL: null */
/* Writes o to f as one line (pretty: indented over lines, for people) ending in a
 * newline, and flushes. 0, or a negative code with e filled (what names the output). */
int nd_json_write(nd_json *o, FILE *f, int pretty, const char *what, nd_error *e);
void nd_json_free(nd_json *o); /* NULL is a no-op */

/* The summary of a dataset as fields of o: windows, L, bin_ns, channels, windows per
 * class, counters (imports, capture, sample, inspect print it). */
void nd_dataset_json(const nd_dataset *ds, nd_json *o);

/* A summary of an open .ndd or .ndm container: header, section table and the dataset
 * sections (classes, windows, counters, statistics; a model file's classes, channels and
 * statistics too), printed for a person to out and/or as fields of js (either may be
 * NULL). Model-specific parts come from the model library (netdiffus inspect calls it
 * for NDF_KIND_MODEL). */
int nd_inspect_reader(const ndf_reader *r, FILE *out, nd_json *js, nd_error *e);

/* ------------------------------------------------------------------------------------ */
/* Metrics: Prometheus text on 127.0.0.1 (live, capture and replay --metrics-port)      */
/* and the HTTP client that fetches a file from such an endpoint                         */
/* ------------------------------------------------------------------------------------ */

/* The text, series after series: a family's "# HELP" and "# TYPE" lines, then its
 * samples. A counter's name ends in _total (asserted). Values print as Prometheus floats
 * (NaN as NaN, which the text format allows). A failed allocation is kept (failed) and
 * the text is then not published. */
typedef struct nd_prom {
    char *buf;
    size_t len, cap;
    int failed;
} nd_prom;
enum { ND_PROM_GAUGE = 0, ND_PROM_COUNTER = 1 };
void nd_prom_family(nd_prom *p, const char *name, int type, const char *help);
/* One sample of the family name; label (may be NULL) a label name and value (escaped). */
void nd_prom_sample(nd_prom *p, const char *name, const char *label, const char *value,
                    double v);
/* A family of one sample without labels. */
void nd_prom_metric(nd_prom *p, const char *name, int type, const char *help, double v);
void nd_prom_free(nd_prom *p);

/* The endpoint: a thread that serves the newest published text on 127.0.0.1:port, from
 * one poll loop over up to 16 clients side by side (non-blocking sockets; a client has
 * 5 s from its accept to be answered and gone; with every slot taken a new client
 * replaces the oldest). GET and HEAD of /metrics get 200, other paths 404, other methods
 * 405, a malformed head 400, a head over ND_HTTP_HEAD_MAX 431, a client out of time 408.
 * The run's threads never wait for it: publishing copies the text under a lock. */
typedef struct nd_metrics nd_metrics;
/* On addr (a numeric IPv4 or IPv6 address; NULL: 127.0.0.1) and port. With file_route
 * (e.g. "/model.ndm"; NULL: none), also serves the file at file_path there: GET and
 * HEAD, 200 with Content-Length and an ETag that changes with every new file, sent from
 * the file as it was when the request came (files replaced by rename are sent whole);
 * 503 with Retry-After while there is no file. A file answer's deadline is 5 s plus 1 s
 * per MiB. NULL with e filled ("metrics on ADDR:PORT: why (what)"; what names the
 * setting). */
nd_metrics *nd_metrics_start(const char *addr, uint32_t port, const char *file_route,
                             const char *file_path, const char *what, nd_error *e);
/* Replaces the text served (p's, when p->failed is 0). */
void nd_metrics_publish(nd_metrics *m, const nd_prom *p);
void nd_metrics_stop(nd_metrics *m); /* stops and joins the thread; NULL is a no-op */

/* The head of an HTTP/1.x request (nd_http_parse): method and path (without the query)
 * point into the parsed bytes, not NUL-terminated. */
typedef struct nd_http_req {
    const char *method, *path;
    size_t method_len, path_len;
    int minor;       /* HTTP/1.minor */
    size_t head_len; /* bytes of the head, up to and including its empty line */
} nd_http_req;

#define ND_HTTP_HEAD_MAX 8192 /* the largest request head the endpoint reads */

enum {
    ND_HTTP_INCOMPLETE = 0,   /* a valid start: more bytes are needed */
    ND_HTTP_COMPLETE = 1,     /* the head is whole (r filled) */
    ND_HTTP_BAD = -400,       /* not a request line or header line */
    ND_HTTP_TOO_LARGE = -431, /* no complete head within max bytes */
};

/* Parses the first n bytes received of a request, of which at most max are looked at:
 * ND_HTTP_COMPLETE, ND_HTTP_INCOMPLETE or an error, as soon as the bytes show it. Pure: no
 * state beyond r, so that it can be called again after every read, and fuzzed. */
int nd_http_parse(const char *buf, size_t n, size_t max, nd_http_req *r);

/* Whether s is an http:// or https:// URL (a model argument fetched with nd_http_fetch). */
int nd_is_url(const char *s);
/* Fetches url (http or https; libcurl) into a new temporary file in $TMPDIR (/tmp), at
 * most max_bytes, failing on an HTTP error status, on a body shorter than its
 * Content-Length, and after timeout_s seconds. Returns the file's path (malloc'd; the
 * caller unlinks and frees it) or NULL with e filled ("URL: why"). */
char *nd_http_fetch(const char *url, uint64_t max_bytes, long timeout_s, nd_error *e);

#endif
