# Included at the end of _kernels.pyx: a matrix product whose every element is summed in
# one fixed order, for the many small products of Winograd's convolution.
#
# Winograd's F(4x4, 3x3) multiplies, at each of 36 positions, the (K, J) transformed
# filters by the (J, T) transformed tiles of a chunk of images. BLAS rounds a column
# differently depending on the shape of the call it is in, so pycnn gave each image a
# call of its own (an image's result must not depend on the other images in its chunk),
# and calls of (32, 32) @ (32, 16) cost BLAS more in overhead than in arithmetic: 20-35
# GFLOP/s on one core where one call on the whole chunk ran at 50-75.
#
# Here c[i, j] = sum over p of a[i, p] * b[p, j], added in the order p = 0, 1, ..., K-1
# with one rounding per product and per addition (no fused multiply-add), whatever the
# shape of the call and the block the element falls in. So one call takes a whole chunk
# and each image still gets the same bits in any batch. The loop keeps a block of 4 rows
# by W columns of c in registers (W = 16 floats or 8 doubles: two 256-bit vectors a row
# under AVX2, four 128-bit ones under SSE2) and streams the rows of b through it; an
# AVX2 variant of the same code runs when the kernels' instruction set (pycnn_isa_active,
# PYCNN_SIMD) is AVX2 or up. The variants give the same bits: both round each product
# and each addition once (AVX2 without FMA), in the same order.

cdef extern from *:
    """
    #define PYCNN_DEFINE_MATMUL(T, SFX, W, ISA, ATTR)                                   \\
    ATTR static void pycnn_matmul_##SFX##_##ISA(                                      \\
        Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,                                     \\
        const T *__restrict a, const T *__restrict b, T *__restrict c)                \\
    {                                                                                 \\
        Py_ssize_t i, j, p, q, w;                                                     \\
        for (i = 0; i + 4 <= m; i += 4) {                                             \\
            const T *a0 = a + i * k, *a1 = a0 + k, *a2 = a1 + k, *a3 = a2 + k;        \\
            for (j = 0; j + W <= n; j += W) {                                         \\
                T s0[W] = {0}, s1[W] = {0}, s2[W] = {0}, s3[W] = {0};                 \\
                for (p = 0; p < k; p++) {                                             \\
                    const T *bp = b + p * n + j;                                      \\
                    const T x0 = a0[p], x1 = a1[p], x2 = a2[p], x3 = a3[p];           \\
                    for (q = 0; q < W; q++) {                                         \\
                        s0[q] = s0[q] + x0 * bp[q];                                   \\
                        s1[q] = s1[q] + x1 * bp[q];                                   \\
                        s2[q] = s2[q] + x2 * bp[q];                                   \\
                        s3[q] = s3[q] + x3 * bp[q];                                   \\
                    }                                                                 \\
                }                                                                     \\
                for (q = 0; q < W; q++) {                                             \\
                    c[i * n + j + q] = s0[q];                                         \\
                    c[(i + 1) * n + j + q] = s1[q];                                   \\
                    c[(i + 2) * n + j + q] = s2[q];                                   \\
                    c[(i + 3) * n + j + q] = s3[q];                                   \\
                }                                                                     \\
            }                                                                         \\
            for (; j < n; j++) {                                                      \\
                T t0 = 0, t1 = 0, t2 = 0, t3 = 0;                                     \\
                for (p = 0; p < k; p++) {                                             \\
                    const T y = b[p * n + j];                                         \\
                    t0 = t0 + a0[p] * y;                                              \\
                    t1 = t1 + a1[p] * y;                                              \\
                    t2 = t2 + a2[p] * y;                                              \\
                    t3 = t3 + a3[p] * y;                                              \\
                }                                                                     \\
                c[i * n + j] = t0;                                                    \\
                c[(i + 1) * n + j] = t1;                                              \\
                c[(i + 2) * n + j] = t2;                                              \\
                c[(i + 3) * n + j] = t3;                                              \\
            }                                                                         \\
        }                                                                             \\
        for (; i < m; i++) {                                                          \\
            const T *ai = a + i * k;                                                  \\
            for (j = 0; j < n; j += W) {                                              \\
                T s[W] = {0};                                                         \\
                w = n - j < W ? n - j : W;                                            \\
                for (p = 0; p < k; p++) {                                             \\
                    const T *bp = b + p * n + j;                                      \\
                    const T x = ai[p];                                                \\
                    for (q = 0; q < w; q++)                                           \\
                        s[q] = s[q] + x * bp[q];                                      \\
                }                                                                     \\
                for (q = 0; q < w; q++)                                               \\
                    c[i * n + j + q] = s[q];                                          \\
            }                                                                         \\
        }                                                                             \\
    }
    PYCNN_DEFINE_MATMUL(float, f32, 16, base, )
    PYCNN_DEFINE_MATMUL(double, f64, 8, base, )
    #if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    #include <immintrin.h>
    /* AVX2: blocks of 4 rows by 2 vectors of c in registers (16 floats or 8 doubles),
       then 4 rows by 1 vector, then by the lanes left (masked loads and stores), and
       the last rows in the baseline's loop; multiply, then add (no FMA: the baseline's
       roundings). VEC is the vector type, L its lanes, LOAD ... MSTORE its intrinsics,
       TAIL(left) the mask of the first `left` lanes. */
    #define PYCNN_DEFINE_MATMUL_AVX2(T, SFX, VEC, L, LOAD, STORE, SET1, MUL, ADD, ZERO, \
                                     MASK, TAIL, MLOAD, MSTORE)                       \
    __attribute__((target("avx2"))) static void pycnn_matmul_##SFX##_avx2(            \
        Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,                                     \
        const T *__restrict a, const T *__restrict b, T *__restrict c)                \
    {                                                                                 \
        Py_ssize_t i, j, p;                                                           \
        for (i = 0; i + 4 <= m; i += 4) {                                             \
            const T *a0 = a + i * k, *a1 = a0 + k, *a2 = a1 + k, *a3 = a2 + k;        \
            T *c0 = c + i * n, *c1 = c0 + n, *c2 = c1 + n, *c3 = c2 + n;              \
            for (j = 0; j + 2 * L <= n; j += 2 * L) {                                 \
                VEC s00 = ZERO(), s01 = ZERO(), s10 = ZERO(), s11 = ZERO();           \
                VEC s20 = ZERO(), s21 = ZERO(), s30 = ZERO(), s31 = ZERO();           \
                for (p = 0; p < k; p++) {                                             \
                    const T *bp = b + p * n + j;                                      \
                    const VEC b0 = LOAD(bp), b1 = LOAD(bp + L);                       \
                    VEC x = SET1(a0[p]);                                              \
                    s00 = ADD(s00, MUL(x, b0));                                       \
                    s01 = ADD(s01, MUL(x, b1));                                       \
                    x = SET1(a1[p]);                                                  \
                    s10 = ADD(s10, MUL(x, b0));                                       \
                    s11 = ADD(s11, MUL(x, b1));                                       \
                    x = SET1(a2[p]);                                                  \
                    s20 = ADD(s20, MUL(x, b0));                                       \
                    s21 = ADD(s21, MUL(x, b1));                                       \
                    x = SET1(a3[p]);                                                  \
                    s30 = ADD(s30, MUL(x, b0));                                       \
                    s31 = ADD(s31, MUL(x, b1));                                       \
                }                                                                     \
                STORE(c0 + j, s00); STORE(c0 + j + L, s01);                           \
                STORE(c1 + j, s10); STORE(c1 + j + L, s11);                           \
                STORE(c2 + j, s20); STORE(c2 + j + L, s21);                           \
                STORE(c3 + j, s30); STORE(c3 + j + L, s31);                           \
            }                                                                         \
            for (; j + L <= n; j += L) {                                              \
                VEC s0 = ZERO(), s1 = ZERO(), s2 = ZERO(), s3 = ZERO();               \
                for (p = 0; p < k; p++) {                                             \
                    const VEC y = LOAD(b + p * n + j);                                \
                    s0 = ADD(s0, MUL(SET1(a0[p]), y));                                \
                    s1 = ADD(s1, MUL(SET1(a1[p]), y));                                \
                    s2 = ADD(s2, MUL(SET1(a2[p]), y));                                \
                    s3 = ADD(s3, MUL(SET1(a3[p]), y));                                \
                }                                                                     \
                STORE(c0 + j, s0); STORE(c1 + j, s1);                                 \
                STORE(c2 + j, s2); STORE(c3 + j, s3);                                 \
            }                                                                         \
            if (j < n) {  /* the last columns, fewer than a vector: masked lanes */   \
                const MASK mk = TAIL(n - j);                                          \
                VEC s0 = ZERO(), s1 = ZERO(), s2 = ZERO(), s3 = ZERO();               \
                for (p = 0; p < k; p++) {                                             \
                    const VEC y = MLOAD(b + p * n + j, mk);                           \
                    s0 = ADD(s0, MUL(SET1(a0[p]), y));                                \
                    s1 = ADD(s1, MUL(SET1(a1[p]), y));                                \
                    s2 = ADD(s2, MUL(SET1(a2[p]), y));                                \
                    s3 = ADD(s3, MUL(SET1(a3[p]), y));                                \
                }                                                                     \
                MSTORE(c0 + j, mk, s0); MSTORE(c1 + j, mk, s1);                       \
                MSTORE(c2 + j, mk, s2); MSTORE(c3 + j, mk, s3);                       \
            }                                                                         \
        }                                                                             \
        if (i < m)  /* the last rows, fewer than 4 */                                 \
            pycnn_matmul_##SFX##_base(m - i, n, k, a + i * k, b, c + i * n);          \
    }
    /* a mask of the first `left` lanes (0 < left < lanes) */
    __attribute__((target("avx2"))) static inline __m256i pycnn_tail_mask_32(Py_ssize_t left)
    {
        return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)left),
                                  _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    }
    __attribute__((target("avx2"))) static inline __m256i pycnn_tail_mask_64(Py_ssize_t left)
    {
        return _mm256_cmpgt_epi64(_mm256_set1_epi64x((long long)left),
                                  _mm256_setr_epi64x(0, 1, 2, 3));
    }
    PYCNN_DEFINE_MATMUL_AVX2(float, f32, __m256, 8, _mm256_loadu_ps, _mm256_storeu_ps,
                             _mm256_set1_ps, _mm256_mul_ps, _mm256_add_ps,
                             _mm256_setzero_ps, __m256i, pycnn_tail_mask_32,
                             _mm256_maskload_ps, _mm256_maskstore_ps)
    PYCNN_DEFINE_MATMUL_AVX2(double, f64, __m256d, 4, _mm256_loadu_pd, _mm256_storeu_pd,
                             _mm256_set1_pd, _mm256_mul_pd, _mm256_add_pd,
                             _mm256_setzero_pd, __m256i, pycnn_tail_mask_64,
                             _mm256_maskload_pd, _mm256_maskstore_pd)
    #define PYCNN_MATMUL(SFX, AVX2, ARGS) \\
        ((AVX2) ? pycnn_matmul_##SFX##_avx2 ARGS : pycnn_matmul_##SFX##_base ARGS)
    #else
    #define PYCNN_MATMUL(SFX, AVX2, ARGS) pycnn_matmul_##SFX##_base ARGS
    #endif
    static void pycnn_matmul_f32(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const float *a,
                                 const float *b, float *c, int avx2)
    {
        PYCNN_MATMUL(f32, avx2, (m, n, k, a, b, c));
    }
    static void pycnn_matmul_f64(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const double *a,
                                 const double *b, double *c, int avx2)
    {
        PYCNN_MATMUL(f64, avx2, (m, n, k, a, b, c));
    }
    """
    void pycnn_matmul_f32(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const float *a,
                          const float *b, float *c, int avx2) noexcept nogil
    void pycnn_matmul_f64(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const double *a,
                          const double *b, double *c, int avx2) noexcept nogil


def matmul_fixed(const floating[:, :, ::1] a,   # IN  (B, M, K)
                 const floating[:, :, ::1] b,   # IN  (B, K, N)
                 floating[:, :, ::1] c):        # OUT (B, M, N)
    """c[s] = a[s] @ b[s] for every s, each element summed in the order of K with one
    rounding per product and per addition: the same bits for a column of b in any call,
    whatever else the call holds, and from every instruction-set variant."""
    cdef Py_ssize_t s, nb = a.shape[0], m = a.shape[1], k = a.shape[2], n = b.shape[2]
    cdef int avx2 = pycnn_isa_active() >= 1
    if b.shape[0] != nb or b.shape[1] != k:
        raise ValueError(f"matmul_fixed: `b` has shape {tuple(b.shape)[:3]}, expected "
                         f"{(nb, k, n)} for `a` of shape {tuple(a.shape)[:3]}")
    if (c.shape[0], c.shape[1], c.shape[2]) != (nb, m, n):
        raise ValueError(f"matmul_fixed: `c` has shape {tuple(c.shape)[:3]}, expected "
                         f"{(nb, m, n)}")
    if nb * m * n == 0:
        return
    if k == 0:  # empty sums
        c[...] = 0
        return
    with nogil:
        for s in range(nb):
            if floating is float:
                pycnn_matmul_f32(m, n, k, &a[s, 0, 0], &b[s, 0, 0], &c[s, 0, 0], avx2)
            else:
                pycnn_matmul_f64(m, n, k, &a[s, 0, 0], &b[s, 0, 0], &c[s, 0, 0], avx2)
