# Included in _kernels.pyx: AVX2 twins of Winograd's input, output and output-gradient
# transforms (_winograd.pxi), float32, chosen at run time like the kernels' other
# variants (pycnn_isa_active, PYCNN_SIMD).
#
# The baseline loops work on one 36-long stream per position, over all the tiles of a
# chunk, after gathering every tile's 36 values into those streams: the gather, one
# element at a time, cost most of the input transform. Here each vector holds one value
# of 8 tiles: a row of each tile is loaded whole (4 + 2 of the 8 columns read), and an
# in-register transpose turns 8 rows into the 6 columns across the 8 tiles. The sums are
# the baseline's, term for term and in its order, with no fused multiply-add (the target
# is "avx2", not "fma"), so both variants give the same bits (tested).

cdef extern from *:
    """
    #if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    #include <immintrin.h>
    #include <string.h>
    #define PYCNN_WINO_AVX2 1
    #define PYCNN_AVX2 __attribute__((target("avx2")))

    /* o[k] = (B^T d)[k], k < 6: _bt's expressions in _winograd.pxi, in its order */
    PYCNN_AVX2 static inline void pycnn_bt8(const __m256 *d, __m256 *o)
    {
        const __m256 two = _mm256_set1_ps(2.0f), four = _mm256_set1_ps(4.0f);
        const __m256 five = _mm256_set1_ps(5.0f);
        const __m256 a = _mm256_sub_ps(d[4], _mm256_mul_ps(four, d[2]));
        const __m256 b = _mm256_sub_ps(d[3], _mm256_mul_ps(four, d[1]));
        const __m256 c = _mm256_sub_ps(d[4], d[2]);
        const __m256 e = _mm256_mul_ps(two, _mm256_sub_ps(d[3], d[1]));
        o[0] = _mm256_add_ps(_mm256_sub_ps(_mm256_mul_ps(four, d[0]),
                                           _mm256_mul_ps(five, d[2])), d[4]);
        o[1] = _mm256_add_ps(a, b);
        o[2] = _mm256_sub_ps(a, b);
        o[3] = _mm256_add_ps(c, e);
        o[4] = _mm256_sub_ps(c, e);
        o[5] = _mm256_add_ps(_mm256_sub_ps(_mm256_mul_ps(four, d[1]),
                                           _mm256_mul_ps(five, d[3])), d[5]);
    }

    /* o[r] = (A^T m)[r], r < 4: _at's expressions, in its order */
    PYCNN_AVX2 static inline void pycnn_at8(const __m256 *m, __m256 *o)
    {
        const __m256 two = _mm256_set1_ps(2.0f), four = _mm256_set1_ps(4.0f);
        const __m256 eight = _mm256_set1_ps(8.0f);
        const __m256 s12 = _mm256_add_ps(m[1], m[2]), d12 = _mm256_sub_ps(m[1], m[2]);
        const __m256 s34 = _mm256_add_ps(m[3], m[4]), d34 = _mm256_sub_ps(m[3], m[4]);
        o[0] = _mm256_add_ps(_mm256_add_ps(m[0], s12), s34);
        o[1] = _mm256_add_ps(d12, _mm256_mul_ps(two, d34));
        o[2] = _mm256_add_ps(s12, _mm256_mul_ps(four, s34));
        o[3] = _mm256_add_ps(_mm256_add_ps(d12, _mm256_mul_ps(eight, d34)), m[5]);
    }

    /* o[k] = (A y)[k], k < 6: _a's expressions, in its order */
    PYCNN_AVX2 static inline void pycnn_a8(const __m256 *y, __m256 *o)
    {
        const __m256 two = _mm256_set1_ps(2.0f), four = _mm256_set1_ps(4.0f);
        const __m256 eight = _mm256_set1_ps(8.0f);
        const __m256 s02 = _mm256_add_ps(y[0], y[2]), s13 = _mm256_add_ps(y[1], y[3]);
        const __m256 e02 = _mm256_add_ps(y[0], _mm256_mul_ps(four, y[2]));
        const __m256 e13 = _mm256_add_ps(_mm256_mul_ps(two, y[1]), _mm256_mul_ps(eight, y[3]));
        o[0] = y[0];
        o[1] = _mm256_add_ps(s02, s13);
        o[2] = _mm256_sub_ps(s02, s13);
        o[3] = _mm256_add_ps(e02, e13);
        o[4] = _mm256_sub_ps(e02, e13);
        o[5] = y[3];
    }

    /* the first `lanes` lanes (0 < lanes <= 8) */
    PYCNN_AVX2 static inline __m256i pycnn_lanes8(Py_ssize_t lanes)
    {
        return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)lanes),
                                  _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    }

    /* 4 floats at lo in the low half, 4 at hi in the high half */
    PYCNN_AVX2 static inline __m256 pycnn_load2x4(const float *lo, const float *hi)
    {
        return _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_loadu_ps(lo)),
                                    _mm_loadu_ps(hi), 1);
    }

    /* Tiles go through both transforms 64 at a time (8 vectors of 8), their results
       into a block of 36 x 64 floats, then each position's row of the block to its
       place: the 36 positions of one tile are pstride floats apart, often a multiple of
       4 KiB (16 channels of 704 tiles), and 36 streams in one cache set, written a
       vector at a time, kept evicting each other from the L1 cache (2x slower). */
    #define PYCNN_WINO_BLOCK 64

    /* V[p * pstride + t] = (B^T d_t B)[p], p < 36, for the nt tiles d_t whose 6x6
       blocks start at padded + corner[t] (rows wp apart). Each row is read as 8 floats:
       the caller leaves 2 readable floats past the last block. */
    PYCNN_AVX2 static void pycnn_wino_input_f32_avx2(
        const float *padded, Py_ssize_t wp, const Py_ssize_t *corner, Py_ssize_t nt,
        float *v, Py_ssize_t pstride)
    {
        Py_ssize_t b0, t0, j, r, l, a, p, lanes, count;
        const float *p8[8];
        __m256 d[6], h[6][6], col[6], o[6];
        __attribute__((aligned(32))) float block[36][PYCNN_WINO_BLOCK];
        for (b0 = 0; b0 < nt; b0 += PYCNN_WINO_BLOCK) {
            count = nt - b0 < PYCNN_WINO_BLOCK ? nt - b0 : PYCNN_WINO_BLOCK;
            for (t0 = 0; t0 < count; t0 += 8) {
                lanes = count - t0 < 8 ? count - t0 : 8;
                for (j = 0; j < 8; j++)  /* lanes past the end repeat the last tile */
                    p8[j] = padded + corner[b0 + t0 + (j < lanes ? j : lanes - 1)];
                for (r = 0; r < 6; r++) {
                    /* rows of tiles (0, 4), (1, 5), (2, 6), (3, 7): columns 0-3, 4-7 */
                    const Py_ssize_t s = r * wp;
                    const __m256 a0 = pycnn_load2x4(p8[0] + s, p8[4] + s);
                    const __m256 a1 = pycnn_load2x4(p8[1] + s, p8[5] + s);
                    const __m256 a2 = pycnn_load2x4(p8[2] + s, p8[6] + s);
                    const __m256 a3 = pycnn_load2x4(p8[3] + s, p8[7] + s);
                    const __m256 c0 = pycnn_load2x4(p8[0] + s + 4, p8[4] + s + 4);
                    const __m256 c1 = pycnn_load2x4(p8[1] + s + 4, p8[5] + s + 4);
                    const __m256 c2 = pycnn_load2x4(p8[2] + s + 4, p8[6] + s + 4);
                    const __m256 c3 = pycnn_load2x4(p8[3] + s + 4, p8[7] + s + 4);
                    /* 4x4 transposes within each half: d[c] = column c of tiles 0..7 */
                    const __m256 u0 = _mm256_unpacklo_ps(a0, a1);
                    const __m256 u1 = _mm256_unpackhi_ps(a0, a1);
                    const __m256 u2 = _mm256_unpacklo_ps(a2, a3);
                    const __m256 u3 = _mm256_unpackhi_ps(a2, a3);
                    const __m256 w0 = _mm256_unpacklo_ps(c0, c1);
                    const __m256 w2 = _mm256_unpacklo_ps(c2, c3);
                    d[0] = _mm256_shuffle_ps(u0, u2, 0x44);
                    d[1] = _mm256_shuffle_ps(u0, u2, 0xEE);
                    d[2] = _mm256_shuffle_ps(u1, u3, 0x44);
                    d[3] = _mm256_shuffle_ps(u1, u3, 0xEE);
                    d[4] = _mm256_shuffle_ps(w0, w2, 0x44);
                    d[5] = _mm256_shuffle_ps(w0, w2, 0xEE);
                    pycnn_bt8(d, h[r]);  /* B on the right: row r's columns -> l */
                }
                for (l = 0; l < 6; l++) {  /* then B^T on the left: column l's rows -> a */
                    for (r = 0; r < 6; r++)
                        col[r] = h[r][l];
                    pycnn_bt8(col, o);
                    for (a = 0; a < 6; a++)
                        _mm256_store_ps(&block[6 * a + l][t0], o[a]);
                }
            }
            for (p = 0; p < 36; p++)
                memcpy(v + p * pstride + b0, block[p], (size_t)count * sizeof(float));
        }
    }

    /* W[p * pstride + t] = (A y_t A^T)[p], p < 36, for the nt 4x4 tiles y_t of an
       output gradient at padded + corner[t] (rows wp apart). */
    PYCNN_AVX2 static void pycnn_wino_grad_output_f32_avx2(
        const float *padded, Py_ssize_t wp, const Py_ssize_t *corner, Py_ssize_t nt,
        float *w, Py_ssize_t pstride)
    {
        Py_ssize_t b0, t0, j, r, k, a, p, lanes, count;
        const float *p8[8];
        __m256 d[4], h[4][6], col[4], o[6];
        __attribute__((aligned(32))) float block[36][PYCNN_WINO_BLOCK];
        for (b0 = 0; b0 < nt; b0 += PYCNN_WINO_BLOCK) {
            count = nt - b0 < PYCNN_WINO_BLOCK ? nt - b0 : PYCNN_WINO_BLOCK;
            for (t0 = 0; t0 < count; t0 += 8) {
                lanes = count - t0 < 8 ? count - t0 : 8;
                for (j = 0; j < 8; j++)  /* lanes past the end repeat the last tile */
                    p8[j] = padded + corner[b0 + t0 + (j < lanes ? j : lanes - 1)];
                for (r = 0; r < 4; r++) {
                    /* row r of tiles (0, 4), (1, 5), (2, 6), (3, 7), then a 4x4
                       transpose within each half: d[c] = column c of tiles 0..7 */
                    const Py_ssize_t s = r * wp;
                    const __m256 a0 = pycnn_load2x4(p8[0] + s, p8[4] + s);
                    const __m256 a1 = pycnn_load2x4(p8[1] + s, p8[5] + s);
                    const __m256 a2 = pycnn_load2x4(p8[2] + s, p8[6] + s);
                    const __m256 a3 = pycnn_load2x4(p8[3] + s, p8[7] + s);
                    const __m256 u0 = _mm256_unpacklo_ps(a0, a1);
                    const __m256 u1 = _mm256_unpackhi_ps(a0, a1);
                    const __m256 u2 = _mm256_unpacklo_ps(a2, a3);
                    const __m256 u3 = _mm256_unpackhi_ps(a2, a3);
                    d[0] = _mm256_shuffle_ps(u0, u2, 0x44);
                    d[1] = _mm256_shuffle_ps(u0, u2, 0xEE);
                    d[2] = _mm256_shuffle_ps(u1, u3, 0x44);
                    d[3] = _mm256_shuffle_ps(u1, u3, 0xEE);
                    pycnn_a8(d, h[r]);  /* A^T on the right: row r's 4 values -> 6 */
                }
                for (k = 0; k < 6; k++) {  /* then A on the left: column k's rows -> a */
                    for (r = 0; r < 4; r++)
                        col[r] = h[r][k];
                    pycnn_a8(col, o);
                    for (a = 0; a < 6; a++)
                        _mm256_store_ps(&block[6 * a + k][t0], o[a]);
                }
            }
            for (p = 0; p < 36; p++)
                memcpy(w + p * pstride + b0, block[p], (size_t)count * sizeof(float));
        }
    }

    /* out[place[3 t]] + row r * ow + column q = (A^T M_t A)[r][q] + bias, plus the
       same element of `res` unless it is NULL (a residual block's shortcut, laid out
       as out), then with `relu` 0 where that is <= 0, for the nt tiles t of one filter,
       M_t's 36 values at m[p * pstride + t]; tile t writes place[3 t + 1] rows (<= 4)
       of place[3 t + 2] columns (<= 4). */
    PYCNN_AVX2 static void pycnn_wino_output_f32_avx2(
        const float *m, Py_ssize_t pstride, Py_ssize_t nt, const Py_ssize_t *place,
        float *out, Py_ssize_t ow, float bias, int relu, const float *res)
    {
        Py_ssize_t b0, t0, j, k, q, r, c, p, lanes, count;
        const __m256 bv = _mm256_set1_ps(bias), zero = _mm256_setzero_ps();
        __m256 row[6], cols[6][4], col[6], y[4][4], o[4], e[4];
        float part[4];
        float *dst8[8];
        int whole;
        __attribute__((aligned(32))) float block[36][PYCNN_WINO_BLOCK];
        for (b0 = 0; b0 < nt; b0 += PYCNN_WINO_BLOCK) {
            count = nt - b0 < PYCNN_WINO_BLOCK ? nt - b0 : PYCNN_WINO_BLOCK;
            for (p = 0; p < 36; p++) {
                memcpy(block[p], m + p * pstride + b0, (size_t)count * sizeof(float));
                for (j = count; j < ((count + 7) & ~(Py_ssize_t)7); j++)
                    block[p][j] = 0;  /* lanes past the end: computed, never stored */
            }
            for (t0 = 0; t0 < count; t0 += 8) {
                lanes = count - t0 < 8 ? count - t0 : 8;
                for (k = 0; k < 6; k++) {  /* A on the right: row k's columns -> q */
                    for (j = 0; j < 6; j++)
                        row[j] = _mm256_load_ps(&block[6 * k + j][t0]);
                    pycnn_at8(row, cols[k]);
                }
                for (q = 0; q < 4; q++) {  /* then A^T on the left: column q's rows -> r */
                    for (k = 0; k < 6; k++)
                        col[k] = cols[k][q];
                    pycnn_at8(col, o);
                    for (r = 0; r < 4; r++) {
                        y[r][q] = _mm256_add_ps(o[r], bv);
                        if (relu && !res)  /* 0 where <= 0 (-0 too), NaN kept: relu_forward's */
                            y[r][q] = _mm256_blendv_ps(
                                y[r][q], zero, _mm256_cmp_ps(y[r][q], zero, _CMP_LE_OQ));
                    }
                }
                whole = lanes == 8;  /* 8 tiles all inside the output: plain stores */
                for (j = 0; j < 8 && whole; j++) {
                    const Py_ssize_t *pl = place + 3 * (b0 + t0 + j);
                    whole = pl[1] == 4 && pl[2] == 4;
                    dst8[j] = out + pl[0];
                }
                for (r = 0; r < 4; r++) {
                    /* 4x4 transposes within each half: tile j's row r, columns 0-3, in
                       the low half of e[j] for j < 4, the high half of e[j - 4] after */
                    const __m256 u0 = _mm256_unpacklo_ps(y[r][0], y[r][1]);
                    const __m256 u1 = _mm256_unpackhi_ps(y[r][0], y[r][1]);
                    const __m256 u2 = _mm256_unpacklo_ps(y[r][2], y[r][3]);
                    const __m256 u3 = _mm256_unpackhi_ps(y[r][2], y[r][3]);
                    e[0] = _mm256_shuffle_ps(u0, u2, 0x44);
                    e[1] = _mm256_shuffle_ps(u0, u2, 0xEE);
                    e[2] = _mm256_shuffle_ps(u1, u3, 0x44);
                    e[3] = _mm256_shuffle_ps(u1, u3, 0xEE);
                    if (whole && !res) {
                        for (j = 0; j < 4; j++) {
                            _mm_storeu_ps(dst8[j] + r * ow, _mm256_castps256_ps128(e[j]));
                            _mm_storeu_ps(dst8[j + 4] + r * ow, _mm256_extractf128_ps(e[j], 1));
                        }
                        continue;
                    }
                    if (whole) {  /* the shortcut's row added, then the ReLU */
                        for (j = 0; j < 8; j++) {
                            const Py_ssize_t at = dst8[j] - out + r * ow;
                            __m128 x = j < 4 ? _mm256_castps256_ps128(e[j])
                                             : _mm256_extractf128_ps(e[j - 4], 1);
                            x = _mm_add_ps(x, _mm_loadu_ps(res + at));
                            if (relu)
                                x = _mm_blendv_ps(x, _mm_setzero_ps(),
                                                  _mm_cmp_ps(x, _mm_setzero_ps(), _CMP_LE_OQ));
                            _mm_storeu_ps(out + at, x);
                        }
                        continue;
                    }
                    for (j = 0; j < lanes; j++) {
                        const Py_ssize_t *pl = place + 3 * (b0 + t0 + j);
                        const __m128 x = j < 4 ? _mm256_castps256_ps128(e[j])
                                               : _mm256_extractf128_ps(e[j - 4], 1);
                        float *dst;
                        if (r >= pl[1])
                            continue;
                        dst = out + pl[0] + r * ow;
                        if (res) {
                            const float *add = res + pl[0] + r * ow;
                            _mm_storeu_ps(part, x);
                            for (c = 0; c < pl[2]; c++) {
                                const float v = part[c] + add[c];
                                dst[c] = relu && v <= 0 ? 0 : v;
                            }
                        } else if (pl[2] == 4) {
                            _mm_storeu_ps(dst, x);
                        } else {  /* 1 to 3 columns: no store past them */
                            if (pl[2] == 1) {
                                _mm_store_ss(dst, x);
                            } else {
                                _mm_storel_pi((__m64 *)dst, x);
                                if (pl[2] == 3)
                                    _mm_store_ss(dst + 2, _mm_movehl_ps(x, x));
                            }
                        }
                    }
                }
            }
        }
    }
    /* b where it is larger than a or NaN, else a: a step of max pooling's fold over its
       taps (the first maximum wins, a NaN wins: the last NaN) */
    PYCNN_AVX2 static inline __m256 pycnn_wino_fold8(__m256 a, __m256 b)
    {
        const __m256 take = _mm256_or_ps(_mm256_cmp_ps(b, a, _CMP_GT_OQ),
                                         _mm256_cmp_ps(b, b, _CMP_UNORD_Q));
        return _mm256_blendv_ps(a, b, take);
    }

    /* pycnn_wino_output_f32_avx2's values (no residual), then 2x2 max pooling at stride
       2 within each tile: out[place[3 t]] + row r * pw + column q (r, q < 2) = the
       maximum of the tile's rows 2 r, 2 r + 1 and columns 2 q, 2 q + 1, folded as
       max_pool_2x2 folds a window (each row's pair, then the two rows: the tap the
       row-major fold takes); tile t writes place[3 t + 1] rows (<= 2) of
       place[3 t + 2] columns (<= 2) of the pooled plane, pw wide. */
    PYCNN_AVX2 static void pycnn_wino_output_pool_f32_avx2(
        const float *m, Py_ssize_t pstride, Py_ssize_t nt, const Py_ssize_t *place,
        float *out, Py_ssize_t pw, float bias, int relu)
    {
        Py_ssize_t b0, t0, j, k, q, r, p, count;
        const __m256 bv = _mm256_set1_ps(bias), zero = _mm256_setzero_ps();
        __m256 row[6], cols[6][4], col[6], y[4][4], o[4], pooled[2][2];
        __attribute__((aligned(32))) float block[36][PYCNN_WINO_BLOCK];
        __attribute__((aligned(32))) float pairs[2][16];
        for (b0 = 0; b0 < nt; b0 += PYCNN_WINO_BLOCK) {
            count = nt - b0 < PYCNN_WINO_BLOCK ? nt - b0 : PYCNN_WINO_BLOCK;
            for (p = 0; p < 36; p++) {
                memcpy(block[p], m + p * pstride + b0, (size_t)count * sizeof(float));
                for (j = count; j < ((count + 7) & ~(Py_ssize_t)7); j++)
                    block[p][j] = 0;  /* lanes past the end: computed, never stored */
            }
            for (t0 = 0; t0 < count; t0 += 8) {
                const Py_ssize_t lanes = count - t0 < 8 ? count - t0 : 8;
                for (k = 0; k < 6; k++) {
                    for (j = 0; j < 6; j++)
                        row[j] = _mm256_load_ps(&block[6 * k + j][t0]);
                    pycnn_at8(row, cols[k]);
                }
                for (q = 0; q < 4; q++) {
                    for (k = 0; k < 6; k++)
                        col[k] = cols[k][q];
                    pycnn_at8(col, o);
                    for (r = 0; r < 4; r++) {
                        y[r][q] = _mm256_add_ps(o[r], bv);
                        if (relu)
                            y[r][q] = _mm256_blendv_ps(
                                y[r][q], zero, _mm256_cmp_ps(y[r][q], zero, _CMP_LE_OQ));
                    }
                }
                for (r = 0; r < 2; r++)
                    for (q = 0; q < 2; q++)
                        pooled[r][q] = pycnn_wino_fold8(
                            pycnn_wino_fold8(y[2 * r][2 * q], y[2 * r][2 * q + 1]),
                            pycnn_wino_fold8(y[2 * r + 1][2 * q], y[2 * r + 1][2 * q + 1]));
                for (r = 0; r < 2; r++) {
                    /* tile j's pooled row r, its 2 columns, at pairs[r][2 j] */
                    _mm256_store_ps(pairs[r], _mm256_unpacklo_ps(pooled[r][0], pooled[r][1]));
                    _mm256_store_ps(pairs[r] + 8,
                                    _mm256_unpackhi_ps(pooled[r][0], pooled[r][1]));
                }
                for (j = 0; j < lanes; j++) {
                    const Py_ssize_t *pl = place + 3 * (b0 + t0 + j);
                    /* unpacklo holds lanes 0, 1, 4, 5 in that order, unpackhi 2, 3, 6, 7 */
                    const Py_ssize_t at = (j & 1) * 2 + ((j >> 2) & 1) * 4 + ((j >> 1) & 1) * 8;
                    for (r = 0; r < pl[1] && pl[2] > 0; r++) {
                        float *dst = out + pl[0] + r * pw;
                        dst[0] = pairs[r][at];
                        if (pl[2] == 2)
                            dst[1] = pairs[r][at + 1];
                    }
                }
            }
        }
    }
    #undef PYCNN_AVX2
    #else
    #define PYCNN_WINO_AVX2 0
    static void pycnn_wino_input_f32_avx2(const float *padded, Py_ssize_t wp,
        const Py_ssize_t *corner, Py_ssize_t nt, float *v, Py_ssize_t pstride)
    {
        (void)padded; (void)wp; (void)corner; (void)nt; (void)v; (void)pstride;
    }
    static void pycnn_wino_grad_output_f32_avx2(const float *padded, Py_ssize_t wp,
        const Py_ssize_t *corner, Py_ssize_t nt, float *w, Py_ssize_t pstride)
    {
        (void)padded; (void)wp; (void)corner; (void)nt; (void)w; (void)pstride;
    }
    static void pycnn_wino_output_f32_avx2(const float *m, Py_ssize_t pstride,
        Py_ssize_t nt, const Py_ssize_t *place, float *out, Py_ssize_t ow, float bias,
        int relu, const float *res)
    {
        (void)m; (void)pstride; (void)nt; (void)place; (void)out; (void)ow; (void)bias;
        (void)relu; (void)res;
    }
    static void pycnn_wino_output_pool_f32_avx2(const float *m, Py_ssize_t pstride,
        Py_ssize_t nt, const Py_ssize_t *place, float *out, Py_ssize_t pw, float bias,
        int relu)
    {
        (void)m; (void)pstride; (void)nt; (void)place; (void)out; (void)pw; (void)bias;
        (void)relu;
    }
    #endif
    """
    int PYCNN_WINO_AVX2
    void pycnn_wino_input_f32_avx2(const float *padded, Py_ssize_t wp,
                                   const Py_ssize_t *corner, Py_ssize_t nt, float *v,
                                   Py_ssize_t pstride) noexcept nogil
    void pycnn_wino_grad_output_f32_avx2(const float *padded, Py_ssize_t wp,
                                         const Py_ssize_t *corner, Py_ssize_t nt,
                                         float *w, Py_ssize_t pstride) noexcept nogil
    void pycnn_wino_output_f32_avx2(const float *m, Py_ssize_t pstride, Py_ssize_t nt,
                                    const Py_ssize_t *place, float *out, Py_ssize_t ow,
                                    float bias, int relu, const float *res) noexcept nogil
    void pycnn_wino_output_pool_f32_avx2(const float *m, Py_ssize_t pstride, Py_ssize_t nt,
                                         const Py_ssize_t *place, float *out, Py_ssize_t pw,
                                         float bias, int relu) noexcept nogil
