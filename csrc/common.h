/* Shared definitions for the pycnn C kernels.
 *
 * The kernels know nothing of Python or NumPy. Every size is a signed ptrdiff_t so
 * that indices may go negative inside the padding; the Python layer has validated
 * every argument before a kernel is called, so kernels never check them again. */
#ifndef PYCNN_COMMON_H
#define PYCNN_COMMON_H

#include <stddef.h>

/* C99's restrict, spelled for every compiler the kernels are built with. */
#if defined(_MSC_VER) && !defined(__clang__)
#define PYCNN_RESTRICT __restrict
#else
#define PYCNN_RESTRICT restrict
#endif

/* Range [lo, hi) of output positions o whose input coordinate o*stride - pad + off
 * falls inside [0, size). Used to split a row into padding / interior / padding. */
static inline void pycnn_valid_range(ptrdiff_t size, ptrdiff_t stride, ptrdiff_t pad,
                                     ptrdiff_t off, ptrdiff_t n_out,
                                     ptrdiff_t *lo, ptrdiff_t *hi)
{
    /* smallest o with o*stride >= pad - off */
    const ptrdiff_t first = pad - off;
    ptrdiff_t a = first <= 0 ? 0 : (first + stride - 1) / stride;
    /* largest o with o*stride - pad + off <= size - 1, plus one */
    const ptrdiff_t last = size - 1 + pad - off;
    ptrdiff_t b = last < 0 ? 0 : last / stride + 1;
    if (a > n_out) a = n_out;
    if (b > n_out) b = n_out;
    if (b < a) b = a;
    *lo = a;
    *hi = b;
}

#endif /* PYCNN_COMMON_H */
