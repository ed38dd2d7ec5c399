/*
 * test_pictures.c — the pictures of `render`, `sample --png` and `eval --png`, read back
 * with cairo: they decode, have the size their layout gives, hold text where the title
 * goes (a font was found and drawn), and every column or panel holds the colours of what
 * it draws (channels; real and synthetic curves). No pixel-exact images: fonts differ
 * from machine to machine. Mismatched inputs and unwritable paths fail with a message and
 * leave no file.
 */
#include <cairo.h>
#include <math.h>
#include <sys/stat.h>

#include "../base/tmpdir.h"
#include "check.h"
#include "draw_impl.h"
#include "eval.h"

enum { C = 2, L = 32 };

/* A dataset of 100 ms bins with n[k] windows of class names[k]; class k's windows peak
 * at about 10^(3+k) bytes per bin, the second channel a tenth of the first, with idle
 * bins between bursts. */
static nd_dataset *make(const char *const *names, const int *n, int K, uint64_t seed)
{
    const char *ch[] = {"bytes_down", "bytes_up"};
    nd_dataset *ds = nd_dataset_new(C, ch, L, ND_NS_PER_SEC / 10);
    float x[C * L];
    nd_rng r;
    nd_rng_seed(&r, seed);
    for (int k = 0; k < K; k++) {
        int id = nd_dataset_class(ds, names[k]);
        for (int w = 0; w < n[k]; w++) {
            for (int i = 0; i < L; i++) {
                double busy = (i + w) % 4 != 0, level = pow(10, 3 + k) * nd_rng_uniform(&r);
                x[i] = (float)(busy * level);
                x[L + i] = (float)(busy * level / 10);
            }
            CHECK_EQ(nd_dataset_append(ds, (uint16_t)id, (uint64_t)w, x), 0);
        }
    }
    return ds;
}

typedef struct pic {
    cairo_surface_t *s;
    int w, h, stride;
    const unsigned char *px;
} pic;

static pic load(const char *path)
{
    pic p = {cairo_image_surface_create_from_png(path), 0, 0, 0, NULL};
    CHECK(cairo_surface_status(p.s) == CAIRO_STATUS_SUCCESS);
    p.w = cairo_image_surface_get_width(p.s);
    p.h = cairo_image_surface_get_height(p.s);
    p.stride = cairo_image_surface_get_stride(p.s);
    p.px = cairo_image_surface_get_data(p.s);
    return p;
}

/* Pixels in [x0, x1) x [y0, y1) within tol (per component, 0..255) of colour c. */
static int count(const pic *p, int x0, int y0, int x1, int y1, const ndd_rgb *c, int tol)
{
    int n = 0;
    for (int y = y0 < 0 ? 0 : y0; y < y1 && y < p->h; y++)
        for (int x = x0 < 0 ? 0 : x0; x < x1 && x < p->w; x++) {
            uint32_t v;
            memcpy(&v, p->px + (size_t)y * p->stride + (size_t)x * 4, 4);
            int r = v >> 16 & 255, g = v >> 8 & 255, b = v & 255;
            n += abs(r - (int)lround(c->r * 255)) <= tol &&
                 abs(g - (int)lround(c->g * 255)) <= tol &&
                 abs(b - (int)lround(c->b * 255)) <= tol;
        }
    return n;
}

static const ndd_rgb dark = {0.1, 0.1, 0.1}, red = {0.84, 0.15, 0.16};

static void test_windows(void)
{
    const char *rn[] = {"web", "dns"}, *sn[] = {"dns", "web", "quic"};
    nd_dataset *real = make(rn, (const int[]){5, 2}, 2, 1),
               *syn = make(sn, (const int[]){1, 3, 2}, 3, 2);
    nd_error e = {0};
    const char *one = tmp_path("one.png"), *two = tmp_path("two.png");
    nd_png_column cols[2] = {{real, "real"}, {syn, "synthetic"}};
    CHECK_EQ(nd_png_windows(one, cols, 1, 3, NULL, &e), 0);
    CHECK_EQ(nd_png_windows(two, cols, 2, 3, NULL, &e), 0);
    pic a = load(one), b = load(two);
    /* a second column makes it wider; synthetic's class quic adds a block of rows */
    CHECK(b.w > a.w && b.h > a.h);
    /* one class alone: a shorter picture; a class neither column has: nothing to draw */
    const char *web = tmp_path("web.png");
    CHECK_EQ(nd_png_windows(web, cols, 2, 3, "web", &e), 0);
    pic one_cls = load(web);
    CHECK(one_cls.w == b.w && one_cls.h < b.h);
    cairo_surface_destroy(one_cls.s);
    CHECK_EQ(nd_png_windows(web, cols, 2, 3, "mail", &e), ND_EUSAGE);
    CHECK_CONTAINS(e.msg, "no windows of class mail");
    /* the title is text: dark pixels in its line */
    CHECK(count(&a, 0, 0, 400, 28, &dark, 60) > 100);
    /* both channels drawn in each column */
    for (int c = 0; c < C; c++) {
        CHECK(count(&a, 0, 80, a.w, a.h, &ndd_channel_rgb[c], 30) > 200);
        CHECK(count(&b, 0, 80, b.w / 2, b.h, &ndd_channel_rgb[c], 30) > 200);
        CHECK(count(&b, b.w / 2, 80, b.w, b.h, &ndd_channel_rgb[c], 30) > 200);
    }
    cairo_surface_destroy(a.s), cairo_surface_destroy(b.s);

    /* columns that cannot share axes, nothing to draw, a path that cannot be written */
    const char *bad = tmp_path("bad.png");
    nd_dataset *other =
        nd_dataset_new(C, (const char *[]){"bytes_down", "bytes_up"}, L / 2, ND_NS_PER_SEC);
    nd_png_column mixed[2] = {{real, "real"}, {other, "other"}};
    CHECK_EQ(nd_png_windows(bad, mixed, 2, 3, NULL, &e), ND_EUSAGE);
    CHECK_CONTAINS(e.msg, "cannot share axes");
    CHECK_EQ(nd_png_windows(bad, &mixed[1], 1, 3, NULL, &e), ND_EUSAGE);
    CHECK_CONTAINS(e.msg, "no windows");
    struct stat st;
    CHECK(stat(bad, &st) != 0);
    /* more rows than a picture holds: refused with a way out, not cairo's failure */
    nd_dataset *many = make(rn, (const int[]){400, 0}, 1, 6);
    nd_png_column tall = {many, "real"};
    CHECK_EQ(nd_png_windows(bad, &tall, 1, 400, NULL, &e), ND_EUSAGE);
    CHECK_CONTAINS(e.msg, "draw fewer per class");
    nd_dataset_free(many);
    CHECK(nd_png_windows(tmp_path("no/such/dir.png"), cols, 1, 3, NULL, &e) != 0);
    CHECK_CONTAINS(e.msg, "no/such/dir.png");
    nd_dataset_free(real), nd_dataset_free(syn), nd_dataset_free(other);
}

static void test_eval_picture(void)
{
    const char *names[] = {"web", "dns", "empty"};
    nd_dataset *real = make(names, (const int[]){6, 4, 0}, 3, 3),
               *syn = make(names, (const int[]){8, 5, 0}, 2, 4),
               *train = make(names, (const int[]){12, 6, 0}, 2, 5);
    nd_error e = {0};
    const char *path = tmp_path("eval.png");
    CHECK_EQ(nd_eval_png(path, real, syn, NULL, train, &e), 0);
    pic p = load(path);
    /* two classes with real windows: two rows (the class without any draws none) */
    CHECK_EQ(p.w, 16 + 3 * C * NDD_FIG_CELL_W);
    CHECK_EQ(p.h, NDD_FIG_TOP_H + 2 * NDD_FIG_ROW_H);
    CHECK(count(&p, 0, 0, 600, 28, &dark, 60) > 100);
    for (int r = 0; r < 2; r++)
        for (int i = 0; i < 3 * C; i++) {
            /* inside the frame: real's curve (near black) and synthetic's (red) */
            int x0 = NDD_FIG_X0 + i * NDD_FIG_CELL_W + 2,
                y0 = NDD_FIG_TOP_H + r * NDD_FIG_ROW_H + NDD_FIG_PANEL_Y + 2;
            int x1 = x0 + NDD_FIG_PANEL_W - 4, y1 = y0 + NDD_FIG_PANEL_H - 4;
            CHECK(count(&p, x0, y0, x1, y1, &(ndd_rgb){0.05, 0.05, 0.05}, 12) > 20);
            CHECK(count(&p, x0, y0, x1, y1, &red, 40) > 20);
        }
    cairo_surface_destroy(p.s);

    /* windows of another length cannot be compared: refused before any file is made */
    const char *bad = tmp_path("bad-eval.png");
    nd_dataset *other =
        nd_dataset_new(C, (const char *[]){"bytes_down", "bytes_up"}, L / 2, ND_NS_PER_SEC);
    CHECK_EQ(nd_eval_png(bad, real, other, NULL, NULL, &e), ND_EUSAGE);
    CHECK_CONTAINS(e.msg, "synthetic windows are 2 x 16");
    struct stat st;
    CHECK(stat(bad, &st) != 0);
    nd_dataset_free(real), nd_dataset_free(syn), nd_dataset_free(train), nd_dataset_free(other);
}

int main(void)
{
    test_windows();
    test_eval_picture();
    nd_eval_draw_release(); /* what a leak checker would see */
    return 0;
}
