/*
 * test_eval_flows.c — eval's flow mode on flows whose answer is known: flows of a
 * continuous process cut into windows show no seam and sit near the real-vs-real floor;
 * the same process restarted at every window edge shows a seam (jump ratio well above 1,
 * a correlation gap near the within-window correlation) far above the floor; flows of
 * 50 against 60 bins are 10 bins apart in duration; the windows of one group make one
 * flow, wherever other flows' windows lie between them, and each group id is a flow.
 */
#include <math.h>

#include "../base/tmpdir.h"
#include "../json_check.h"
#include "check.h"
#include "eval.h"

enum { L = 16, C = 2 };

/* n flows of class "video": each channel's log1p value an AR(1) around 8 (φ 0.95, step
 * sd 0.3); with seam, every window starts the process afresh from its stationary law.
 * A flow lasts dur bins when dur > 0, else 3L to 6L bins at random; bins after it are
 * idle. Flow f is group first_group + f. */
static void add_flows(nd_dataset *ds, int n, int seam, int dur, uint64_t first_group, nd_rng *r)
{
    int k = nd_dataset_class(ds, "video");
    CHECK(k >= 0);
    const double phi = 0.95, sd = 0.3, stat_sd = sd / sqrt(1 - phi * phi);
    for (int f = 0; f < n; f++) {
        int d = dur > 0 ? dur : 3 * L + (int)(nd_rng_u64(r) % (3 * L + 1));
        int nw = (d + L - 1) / L;
        double y[C];
        for (int c = 0; c < C; c++) y[c] = 8 + stat_sd * nd_rng_normal(r);
        for (int w = 0; w < nw; w++) {
            float x[C * L];
            for (int c = 0; c < C; c++) {
                if (seam && w > 0) y[c] = 8 + stat_sd * nd_rng_normal(r);
                for (int i = 0; i < L; i++) {
                    if (i > 0 || w > 0) y[c] = 8 + phi * (y[c] - 8) + sd * nd_rng_normal(r);
                    x[c * L + i] = w * L + i < d ? (float)expm1(y[c]) : 0.0f;
                }
            }
            CHECK_EQ(nd_dataset_append(ds, (uint16_t)k, first_group + (uint64_t)f, x), 0);
        }
    }
}

static nd_dataset *new_set(void)
{
    const char *names[] = {"bytes_down", "bytes_up"};
    nd_dataset *ds = nd_dataset_new(C, names, L, ND_NS_PER_SEC);
    CHECK(ds);
    return ds;
}

/* The report of real against sets as JSON in a file; its path. */
static const char *report(const nd_dataset *real, const nd_dataset *const *sets,
                          const char *const *names, int n, const char *file)
{
    nd_json *js = nd_json_new();
    nd_error e = {0};
    CHECK_EQ(nd_eval_flows(stdout, js, real, sets, names, n, &e), 0);
    const char *path = tmp_path(file);
    FILE *f = fopen(path, "w");
    CHECK(f);
    CHECK_EQ(nd_json_write(js, f, 0, path, &e), 0);
    fclose(f);
    nd_json_free(js);
    return path;
}

int main(void)
{
    nd_rng r;
    nd_rng_seed(&r, 7);
    nd_dataset *real = new_set(), *cont = new_set(), *seam = new_set();
    add_flows(real, 300, 0, 0, 1, &r);
    add_flows(cont, 300, 0, 0, 1, &r);
    add_flows(seam, 300, 1, 0, 1, &r);
    const nd_dataset *sets[] = {cont, seam};
    const char *names[] = {"cont", "seam"};
    const char *p = report(real, sets, names, 2, "seams.json");
    const char *v = "d['flows']['classes']['video']";
    char expr[1024];
    /* real flows run on across their edges: jump about 1, gap about 0 */
    snprintf(expr, sizeof expr,
             "0.8 < %s['real']['jump_ratio'] < 1.25 and abs(%s['real']['corr_gap']) < 0.1 "
             "and %s['real']['flows'] == 300 and 3 <= %s['real']['windows_per_flow'] <= 6",
             v, v, v, v);
    CHECK(json_holds(p, 0, expr));
    /* the continuous generator: near real, within a few floors */
    snprintf(expr, sizeof expr,
             "%s['cont']['jump_diff'] < 0.15 and %s['cont']['gap_diff'] < 0.1 and "
             "%s['cont']['jump_diff_x_floor'] < 5 and %s['cont']['duration_w1_x_floor'] < 5",
             v, v, v, v);
    CHECK(json_holds(p, 0, expr));
    /* the restarted one: a seam, far above the floor and the continuous generator */
    snprintf(expr, sizeof expr,
             "%s['seam']['jump_ratio'] > 2.5 and %s['seam']['corr_gap'] > 0.6 and "
             "%s['seam']['jump_diff_x_floor'] > 10 and %s['seam']['gap_diff_x_floor'] > 10 "
             "and %s['seam']['jump_diff'] > 10 * %s['cont']['jump_diff']",
             v, v, v, v, v, v);
    CHECK(json_holds(p, 0, expr));
    CHECK(json_holds(p, 0, "d['flows']['mean']['seam']['jump_diff'] > 1.5"));
    nd_dataset_free(cont), nd_dataset_free(seam), nd_dataset_free(real);

    /* durations: 50 bins against 60, exactly 10 apart; every real flow alike: floor 0 */
    real = new_set(), cont = new_set();
    add_flows(real, 20, 0, 50, 1, &r);
    add_flows(cont, 20, 0, 60, 1, &r);
    p = report(real, (const nd_dataset *const[]){cont}, names, 1, "durations.json");
    CHECK(json_holds(p, 0,
                     "d['flows']['classes']['video']['cont']['duration_w1'] == 10 and "
                     "d['flows']['classes']['video']['floor']['duration_w1'] == 0 and "
                     "d['flows']['classes']['video']['cont']['windows_per_flow'] == 4"));
    nd_dataset_free(cont);

    /* a new group id starts a new flow, even right after the same class: 20 flows of
     * 4 windows as 80 one-window flows */
    cont = new_set();
    int k = nd_dataset_class(cont, "video");
    for (uint64_t w = 0; w < real->n_windows; w++)
        CHECK_EQ(nd_dataset_append(cont, (uint16_t)k, 100 + w, real->values + w * C * L), 0);
    p = report(real, (const nd_dataset *const[]){cont}, names, 1, "groups.json");
    CHECK(json_holds(p, 0,
                     "d['flows']['classes']['video']['cont']['flows'] == 80 and "
                     "d['flows']['classes']['video']['real']['flows'] == 20 and "
                     "d['flows']['classes']['video']['cont']['jump_ratio'] is None"));
    nd_dataset_free(cont);

    /* the same flows with their windows interleaved (as capture writes concurrent flows):
     * the same 20 flows of 4 windows, 0 apart */
    cont = new_set();
    k = nd_dataset_class(cont, "video");
    for (uint64_t i = 0; i < 4; i++)
        for (uint64_t f = 0; f < 20; f++)
            CHECK_EQ(nd_dataset_append(cont, (uint16_t)k, real->groups[4 * f + i],
                                       real->values + (4 * f + i) * C * L),
                     0);
    p = report(real, (const nd_dataset *const[]){cont}, names, 1, "interleaved.json");
    CHECK(json_holds(p, 0,
                     "d['flows']['classes']['video']['cont']['flows'] == 20 and "
                     "d['flows']['classes']['video']['cont']['windows_per_flow'] == 4 and "
                     "d['flows']['classes']['video']['cont']['duration_w1'] == 0 and "
                     "d['flows']['classes']['video']['cont']['bytes_w1'] == 0 and "
                     "d['flows']['classes']['video']['cont']['jump_diff'] == 0"));
    nd_dataset_free(cont), nd_dataset_free(real);

    /* a real file with fewer than two flows per class has no floor: refused */
    real = new_set(), cont = new_set();
    add_flows(real, 1, 0, 40, 1, &r);
    add_flows(cont, 3, 0, 40, 1, &r);
    nd_error e = {0};
    CHECK_EQ(nd_eval_flows(stdout, NULL, real, (const nd_dataset *const[]){cont}, names, 1, &e),
             ND_EUSAGE);
    CHECK_CONTAINS(e.msg, "two flows");
    nd_dataset_free(cont), nd_dataset_free(real);
    printf("ok\n");
    return 0;
}
