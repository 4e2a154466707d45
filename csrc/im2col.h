/* im2col / col2im for one image.
 *
 * Layout: x is (C, H, W) and cols is (C*KH*KW, OH*OW), both C-contiguous:
 *     row = (c*KH + i)*KW + j         col = oy*OW + ox
 *     input pixel: y = oy*SH - PH + i*DH,  x = ox*SW - PW + j*DW
 * Pixels outside [0, H) x [0, W) are padding and read as zero (im2col) or are
 * dropped (col2im). PH/PW are the top/left padding only; OH/OW are passed in, never
 * recomputed, so asymmetric ('same') padding is expressed through OH/OW.
 * col2im overwrites x: it is zeroed, then every column entry is added to its pixel.
 * Preconditions (checked by the caller): every size >= 1, strides and dilations >= 1,
 * padding >= 0. No allocation, no Python API. */
#ifndef PYCNN_IM2COL_H
#define PYCNN_IM2COL_H

#include <stddef.h>

#define PYCNN_DECLARE_IM2COL(T, SFX)                                                   \
    void pycnn_im2col_##SFX(const T *x, ptrdiff_t c, ptrdiff_t h, ptrdiff_t w,         \
                            ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t sh, ptrdiff_t sw,    \
                            ptrdiff_t ph, ptrdiff_t pw, ptrdiff_t dh, ptrdiff_t dw,    \
                            ptrdiff_t oh, ptrdiff_t ow, T *cols);                      \
    void pycnn_col2im_##SFX(const T *cols, ptrdiff_t c, ptrdiff_t h, ptrdiff_t w,      \
                            ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t sh, ptrdiff_t sw,    \
                            ptrdiff_t ph, ptrdiff_t pw, ptrdiff_t dh, ptrdiff_t dw,    \
                            ptrdiff_t oh, ptrdiff_t ow, T *x);

PYCNN_DECLARE_IM2COL(float, f32)
PYCNN_DECLARE_IM2COL(double, f64)

#endif /* PYCNN_IM2COL_H */
