/* C-only checks of the kernels, built and run under AddressSanitizer and UBSan by
 * `make -C csrc test`. Every kernel is compared with an obvious bounds-tested loop
 * over a grid of geometries (non-square, strided, dilated, padded), and col2im with
 * "full" padding (K-1 per side, stride 1) must give exactly KH*KW*x. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "dispatch.h"
#include "im2col.h"

static int failures = 0;

#define CHECK(cond, ...)                                                                \
    do {                                                                                \
        if (!(cond)) {                                                                  \
            failures++;                                                                 \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                        \
            fprintf(stderr, __VA_ARGS__);                                               \
            fprintf(stderr, "\n");                                                      \
        }                                                                               \
    } while (0)

static ptrdiff_t out_size(ptrdiff_t n, ptrdiff_t k, ptrdiff_t s, ptrdiff_t p, ptrdiff_t d)
{
    return (n + 2 * p - d * (k - 1) - 1) / s + 1;
}

/* x[c][y][x] = a value unique to the pixel, exact in float */
static void fill(double *xd, float *xf, ptrdiff_t n)
{
    for (ptrdiff_t i = 0; i < n; i++) {
        xd[i] = (double)((i * 37) % 101) - 50.0;
        xf[i] = (float)xd[i];
    }
}

static void check_geometry(ptrdiff_t c, ptrdiff_t h, ptrdiff_t w, ptrdiff_t kh,
                           ptrdiff_t kw, ptrdiff_t sh, ptrdiff_t sw, ptrdiff_t ph,
                           ptrdiff_t pw, ptrdiff_t dh, ptrdiff_t dw)
{
    const ptrdiff_t oh = out_size(h, kh, sh, ph, dh), ow = out_size(w, kw, sw, pw, dw);
    if (oh < 1 || ow < 1) return;
    const ptrdiff_t nx = c * h * w, ncols = c * kh * kw * oh * ow;
    /* exact-size heap buffers, so ASan catches any write or read past either end */
    double *xd = malloc(sizeof(double) * nx), *cd = malloc(sizeof(double) * ncols);
    float *xf = malloc(sizeof(float) * nx), *cf = malloc(sizeof(float) * ncols);
    double *want = malloc(sizeof(double) * ncols), *back = malloc(sizeof(double) * nx);
    float *backf = malloc(sizeof(float) * nx);
    double *back_want = calloc((size_t)nx, sizeof(double));
    fill(xd, xf, nx);

    for (ptrdiff_t ci = 0; ci < c; ci++)
        for (ptrdiff_t i = 0; i < kh; i++)
            for (ptrdiff_t j = 0; j < kw; j++)
                for (ptrdiff_t oy = 0; oy < oh; oy++)
                    for (ptrdiff_t ox = 0; ox < ow; ox++) {
                        const ptrdiff_t y = oy * sh - ph + i * dh, xx = ox * sw - pw + j * dw;
                        const ptrdiff_t r = ((ci * kh + i) * kw + j) * oh * ow + oy * ow + ox;
                        const int inside = y >= 0 && y < h && xx >= 0 && xx < w;
                        want[r] = inside ? xd[(ci * h + y) * w + xx] : 0.0;
                        /* col2im of cols == want: each pixel sums its copies */
                        if (inside) back_want[(ci * h + y) * w + xx] += want[r];
                    }

    pycnn_im2col_f64(xd, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, cd);
    pycnn_im2col_f32(xf, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, cf);
    for (ptrdiff_t r = 0; r < ncols; r++) {
        CHECK(cd[r] == want[r] && (double)cf[r] == want[r],
              "im2col c=%td h=%td w=%td k=%tdx%td s=%td,%td p=%td,%td d=%td,%td at %td",
              c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, r);
    }
    pycnn_col2im_f64(cd, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, back);
    pycnn_col2im_f32(cf, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, backf);
    for (ptrdiff_t p = 0; p < nx; p++) {
        CHECK(back[p] == back_want[p] && (double)backf[p] == back_want[p],
              "col2im c=%td h=%td w=%td k=%tdx%td s=%td,%td p=%td,%td d=%td,%td at %td",
              c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, p);
    }
    free(xd); free(cd); free(xf); free(cf); free(want); free(back); free(backf);
    free(back_want);
}

static void check_full_padding(ptrdiff_t c, ptrdiff_t h, ptrdiff_t w, ptrdiff_t kh,
                               ptrdiff_t kw)
{
    /* K-1 padding per side at stride 1: every pixel lands in exactly KH*KW windows */
    const ptrdiff_t ph = kh - 1, pw = kw - 1, oh = h + kh - 1, ow = w + kw - 1;
    double *x = malloc(sizeof(double) * c * h * w), *back = malloc(sizeof(double) * c * h * w);
    float *xf = malloc(sizeof(float) * c * h * w);
    double *cols = malloc(sizeof(double) * c * kh * kw * oh * ow);
    fill(x, xf, c * h * w);
    pycnn_im2col_f64(x, c, h, w, kh, kw, 1, 1, ph, pw, 1, 1, oh, ow, cols);
    pycnn_col2im_f64(cols, c, h, w, kh, kw, 1, 1, ph, pw, 1, 1, oh, ow, back);
    for (ptrdiff_t p = 0; p < c * h * w; p++)
        CHECK(back[p] == (double)(kh * kw) * x[p], "full padding k=%tdx%td at %td", kh, kw, p);
    free(x); free(back); free(xf); free(cols);
}

static long check_all_geometries(void)
{
    long n_geom = 0;
    for (ptrdiff_t c = 1; c <= 2; c++)
        for (ptrdiff_t h = 1; h <= 6; h++)
            for (ptrdiff_t w = 1; w <= 7; w += 3)
                for (ptrdiff_t kh = 1; kh <= 3; kh++)
                    for (ptrdiff_t kw = 1; kw <= 4; kw += 3)
                        for (ptrdiff_t s = 1; s <= 3; s++)
                            for (ptrdiff_t p = 0; p <= 2; p++)
                                for (ptrdiff_t d = 1; d <= 2; d++) {
                                    check_geometry(c, h, w, kh, kw, s, 4 - s, p, 2 - p, d, 3 - d);
                                    n_geom++;
                                }
    check_full_padding(3, 5, 7, 3, 2);
    check_full_padding(1, 1, 1, 4, 5);
    check_full_padding(2, 8, 3, 1, 1);
    return n_geom;
}

int main(void)
{
    static const char *names[] = {"baseline", "avx2", "avx512"};
    long n_geom = 0;
    /* every instruction-set variant this CPU can run, each forced on in turn */
    for (int isa = PYCNN_ISA_BASELINE; isa <= PYCNN_ISA_AVX512; isa++) {
        if (pycnn_isa_set(isa) != 0) {
            printf("test_csrc: %s not supported here, skipped\n", names[isa]);
            continue;
        }
        n_geom = check_all_geometries();
        printf("test_csrc: %s variant checked\n", names[isa]);
    }
    if (failures) {
        fprintf(stderr, "%d failures\n", failures);
        return 1;
    }
    printf("test_csrc: im2col/col2im OK over %ld geometries (float32 and float64)\n", n_geom);
    return 0;
}
