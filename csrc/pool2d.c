/* Max and average pooling kernels; layout and preconditions in pool2d.h.
 *
 * Each output row is split once into a left border, an interior and a right border
 * (pycnn_valid_range on the first and the last tap). Border windows clip their tap
 * range once, up front, instead of testing every tap. Interior windows lie wholly
 * inside the input and run without any bounds test: 2x2 windows (the common
 * 2x2/stride-2 layer) in a straight-line loop, other sizes with the taps in the outer
 * loop and the windows of the row in the inner one, so that the compiler vectorises
 * across windows. Max pooling picks with selects, not branches: on real data which
 * tap wins is unpredictable, and mispredicted branches made it 6x slower. The 2x2 loops
 * are called with a literal stride when it is 2: GCC does not vectorise a load at a
 * run-time stride, but does at a constant one.
 *
 * Like im2col.c, every loop is compiled per instruction set (baseline, AVX2, AVX-512;
 * dispatch.h) and the public entry points call the active variant. The wider variants
 * matter most where the baseline cannot vectorise: float64 max pooling with indices
 * mixes 64-bit selects with int indices, which SSE2 code does with branches (about 8x
 * slower on random data than the AVX2 variant's blends).
 *
 * Arithmetic follows PyTorch's CPU kernels operation for operation (taps summed in
 * row-major order in T, one division by the integer divisor converted to T, window
 * gradients added in row-major output order), so results are bit-identical to it, in
 * every variant: there is no multiply-add to contract into an FMA, and the build says
 * -ffp-contract=off besides. */
#include <math.h>
#include <string.h>

#include "common.h"
#include "dispatch.h"
#include "pool2d.h"

/* Windows per chunk of an output row in the vectorised interior loops (stack buffer). */
#define PYCNN_POOL_CHUNK 256

/* For helpers called with a literal argument (a stride of 2): inlined, the constant
 * turns a strided access the vectoriser rejects into an interleaved one it handles. */
#if defined(__GNUC__) || defined(__clang__)
#define PYCNN_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define PYCNN_ALWAYS_INLINE inline
#endif

/* Taps [*lo, *hi) of a window of k taps d apart, starting at coordinate `start`, that
 * land inside [0, size); lo == hi when none does. Border windows only. */
static inline void pycnn_tap_range(ptrdiff_t start, ptrdiff_t k, ptrdiff_t d,
                                   ptrdiff_t size, ptrdiff_t *lo, ptrdiff_t *hi)
{
    ptrdiff_t a = start >= 0 ? 0 : (-start + d - 1) / d;
    ptrdiff_t b = start >= size ? 0 : (size - 1 - start) / d + 1;
    if (b > k) b = k;
    if (a > b) a = b;
    *lo = a;
    *hi = b;
}

/* Outputs [*lo, *hi) whose every tap lies inside [0, size): the first and the last
 * tap are both inside. Outputs before lo and from hi on are border windows. */
static inline void pycnn_interior_range(ptrdiff_t size, ptrdiff_t k, ptrdiff_t s,
                                        ptrdiff_t p, ptrdiff_t d, ptrdiff_t n_out,
                                        ptrdiff_t *lo, ptrdiff_t *hi)
{
    ptrdiff_t lo0, hi0, lo1, hi1;
    pycnn_valid_range(size, s, p, 0, n_out, &lo0, &hi0);
    pycnn_valid_range(size, s, p, (k - 1) * d, n_out, &lo1, &hi1);
    *lo = lo0 > lo1 ? lo0 : lo1;
    *hi = hi0 < hi1 ? hi0 : hi1;
    if (*hi < *lo) *hi = *lo;
}

/* The window of an avg-pooling output along one axis: taps [*a, *b) inside the input
 * and the extent of the window clipped to the padded input (PyTorch's pool size). */
static inline ptrdiff_t pycnn_avg_extent(ptrdiff_t start, ptrdiff_t k, ptrdiff_t size,
                                         ptrdiff_t p, ptrdiff_t *a, ptrdiff_t *b)
{
    const ptrdiff_t end = start + k < size + p ? start + k : size + p;
    *a = start > 0 ? start : 0;
    *b = end < size ? end : size;
    return end - start;
}

static inline ptrdiff_t pycnn_avg_divisor(ptrdiff_t pool_size, ptrdiff_t count,
                                          int count_include_pad, ptrdiff_t divisor_override)
{
    if (divisor_override > 0) return divisor_override;
    return count_include_pad ? pool_size : count;
}

#define PYCNN_DEFINE_POOL2D(T, SFX, ISA, ATTR)                                             \
/* One window: taps i in [ilo, ihi), j in [jlo, jhi) of the window at (y0, x0). */         \
ATTR static void max_window_##SFX##_##ISA(const T *x, ptrdiff_t w, ptrdiff_t y0,           \
                                          ptrdiff_t ilo, ptrdiff_t ihi, ptrdiff_t dh,      \
                                          ptrdiff_t x0, ptrdiff_t jlo, ptrdiff_t jhi,      \
                                          ptrdiff_t dw, T *out, int64_t *index)            \
{                                                                                          \
    if (ilo >= ihi || jlo >= jhi) {       /* no input pixel: excluded by the caller */     \
        *out = (T)-INFINITY;                                                               \
        if (index) *index = -1;                                                            \
        return;                                                                            \
    }                                                                                      \
    ptrdiff_t best = (y0 + ilo * dh) * w + x0 + jlo * dw;                                  \
    T m = x[best];                                                                         \
    for (ptrdiff_t i = ilo; i < ihi; i++) {                                                \
        const ptrdiff_t row = (y0 + i * dh) * w + x0;                                      \
        for (ptrdiff_t j = jlo; j < jhi; j++) {                                            \
            const ptrdiff_t p = row + j * dw;                                              \
            const T v = x[p];                                                              \
            /* strict: the first maximum keeps ties; selects, not a branch */              \
            const int take = v > m || isnan(v);                                            \
            m = take ? v : m;                                                              \
            best = take ? p : best;                                                        \
        }                                                                                  \
    }                                                                                      \
    *out = m;                                                                              \
    if (index) *index = best;                                                              \
}                                                                                          \
                                                                                           \
/* Interior 2x2 windows of one output row, input rows y and y + 1 both inside. Written     \
 * as selects on a small offset, not branches, so that it vectorises: random data          \
 * makes "which tap is largest" unpredictable (branches cost 6x here). */                  \
ATTR static PYCNN_ALWAYS_INLINE void                                                       \
max_row_2x2_##SFX##_##ISA(const T *x, ptrdiff_t w, ptrdiff_t y, ptrdiff_t sw, ptrdiff_t pw,\
                          ptrdiff_t lo, ptrdiff_t hi, T *PYCNN_RESTRICT out,               \
                          int64_t *PYCNN_RESTRICT indices)                                 \
{                                                                                          \
    const T *r0 = x + y * w, *r1 = r0 + w;                                                 \
    const int32_t below = (int32_t)w;                                                      \
    if (indices) {                                                                         \
        const int64_t base = (int64_t)(y * w - pw);                                        \
        for (ptrdiff_t ox = lo; ox < hi; ox++) {                                           \
            const ptrdiff_t c = ox * sw - pw;                                              \
            const T a = r0[c], b = r0[c + 1], d = r1[c], e = r1[c + 1];                    \
            const int tb = b > a || isnan(b);                                              \
            T m = tb ? b : a;                                                              \
            int32_t k = tb ? 1 : 0;                                                        \
            const int td = d > m || isnan(d);                                              \
            m = td ? d : m;                                                                \
            k = td ? below : k;                                                            \
            const int te = e > m || isnan(e);                                              \
            m = te ? e : m;                                                                \
            k = te ? below + 1 : k;                                                        \
            out[ox] = m;                                                                   \
            indices[ox] = base + (int64_t)(ox * sw) + k;                                   \
        }                                                                                  \
    } else {                                                                               \
        for (ptrdiff_t ox = lo; ox < hi; ox++) {                                           \
            const ptrdiff_t c = ox * sw - pw;                                              \
            const T a = r0[c], b = r0[c + 1], d = r1[c], e = r1[c + 1];                    \
            T m = (b > a || isnan(b)) ? b : a;                                             \
            m = (d > m || isnan(d)) ? d : m;                                               \
            m = (e > m || isnan(e)) ? e : m;                                               \
            out[ox] = m;                                                                   \
        }                                                                                  \
    }                                                                                      \
}                                                                                          \
                                                                                           \
/* Interior windows [lo, hi) of one output row, any size: taps in the outer loop, the      \
 * windows of the row in the inner one, which vectorises (4-5x faster than a window at     \
 * a time); out holds the running maxima and `tap` the flat position of each, as int32     \
 * (int64 selects do not vectorise; the caller ensures H*W fits). Each window still        \
 * sees its taps in row-major order. */                                                    \
ATTR static void max_row_##SFX##_##ISA(const T *x, ptrdiff_t w, ptrdiff_t y0,              \
                                       ptrdiff_t ilo, ptrdiff_t ihi, ptrdiff_t dh,         \
                                       ptrdiff_t kw, ptrdiff_t sw, ptrdiff_t pw,           \
                                       ptrdiff_t dw, ptrdiff_t lo, ptrdiff_t hi,           \
                                       T *PYCNN_RESTRICT out,                              \
                                       int64_t *PYCNN_RESTRICT indices)                    \
{                                                                                          \
    int32_t tap[PYCNN_POOL_CHUNK];                                                         \
    for (ptrdiff_t c0 = lo; c0 < hi; c0 += PYCNN_POOL_CHUNK) {                             \
        const ptrdiff_t n = hi - c0 < PYCNN_POOL_CHUNK ? hi - c0 : PYCNN_POOL_CHUNK;       \
        T *PYCNN_RESTRICT o = out + c0;                                                    \
        for (ptrdiff_t i = ilo; i < ihi; i++) {                                            \
            for (ptrdiff_t j = 0; j < kw; j++) {                                           \
                /* the tap of window c0 + q is x[off + q*sw] */                            \
                const ptrdiff_t off = (y0 + i * dh) * w + c0 * sw - pw + j * dw;           \
                const int32_t off32 = (int32_t)off;                                        \
                if (i == ilo && j == 0) {                                                  \
                    for (ptrdiff_t q = 0; q < n; q++) {                                    \
                        o[q] = x[off + q * sw];                                            \
                        tap[q] = off32;                                                    \
                    }                                                                      \
                } else if (indices) {                                                      \
                    for (ptrdiff_t q = 0; q < n; q++) {                                    \
                        const T v = x[off + q * sw];                                       \
                        const int take = v > o[q] || isnan(v);                             \
                        o[q] = take ? v : o[q];                                            \
                        tap[q] = take ? off32 : tap[q];                                    \
                    }                                                                      \
                } else {                                                                   \
                    for (ptrdiff_t q = 0; q < n; q++) {                                    \
                        const T v = x[off + q * sw];                                       \
                        o[q] = (v > o[q] || isnan(v)) ? v : o[q];                          \
                    }                                                                      \
                }                                                                          \
            }                                                                              \
        }                                                                                  \
        if (indices)                                                                       \
            for (ptrdiff_t q = 0; q < n; q++)                                              \
                indices[c0 + q] = (int64_t)tap[q] + (int64_t)(q * sw);                     \
    }                                                                                      \
}                                                                                          \
                                                                                           \
ATTR static void max_pool2d_forward_##SFX##_##ISA(const T *x, ptrdiff_t h, ptrdiff_t w,    \
                                                  ptrdiff_t kh, ptrdiff_t kw,              \
                                                  ptrdiff_t sh, ptrdiff_t sw,              \
                                                  ptrdiff_t ph, ptrdiff_t pw,              \
                                                  ptrdiff_t dh, ptrdiff_t dw,              \
                                                  ptrdiff_t oh, ptrdiff_t ow, T *out,      \
                                                  int64_t *indices)                        \
{                                                                                          \
    ptrdiff_t ox_lo, ox_hi;                                                                \
    pycnn_interior_range(w, kw, sw, pw, dw, ow, &ox_lo, &ox_hi);                           \
    const int is_2x2 = kh == 2 && kw == 2 && dh == 1 && dw == 1;                           \
    const int small_plane = h * w <= INT32_MAX;     /* positions fit max_row's int32 */    \
    for (ptrdiff_t oy = 0; oy < oh; oy++) {                                                \
        const ptrdiff_t y0 = oy * sh - ph;                                                 \
        ptrdiff_t ilo, ihi, jlo, jhi;                                                      \
        pycnn_tap_range(y0, kh, dh, h, &ilo, &ihi);                                        \
        T *o = out + oy * ow;                                                              \
        int64_t *ind = indices ? indices + oy * ow : NULL;                                 \
        for (ptrdiff_t ox = 0; ox < ox_lo; ox++) {                                         \
            const ptrdiff_t x0 = ox * sw - pw;                                             \
            pycnn_tap_range(x0, kw, dw, w, &jlo, &jhi);                                    \
            max_window_##SFX##_##ISA(x, w, y0, ilo, ihi, dh, x0, jlo, jhi, dw, o + ox,     \
                                     ind ? ind + ox : NULL);                               \
        }                                                                                  \
        if (is_2x2 && ilo == 0 && ihi == 2 && small_plane) {                               \
            /* a literal stride of 2 (the usual 2x2/2 layer) vectorises */                 \
            if (sw == 2)                                                                   \
                max_row_2x2_##SFX##_##ISA(x, w, y0, 2, pw, ox_lo, ox_hi, o, ind);          \
            else                                                                           \
                max_row_2x2_##SFX##_##ISA(x, w, y0, sw, pw, ox_lo, ox_hi, o, ind);         \
        } else if (ilo < ihi && small_plane) {                                             \
            max_row_##SFX##_##ISA(x, w, y0, ilo, ihi, dh, kw, sw, pw, dw, ox_lo, ox_hi, o, \
                                  ind);                                                    \
        } else {                                                                           \
            for (ptrdiff_t ox = ox_lo; ox < ox_hi; ox++)                                   \
                max_window_##SFX##_##ISA(x, w, y0, ilo, ihi, dh, ox * sw - pw, 0, kw, dw,  \
                                         o + ox, ind ? ind + ox : NULL);                   \
        }                                                                                  \
        for (ptrdiff_t ox = ox_hi; ox < ow; ox++) {                                        \
            const ptrdiff_t x0 = ox * sw - pw;                                             \
            pycnn_tap_range(x0, kw, dw, w, &jlo, &jhi);                                    \
            max_window_##SFX##_##ISA(x, w, y0, ilo, ihi, dh, x0, jlo, jhi, dw, o + ox,     \
                                     ind ? ind + ox : NULL);                               \
        }                                                                                  \
    }                                                                                      \
}                                                                                          \
                                                                                           \
ATTR static ptrdiff_t max_pool2d_backward_##SFX##_##ISA(const T *grad_out,                 \
                                                        const int64_t *indices,            \
                                                        ptrdiff_t h, ptrdiff_t w,          \
                                                        ptrdiff_t oh, ptrdiff_t ow,        \
                                                        T *grad_x)                         \
{                                                                                          \
    const int64_t size = (int64_t)(h * w);                                                 \
    ptrdiff_t bad = 0;                                                                     \
    memset(grad_x, 0, (size_t)(h * w) * sizeof(T));                                        \
    for (ptrdiff_t o = 0; o < oh * ow; o++) {                                              \
        const int64_t k = indices[o];                                                      \
        if (k >= 0 && k < size)                                                            \
            grad_x[k] += grad_out[o];                                                      \
        else                                                                               \
            bad++;                      /* never written: the caller raises */             \
    }                                                                                      \
    return bad;                                                                            \
}                                                                                          \
                                                                                           \
/* Sum of the input pixels [ya, yb) x [xa, xb), in row-major order. */                     \
ATTR static inline T window_sum_##SFX##_##ISA(const T *x, ptrdiff_t w, ptrdiff_t ya,       \
                                              ptrdiff_t yb, ptrdiff_t xa, ptrdiff_t xb)    \
{                                                                                          \
    T sum = 0;                                                                             \
    for (ptrdiff_t y = ya; y < yb; y++)                                                    \
        for (ptrdiff_t xx = xa; xx < xb; xx++)                                             \
            sum += x[y * w + xx];                                                          \
    return sum;                                                                            \
}                                                                                          \
                                                                                           \
/* One border window of an avg-pooling row whose input rows are [ya, yb). */               \
ATTR static inline T avg_border_##SFX##_##ISA(const T *x, ptrdiff_t w, ptrdiff_t ya,       \
                                              ptrdiff_t yb, ptrdiff_t pool_h,              \
                                              ptrdiff_t x0, ptrdiff_t kw, ptrdiff_t pw,    \
                                              int count_include_pad,                       \
                                              ptrdiff_t divisor_override)                  \
{                                                                                          \
    ptrdiff_t xa, xb;                                                                      \
    const ptrdiff_t pool_w = pycnn_avg_extent(x0, kw, w, pw, &xa, &xb);                    \
    if (xa >= xb) return 0;               /* no input pixel: PyTorch writes 0 */           \
    const ptrdiff_t div = pycnn_avg_divisor(pool_h * pool_w, (yb - ya) * (xb - xa),        \
                                            count_include_pad, divisor_override);          \
    return window_sum_##SFX##_##ISA(x, w, ya, yb, xa, xb) / (T)div;                        \
}                                                                                          \
                                                                                           \
/* Interior 2x2 windows [lo, hi) of an avg-pooling row over input rows r0 and r1. */       \
ATTR static PYCNN_ALWAYS_INLINE void                                                       \
avg_row_2x2_##SFX##_##ISA(const T *r0, const T *r1, ptrdiff_t sw, ptrdiff_t pw,            \
                          ptrdiff_t lo, ptrdiff_t hi, T div, T *PYCNN_RESTRICT o)          \
{                                                                                          \
    for (ptrdiff_t ox = lo; ox < hi; ox++) {                                               \
        const ptrdiff_t c = ox * sw - pw;                                                  \
        T sum = 0;                                /* PyTorch's order, not a tree */        \
        sum += r0[c];                                                                      \
        sum += r0[c + 1];                                                                  \
        sum += r1[c];                                                                      \
        sum += r1[c + 1];                                                                  \
        o[ox] = sum / div;                                                                 \
    }                                                                                      \
}                                                                                          \
                                                                                           \
ATTR static void avg_pool2d_forward_##SFX##_##ISA(const T *x, ptrdiff_t h, ptrdiff_t w,    \
                                                  ptrdiff_t kh, ptrdiff_t kw,              \
                                                  ptrdiff_t sh, ptrdiff_t sw,              \
                                                  ptrdiff_t ph, ptrdiff_t pw,              \
                                                  ptrdiff_t oh, ptrdiff_t ow,              \
                                                  int count_include_pad,                   \
                                                  ptrdiff_t divisor_override, T *out)      \
{                                                                                          \
    ptrdiff_t ox_lo, ox_hi;                                                                \
    pycnn_interior_range(w, kw, sw, pw, 1, ow, &ox_lo, &ox_hi);                            \
    for (ptrdiff_t oy = 0; oy < oh; oy++) {                                                \
        ptrdiff_t ya, yb;                                                                  \
        const ptrdiff_t pool_h = pycnn_avg_extent(oy * sh - ph, kh, h, ph, &ya, &yb);      \
        T *PYCNN_RESTRICT o = out + oy * ow;                                               \
        if (ya >= yb) {                   /* no input row: PyTorch writes 0 */             \
            for (ptrdiff_t ox = 0; ox < ow; ox++) o[ox] = 0;                               \
            continue;                                                                      \
        }                                                                                  \
        for (ptrdiff_t ox = 0; ox < ox_lo; ox++)                                           \
            o[ox] = avg_border_##SFX##_##ISA(x, w, ya, yb, pool_h, ox * sw - pw, kw, pw,   \
                                             count_include_pad, divisor_override);         \
        /* interior windows are kw wide inside the input: one divisor for the row */       \
        const T div = (T)pycnn_avg_divisor(pool_h * kw, (yb - ya) * kw, count_include_pad, \
                                           divisor_override);                              \
        if (kh == 2 && kw == 2 && yb - ya == 2) {                                          \
            const T *r0 = x + ya * w, *r1 = r0 + w;                                        \
            if (sw == 2)                          /* a literal 2 vectorises */             \
                avg_row_2x2_##SFX##_##ISA(r0, r1, 2, pw, ox_lo, ox_hi, div, o);            \
            else                                                                           \
                avg_row_2x2_##SFX##_##ISA(r0, r1, sw, pw, ox_lo, ox_hi, div, o);           \
        } else {                                                                           \
            /* taps outer, windows inner (vectorises); each sum still runs row-major */    \
            for (ptrdiff_t ox = ox_lo; ox < ox_hi; ox++) o[ox] = 0;                        \
            for (ptrdiff_t y = ya; y < yb; y++)                                            \
                for (ptrdiff_t j = 0; j < kw; j++) {                                       \
                    const ptrdiff_t off = y * w - pw + j;     /* + ox*sw: the tap */       \
                    for (ptrdiff_t ox = ox_lo; ox < ox_hi; ox++) o[ox] += x[off + ox * sw];\
                }                                                                          \
            for (ptrdiff_t ox = ox_lo; ox < ox_hi; ox++) o[ox] /= div;                     \
        }                                                                                  \
        for (ptrdiff_t ox = ox_hi; ox < ow; ox++)                                          \
            o[ox] = avg_border_##SFX##_##ISA(x, w, ya, yb, pool_h, ox * sw - pw, kw, pw,   \
                                             count_include_pad, divisor_override);         \
    }                                                                                      \
}                                                                                          \
                                                                                           \
/* Adds grad / divisor of one border window of an avg-pooling row to grad_x. */            \
ATTR static inline void avg_border_backward_##SFX##_##ISA(T g, ptrdiff_t w,                \
                                                         ptrdiff_t ya, ptrdiff_t yb,       \
                                                         ptrdiff_t pool_h,                 \
                                                         ptrdiff_t x0, ptrdiff_t kw,       \
                                                         ptrdiff_t pw,                     \
                                                         int count_include_pad,            \
                                                         ptrdiff_t divisor_override,       \
                                                         T *grad_x)                        \
{                                                                                          \
    ptrdiff_t xa, xb;                                                                      \
    const ptrdiff_t pool_w = pycnn_avg_extent(x0, kw, w, pw, &xa, &xb);                    \
    if (xa >= xb) return;                                                                  \
    const ptrdiff_t div = pycnn_avg_divisor(pool_h * pool_w, (yb - ya) * (xb - xa),        \
                                            count_include_pad, divisor_override);          \
    const T delta = g / (T)div;                                                            \
    for (ptrdiff_t y = ya; y < yb; y++)                                                    \
        for (ptrdiff_t xx = xa; xx < xb; xx++)                                             \
            grad_x[y * w + xx] += delta;                                                   \
}                                                                                          \
                                                                                           \
/* Adds grad / div of the interior 2x2 windows [lo, hi) of an avg-pooling row to the       \
 * grad_x rows r0 and r1. */                                                               \
ATTR static PYCNN_ALWAYS_INLINE void                                                       \
avg_row_2x2_backward_##SFX##_##ISA(const T *g, ptrdiff_t sw, ptrdiff_t pw, ptrdiff_t lo,   \
                                   ptrdiff_t hi, T div, T *PYCNN_RESTRICT r0,              \
                                   T *PYCNN_RESTRICT r1)                                   \
{                                                                                          \
    for (ptrdiff_t ox = lo; ox < hi; ox++) {                                               \
        const ptrdiff_t c = ox * sw - pw;                                                  \
        const T delta = g[ox] / div;                                                       \
        r0[c] += delta;                                                                    \
        r0[c + 1] += delta;                                                                \
        r1[c] += delta;                                                                    \
        r1[c + 1] += delta;                                                                \
    }                                                                                      \
}                                                                                          \
                                                                                           \
ATTR static void avg_pool2d_backward_##SFX##_##ISA(const T *grad_out, ptrdiff_t h,         \
                                                   ptrdiff_t w, ptrdiff_t kh,              \
                                                   ptrdiff_t kw, ptrdiff_t sh,             \
                                                   ptrdiff_t sw, ptrdiff_t ph,             \
                                                   ptrdiff_t pw, ptrdiff_t oh,             \
                                                   ptrdiff_t ow, int count_include_pad,    \
                                                   ptrdiff_t divisor_override, T *grad_x)  \
{                                                                                          \
    ptrdiff_t ox_lo, ox_hi;                                                                \
    pycnn_interior_range(w, kw, sw, pw, 1, ow, &ox_lo, &ox_hi);                            \
    memset(grad_x, 0, (size_t)(h * w) * sizeof(T));                                        \
    /* windows in row-major order, as PyTorch: each pixel sums its shares in that order */ \
    for (ptrdiff_t oy = 0; oy < oh; oy++) {                                                \
        ptrdiff_t ya, yb;                                                                  \
        const ptrdiff_t pool_h = pycnn_avg_extent(oy * sh - ph, kh, h, ph, &ya, &yb);      \
        const T *g = grad_out + oy * ow;                                                   \
        if (ya >= yb) continue;                                                            \
        for (ptrdiff_t ox = 0; ox < ox_lo; ox++)                                           \
            avg_border_backward_##SFX##_##ISA(g[ox], w, ya, yb, pool_h, ox * sw - pw, kw,  \
                                              pw, count_include_pad, divisor_override,     \
                                              grad_x);                                     \
        const T div = (T)pycnn_avg_divisor(pool_h * kw, (yb - ya) * kw, count_include_pad, \
                                           divisor_override);                              \
        if (kh == 2 && kw == 2 && yb - ya == 2) {                                          \
            T *r0 = grad_x + ya * w, *r1 = r0 + w;                                         \
            if (sw == 2)                          /* a literal 2 vectorises */             \
                avg_row_2x2_backward_##SFX##_##ISA(g, 2, pw, ox_lo, ox_hi, div, r0, r1);   \
            else                                                                           \
                avg_row_2x2_backward_##SFX##_##ISA(g, sw, pw, ox_lo, ox_hi, div, r0, r1);  \
        } else {                                                                           \
            /* taps outer, windows inner (vectorises), with j descending: a pixel shared   \
             * by windows ox1 < ox2 is their taps j1 > j2, so it still receives its        \
             * shares in increasing ox, the order above */                                 \
            T delta[PYCNN_POOL_CHUNK];                                                     \
            for (ptrdiff_t c0 = ox_lo; c0 < ox_hi; c0 += PYCNN_POOL_CHUNK) {               \
                const ptrdiff_t n = ox_hi - c0 < PYCNN_POOL_CHUNK ? ox_hi - c0             \
                                                                  : PYCNN_POOL_CHUNK;      \
                for (ptrdiff_t q = 0; q < n; q++) delta[q] = g[c0 + q] / div;              \
                for (ptrdiff_t y = ya; y < yb; y++) {                                      \
                    T *PYCNN_RESTRICT row = grad_x + y * w;                                \
                    for (ptrdiff_t j = kw - 1; j >= 0; j--) {                              \
                        const ptrdiff_t off = c0 * sw - pw + j;   /* + q*sw: the pixel */  \
                        for (ptrdiff_t q = 0; q < n; q++) row[off + q * sw] += delta[q];   \
                    }                                                                      \
                }                                                                          \
            }                                                                              \
        }                                                                                  \
        for (ptrdiff_t ox = ox_hi; ox < ow; ox++)                                          \
            avg_border_backward_##SFX##_##ISA(g[ox], w, ya, yb, pool_h, ox * sw - pw, kw,  \
                                              pw, count_include_pad, divisor_override,     \
                                              grad_x);                                     \
    }                                                                                      \
}

PYCNN_DEFINE_POOL2D(float, f32, base, )
PYCNN_DEFINE_POOL2D(double, f64, base, )
#if PYCNN_HAVE_DISPATCH
PYCNN_DEFINE_POOL2D(float, f32, avx2, PYCNN_TARGET_AVX2)
PYCNN_DEFINE_POOL2D(double, f64, avx2, PYCNN_TARGET_AVX2)
PYCNN_DEFINE_POOL2D(float, f32, avx512, PYCNN_TARGET_AVX512)
PYCNN_DEFINE_POOL2D(double, f64, avx512, PYCNN_TARGET_AVX512)
#endif

/* Public entry points: call the variant of the active instruction set. */
#define PYCNN_DEFINE_POOL2D_ENTRY(T, SFX)                                                  \
void pycnn_max_pool2d_forward_##SFX(const T *x, ptrdiff_t h, ptrdiff_t w, ptrdiff_t kh,   \
                                    ptrdiff_t kw, ptrdiff_t sh, ptrdiff_t sw,              \
                                    ptrdiff_t ph, ptrdiff_t pw, ptrdiff_t dh,              \
                                    ptrdiff_t dw, ptrdiff_t oh, ptrdiff_t ow, T *out,      \
                                    int64_t *indices)                                      \
{                                                                                          \
    PYCNN_DISPATCH(max_pool2d_forward_##SFX, (x, h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, \
                                              ow, out, indices))                           \
}                                                                                          \
ptrdiff_t pycnn_max_pool2d_backward_##SFX(const T *grad_out, const int64_t *indices,      \
                                          ptrdiff_t h, ptrdiff_t w, ptrdiff_t oh,          \
                                          ptrdiff_t ow, T *grad_x)                         \
{                                                                                          \
    PYCNN_DISPATCH_RETURN(max_pool2d_backward_##SFX, (grad_out, indices, h, w, oh, ow,     \
                                                      grad_x))                             \
}                                                                                          \
void pycnn_avg_pool2d_forward_##SFX(const T *x, ptrdiff_t h, ptrdiff_t w, ptrdiff_t kh,   \
                                    ptrdiff_t kw, ptrdiff_t sh, ptrdiff_t sw,              \
                                    ptrdiff_t ph, ptrdiff_t pw, ptrdiff_t oh,              \
                                    ptrdiff_t ow, int count_include_pad,                   \
                                    ptrdiff_t divisor_override, T *out)                    \
{                                                                                          \
    PYCNN_DISPATCH(avg_pool2d_forward_##SFX, (x, h, w, kh, kw, sh, sw, ph, pw, oh, ow,     \
                                              count_include_pad, divisor_override, out))   \
}                                                                                          \
void pycnn_avg_pool2d_backward_##SFX(const T *grad_out, ptrdiff_t h, ptrdiff_t w,         \
                                     ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t sh,             \
                                     ptrdiff_t sw, ptrdiff_t ph, ptrdiff_t pw,             \
                                     ptrdiff_t oh, ptrdiff_t ow, int count_include_pad,    \
                                     ptrdiff_t divisor_override, T *grad_x)                \
{                                                                                          \
    PYCNN_DISPATCH(avg_pool2d_backward_##SFX, (grad_out, h, w, kh, kw, sh, sw, ph, pw, oh, \
                                               ow, count_include_pad, divisor_override,    \
                                               grad_x))                                    \
}

PYCNN_DEFINE_POOL2D_ENTRY(float, f32)
PYCNN_DEFINE_POOL2D_ENTRY(double, f64)
