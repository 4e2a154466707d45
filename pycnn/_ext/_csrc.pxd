# Declarations of the C kernels in csrc/; mirrors the headers one to one.
from libc.stddef cimport ptrdiff_t


cdef extern from "dispatch.h" nogil:
    int pycnn_isa_best()
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
