# Included in _kernels.pyx: max pooling with 2x2 windows at stride 2 (no padding, no
# dilation), the commonest pooling of CNNs, on contiguous planes.
#
# The general kernels read the taps of a window from a table (`max_pool_gather`) or
# vectorise along output rows of 8 (csrc/pool2d.c); here two input rows give a row of
# outputs directly: 16 floats of each row split into their even and odd columns (the
# four taps of 8 windows), folded in the taps' row-major order as the other kernels fold
# them (a larger tap wins, the first maximum wins ties, a NaN wins: the last NaN), so the
# values and indices are theirs. An AVX2 variant runs in float32 when the kernels'
# instruction set is AVX2 or up; both give the same results.
#
# Without indices (inference), the horizontal fold of every two neighbours comes first:
# with planes of even width, one flat pass over the input (no row ends inside a
# vector); with odd widths, row by row, a vector's lanes past a row's end spilling into
# the next row's place (written again after). Then each output row is the fold of two
# rows of that, its tail written by a vector ending at the row's end or spilling into
# the next row. Folding each row's pair first, then the two rows, takes the same tap as
# the row-major fold (the first maximum, the last NaN).

cdef extern from *:
    """
    #include <math.h>
    #include <stdint.h>
    #include <string.h>
    #define PYCNN_DEFINE_POOL2X2_ROW(T, SFX)                                             \\
    /* outputs [j0, ow) of one output row: r0, r1 the two input rows, base the flat  \\
       position of r0's first column in the plane, w the plane's width */            \\
    static void pycnn_pool2x2_row_##SFX(const T *r0, const T *r1, Py_ssize_t j0,      \\
                                        Py_ssize_t ow, Py_ssize_t base, Py_ssize_t w, \\
                                        T *out, int64_t *idx)                         \\
    {                                                                                 \\
        for (Py_ssize_t j = j0; j < ow; j++) {                                        \\
            const T t[4] = {r0[2 * j], r0[2 * j + 1], r1[2 * j], r1[2 * j + 1]};      \\
            const Py_ssize_t off[4] = {0, 1, w, w + 1};                               \\
            T m = t[0];                                                               \\
            Py_ssize_t k = 0;                                                         \\
            for (int q = 1; q < 4; q++) {                                             \\
                if (t[q] > m || isnan(t[q])) {                                        \\
                    m = t[q];                                                         \\
                    k = q;                                                            \\
                }                                                                     \\
            }                                                                         \\
            out[j] = m;                                                               \\
            if (idx)                                                                  \\
                idx[j] = base + 2 * j + off[k];                                       \\
        }                                                                             \\
    }
    PYCNN_DEFINE_POOL2X2_ROW(float, f32)
    PYCNN_DEFINE_POOL2X2_ROW(double, f64)

    #if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    #include <immintrin.h>
    #define PYCNN_POOL2X2_AVX2 1
    /* the even and odd floats of 16 at p, in order */
    __attribute__((target("avx2"))) static inline void pycnn_split16(
        const float *p, __m256 *even, __m256 *odd)
    {
        const __m256 lo = _mm256_loadu_ps(p), hi = _mm256_loadu_ps(p + 8);
        /* per 128-bit half: (0 2 8 10 | 4 6 12 14), then the 64-bit pairs reordered */
        *even = _mm256_castpd_ps(_mm256_permute4x64_pd(
            _mm256_castps_pd(_mm256_shuffle_ps(lo, hi, 0x88)), 0xD8));
        *odd = _mm256_castpd_ps(_mm256_permute4x64_pd(
            _mm256_castps_pd(_mm256_shuffle_ps(lo, hi, 0xDD)), 0xD8));
    }

    /* b where it is larger than a or NaN, else a: one step of the taps' fold */
    __attribute__((target("avx2"))) static inline __m256 pycnn_fold8(__m256 a, __m256 b)
    {
        const __m256 take = _mm256_or_ps(_mm256_cmp_ps(b, a, _CMP_GT_OQ),
                                         _mm256_cmp_ps(b, b, _CMP_UNORD_Q));
        return _mm256_blendv_ps(a, b, take);
    }
    static inline float pycnn_fold1(float a, float b)
    {
        return b > a || isnan(b) ? b : a;
    }

    /* floats of horizontal folds a block holds: both rows of each of its output rows */
    #define PYCNN_POOL_BLOCK 2048

    /* 8 windows from 16 floats of two rows: each row's pairs, then the two rows */
    __attribute__((target("avx2"))) static inline __m256 pycnn_pool8(const float *r0,
                                                                    const float *r1)
    {
        __m256 e0, o0, e1, o1;
        pycnn_split16(r0, &e0, &o0);
        pycnn_split16(r1, &e1, &o1);
        return pycnn_fold8(pycnn_fold8(e0, o0), pycnn_fold8(e1, o1));
    }

    /* the (h / 2, w / 2) outputs of `planes` contiguous (h, w) planes at x, into out;
       no indices; w / 2 <= PYCNN_POOL_BLOCK / 2 */
    __attribute__((target("avx2"))) static void pycnn_pool2x2_flat_f32_avx2(
        const float *x, Py_ssize_t planes, Py_ssize_t h, Py_ssize_t w, float *out)
    {
        const Py_ssize_t oh = h / 2, ow = w / 2, rows = planes * oh;
        const float *end = x + planes * h * w;  /* nothing at or past it is read */
        if (w != 2 * ow || h != 2 * oh) {  /* odd sizes: row by row */
            for (Py_ssize_t k = 0, i = 0, row0 = 0; k < rows; k++) {
                const float *r0 = x + (row0 + 2 * i) * w, *r1 = r0 + w;
                float *o = out + k * ow;
                if (++i == oh) {  /* the next plane: (k / oh, k % oh) without dividing */
                    i = 0;
                    row0 += h;
                }
                Py_ssize_t j = 0;
                while (j < ow) {
                    Py_ssize_t at = j;
                    if (j + 8 > ow) {  /* the row's tail */
                        if (ow >= 8)
                            at = ow - 8;  /* the last 8, some written twice */
                        else if (k * ow + 8 > rows * ow)
                            break;  /* nothing past the call's last output is written */
                    }               /* else the lanes past ow spill into the next rows */
                    if (r1 + 2 * at + 16 > end)
                        break;
                    _mm256_storeu_ps(o + at, pycnn_pool8(r0 + 2 * at, r1 + 2 * at));
                    j = at + 8;
                }
                for (; j < ow; j++)
                    o[j] = pycnn_fold1(pycnn_fold1(r0[2 * j], r0[2 * j + 1]),
                                       pycnn_fold1(r1[2 * j], r1[2 * j + 1]));
            }
            return;
        }
        {
            /* 8 floats past a block for the spilling tail's reads, never stored */
            __attribute__((aligned(32))) float fold[PYCNN_POOL_BLOCK + 8];
            const Py_ssize_t per = PYCNN_POOL_BLOCK / (2 * ow);  /* output rows a block */
            for (Py_ssize_t k0 = 0; k0 < rows; k0 += per) {
                const Py_ssize_t nr = rows - k0 < per ? rows - k0 : per, nf = 2 * nr * ow;
                const float *src = x + 2 * k0 * w;
                Py_ssize_t m = 0;
                memset(fold + nf, 0, 8 * sizeof(float));
                for (; m + 8 <= nf; m += 8) {  /* the horizontal pairs, flat */
                    __m256 even, odd;
                    pycnn_split16(src + 2 * m, &even, &odd);
                    _mm256_store_ps(fold + m, pycnn_fold8(even, odd));
                }
                for (; m < nf; m++)
                    fold[m] = pycnn_fold1(src[2 * m], src[2 * m + 1]);
                for (Py_ssize_t k = 0; k < nr; k++) {  /* then the two rows of each window */
                    const float *a = fold + 2 * k * ow, *b = a + ow;
                    float *o = out + (k0 + k) * ow;
                    Py_ssize_t j = 0;
                    for (; j + 8 <= ow; j += 8)
                        _mm256_storeu_ps(o + j, pycnn_fold8(_mm256_loadu_ps(a + j),
                                                            _mm256_loadu_ps(b + j)));
                    if (j == ow)
                        continue;
                    if (ow > 8) {  /* the last 8 of the row, some written twice */
                        j = ow - 8;
                        _mm256_storeu_ps(o + j, pycnn_fold8(_mm256_loadu_ps(a + j),
                                                            _mm256_loadu_ps(b + j)));
                    } else if ((k0 + k) * ow + 8 <= rows * ow) {  /* spills into the
                                                                   next rows, after */
                        _mm256_storeu_ps(o, pycnn_fold8(_mm256_loadu_ps(a),
                                                        _mm256_loadu_ps(b)));
                    } else {  /* the last row of the call: nothing past it is written */
                        for (; j < ow; j++)
                            o[j] = pycnn_fold1(a[j], b[j]);
                    }
                }
            }
        }
    }

    /* one output row, 8 windows a vector; the last windows of a row (fewer than 8) in
       masked lanes, which load nothing past the row */
    __attribute__((target("avx2"))) static void pycnn_pool2x2_row_f32_avx2(
        const float *r0, const float *r1, Py_ssize_t ow, Py_ssize_t base, Py_ssize_t w,
        float *out, int64_t *idx)
    {
        const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        const __m256i lane2 = _mm256_add_epi32(lane, lane);
        const __m256i o1 = _mm256_set1_epi32(1), ow_ = _mm256_set1_epi32((int)w);
        const __m256i ow1 = _mm256_set1_epi32((int)w + 1);
        for (Py_ssize_t j = 0; j < ow; j += 8) {
            const Py_ssize_t left = ow - j < 8 ? ow - j : 8;
            __m256 m, t1, t2, t3, take;
            __m256i off = _mm256_setzero_si256(), keep = _mm256_setzero_si256();
            if (left == 8) {
                pycnn_split16(r0 + 2 * j, &m, &t1);
                pycnn_split16(r1 + 2 * j, &t2, &t3);
            } else {  /* 2 * left < 16 floats of each row */
                const __m256i lo = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(2 * left)), lane);
                const __m256i hi = _mm256_cmpgt_epi32(
                    _mm256_set1_epi32((int)(2 * left - 8)), lane);
                float a[16], b[16];
                _mm256_storeu_ps(a, _mm256_maskload_ps(r0 + 2 * j, lo));
                _mm256_storeu_ps(a + 8, _mm256_maskload_ps(r0 + 2 * j + 8, hi));
                _mm256_storeu_ps(b, _mm256_maskload_ps(r1 + 2 * j, lo));
                _mm256_storeu_ps(b + 8, _mm256_maskload_ps(r1 + 2 * j + 8, hi));
                pycnn_split16(a, &m, &t1);
                pycnn_split16(b, &t2, &t3);
                keep = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)left), lane);
            }
            #define PYCNN_FOLD(T, O)                                                  \
                take = _mm256_or_ps(_mm256_cmp_ps(T, m, _CMP_GT_OQ),                  \
                                    _mm256_cmp_ps(T, T, _CMP_UNORD_Q));               \
                m = _mm256_blendv_ps(m, T, take);                                     \
                off = _mm256_castps_si256(_mm256_blendv_ps(                           \
                    _mm256_castsi256_ps(off), _mm256_castsi256_ps(O), take));
            PYCNN_FOLD(t1, o1)
            PYCNN_FOLD(t2, ow_)
            PYCNN_FOLD(t3, ow1)
            #undef PYCNN_FOLD
            {
                /* base + 2 j + 2 lane + off: int32 (planes under 2^31), widened */
                const __m256i pos = _mm256_add_epi32(
                    _mm256_add_epi32(_mm256_set1_epi32((int)(base + 2 * j)), lane2), off);
                const __m256i p0 = _mm256_cvtepi32_epi64(_mm256_castsi256_si128(pos));
                const __m256i p1 = _mm256_cvtepi32_epi64(_mm256_extracti128_si256(pos, 1));
                if (left == 8) {
                    _mm256_storeu_ps(out + j, m);
                    if (idx) {
                        _mm256_storeu_si256((__m256i *)(idx + j), p0);
                        _mm256_storeu_si256((__m256i *)(idx + j + 4), p1);
                    }
                } else {
                    _mm256_maskstore_ps(out + j, keep, m);
                    if (idx) {
                        const __m256i k0 = _mm256_cvtepi32_epi64(_mm256_castsi256_si128(keep));
                        const __m256i k1 = _mm256_cvtepi32_epi64(
                            _mm256_extracti128_si256(keep, 1));
                        _mm256_maskstore_epi64((long long *)(idx + j), k0, p0);
                        _mm256_maskstore_epi64((long long *)(idx + j + 4), k1, p1);
                    }
                }
            }
        }
    }
    #else
    #define PYCNN_POOL2X2_AVX2 0
    #define PYCNN_POOL_BLOCK 2048
    static void pycnn_pool2x2_flat_f32_avx2(const float *x, Py_ssize_t planes,
                                            Py_ssize_t h, Py_ssize_t w, float *out)
    {
        (void)x; (void)planes; (void)h; (void)w; (void)out;
    }
    static void pycnn_pool2x2_row_f32_avx2(const float *r0, const float *r1, Py_ssize_t ow,
                                           Py_ssize_t base, Py_ssize_t w, float *out,
                                           int64_t *idx)
    {
        pycnn_pool2x2_row_f32(r0, r1, 0, ow, base, w, out, idx);
    }
    #endif
    """
    int PYCNN_POOL2X2_AVX2
    int PYCNN_POOL_BLOCK
    void pycnn_pool2x2_flat_f32_avx2(const float *x, Py_ssize_t planes, Py_ssize_t h,
                                     Py_ssize_t w, float *out) noexcept nogil
    void pycnn_pool2x2_row_f32(const float *r0, const float *r1, Py_ssize_t j0,
                               Py_ssize_t ow, Py_ssize_t base, Py_ssize_t w, float *out,
                               int64_t *idx) noexcept nogil
    void pycnn_pool2x2_row_f64(const double *r0, const double *r1, Py_ssize_t j0,
                               Py_ssize_t ow, Py_ssize_t base, Py_ssize_t w, double *out,
                               int64_t *idx) noexcept nogil
    void pycnn_pool2x2_row_f32_avx2(const float *r0, const float *r1, Py_ssize_t ow,
                                    Py_ssize_t base, Py_ssize_t w, float *out,
                                    int64_t *idx) noexcept nogil


def max_pool_2x2(const floating[:, ::1] x,       # IN  (P, H * W): the planes, flattened
                 Py_ssize_t h, Py_ssize_t w,
                 floating[:, ::1] out,           # OUT (P, (H // 2) * (W // 2))
                 int64_t[:, ::1] indices,        # OUT like out, or None
                 int n_threads=1):
    """Max pooling of (H, W) planes with 2x2 windows at stride 2 (the last row and column
    of odd sizes left out, as without ceil_mode); `indices` gets each winner's flat
    position in its plane. The results of `max_pool_gather` with those windows. Planes
    spread over `n_threads` OpenMP threads (pycnn calls it with one for the indices, on
    its own threads' ranges of planes)."""
    cdef Py_ssize_t p, i, n = x.shape[0], oh = h // 2, ow = w // 2, lo, hi
    cdef int part, parts = max(1, min(n_threads, n))
    cdef bint with_indices = indices is not None
    cdef bint avx2 = floating is float and PYCNN_POOL2X2_AVX2 and pycnn_isa_active() >= 1
    cdef const floating *plane
    cdef floating *o
    cdef int64_t *ix = NULL
    if h < 0 or w < 0 or x.shape[1] != h * w:
        raise ValueError(f"max_pool_2x2: `x` has {x.shape[1]} values a plane, expected "
                         f"h * w = {h} * {w}")
    if out.shape[0] != n or out.shape[1] != oh * ow:
        raise ValueError(f"max_pool_2x2: `out` has shape {tuple(out.shape)[:2]}, "
                         f"expected {(n, oh * ow)}")
    if with_indices and (indices.shape[0], indices.shape[1]) != (n, oh * ow):
        raise ValueError(f"max_pool_2x2: `indices` has shape "
                         f"{tuple(indices.shape)[:2]}, expected {(n, oh * ow)} like `out`")
    if n == 0 or oh == 0 or ow == 0:
        return
    if h * w >= 2**31:
        raise ValueError(f"max_pool_2x2: planes of {h} x {w} are too large")
    if floating is float:
        if avx2 and not with_indices and 2 * ow <= PYCNN_POOL_BLOCK:
            for part in prange(parts, nogil=True, schedule="static", num_threads=parts):
                lo = n * part // parts
                hi = n * (part + 1) // parts
                pycnn_pool2x2_flat_f32_avx2(&x[lo, 0], hi - lo, h, w, &out[lo, 0])
            return
    for p in prange(n, nogil=True, schedule="static", num_threads=parts):
        plane = &x[p, 0]
        for i in range(oh):
            o = &out[p, i * ow]
            if with_indices:
                ix = &indices[p, i * ow]
            else:
                ix = NULL
            if floating is float:
                if avx2:
                    pycnn_pool2x2_row_f32_avx2(plane + 2 * i * w, plane + (2 * i + 1) * w,
                                               ow, 2 * i * w, w, o, ix)
                else:
                    pycnn_pool2x2_row_f32(plane + 2 * i * w, plane + (2 * i + 1) * w, 0,
                                          ow, 2 * i * w, w, o, ix)
            else:
                pycnn_pool2x2_row_f64(plane + 2 * i * w, plane + (2 * i + 1) * w, 0, ow,
                                      2 * i * w, w, o, ix)
