/* C-only checks of the kernels, built and run under AddressSanitizer and UBSan by
 * `make -C csrc test`. Every kernel is compared with an obvious bounds-tested loop
 * over a grid of geometries (non-square, strided, dilated, padded), and col2im with
 * "full" padding (K-1 per side, stride 1) must give exactly KH*KW*x. The pooling
 * kernels are compared the same way, in floor and ceil mode, on inputs full of ties
 * and on inputs holding NaN, and max backward must skip out-of-range indices. The
 * direct convolution is compared with a plain loop on integer data (exact in float32,
 * so any summation order gives the same result), over rows narrower and wider than
 * its vector blocks. All of it runs once per instruction-set variant this CPU
 * supports, each forced on. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conv_direct.h"
#include "dispatch.h"
#include "im2col.h"
#include "pool2d.h"

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

/* --- pooling ------------------------------------------------------------------ */

/* PyTorch's pooling output size: floor or ceil, and in ceil mode a last window that
 * would start in the bottom/right padding is dropped. */
static ptrdiff_t pool_out_size(ptrdiff_t n, ptrdiff_t k, ptrdiff_t s, ptrdiff_t p,
                               ptrdiff_t d, int ceil_mode)
{
    const ptrdiff_t num = n + 2 * p - d * (k - 1) - 1 + (ceil_mode ? s - 1 : 0);
    if (num < 0) return 0;
    ptrdiff_t out = num / s + 1;
    if (ceil_mode && (out - 1) * s >= n + p) out--;
    return out;
}

/* Obvious loops: every tap tested against the input bounds; float results computed in
 * T in the same order as the kernels, so the comparison is exact. */
#define DEFINE_POOL_REFERENCE(T, SFX)                                                      \
static void ref_max_##SFX(const T *x, ptrdiff_t h, ptrdiff_t w, ptrdiff_t kh,             \
                          ptrdiff_t kw, ptrdiff_t sh, ptrdiff_t sw, ptrdiff_t ph,          \
                          ptrdiff_t pw, ptrdiff_t dh, ptrdiff_t dw, ptrdiff_t oh,          \
                          ptrdiff_t ow, T *out, int64_t *idx)                              \
{                                                                                          \
    for (ptrdiff_t oy = 0; oy < oh; oy++)                                                  \
        for (ptrdiff_t ox = 0; ox < ow; ox++) {                                            \
            T m = (T)-INFINITY;                                                            \
            int64_t best = -1;                                                             \
            for (ptrdiff_t i = 0; i < kh; i++)                                             \
                for (ptrdiff_t j = 0; j < kw; j++) {                                       \
                    const ptrdiff_t y = oy * sh - ph + i * dh, xx = ox * sw - pw + j * dw; \
                    if (y < 0 || y >= h || xx < 0 || xx >= w) continue;                    \
                    const T v = x[y * w + xx];                                             \
                    if (best < 0 || v > m || isnan(v)) {                                   \
                        m = v;                                                             \
                        best = y * w + xx;                                                 \
                    }                                                                      \
                }                                                                          \
            out[oy * ow + ox] = m;                                                         \
            idx[oy * ow + ox] = best;                                                      \
        }                                                                                  \
}                                                                                          \
                                                                                           \
static ptrdiff_t ref_divisor_##SFX(ptrdiff_t oy, ptrdiff_t ox, ptrdiff_t h, ptrdiff_t w,  \
                                   ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t sh, ptrdiff_t sw, \
                                   ptrdiff_t ph, ptrdiff_t pw, int cip, ptrdiff_t dov)     \
{                                                                                          \
    ptrdiff_t pool = 0, count = 0;                                                         \
    for (ptrdiff_t i = 0; i < kh; i++)                                                     \
        for (ptrdiff_t j = 0; j < kw; j++) {                                               \
            const ptrdiff_t y = oy * sh - ph + i, xx = ox * sw - pw + j;                   \
            pool += y < h + ph && xx < w + pw;     /* clipped to the padded input */       \
            count += y >= 0 && y < h && xx >= 0 && xx < w;                                 \
        }                                                                                  \
    return dov > 0 ? dov : cip ? pool : count;                                             \
}                                                                                          \
                                                                                           \
static void ref_avg_##SFX(const T *x, ptrdiff_t h, ptrdiff_t w, ptrdiff_t kh,             \
                          ptrdiff_t kw, ptrdiff_t sh, ptrdiff_t sw, ptrdiff_t ph,          \
                          ptrdiff_t pw, ptrdiff_t oh, ptrdiff_t ow, int cip,               \
                          ptrdiff_t dov, T *out)                                           \
{                                                                                          \
    for (ptrdiff_t oy = 0; oy < oh; oy++)                                                  \
        for (ptrdiff_t ox = 0; ox < ow; ox++) {                                            \
            T sum = 0;                                                                     \
            int any = 0;                                                                   \
            for (ptrdiff_t i = 0; i < kh; i++)                                             \
                for (ptrdiff_t j = 0; j < kw; j++) {                                       \
                    const ptrdiff_t y = oy * sh - ph + i, xx = ox * sw - pw + j;           \
                    if (y < 0 || y >= h || xx < 0 || xx >= w) continue;                    \
                    sum += x[y * w + xx];                                                  \
                    any = 1;                                                               \
                }                                                                          \
            const ptrdiff_t div = ref_divisor_##SFX(oy, ox, h, w, kh, kw, sh, sw, ph, pw,  \
                                                    cip, dov);                             \
            out[oy * ow + ox] = any ? sum / (T)div : (T)0;                                 \
        }                                                                                  \
}                                                                                          \
                                                                                           \
static void ref_avg_backward_##SFX(const T *g, ptrdiff_t h, ptrdiff_t w, ptrdiff_t kh,    \
                                   ptrdiff_t kw, ptrdiff_t sh, ptrdiff_t sw, ptrdiff_t ph, \
                                   ptrdiff_t pw, ptrdiff_t oh, ptrdiff_t ow, int cip,      \
                                   ptrdiff_t dov, T *gx)                                   \
{                                                                                          \
    for (ptrdiff_t p = 0; p < h * w; p++) gx[p] = 0;                                       \
    for (ptrdiff_t oy = 0; oy < oh; oy++)                                                  \
        for (ptrdiff_t ox = 0; ox < ow; ox++) {                                            \
            const ptrdiff_t div = ref_divisor_##SFX(oy, ox, h, w, kh, kw, sh, sw, ph, pw,  \
                                                    cip, dov);                             \
            const T delta = g[oy * ow + ox] / (T)div;                                      \
            for (ptrdiff_t i = 0; i < kh; i++)                                             \
                for (ptrdiff_t j = 0; j < kw; j++) {                                       \
                    const ptrdiff_t y = oy * sh - ph + i, xx = ox * sw - pw + j;           \
                    if (y >= 0 && y < h && xx >= 0 && xx < w) gx[y * w + xx] += delta;     \
                }                                                                          \
        }                                                                                  \
}                                                                                          \
                                                                                           \
static int same_##SFX(T a, T b)                                                           \
{                                                                                          \
    return a == b || (isnan(a) && isnan(b));                                               \
}                                                                                          \
                                                                                           \
static void check_pool_##SFX(const T *x, ptrdiff_t h, ptrdiff_t w, ptrdiff_t kh,          \
                             ptrdiff_t kw, ptrdiff_t sh, ptrdiff_t sw, ptrdiff_t ph,       \
                             ptrdiff_t pw, ptrdiff_t dh, ptrdiff_t dw, ptrdiff_t oh,       \
                             ptrdiff_t ow)                                                 \
{                                                                                          \
    const ptrdiff_t no = oh * ow, nx = h * w;                                              \
    T *out = malloc(sizeof(T) * no), *want = malloc(sizeof(T) * no);                       \
    T *out2 = malloc(sizeof(T) * no), *g = malloc(sizeof(T) * no);                         \
    T *gx = malloc(sizeof(T) * nx), *gx_want = malloc(sizeof(T) * nx);                     \
    int64_t *idx = malloc(sizeof(int64_t) * no), *idx_want = malloc(sizeof(int64_t) * no); \
    for (ptrdiff_t o = 0; o < no; o++) g[o] = (T)((o * 7) % 5) - (T)1.5;                   \
                                                                                           \
    /* max forward, with and without indices */                                            \
    ref_max_##SFX(x, h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, want, idx_want);        \
    pycnn_max_pool2d_forward_##SFX(x, h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, out,   \
                                   idx);                                                   \
    pycnn_max_pool2d_forward_##SFX(x, h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, out2,  \
                                   NULL);                                                  \
    for (ptrdiff_t o = 0; o < no; o++)                                                     \
        CHECK(same_##SFX(out[o], want[o]) && same_##SFX(out2[o], want[o])                  \
              && idx[o] == idx_want[o],                                                    \
              #SFX " max fwd h=%td w=%td k=%tdx%td s=%td,%td p=%td,%td d=%td,%td "         \
              "o=%tdx%td at %td: %g/%g idx %lld want %g idx %lld", h, w, kh, kw, sh, sw,   \
              ph, pw, dh, dw, oh, ow, o, (double)out[o], (double)out2[o],                  \
              (long long)idx[o], (double)want[o], (long long)idx_want[o]);                 \
                                                                                           \
    /* max backward: scatter through the reference indices, in output order */             \
    int any_bad = 0;                                                                       \
    for (ptrdiff_t p = 0; p < nx; p++) gx_want[p] = 0;                                     \
    for (ptrdiff_t o = 0; o < no; o++) {                                                   \
        if (idx_want[o] >= 0) gx_want[idx_want[o]] += g[o];                                \
        else any_bad++;                                                                    \
    }                                                                                      \
    ptrdiff_t bad = pycnn_max_pool2d_backward_##SFX(g, idx_want, h, w, oh, ow, gx);        \
    CHECK(bad == any_bad, #SFX " max bwd bad count %td, want %d", bad, any_bad);           \
    for (ptrdiff_t p = 0; p < nx; p++)                                                     \
        CHECK(gx[p] == gx_want[p], #SFX " max bwd h=%td w=%td k=%tdx%td at %td", h, w,     \
              kh, kw, p);                                                                  \
    /* out-of-range indices are skipped and counted, never written */                      \
    idx[0] = nx;                                                                           \
    idx[no - 1] = -1;                                                                      \
    any_bad = 0;                                                                           \
    for (ptrdiff_t o = 0; o < no; o++) any_bad += idx[o] < 0 || idx[o] >= nx;              \
    bad = pycnn_max_pool2d_backward_##SFX(g, idx, h, w, oh, ow, gx);                       \
    CHECK(bad == any_bad, #SFX " max bwd counted %td bad indices, want %d", bad, any_bad); \
                                                                                           \
    /* avg pooling (no dilation) in every divisor mode */                                  \
    if (dh == 1 && dw == 1) {                                                              \
        static const ptrdiff_t overrides[] = {0, 3};                                       \
        for (int cip = 0; cip <= 1; cip++)                                                 \
            for (int k = 0; k < 2; k++) {                                                  \
                const ptrdiff_t dov = overrides[k];                                        \
                ref_avg_##SFX(x, h, w, kh, kw, sh, sw, ph, pw, oh, ow, cip, dov, want);    \
                pycnn_avg_pool2d_forward_##SFX(x, h, w, kh, kw, sh, sw, ph, pw, oh, ow,    \
                                               cip, dov, out);                             \
                for (ptrdiff_t o = 0; o < no; o++)                                         \
                    CHECK(same_##SFX(out[o], want[o]),                                     \
                          #SFX " avg fwd h=%td w=%td k=%tdx%td s=%td,%td p=%td,%td "       \
                          "o=%tdx%td cip=%d div=%td at %td: %g want %g", h, w, kh, kw, sh, \
                          sw, ph, pw, oh, ow, cip, dov, o, (double)out[o],                 \
                          (double)want[o]);                                                \
                ref_avg_backward_##SFX(g, h, w, kh, kw, sh, sw, ph, pw, oh, ow, cip, dov,  \
                                       gx_want);                                           \
                pycnn_avg_pool2d_backward_##SFX(g, h, w, kh, kw, sh, sw, ph, pw, oh, ow,   \
                                                cip, dov, gx);                             \
                for (ptrdiff_t p = 0; p < nx; p++)                                         \
                    CHECK(gx[p] == gx_want[p],                                             \
                          #SFX " avg bwd h=%td w=%td k=%tdx%td s=%td,%td p=%td,%td "       \
                          "cip=%d div=%td at %td: %g want %g", h, w, kh, kw, sh, sw, ph,   \
                          pw, cip, dov, p, (double)gx[p], (double)gx_want[p]);             \
            }                                                                              \
    }                                                                                      \
    free(out); free(want); free(out2); free(g); free(gx); free(gx_want); free(idx);        \
    free(idx_want);                                                                        \
}

DEFINE_POOL_REFERENCE(float, f32)
DEFINE_POOL_REFERENCE(double, f64)

static long check_pool_geometry(ptrdiff_t h, ptrdiff_t w, ptrdiff_t kh, ptrdiff_t kw,
                                ptrdiff_t sh, ptrdiff_t sw, ptrdiff_t ph, ptrdiff_t pw,
                                ptrdiff_t dh, ptrdiff_t dw)
{
    long n = 0;
    const ptrdiff_t nx = h * w;
    double *xd = malloc(sizeof(double) * nx);
    float *xf = malloc(sizeof(float) * nx);
    for (int ceil_mode = 0; ceil_mode <= 1; ceil_mode++) {
        const ptrdiff_t oh = pool_out_size(h, kh, sh, ph, dh, ceil_mode);
        const ptrdiff_t ow = pool_out_size(w, kw, sw, pw, dw, ceil_mode);
        if (oh < 1 || ow < 1) continue;
        /* a constant plane (every window one tie), then few distinct values in equal
         * pairs along rows (ties inside windows): the first maximum must win */
        for (int fill = 0; fill < 2; fill++) {
            for (ptrdiff_t i = 0; i < nx; i++) {
                xd[i] = fill ? (double)(((i / 2) * 7) % 5) - 2.0 : 1.0;
                xf[i] = (float)xd[i];
            }
            check_pool_f64(xd, h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow);
            check_pool_f32(xf, h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow);
        }
        /* NaN and -inf sprinkled in: NaN wins its window, -inf ties with padding */
        for (ptrdiff_t i = 0; i < nx; i += 3) {
            xd[i] = i % 2 ? -INFINITY : NAN;
            xf[i] = (float)xd[i];
        }
        check_pool_f64(xd, h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow);
        check_pool_f32(xf, h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow);
        n++;
    }
    free(xd);
    free(xf);
    return n;
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

static long check_all_pool_geometries(void)
{
    long n_pool = 0;
    for (ptrdiff_t h = 1; h <= 6; h++)
        for (ptrdiff_t w = 1; w <= 9; w += 4)
            for (ptrdiff_t kh = 1; kh <= 3; kh++)
                for (ptrdiff_t kw = 1; kw <= 4; kw++)
                    for (ptrdiff_t s = 1; s <= 3; s++)
                        for (ptrdiff_t p = 0; p <= 2; p++)
                            for (ptrdiff_t d = 1; d <= 3; d++)
                                n_pool += check_pool_geometry(h, w, kh, kw, s, 4 - s, p,
                                                              2 - p, d, d == 2 ? 1 : d);
    /* rows of more interior windows than one chunk of the vectorised loops (256) */
    n_pool += check_pool_geometry(3, 700, 3, 3, 1, 1, 1, 1, 1, 1);
    n_pool += check_pool_geometry(4, 1030, 2, 3, 2, 2, 1, 0, 1, 2);
    n_pool += check_pool_geometry(2, 513, 2, 2, 1, 1, 0, 0, 1, 1);
    /* 2x2 at stride 2 (the loops with a literal stride) on rows long enough for full
     * AVX2/AVX-512 vectors plus a remainder, with and without padding */
    for (ptrdiff_t w = 31; w <= 70; w += 13)
        for (ptrdiff_t p = 0; p <= 1; p++) {
            n_pool += check_pool_geometry(5, w, 2, 2, 2, 2, p, p, 1, 1);
            n_pool += check_pool_geometry(4, w, 2, 2, 1, 2, 0, p, 1, 1);
        }
    return n_pool;
}

/* Direct convolution of one (already padded) image against a plain loop. */
static long check_direct_geometry(ptrdiff_t c, ptrdiff_t groups, ptrdiff_t f, ptrdiff_t h,
                                  ptrdiff_t w, ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t sh,
                                  ptrdiff_t sw, ptrdiff_t dh, ptrdiff_t dw, int with_bias)
{
    if (h < dh * (kh - 1) + 1 || w < dw * (kw - 1) + 1) return 0;   /* no window fits */
    const ptrdiff_t oh = out_size(h, kh, sh, 0, dh), ow = out_size(w, kw, sw, 0, dw);
    const ptrdiff_t cg = c / groups, fg = f / groups;
    const ptrdiff_t nx = c * h * w, nw = f * cg * kh * kw, no = f * oh * ow;
    /* exact-size heap buffers, so ASan catches any access past either end */
    double *xd = malloc(sizeof(double) * nx), *wd = malloc(sizeof(double) * nw);
    double *bd = malloc(sizeof(double) * f), *od = malloc(sizeof(double) * no);
    float *xf = malloc(sizeof(float) * nx), *wf = malloc(sizeof(float) * nw);
    float *bf = malloc(sizeof(float) * f), *of = malloc(sizeof(float) * no);
    fill(xd, xf, nx);
    for (ptrdiff_t i = 0; i < nw; i++) wf[i] = (float)(wd[i] = (double)((i * 5) % 7) - 3.0);
    for (ptrdiff_t i = 0; i < f; i++) bf[i] = (float)(bd[i] = (double)i - 2.0);
    pycnn_conv2d_direct_f64(xd, c, h, w, wd, f, groups, kh, kw, sh, sw, dh, dw, oh, ow,
                            with_bias ? bd : NULL, od);
    pycnn_conv2d_direct_f32(xf, c, h, w, wf, f, groups, kh, kw, sh, sw, dh, dw, oh, ow,
                            with_bias ? bf : NULL, of);
    for (ptrdiff_t fo = 0; fo < f; fo++)
        for (ptrdiff_t oy = 0; oy < oh; oy++)
            for (ptrdiff_t ox = 0; ox < ow; ox++) {
                double want = with_bias ? bd[fo] : 0.0;
                for (ptrdiff_t ci = 0; ci < cg; ci++)
                    for (ptrdiff_t i = 0; i < kh; i++)
                        for (ptrdiff_t j = 0; j < kw; j++)
                            want += wd[((fo * cg + ci) * kh + i) * kw + j]
                                    * xd[(((fo / fg) * cg + ci) * h + oy * sh + i * dh) * w
                                         + ox * sw + j * dw];
                const ptrdiff_t o = (fo * oh + oy) * ow + ox;
                CHECK(od[o] == want && of[o] == (float)want,
                      "conv2d_direct c=%td g=%td f=%td h=%td w=%td k=%tdx%td s=%td,%td "
                      "d=%td,%td at %td: %g / %g, want %g", c, groups, f, h, w, kh, kw,
                      sh, sw, dh, dw, o, od[o], (double)of[o], want);
            }
    free(xd); free(wd); free(bd); free(od); free(xf); free(wf); free(bf); free(of);
    return 1;
}

static long check_all_direct_geometries(void)
{
    long n = 0;
    for (ptrdiff_t c = 1; c <= 3; c++)
        for (ptrdiff_t groups = 1; groups <= c; groups += c > 1 ? c - 1 : 1)
            for (ptrdiff_t fg = 1; fg <= 6; fg += 5)           /* 4 + 1 + 1 filters */
                for (ptrdiff_t w = 3; w <= 40; w += 9)        /* rows around the blocks */
                    for (ptrdiff_t k = 1; k <= 3; k++)
                        for (ptrdiff_t s = 1; s <= 3; s++)      /* column stride */
                            for (ptrdiff_t d = 1; d <= 2; d++)
                                n += check_direct_geometry(c, groups, fg * groups, 5, w,
                                                           k, k + 1, 1 + (s == 2), s, d,
                                                           3 - d, (int)(w % 2));
    return n;
}

int main(void)
{
    static const char *names[] = {"baseline", "avx2", "avx512"};
    long n_geom = 0, n_pool = 0, n_direct = 0;
    /* every instruction-set variant this CPU can run, each forced on in turn */
    for (int isa = PYCNN_ISA_BASELINE; isa <= PYCNN_ISA_AVX512; isa++) {
        if (pycnn_isa_set(isa) != 0) {
            printf("test_csrc: %s not supported here, skipped\n", names[isa]);
            continue;
        }
        n_geom = check_all_geometries();
        n_pool = check_all_pool_geometries();
        n_direct = check_all_direct_geometries();
        printf("test_csrc: %s variant checked\n", names[isa]);
    }
    if (failures) {
        fprintf(stderr, "%d failures\n", failures);
        return 1;
    }
    printf("test_csrc: im2col/col2im OK over %ld geometries (float32 and float64)\n", n_geom);
    printf("test_csrc: max/avg pooling OK over %ld (geometry, ceil_mode) pairs "
           "(float32 and float64)\n", n_pool);
    printf("test_csrc: direct convolution OK over %ld geometries (float32 and float64)\n",
           n_direct);
    return 0;
}
