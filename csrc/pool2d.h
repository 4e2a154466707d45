/* Max and average pooling over one plane, forward and backward.
 *
 * Layout: an input plane x (or grad_x) is (H, W) and an output plane out, indices or
 * grad_out is (OH, OW), all C-contiguous. The window of output (oy, ox) has the taps
 *     y = oy*SH - PH + i*DH  (i < KH)        x = ox*SW - PW + j*DW  (j < KW)
 * and only taps inside [0, H) x [0, W) are read: padding is never materialised.
 * PH/PW are the top/left padding; OH/OW are passed in, never recomputed, so ceil_mode
 * is expressed through them (windows may run past the bottom/right padding).
 *
 * max_pool2d_forward: out = the largest tap, indices = its flat position y*W + x in
 *   the plane (int64). The first maximum in row-major window order wins ties; a NaN
 *   tap always wins, so a window holding NaN gives NaN (PyTorch's rule: the last NaN).
 *   A window with no tap inside the input (only possible with DH > H or DW > W, which
 *   the Python layer rejects) gives -inf and index -1. `indices` may be NULL.
 * max_pool2d_backward: grad_x is zeroed, then grad_out[o] is added at indices[o].
 *   An index outside [0, H*W) is skipped and counted; the count is returned (0 when
 *   every index was valid), so bad indices can never write out of bounds.
 * avg_pool2d_forward: out = (sum of the taps inside the input) / divisor, where, as in
 *   PyTorch, divisor = divisor_override if > 0, else pool_size if count_include_pad,
 *   else the number of taps inside the input; pool_size is the window clipped to the
 *   padded input [-PH, H + PH) x [-PW, W + PW). A window with no input pixel gives 0.
 * avg_pool2d_backward: grad_x is zeroed, then each grad_out[o] / divisor is added to
 *   every input pixel of window o, windows in row-major order.
 * Preconditions (checked by the caller): H, W, OH, OW >= 0; kernel, stride and
 * dilation >= 1; padding >= 0. No allocation, no Python API. */
#ifndef PYCNN_POOL2D_H
#define PYCNN_POOL2D_H

#include <stddef.h>
#include <stdint.h>

#define PYCNN_DECLARE_POOL2D(T, SFX)                                                      \
    void pycnn_max_pool2d_forward_##SFX(const T *x, ptrdiff_t h, ptrdiff_t w,             \
                                        ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t sh,         \
                                        ptrdiff_t sw, ptrdiff_t ph, ptrdiff_t pw,         \
                                        ptrdiff_t dh, ptrdiff_t dw, ptrdiff_t oh,         \
                                        ptrdiff_t ow, T *out, int64_t *indices);          \
    ptrdiff_t pycnn_max_pool2d_backward_##SFX(const T *grad_out, const int64_t *indices,  \
                                              ptrdiff_t h, ptrdiff_t w, ptrdiff_t oh,     \
                                              ptrdiff_t ow, T *grad_x);                   \
    void pycnn_avg_pool2d_forward_##SFX(const T *x, ptrdiff_t h, ptrdiff_t w,             \
                                        ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t sh,         \
                                        ptrdiff_t sw, ptrdiff_t ph, ptrdiff_t pw,         \
                                        ptrdiff_t oh, ptrdiff_t ow, int count_include_pad,\
                                        ptrdiff_t divisor_override, T *out);              \
    void pycnn_avg_pool2d_backward_##SFX(const T *grad_out, ptrdiff_t h, ptrdiff_t w,     \
                                         ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t sh,        \
                                         ptrdiff_t sw, ptrdiff_t ph, ptrdiff_t pw,        \
                                         ptrdiff_t oh, ptrdiff_t ow,                      \
                                         int count_include_pad,                           \
                                         ptrdiff_t divisor_override, T *grad_x);

PYCNN_DECLARE_POOL2D(float, f32)
PYCNN_DECLARE_POOL2D(double, f64)

#endif /* PYCNN_POOL2D_H */
