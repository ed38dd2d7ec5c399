/*
 * test_json.c — the machine-readable outputs of base/: JSON values with numbers JSON has
 * no text for (NaN, infinities: null), 64-bit counters, strings that need escaping, all
 * parsed back by python3 -m json.tool; Prometheus text with # HELP and # TYPE for every
 * family and escaped label values; and the metrics endpoint serving the newest text
 * published (200, 404, 405) on 127.0.0.1.
 */
#include <math.h>
#include <stdlib.h>

#include "check.h"
#include "http_fetch.h"
#include "json_check.h"
#include "nd.h"
#include "tmpdir.h"

static void json_values(void)
{
    nd_json *j = nd_json_new();
    nd_json_num(j, "nan", NAN);
    nd_json_num(j, "inf", INFINITY);
    nd_json_num(j, "ninf", -INFINITY);
    nd_json_num(j, "tenth", 0.1);
    nd_json_u64(j, "big", UINT64_MAX);
    nd_json_int(j, "neg", -5);
    nd_json_bool(j, "yes", 7);
    nd_json_str(j, "text", "a \"quoted\" \\ path/with\ttab\n");
    nd_json_str(j, "none", NULL);
    nd_json *a = nd_json_arr(j, "list");
    nd_json_num(a, NULL, 1.5);
    nd_json_num(a, NULL, NAN);
    nd_json_u64(nd_json_obj(a, NULL), "in", 3);
    nd_json_u64(NULL, "lost", 1); /* a NULL parent is a no-op */
    const char *path = tmp_path("v.json");
    FILE *f = fopen(path, "w");
    CHECK(f);
    nd_error e = {0};
    CHECK_EQ(nd_json_write(j, f, 0, "v.json", &e), 0);
    fclose(f);
    nd_json_free(j);
    size_t len;
    char *text = (char *)read_bytes(path, &len);
    CHECK(len > 0 && text[len - 1] == '\n' && !memchr(text, '\n', len - 1)); /* one line */
    CHECK(!strstr(text, "NaN") && !strstr(text, "Infinity"));
    CHECK_CONTAINS(text, "\"tenth\":0.1,");
    free(text);
    CHECK(json_holds(path, 0,
                     "d['nan'] is None and d['inf'] is None and d['ninf'] is None "
                     "and d['big'] == 2**64 - 1 and d['neg'] == -5 and d['yes'] is "
                     "True and d['text'] == 'a \"quoted\" \\\\ path/with\\ttab\\n' "
                     "and d['none'] is None and d['list'] == [1.5, None, {\"in\": 3}]"));
    /* indented for people: the same values */
    j = nd_json_new();
    nd_json_num(nd_json_obj(j, "o"), "x", NAN);
    f = fopen(path, "w");
    CHECK_EQ(nd_json_write(j, f, 1, "v.json", &e), 0);
    fclose(f);
    nd_json_free(j);
    CHECK(json_holds(path, 0, "d == {'o': {'x': None}}"));
}

static void prometheus(void)
{
    nd_prom p = {0};
    nd_prom_metric(&p, "x_events_total", ND_PROM_COUNTER, "Events.", 3);
    nd_prom_metric(&p, "x_loss", ND_PROM_GAUGE, "Loss.", NAN);
    nd_prom_family(&p, "x_class_total", ND_PROM_COUNTER, "Per class.");
    nd_prom_sample(&p, "x_class_total", "class", "we\"b\\x\ny", 12345678901234.0);
    for (int i = 0; i < 2000; i++) /* past the first buffer */
        nd_prom_sample(&p, "x_class_total", "class", "c", i);
    CHECK(!p.failed);
    CHECK_CONTAINS(p.buf, "# HELP x_events_total Events.\n# TYPE x_events_total counter\n"
                          "x_events_total 3\n");
    CHECK_CONTAINS(p.buf, "# TYPE x_loss gauge\nx_loss NaN\n");
    CHECK_CONTAINS(p.buf, "x_class_total{class=\"we\\\"b\\\\x\\ny\"} 12345678901234\n");
    http_check_prometheus(p.buf);

    nd_error e = {0};
    int port = 20000 + (int)((getpid() * 7) % 20000);
    nd_metrics *m = nd_metrics_start(NULL, (uint32_t)port, NULL, NULL, "test", &e);
    if (!m) CHECK_FAIL_("%s", e.msg);
    char ans[65536];
    CHECK(http_fetch(port, "GET /metrics HTTP/1.0\r\n\r\n", ans, sizeof ans) > 0);
    CHECK_CONTAINS(ans, "HTTP/1.0 200 OK"); /* nothing published yet: empty */
    CHECK_CONTAINS(ans, "Content-Length: 0\r\n");
    nd_metrics_publish(m, &p);
    CHECK(http_fetch(port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", ans, sizeof ans) > 0);
    CHECK_CONTAINS(ans, "HTTP/1.0 200 OK");
    CHECK_CONTAINS(ans, "x_class_total{class=\"c\"} 1999\n");
    http_check_prometheus(ans);
    CHECK(http_fetch(port, "GET /other HTTP/1.0\r\n\r\n", ans, sizeof ans) > 0);
    CHECK_CONTAINS(ans, "HTTP/1.0 404 Not Found");
    CHECK(http_fetch(port, "POST /metrics HTTP/1.0\r\n\r\n", ans, sizeof ans) > 0);
    CHECK_CONTAINS(ans, "HTTP/1.0 405 Method Not Allowed");
    /* the port is taken: the second endpoint says where and why */
    CHECK(!nd_metrics_start(NULL, (uint32_t)port, NULL, NULL, "--metrics-port", &e));
    CHECK_CONTAINS(e.msg, "127.0.0.1:");
    CHECK_CONTAINS(e.msg, "(--metrics-port)");
    nd_metrics_stop(m);
    nd_prom_free(&p);
}

int main(void)
{
    json_values();
    prometheus();
    return 0;
}
