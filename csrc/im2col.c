/* im2col / col2im kernels; layout and preconditions in im2col.h.
 *
 * Loop order is Caffe's (channel, kernel row, kernel col, output row, output col), so
 * im2col writes cols strictly sequentially. Each output row is split once into a left
 * padding run, an interior run and a right padding run, so the interior loop carries
 * no bounds test and, at unit stride, is a plain copy. */
#include <string.h>

#include "common.h"
#include "dispatch.h"
#include "im2col.h"

/* The loops of one dtype, compiled once per instruction set (ATTR, ISA suffix). */
#define PYCNN_DEFINE_IM2COL(T, SFX, ISA, ATTR)                                          \
ATTR static void im2col_##SFX##_##ISA(const T *x, ptrdiff_t c, ptrdiff_t h, ptrdiff_t w, \
                        ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t sh, ptrdiff_t sw,         \
                        ptrdiff_t ph, ptrdiff_t pw, ptrdiff_t dh, ptrdiff_t dw,         \
                        ptrdiff_t oh, ptrdiff_t ow, T *cols)                            \
{                                                                                       \
    T *row = cols;                                                                      \
    for (ptrdiff_t ci = 0; ci < c; ci++) {                                              \
        const T *plane = x + ci * h * w;                                                \
        for (ptrdiff_t i = 0; i < kh; i++) {                                            \
            ptrdiff_t oy_lo, oy_hi;                                                     \
            pycnn_valid_range(h, sh, ph, i * dh, oh, &oy_lo, &oy_hi);                   \
            for (ptrdiff_t j = 0; j < kw; j++) {                                        \
                ptrdiff_t ox_lo, ox_hi;                                                 \
                pycnn_valid_range(w, sw, pw, j * dw, ow, &ox_lo, &ox_hi);               \
                /* rows wholly in the top/bottom padding are zero */                    \
                memset(row, 0, (size_t)(oy_lo * ow) * sizeof(T));                       \
                for (ptrdiff_t oy = oy_lo; oy < oy_hi; oy++) {                          \
                    /* integer offset: the pixel of ox = 0 may lie in the padding */    \
                    const ptrdiff_t base = (oy * sh - ph + i * dh) * w - pw + j * dw;   \
                    T *dst = row + oy * ow;                                             \
                    for (ptrdiff_t ox = 0; ox < ox_lo; ox++) dst[ox] = (T)0;            \
                    if (sw == 1) {                                                      \
                        memcpy(dst + ox_lo, plane + (base + ox_lo),                     \
                               (size_t)(ox_hi - ox_lo) * sizeof(T));                    \
                    } else {                                                            \
                        for (ptrdiff_t ox = ox_lo; ox < ox_hi; ox++)                    \
                            dst[ox] = plane[base + ox * sw];                            \
                    }                                                                   \
                    for (ptrdiff_t ox = ox_hi; ox < ow; ox++) dst[ox] = (T)0;           \
                }                                                                       \
                memset(row + oy_hi * ow, 0, (size_t)((oh - oy_hi) * ow) * sizeof(T));   \
                row += oh * ow;                                                         \
            }                                                                           \
        }                                                                               \
    }                                                                                   \
}                                                                                       \
                                                                                        \
ATTR static void col2im_##SFX##_##ISA(const T *cols, ptrdiff_t c, ptrdiff_t h, ptrdiff_t w, \
                        ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t sh, ptrdiff_t sw,         \
                        ptrdiff_t ph, ptrdiff_t pw, ptrdiff_t dh, ptrdiff_t dw,         \
                        ptrdiff_t oh, ptrdiff_t ow, T *x)                               \
{                                                                                       \
    memset(x, 0, (size_t)(c * h * w) * sizeof(T));                                      \
    const T *row = cols;                                                                \
    for (ptrdiff_t ci = 0; ci < c; ci++) {                                              \
        T *plane = x + ci * h * w;                                                      \
        for (ptrdiff_t i = 0; i < kh; i++) {                                            \
            ptrdiff_t oy_lo, oy_hi;                                                     \
            pycnn_valid_range(h, sh, ph, i * dh, oh, &oy_lo, &oy_hi);                   \
            for (ptrdiff_t j = 0; j < kw; j++) {                                        \
                ptrdiff_t ox_lo, ox_hi;                                                 \
                pycnn_valid_range(w, sw, pw, j * dw, ow, &ox_lo, &ox_hi);               \
                for (ptrdiff_t oy = oy_lo; oy < oy_hi; oy++) {                          \
                    const ptrdiff_t base = (oy * sh - ph + i * dh) * w - pw + j * dw;   \
                    const T *src = row + oy * ow;                                       \
                    for (ptrdiff_t ox = ox_lo; ox < ox_hi; ox++)                        \
                        plane[base + ox * sw] += src[ox];                               \
                }                                                                       \
                row += oh * ow;                                                         \
            }                                                                           \
        }                                                                               \
    }                                                                                   \
}

PYCNN_DEFINE_IM2COL(float, f32, base, )
PYCNN_DEFINE_IM2COL(double, f64, base, )
#if PYCNN_HAVE_DISPATCH
PYCNN_DEFINE_IM2COL(float, f32, avx2, PYCNN_TARGET_AVX2)
PYCNN_DEFINE_IM2COL(double, f64, avx2, PYCNN_TARGET_AVX2)
PYCNN_DEFINE_IM2COL(float, f32, avx512, PYCNN_TARGET_AVX512)
PYCNN_DEFINE_IM2COL(double, f64, avx512, PYCNN_TARGET_AVX512)
#endif

/* Public entry points: call the variant of the active instruction set. */
#define PYCNN_DEFINE_IM2COL_ENTRY(T, SFX)                                               \
void pycnn_im2col_##SFX(const T *x, ptrdiff_t c, ptrdiff_t h, ptrdiff_t w,              \
                        ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t sh, ptrdiff_t sw,         \
                        ptrdiff_t ph, ptrdiff_t pw, ptrdiff_t dh, ptrdiff_t dw,         \
                        ptrdiff_t oh, ptrdiff_t ow, T *cols)                            \
{                                                                                       \
    PYCNN_DISPATCH(im2col_##SFX, (x, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow,   \
                                  cols))                                                \
}                                                                                       \
void pycnn_col2im_##SFX(const T *cols, ptrdiff_t c, ptrdiff_t h, ptrdiff_t w,           \
                        ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t sh, ptrdiff_t sw,         \
                        ptrdiff_t ph, ptrdiff_t pw, ptrdiff_t dh, ptrdiff_t dw,         \
                        ptrdiff_t oh, ptrdiff_t ow, T *x)                               \
{                                                                                       \
    PYCNN_DISPATCH(col2im_##SFX, (cols, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, \
                                  x))                                                   \
}

PYCNN_DEFINE_IM2COL_ENTRY(float, f32)
PYCNN_DEFINE_IM2COL_ENTRY(double, f64)
