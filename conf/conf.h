/*
 * conf.h — netdiffus configuration (libnd_conf).
 *
 * One table of keys (conf_keys.c: name, type, bounds, default, unit, help) drives YAML
 * parsing, validation, defaults, `netdiffus inspect --config` and docs/CONFIG.md.
 * The program reads its settings from struct nd_config and hands each library the options
 * struct it takes; nothing else parses YAML.
 */
#ifndef ND_CONF_H
#define ND_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "nd.h"

#define ND_CONF_STR         256  /* longest string value, NUL included */
#define ND_CONF_FILTER      1024 /* longest BPF expression */
#define ND_CONF_MAX_SOURCES 8    /* capture.sources */
#define ND_CONF_MAX_MULT    6    /* model.channel_mult */

typedef struct nd_class_rule {
    char name[ND_NAME_MAX];
    char filter[ND_CONF_FILTER]; /* BPF expression applied to a flow's first packet */
} nd_class_rule;

typedef struct nd_mix_entry {
    char name[ND_NAME_MAX]; /* class */
    double weight;          /* share of flows */
} nd_mix_entry;

typedef struct nd_config {
    struct {
        uint32_t n_sources;
        char sources[ND_CONF_MAX_SOURCES][ND_CONF_STR]; /* pcap:FILE, iface:NAME, dpdk:ARGS */
        uint32_t snaplen;                               /* bytes kept per packet (libpcap) */
        bool promisc;                                   /* promiscuous mode on iface: sources */
        uint64_t buffer_size;     /* kernel capture buffer, bytes (libpcap) */
        uint64_t bin_ns;          /* bin width */
        uint32_t window;          /* L: bins per window */
        uint32_t min_active_bins; /* windows with fewer non-zero bins are dropped */
        uint32_t channels;        /* 2: bytes down/up; 4: + packets down/up */
        uint32_t flow_capacity;   /* flow table slots */
        uint64_t idle_timeout_ns;
        uint64_t active_timeout_ns;
        char default_class[ND_NAME_MAX]; /* for unmatched flows; "" drops them */
        char dpdk_eal[ND_CONF_STR];      /* extra EAL arguments for dpdk: sources */
        uint32_t rx_queues;              /* DPDK rx queues (RSS when > 1) */
        uint32_t lcores;                 /* threads reading a dpdk: source; 0: one, polling */
        uint32_t mbufs;                  /* DPDK mempool size */
    } capture;

    uint32_t n_classes;
    nd_class_rule *classes; /* (n_classes), owned */

    struct {
        char arch[ND_NAME_MAX]; /* "unet-ref" */
        uint32_t base_channels; /* 32 */
        uint32_t n_mult;
        uint32_t channel_mult[ND_CONF_MAX_MULT]; /* (1,2,2) */
        uint32_t res_blocks;   /* ResBlocks per encoder level (decoder has one more) */
        uint32_t attn_min_res; /* self-attention at resolutions <= this (pixels); 0 = none */
        uint32_t attn_div;     /* N when the config says "L/N": attn_min_res = window / N,
                                  kept in step with capture.window; 0 = given in pixels */
        uint32_t groups;       /* GroupNorm groups */
        uint32_t emb_dim;      /* time/class embedding width */
        uint32_t max_classes;  /* class-embedding rows reserved (live adds classes) */
        uint32_t timesteps;    /* T */
        char schedule[ND_NAME_MAX];   /* "cosine" | "linear" */
        char prediction[ND_NAME_MAX]; /* "eps" | "v" */
        char scaling[ND_NAME_MAX];    /* "zero-aware" | "log" (GAF value scaling) */
        bool mask;                    /* activity (zero/non-zero) channels beside values */
        bool coords;                  /* row and column planes into the network */
        bool context;                 /* a window's known first bins as input planes */
        char decode[ND_NAME_MAX];     /* "diag" | "lsq" (GASF image -> series) */
        uint32_t threads;             /* 0 = all cores */
    } model;

    struct {
        uint64_t steps;
        uint32_t batch;
        double lr;
        double weight_decay;
        uint32_t warmup_steps;
        double ema_decay;
        bool ema_warmup; /* decay min(ema_decay, (1+s)/(10+s)) at step s */
        double grad_clip;
        double class_dropout;
        double val_fraction;
        uint64_t checkpoint_every; /* steps */
        uint64_t seed;
    } train;

    struct {
        char sampler[ND_NAME_MAX]; /* "ddim" | "ddpm" | "dpmpp" */
        char clip[ND_NAME_MAX];    /* "dynamic" | "clip" | "none": predicted x0 */
        bool project;              /* predicted x0 onto the nearest valid GASF image */
        uint32_t steps;
        double guidance;
        double eta; /* DDIM stochasticity */
        uint32_t batch;
        uint64_t seed;
        uint32_t calibrate; /* windows per class for the decode calibration; 0: off */
    } sample;

    struct {
        double speed;
        uint64_t duration_ns; /* 0 = until the flows are done */
        uint32_t flows;
        uint32_t loop;
        double line_rate;              /* Gbit/s a bin is cut to; 0 = the sink's, else 100 */
        uint64_t max_bytes;            /* 0 = no limit */
        uint64_t max_packets;          /* 0 = no limit */
        char client_pool[ND_CONF_STR]; /* "10.1.0.0/16" */
        uint32_t clients;
        char server_pool[ND_CONF_STR];
        uint32_t servers;
        char client_pool6[ND_CONF_STR]; /* prefixes of IPv6 flows (the pools above: IPv4) */
        char server_pool6[ND_CONF_STR];
        char mac_src[32];
        char mac_dst[32];
        uint64_t seed;
        uint32_t n_mix;
        nd_mix_entry *mix;    /* (n_mix), owned */
        uint32_t client_macs; /* MACs from mac_src up: client address i has the (i mod n)-th */
        uint32_t server_macs;
        uint32_t vlan_client; /* 802.1Q tag of client-side frames; 0: none */
        uint32_t vlan_server;
        char gateway_client[32]; /* next-hop MAC of client-side frames (routing DUT); "" none */
        char gateway_server[32];
        uint32_t max_flow_windows; /* a flow sampled from a model: windows at most */
        uint32_t context;          /* bins of the window before that a continued window
                                      keeps; context_div N: L/N of the model's window */
        uint32_t context_div;
        uint32_t resample; /* continued windows: each denoising step taken this many times */
    } replay;

    struct {
        uint32_t ring_size;        /* windows between capture and trainer */
        uint32_t reservoir;        /* windows kept per class */
        double recent_share;       /* share of each batch from recent windows */
        uint64_t checkpoint_every; /* steps */
        uint64_t checkpoint_interval_ns;
        char checkpoint[ND_CONF_STR]; /* model file kept up to date */
        int32_t capture_core;         /* -1 = no pinning */
        uint32_t trainer_threads;
        uint32_t metrics_port; /* Prometheus text endpoint on 127.0.0.1; 0 = off */
        uint64_t status_interval_ns;
        bool replay;              /* also replay samples of the latest model */
        uint32_t recent;          /* windows in the recent buffer (all classes) */
        uint32_t warmup;          /* windows of a class before it joins the model */
        double scale_refit;       /* share of out-of-scale windows that refits; 0 = fixed */
        char metrics_addr[64];    /* address of the metrics endpoint (and /model.ndm) */
        char listen[ND_CONF_STR]; /* [ADDR:]PORT taking window streams; "" = off */
        char sender_name[ND_NAME_MAX]; /* how `capture -o tcp:` calls itself; "" = HOST:PID */
        uint32_t send_buffer;          /* windows `capture -o tcp:` queues for the trainer */
        uint32_t distill;              /* a student's steps; 0: no student */
        uint32_t distill_from;         /* the checkpoint's DDIM steps its first round learns */
        uint64_t distill_round_steps;  /* optimiser steps per halving */
        uint64_t distill_every;        /* model steps between two students */
        char student[ND_CONF_STR];     /* the student's file; "": from checkpoint */
    } live;

    char path[ND_CONF_STR]; /* file it was loaded from, "" for defaults */
} nd_config;

/* Fills cfg with every default. Never fails. Free with nd_config_free. */
void nd_config_defaults(nd_config *cfg);
/* Defaults, then the YAML file on top. cfg is overwritten, not freed: pass a fresh or
 * freed struct. Returns 0, or ND_ECONFIG / -errno with e giving
 * "FILE:LINE:COL: KEY: what was expected" (and "did you mean ...?" for unknown keys).
 * On failure cfg holds the defaults (nothing allocated); nd_config_free is always safe. */
int nd_config_load(nd_config *cfg, const char *path, nd_error *e);
/* Same, from text in memory; name is used in messages. */
int nd_config_parse(nd_config *cfg, const char *text, size_t len, const char *name,
                    nd_error *e);
/* Sets one key from "section.key=value" text (command-line overrides): the value is
 * checked like a file's, then the cross-key rules run. Lists take YAML flow text
 * ("capture.sources=[pcap:a.pcap, pcap:b.pcap]"). On failure cfg is unchanged. */
int nd_config_set(nd_config *cfg, const char *assignment, nd_error *e);
/* A command's config: the file at path (NULL: the defaults), then each "section.key=value"
 * of sets in order. Returns 0 or a code with e set; cfg is always safe to free. */
int nd_config_load_overrides(nd_config *cfg, const char *path, const char *const *sets,
                             size_t n_sets, nd_error *e);
/* The cross-key rules alone (window vs min_active_bins, timeouts, groups, mix classes,
 * ...), for callers that change fields by hand. Returns 0 or ND_ECONFIG. */
int nd_config_check(const nd_config *cfg, nd_error *e);
/* Deep copy (classes and mix are duplicated). Returns 0 or -ENOMEM (dst then freed). */
int nd_config_copy(nd_config *dst, const nd_config *src);
/* Frees classes and mix and leaves cfg empty of them; NULL is a no-op. */
void nd_config_free(nd_config *cfg);

/* Writes the effective config as YAML that nd_config_parse reads back unchanged.
 * Returns a malloc'd NUL-terminated string (NULL only on -ENOMEM). */
char *nd_config_to_yaml(const nd_config *cfg);
/* Writes the config reference (Markdown) generated from the key table: docs/CONFIG.md. */
void nd_config_reference(FILE *out);

/* Parses "100ms", "1.5s", "2m", "1h", "250us", "10ns" into ns (a unit is required);
 * sizes "64MiB", "1k", "1500" into bytes (binary units: k/K/KiB = 1024, M/MiB, G/GiB,
 * T/TiB; B or none = bytes). Fractions must come to whole ns / bytes. Return 0 or
 * ND_ECONFIG (e says what was expected); negative values and overflow are errors. */
int nd_parse_duration(const char *s, uint64_t *ns, nd_error *e);
int nd_parse_size(const char *s, uint64_t *bytes, nd_error *e);
/* Formats back the way a person would write them ("1s", "64MiB"). */
void nd_format_duration(uint64_t ns, char *buf, size_t len);
void nd_format_size(uint64_t bytes, char *buf, size_t len);

#endif
