/* Direct 2-D convolution of one image, without im2col: for layers whose groups have
 * few input channels (the first layer of a network on 1-3 channel images, depthwise
 * layers), where the column matrix would be a thin GEMM operand that BLAS handles
 * poorly.
 *
 * Layout, all C-contiguous: x is (C, H, W), already padded, weight (F, C/G, KH, KW),
 * bias (F) or NULL, out (F, OH, OW). Output channel f reads input channels
 * [g*C/G, (g+1)*C/G) with g = f / (F/G). Input pixel y = oy*SH + i*DH (x alike).
 * out is overwritten.
 * Preconditions (checked by the caller): every size >= 1, G divides C and F, strides
 * and dilations >= 1, and every window lies inside x:
 * (OH-1)*SH + (KH-1)*DH < H and (OW-1)*SW + (KW-1)*DW < W. No allocation, no Python
 * API. */
#ifndef PYCNN_CONV_DIRECT_H
#define PYCNN_CONV_DIRECT_H

#include <stddef.h>

/* Bytes of the vectors the kernel computes with (an AVX register; two SSE registers in
 * the baseline). A block spans 2 vectors of outputs of a row, 2*32/sizeof(T) outputs:
 * the Python plan (pycnn/_conv.py) reads it as _kernels.DIRECT_VECTOR_BYTES to decide
 * which rows are wide enough for the direct kernel. */
#define PYCNN_DIRECT_VECTOR_BYTES 32

#define PYCNN_DECLARE_CONV_DIRECT(T, SFX)                                              \
    void pycnn_conv2d_direct_##SFX(const T *x, ptrdiff_t c, ptrdiff_t h, ptrdiff_t w,  \
                                   const T *weight, ptrdiff_t f, ptrdiff_t groups,     \
                                   ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t sh,           \
                                   ptrdiff_t sw, ptrdiff_t dh, ptrdiff_t dw,           \
                                   ptrdiff_t oh, ptrdiff_t ow, const T *bias, T *out);

PYCNN_DECLARE_CONV_DIRECT(float, f32)
PYCNN_DECLARE_CONV_DIRECT(double, f64)

#endif /* PYCNN_CONV_DIRECT_H */
