# Declarations of the C kernels in csrc/; mirrors the headers one to one.
from libc.stddef cimport ptrdiff_t
from libc.stdint cimport int64_t


cdef extern from "dispatch.h" nogil:
    int pycnn_isa_default()
    int pycnn_avx512_verified()
    int pycnn_isa_supported(int isa)
    int pycnn_isa_active()
    int pycnn_isa_set(int isa)


cdef extern from "im2col.h" nogil:
    void pycnn_im2col_f32(const float *x, ptrdiff_t c, ptrdiff_t h, ptrdiff_t w,
                          ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t sh, ptrdiff_t sw,
                          ptrdiff_t ph, ptrdiff_t pw, ptrdiff_t dh, ptrdiff_t dw,
                          ptrdiff_t oh, ptrdiff_t ow, float *cols)
    void pycnn_im2col_f64(const double *x, ptrdiff_t c, ptrdiff_t h, ptrdiff_t w,
                          ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t sh, ptrdiff_t sw,
                          ptrdiff_t ph, ptrdiff_t pw, ptrdiff_t dh, ptrdiff_t dw,
                          ptrdiff_t oh, ptrdiff_t ow, double *cols)
    void pycnn_col2im_f32(const float *cols, ptrdiff_t c, ptrdiff_t h, ptrdiff_t w,
                          ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t sh, ptrdiff_t sw,
                          ptrdiff_t ph, ptrdiff_t pw, ptrdiff_t dh, ptrdiff_t dw,
                          ptrdiff_t oh, ptrdiff_t ow, float *x)
    void pycnn_col2im_f64(const double *cols, ptrdiff_t c, ptrdiff_t h, ptrdiff_t w,
                          ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t sh, ptrdiff_t sw,
                          ptrdiff_t ph, ptrdiff_t pw, ptrdiff_t dh, ptrdiff_t dw,
                          ptrdiff_t oh, ptrdiff_t ow, double *x)


cdef extern from "conv_direct.h" nogil:
    enum: PYCNN_DIRECT_VECTOR_BYTES
    void pycnn_conv2d_direct_f32(const float *x, ptrdiff_t c, ptrdiff_t h, ptrdiff_t w,
                                 const float *weight, ptrdiff_t f, ptrdiff_t groups,
                                 ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t sh, ptrdiff_t sw,
                                 ptrdiff_t dh, ptrdiff_t dw, ptrdiff_t oh, ptrdiff_t ow,
                                 const float *bias, float *out)
    void pycnn_conv2d_direct_f64(const double *x, ptrdiff_t c, ptrdiff_t h, ptrdiff_t w,
                                 const double *weight, ptrdiff_t f, ptrdiff_t groups,
                                 ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t sh, ptrdiff_t sw,
                                 ptrdiff_t dh, ptrdiff_t dw, ptrdiff_t oh, ptrdiff_t ow,
                                 const double *bias, double *out)


cdef extern from "pool2d.h" nogil:
    void pycnn_max_pool2d_forward_f32(const float *x, ptrdiff_t h, ptrdiff_t w,
                                      ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t sh, ptrdiff_t sw,
                                      ptrdiff_t ph, ptrdiff_t pw, ptrdiff_t dh, ptrdiff_t dw,
                                      ptrdiff_t oh, ptrdiff_t ow, float *out, int64_t *indices)
    void pycnn_max_pool2d_forward_f64(const double *x, ptrdiff_t h, ptrdiff_t w,
                                      ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t sh, ptrdiff_t sw,
                                      ptrdiff_t ph, ptrdiff_t pw, ptrdiff_t dh, ptrdiff_t dw,
                                      ptrdiff_t oh, ptrdiff_t ow, double *out, int64_t *indices)
    ptrdiff_t pycnn_max_pool2d_backward_f32(const float *grad_out, const int64_t *indices,
                                            ptrdiff_t h, ptrdiff_t w, ptrdiff_t oh,
                                            ptrdiff_t ow, float *grad_x)
    ptrdiff_t pycnn_max_pool2d_backward_f64(const double *grad_out, const int64_t *indices,
                                            ptrdiff_t h, ptrdiff_t w, ptrdiff_t oh,
                                            ptrdiff_t ow, double *grad_x)
    void pycnn_avg_pool2d_forward_f32(const float *x, ptrdiff_t h, ptrdiff_t w,
                                      ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t sh, ptrdiff_t sw,
                                      ptrdiff_t ph, ptrdiff_t pw, ptrdiff_t oh, ptrdiff_t ow,
                                      int count_include_pad, ptrdiff_t divisor_override,
                                      float *out)
    void pycnn_avg_pool2d_forward_f64(const double *x, ptrdiff_t h, ptrdiff_t w,
                                      ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t sh, ptrdiff_t sw,
                                      ptrdiff_t ph, ptrdiff_t pw, ptrdiff_t oh, ptrdiff_t ow,
                                      int count_include_pad, ptrdiff_t divisor_override,
                                      double *out)
    void pycnn_avg_pool2d_backward_f32(const float *grad_out, ptrdiff_t h, ptrdiff_t w,
                                       ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t sh, ptrdiff_t sw,
                                       ptrdiff_t ph, ptrdiff_t pw, ptrdiff_t oh, ptrdiff_t ow,
                                       int count_include_pad, ptrdiff_t divisor_override,
                                       float *grad_x)
    void pycnn_avg_pool2d_backward_f64(const double *grad_out, ptrdiff_t h, ptrdiff_t w,
                                       ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t sh, ptrdiff_t sw,
                                       ptrdiff_t ph, ptrdiff_t pw, ptrdiff_t oh, ptrdiff_t ow,
                                       int count_include_pad, ptrdiff_t divisor_override,
                                       double *grad_x)
