/* Direct convolution; layout and preconditions in conv_direct.h.
 *
 * The output is computed in register blocks of 4 filters x 2 vectors of consecutive
 * outputs of a row (16 floats or 8 doubles): for each tap, the input vectors are
 * loaded once and multiplied into the 8 accumulators, so the loop runs on arithmetic
 * rather than loads and stores. Filters left over (fewer than 4 in a group) go one at
 * a time; the last block of a row ends at the row's end, overlapping the block before
 * (recomputing a few outputs, bit for bit the same); rows narrower than a block go one
 * output at a time. The caller pads the input, so no tap needs a bounds test. Taps
 * are summed in (channel, row, column) order after the bias. */
#include <string.h>

#include "conv_direct.h"
#include "dispatch.h"

/* Lanes of one vector of PYCNN_DIRECT_VECTOR_BYTES (conv_direct.h). */
#define PYCNN_LANES(T) ((ptrdiff_t)(PYCNN_DIRECT_VECTOR_BYTES / sizeof(T)))

/* Output block of NF output channels x 2 vectors of consecutive outputs of row oy,
 * from ox on, in 2*NF vector accumulators (GCC/Clang vector extensions). Each input
 * vector loaded is used by NF filters. Every tap is inside the (pre-padded) input. */
#define PYCNN_DEFINE_CONV_BLOCK(T, SFX, ISA, ATTR, NF)                                  \
ATTR static inline void conv_block_##SFX##_##ISA##_##NF(                                \
    const T *xg, ptrdiff_t cg, ptrdiff_t h, ptrdiff_t w, const T *wf, ptrdiff_t taps,   \
    ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t sh, ptrdiff_t sw, ptrdiff_t dh, ptrdiff_t dw, \
    ptrdiff_t plane, ptrdiff_t oy, ptrdiff_t ox, ptrdiff_t ow, const T *bias, T *o)     \
{                                                                                       \
    typedef T vec __attribute__((vector_size(PYCNN_DIRECT_VECTOR_BYTES)));              \
    enum { L = PYCNN_DIRECT_VECTOR_BYTES / sizeof(T) };                                 \
    vec lo[NF], hi[NF];                                                                 \
    for (int a = 0; a < NF; a++) lo[a] = hi[a] = (vec){0} + (bias ? bias[a] : (T)0);    \
    for (ptrdiff_t ci = 0; ci < cg; ci++) {                                             \
        for (ptrdiff_t i = 0; i < kh; i++) {                                            \
            const T *row = xg + (ci * h + oy * sh + i * dh) * w + ox * sw;              \
            const T *wt = wf + (ci * kh + i) * kw;                                      \
            for (ptrdiff_t j = 0; j < kw; j++) {                                        \
                const T *p = row + j * dw;                                              \
                vec x0, x1;                                                             \
                if (sw == 1) {                                                          \
                    memcpy(&x0, p, sizeof x0);                                          \
                    memcpy(&x1, p + L, sizeof x1);                                      \
                } else {                                                                \
                    for (int v = 0; v < L; v++) {                                       \
                        x0[v] = p[v * sw];                                              \
                        x1[v] = p[(v + L) * sw];                                        \
                    }                                                                   \
                }                                                                       \
                for (int a = 0; a < NF; a++) {                                          \
                    const T wv = wt[a * taps + j];                                      \
                    lo[a] += wv * x0;                                                   \
                    hi[a] += wv * x1;                                                   \
                }                                                                       \
            }                                                                           \
        }                                                                               \
    }                                                                                   \
    for (int a = 0; a < NF; a++) {                                                      \
        memcpy(o + a * plane + oy * ow + ox, &lo[a], sizeof lo[a]);                     \
        memcpy(o + a * plane + oy * ow + ox + L, &hi[a], sizeof hi[a]);                 \
    }                                                                                   \
}

/* One output, for rows narrower than a block. */
#define PYCNN_DEFINE_CONV_ONE(T, SFX, ISA, ATTR)                                        \
ATTR static inline void conv_one_##SFX##_##ISA(                                         \
    const T *xg, ptrdiff_t cg, ptrdiff_t h, ptrdiff_t w, const T *wf, ptrdiff_t kh,     \
    ptrdiff_t kw, ptrdiff_t sh, ptrdiff_t sw, ptrdiff_t dh, ptrdiff_t dw, ptrdiff_t oy, \
    ptrdiff_t ox, T bias, T *dst)                                                       \
{                                                                                       \
    T acc = bias;                                                                       \
    for (ptrdiff_t ci = 0; ci < cg; ci++)                                               \
        for (ptrdiff_t i = 0; i < kh; i++) {                                            \
            const T *row = xg + (ci * h + oy * sh + i * dh) * w + ox * sw;              \
            for (ptrdiff_t j = 0; j < kw; j++)                                          \
                acc += wf[(ci * kh + i) * kw + j] * row[j * dw];                        \
        }                                                                               \
    *dst = acc;                                                                         \
}

#define PYCNN_DEFINE_CONV_DIRECT(T, SFX, ISA, ATTR)                                     \
PYCNN_DEFINE_CONV_BLOCK(T, SFX, ISA, ATTR, 4)                                           \
PYCNN_DEFINE_CONV_BLOCK(T, SFX, ISA, ATTR, 1)                                           \
PYCNN_DEFINE_CONV_ONE(T, SFX, ISA, ATTR)                                                \
ATTR static void conv2d_direct_##SFX##_##ISA(                                           \
    const T *x, ptrdiff_t c, ptrdiff_t h, ptrdiff_t w, const T *weight, ptrdiff_t f,     \
    ptrdiff_t groups, ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t sh, ptrdiff_t sw,           \
    ptrdiff_t dh, ptrdiff_t dw, ptrdiff_t oh, ptrdiff_t ow, const T *bias, T *out)      \
{                                                                                       \
    const ptrdiff_t cg = c / groups, fg = f / groups, plane = oh * ow;                  \
    const ptrdiff_t taps = cg * kh * kw, bw = 2 * PYCNN_LANES(T);  /* block width */    \
    for (ptrdiff_t fo = 0; fo < f;) {                                                   \
        /* a block of 4 filters of one group, or a single filter */                    \
        const ptrdiff_t g = fo / fg, nf = (g + 1) * fg - fo >= 4 ? 4 : 1;              \
        const T *xg = x + g * cg * h * w, *wf = weight + fo * taps;                     \
        const T *b = bias ? bias + fo : NULL;                                           \
        T *o = out + fo * plane;                                                        \
        for (ptrdiff_t oy = 0; oy < oh; oy++) {                                         \
            if (ow < bw) {                  /* too narrow for a block: one at a time */ \
                for (ptrdiff_t a = 0; a < nf; a++)                                      \
                    for (ptrdiff_t t = 0; t < ow; t++)                                  \
                        conv_one_##SFX##_##ISA(xg, cg, h, w, wf + a * taps, kh, kw, sh, \
                                               sw, dh, dw, oy, t, b ? b[a] : (T)0,      \
                                               o + a * plane + oy * ow + t);            \
                continue;                                                               \
            }                                                                           \
            for (ptrdiff_t ox = 0; ox < ow; ox += bw) {                                 \
                /* the last block ends at the row's end, overlapping the one before */  \
                const ptrdiff_t x0 = ox + bw <= ow ? ox : ow - bw;                      \
                if (nf == 4)                                                            \
                    conv_block_##SFX##_##ISA##_4(xg, cg, h, w, wf, taps, kh, kw, sh,    \
                                                 sw, dh, dw, plane, oy, x0, ow, b, o);   \
                else                                                                    \
                    conv_block_##SFX##_##ISA##_1(xg, cg, h, w, wf, taps, kh, kw, sh,    \
                                                 sw, dh, dw, plane, oy, x0, ow, b, o);   \
            }                                                                           \
        }                                                                               \
        fo += nf;                                                                       \
    }                                                                                   \
}

PYCNN_DEFINE_CONV_DIRECT(float, f32, base, )
PYCNN_DEFINE_CONV_DIRECT(double, f64, base, )
#if PYCNN_HAVE_DISPATCH
PYCNN_DEFINE_CONV_DIRECT(float, f32, avx2, PYCNN_TARGET_AVX2)
PYCNN_DEFINE_CONV_DIRECT(double, f64, avx2, PYCNN_TARGET_AVX2)
PYCNN_DEFINE_CONV_DIRECT(float, f32, avx512, PYCNN_TARGET_AVX512)
PYCNN_DEFINE_CONV_DIRECT(double, f64, avx512, PYCNN_TARGET_AVX512)
#endif

#define PYCNN_DEFINE_CONV_DIRECT_ENTRY(T, SFX)                                          \
void pycnn_conv2d_direct_##SFX(const T *x, ptrdiff_t c, ptrdiff_t h, ptrdiff_t w,       \
                               const T *weight, ptrdiff_t f, ptrdiff_t groups,          \
                               ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t sh, ptrdiff_t sw,  \
                               ptrdiff_t dh, ptrdiff_t dw, ptrdiff_t oh, ptrdiff_t ow,  \
                               const T *bias, T *out)                                   \
{                                                                                       \
    PYCNN_DISPATCH(conv2d_direct_##SFX, (x, c, h, w, weight, f, groups, kh, kw, sh, sw, \
                                         dh, dw, oh, ow, bias, out))                    \
}

PYCNN_DEFINE_CONV_DIRECT_ENTRY(float, f32)
PYCNN_DEFINE_CONV_DIRECT_ENTRY(double, f64)
