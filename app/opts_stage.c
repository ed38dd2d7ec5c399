/*
 * opts_stage.c — config to options structs (opts.h): capture and replay.
 */
#include <string.h>

#include "opts.h"

void opts_capture(capture_opts *o, const nd_config *cfg)
{
    const __typeof__(cfg->capture) *c = &cfg->capture;
    capture_opts_defaults(o); /* what a field with no config key would keep */
    o->bin_ns = c->bin_ns;
    o->window = c->window;
    o->min_active_bins = c->min_active_bins;
    o->channels = c->channels;
    o->flow_capacity = c->flow_capacity;
    o->idle_timeout_ns = c->idle_timeout_ns;
    o->active_timeout_ns = c->active_timeout_ns;
    /* conf holds at most ND_MAX_CLASSES rules; were there more, capture_ctx_new would
     * refuse the count rather than drop rules here */
    o->n_classes = cfg->n_classes;
    for (uint32_t i = 0; i < cfg->n_classes && i < ND_MAX_CLASSES; i++)
        o->classes[i] = (capture_class){cfg->classes[i].name, cfg->classes[i].filter};
    o->default_class = c->default_class;
    o->snaplen = c->snaplen;
    o->promisc = c->promisc;
    o->buffer_size = c->buffer_size;
    o->dpdk_eal = c->dpdk_eal;
    o->rx_queues = c->rx_queues;
    o->lcores = c->lcores;
    o->mbufs = c->mbufs;
}

void opts_replay(replay_opts *o, const nd_config *cfg)
{
    const __typeof__(cfg->replay) *r = &cfg->replay;
    replay_opts_defaults(o);
    if (r->speed >= 0) o->speed = r->speed;
    o->duration_ns = r->duration_ns;
    o->flows = r->flows;
    o->loop = r->loop;
    o->line_bps = r->line_rate * 1e9;
    o->max_bytes = r->max_bytes;
    o->max_packets = r->max_packets;
    o->seed = r->seed;
    if (r->client_pool[0]) o->client_pool = r->client_pool;
    if (r->server_pool[0]) o->server_pool = r->server_pool;
    o->client_pool6 = r->client_pool6;
    o->server_pool6 = r->server_pool6;
    if (r->clients) o->clients = r->clients;
    if (r->servers) o->servers = r->servers;
    if (r->mac_src[0]) o->mac_src = r->mac_src;
    if (r->mac_dst[0]) o->mac_dst = r->mac_dst;
    o->client_macs = r->client_macs;
    o->server_macs = r->server_macs;
    o->vlan_client = r->vlan_client;
    o->vlan_server = r->vlan_server;
    o->gateway_client = r->gateway_client;
    o->gateway_server = r->gateway_server;
    /* as for classes in opts_capture: replay_run refuses more than ND_MAX_CLASSES */
    o->n_mix = r->n_mix;
    for (uint32_t i = 0; i < r->n_mix && i < ND_MAX_CLASSES; i++)
        o->mix[i] = (replay_mix_entry){r->mix[i].name, r->mix[i].weight};
}
