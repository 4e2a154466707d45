# Included at the end of _kernels.pyx: im2col and max pooling through a table of flat
# positions, for small planes.
#
# On planes of a few pixels a side (the 4x4 and 8x8 layers at the end of a small CNN),
# the C kernels pay per output row and per plane more than they pay per pixel: an
# im2col row of 4 pixels costs about as much as one of 64. A table built once per
# layer shape (pycnn/_conv.py, pycnn/functional.py) lists, for every element of one
# image's output, the flat position it reads in that image; these loops are then one
# load and one store per element, with nothing to decide per row or per plane.
#
# - gather_columns:   cols[b, t] = x[b, table[t]]   (im2col)
# - gather_columns_t: the same columns, the images' side by side (the weight gradient)
# - max_pool_gather:  out[b, o] = the max of x[b, table[:, o]], and its position
#
# For the columns, position S (the image's size) stands for the zero padding: each image
# is copied into a scratch row of S + 1 values whose last one is 0. The table runs in
# im2col's order (channel, kernel row, kernel column, output row, output column), so
# the columns are exactly im2col's. (col2im stays on the C kernel: a scatter-add through
# the table measured 0.4-1.2x its speed.) The table is checked on every call (one pass over it,
# against a pass over the whole batch for the work), since it decides every address.

from libc.stdint cimport int32_t, uint32_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy

cdef enum:
    _POOL_WINDOWS = 512  # windows a group of planes (max_pool_gather)


cdef int _check_table(str name, const int32_t[::1] table, Py_ssize_t limit) except -1:
    """Raise unless every entry of `table` lies in [0, limit]."""
    cdef Py_ssize_t i
    cdef uint32_t top = 0, v
    if limit >= 2147483647:
        raise ValueError(f"{name}: images of {limit} values are too large for a table")
    with nogil:
        for i in range(table.shape[0]):
            v = <uint32_t>table[i]  # a negative entry becomes a huge one
            top = v if v > top else top
    if top > <uint32_t>limit:
        raise ValueError(f"{name}: a table entry lies outside [0, {limit}]")
    return 0


def gather_columns(const floating[:, ::1] x,      # IN  (N, S): the images, flattened
                   const int32_t[::1] table,      # IN  (T,): positions in [0, S]
                   floating[:, ::1] cols):        # OUT (N, T)
    """cols[b, t] = x[b, table[t]], or 0 where table[t] == S (the padding)."""
    cdef Py_ssize_t b, t, n = x.shape[0], s = x.shape[1], nt = table.shape[0]
    cdef floating *buf
    cdef floating *dst
    cdef const int32_t *tab
    if cols.shape[0] != n or cols.shape[1] != nt:
        raise ValueError(f"gather_columns: `cols` has shape {tuple(cols.shape)[:2]}, "
                         f"expected {(n, nt)}")
    _check_table("gather_columns", table, s)
    if n == 0 or nt == 0:
        return
    buf = <floating *>malloc((s + 1) * sizeof(floating))
    if buf == NULL:
        raise MemoryError()
    with nogil:
        tab = &table[0]
        buf[s] = 0
        for b in range(n):
            if s:
                memcpy(buf, &x[b, 0], s * sizeof(floating))
            dst = &cols[b, 0]
            for t in range(nt):
                dst[t] = buf[tab[t]]
    free(buf)


cdef extern from *:
    """
    /* m[i] = max(m[i], v[i]) keeping the first maximum, a NaN winning; best[i] follows
       with pos[i]. GCC vectorises these selects only with AVX2's blends (SSE2 code
       branches, and random data mispredicts them), so there is an AVX2 variant, run
       when the kernels' instruction set (pycnn_isa_active, PYCNN_SIMD) is AVX2 or up,
       as csrc/ does. */
    #define PYCNN_DEFINE_FOLD_MAX(T, SFX, ISA, ATTR)                                   \
    ATTR static void pycnn_fold_max_##SFX##_##ISA(T *__restrict m,                    \
                                                  int32_t *__restrict best,           \
                                                  const T *__restrict v,              \
                                                  const int32_t *__restrict pos,      \
                                                  Py_ssize_t n)                       \
    {                                                                                 \
        for (Py_ssize_t i = 0; i < n; i++) {                                          \
            const T a = v[i];                                                         \
            const int take = a > m[i] || isnan(a);                                    \
            m[i] = take ? a : m[i];                                                   \
            best[i] = take ? pos[i] : best[i];                                        \
        }                                                                             \
    }
    PYCNN_DEFINE_FOLD_MAX(float, f32, base, )
    PYCNN_DEFINE_FOLD_MAX(double, f64, base, )
    #if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
    PYCNN_DEFINE_FOLD_MAX(float, f32, avx2, __attribute__((target("avx2"))))
    PYCNN_DEFINE_FOLD_MAX(double, f64, avx2, __attribute__((target("avx2"))))
    #define PYCNN_FOLD_MAX(SFX, AVX2, ARGS) \
        ((AVX2) ? pycnn_fold_max_##SFX##_avx2 ARGS : pycnn_fold_max_##SFX##_base ARGS)
    #else
    #define PYCNN_FOLD_MAX(SFX, AVX2, ARGS) pycnn_fold_max_##SFX##_base ARGS
    #endif
    static void pycnn_fold_max_f32(float *m, int32_t *best, const float *v,
                                   const int32_t *pos, Py_ssize_t n, int avx2)
    {
        PYCNN_FOLD_MAX(f32, avx2, (m, best, v, pos, n));
    }
    static void pycnn_fold_max_f64(double *m, int32_t *best, const double *v,
                                   const int32_t *pos, Py_ssize_t n, int avx2)
    {
        PYCNN_FOLD_MAX(f64, avx2, (m, best, v, pos, n));
    }
    """
    void pycnn_fold_max_f32(float *m, int32_t *best, const float *v, const int32_t *pos,
                            Py_ssize_t n, int avx2) noexcept nogil
    void pycnn_fold_max_f64(double *m, int32_t *best, const double *v, const int32_t *pos,
                            Py_ssize_t n, int avx2) noexcept nogil


cdef void _free_all(void *a, void *b, void *c, void *d) noexcept nogil:
    free(a)
    free(b)
    free(c)
    free(d)


def max_pool_gather(const floating[:, ::1] x,      # IN  (P, S): the planes, flattened
                    const int32_t[:, ::1] table,   # IN  (K, O): tap k of window o
                    floating[:, ::1] out,          # OUT (P, O)
                    int64_t[:, ::1] indices):      # OUT (P, O), or None
    """Max pooling of windows whose K taps all lie inside the plane, taps in row-major
    window order: the first maximum wins ties and a NaN tap wins (the last NaN), as in
    the C kernels; `indices` gets the winning tap's flat position in its plane.

    Planes are taken in groups of about _POOL_WINDOWS windows, tap by tap: a pass
    gathers one tap of every window of the group into a contiguous row, and a second
    pass folds it into the running maxima with selects, which the compiler vectorises
    (a window at a time, the selects became branches that random data mispredicts)."""
    cdef Py_ssize_t p0, q, i, j, r, nq
    cdef Py_ssize_t n = x.shape[0], s = x.shape[1], k = table.shape[0], no = table.shape[1]
    cdef Py_ssize_t g, cols
    cdef bint with_indices = indices is not None
    cdef int avx2 = pycnn_isa_active() >= 1
    cdef int32_t *loc = NULL
    cdef int32_t *bi = NULL
    cdef Py_ssize_t *base = NULL
    cdef floating *tmp = NULL
    cdef const int32_t *l
    cdef const floating *px
    cdef floating *po
    cdef int64_t *pi
    if out.shape[0] != n or out.shape[1] != no:
        raise ValueError(f"max_pool_gather: `out` has shape {tuple(out.shape)[:2]}, "
                         f"expected {(n, no)}")
    if with_indices and (indices.shape[0], indices.shape[1]) != (n, no):
        raise ValueError(f"max_pool_gather: `indices` has shape "
                         f"{tuple(indices.shape)[:2]}, expected {(n, no)} like `out`")
    if n == 0 or no == 0:
        return
    if k == 0 or s == 0:
        raise ValueError("max_pool_gather: every window needs a tap inside its plane")
    for i in range(k):
        _check_table("max_pool_gather", table[i], s - 1)
    g = max(1, min(n, _POOL_WINDOWS // no))
    cols = g * no
    loc = <int32_t *>malloc(k * cols * sizeof(int32_t))
    bi = <int32_t *>malloc(cols * sizeof(int32_t))
    base = <Py_ssize_t *>malloc(cols * sizeof(Py_ssize_t))
    tmp = <floating *>malloc(cols * sizeof(floating))
    if loc == NULL or bi == NULL or base == NULL or tmp == NULL:
        _free_all(loc, bi, base, tmp)
        raise MemoryError()
    with nogil:
        for i in range(k):  # the table repeated for each plane of a group
            for j in range(g):
                memcpy(loc + i * cols + j * no, &table[i, 0], no * sizeof(int32_t))
        for q in range(cols):
            base[q] = (q // no) * s
        p0 = 0
        while p0 < n:
            r = min(g, n - p0)
            nq = r * no
            px = &x[p0, 0]
            po = &out[p0, 0]  # the r planes' outputs, contiguous
            l = loc
            for q in range(nq):
                po[q] = px[base[q] + l[q]]
                bi[q] = l[q]
            for i in range(1, k):
                l = loc + i * cols
                for q in range(nq):
                    tmp[q] = px[base[q] + l[q]]
                if floating is float:
                    pycnn_fold_max_f32(po, bi, tmp, l, nq, avx2)
                else:
                    pycnn_fold_max_f64(po, bi, tmp, l, nq, avx2)
            if with_indices:
                pi = &indices[p0, 0]
                for q in range(nq):
                    pi[q] = bi[q]
            p0 += r
    _free_all(loc, bi, base, tmp)


def gather_columns_t(const floating[:, ::1] x,    # IN  (N, S): the images, flattened
                     const int32_t[::1] table,    # IN  (R*L,): positions in [0, S]
                     floating[:, ::1] cols_t):    # OUT (R, N*L)
    """The column matrices of N images side by side: cols_t[r, b*L + l] =
    x[b, table[r*L + l]] (0 where it is S), the layout that makes the weight gradient
    of the whole batch one GEMM, (F, N*L) @ (N*L, R), instead of N thin ones."""
    cdef Py_ssize_t b, r, l, n = x.shape[0], s = x.shape[1], nt = table.shape[0]
    cdef Py_ssize_t rows = cols_t.shape[0], width, nl
    cdef floating *buf
    cdef floating *dst
    cdef const int32_t *tab
    if rows == 0 or nt % rows:
        raise ValueError(f"gather_columns_t: `table` has {nt} entries, not a multiple of "
                         f"{rows} rows")
    width = nt // rows
    if cols_t.shape[1] != n * width:
        raise ValueError(f"gather_columns_t: `cols_t` has shape {tuple(cols_t.shape)[:2]}, "
                         f"expected {(rows, n * width)}")
    _check_table("gather_columns_t", table, s)
    if n == 0 or width == 0:
        return
    buf = <floating *>malloc((s + 1) * sizeof(floating))
    if buf == NULL:
        raise MemoryError()
    nl = n * width
    with nogil:
        buf[s] = 0
        for b in range(n):
            if s:
                memcpy(buf, &x[b, 0], s * sizeof(floating))
            for r in range(rows):
                tab = &table[r * width]
                dst = &cols_t[r, 0] + b * width
                for l in range(width):
                    dst[l] = buf[tab[l]]
    free(buf)
