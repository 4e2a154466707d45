# Included in _kernels.pyx: an AVX2 twin of the direct convolution (csrc/conv_direct.c)
# for its commonest use, a network's first layer: 3x3 windows at stride 1 without
# dilation or groups, float32, rows of 16 outputs or more.
#
# The general kernel reads its window sizes, strides and dilations at run time and
# spends more of its loop on addressing than on arithmetic (measured: 13 G multiply-adds
# a second on one core for 1 -> 16 channels at 28x28). Here the nine taps are unrolled
# and each block of 4 filters x 16 outputs of a row keeps its 8 accumulators in
# registers. The sums are the general kernel's, term for term and in its order (the
# bias added to zero, then the taps in (channel, row, column) order, each a multiply then
# an add, no fused multiply-add), so both give the same bits (tested); with `relu`,
# max(., 0) as relu_forward computes it is applied before the store.

cdef extern from *:
    """
    #if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    #include <immintrin.h>
    #define PYCNN_DIRECT3_AVX2 1

    /* NF filters (weights wf, NF * c * 9 of them; bias or NULL) x 16 outputs of row oy
       from column ox of one padded image x (c planes of hw floats, rows w apart), into
       o (planes `plane` apart, rows ow apart) */
    #define PYCNN_DEFINE_DIRECT3_BLOCK(NF)                                                \\
    __attribute__((target("avx2"))) static inline void pycnn_direct3_block##NF(          \\
        const float *x, Py_ssize_t c, Py_ssize_t hw, Py_ssize_t w, const float *wf,      \\
        const float *bias, Py_ssize_t oy, Py_ssize_t ox, float *o, Py_ssize_t plane,     \\
        Py_ssize_t ow, int relu)                                                         \\
    {                                                                                    \\
        __m256 lo[NF], hi[NF];                                                           \\
        const __m256 zero = _mm256_setzero_ps();                                         \\
        for (int a = 0; a < NF; a++)                                                     \\
            lo[a] = hi[a] = _mm256_add_ps(zero, _mm256_set1_ps(bias ? bias[a] : 0.0f));  \\
        for (Py_ssize_t ci = 0; ci < c; ci++) {                                          \\
            const float *r = x + ci * hw + oy * w + ox, *wc = wf + ci * 9;               \\
            for (int i = 0; i < 3; i++) {                                                \\
                for (int j = 0; j < 3; j++) {                                            \\
                    const __m256 x0 = _mm256_loadu_ps(r + i * w + j);                    \\
                    const __m256 x1 = _mm256_loadu_ps(r + i * w + j + 8);                \\
                    for (int a = 0; a < NF; a++) {                                       \\
                        const __m256 wv = _mm256_broadcast_ss(wc + a * 9 * c + 3 * i + j); \\
                        lo[a] = _mm256_add_ps(lo[a], _mm256_mul_ps(wv, x0));             \\
                        hi[a] = _mm256_add_ps(hi[a], _mm256_mul_ps(wv, x1));             \\
                    }                                                                    \\
                }                                                                        \\
            }                                                                            \\
        }                                                                                \\
        for (int a = 0; a < NF; a++) {                                                   \\
            float *dst = o + a * plane + oy * ow + ox;                                   \\
            if (relu) {  /* 0 where <= 0 (-0 too), NaN kept: relu_forward's */           \\
                lo[a] = _mm256_blendv_ps(lo[a], zero, _mm256_cmp_ps(lo[a], zero, _CMP_LE_OQ)); \\
                hi[a] = _mm256_blendv_ps(hi[a], zero, _mm256_cmp_ps(hi[a], zero, _CMP_LE_OQ)); \\
            }                                                                            \\
            _mm256_storeu_ps(dst, lo[a]);                                                \\
            _mm256_storeu_ps(dst + 8, hi[a]);                                            \\
        }                                                                                \\
    }
    PYCNN_DEFINE_DIRECT3_BLOCK(4)
    PYCNN_DEFINE_DIRECT3_BLOCK(1)

    /* one input channel: a filter's 9 weights stay in registers over its whole plane,
       16 outputs a block; else the blocks above */
    __attribute__((target("avx2"))) static void pycnn_direct3_c1(
        const float *x, Py_ssize_t w, const float *weight, Py_ssize_t f, const float *bias,
        Py_ssize_t oh, Py_ssize_t ow, float *out, int relu)
    {
        const __m256 zero = _mm256_setzero_ps();
        for (Py_ssize_t fo = 0; fo < f; fo++) {
            const float *wf = weight + 9 * fo;
            const __m256 w0 = _mm256_broadcast_ss(wf), w1 = _mm256_broadcast_ss(wf + 1);
            const __m256 w2 = _mm256_broadcast_ss(wf + 2), w3 = _mm256_broadcast_ss(wf + 3);
            const __m256 w4 = _mm256_broadcast_ss(wf + 4), w5 = _mm256_broadcast_ss(wf + 5);
            const __m256 w6 = _mm256_broadcast_ss(wf + 6), w7 = _mm256_broadcast_ss(wf + 7);
            const __m256 w8 = _mm256_broadcast_ss(wf + 8);
            const __m256 b = _mm256_add_ps(zero, _mm256_set1_ps(bias ? bias[fo] : 0.0f));
            float *o = out + fo * oh * ow;
            for (Py_ssize_t oy = 0; oy < oh; oy++) {
                for (Py_ssize_t ox = 0; ox < ow; ox += 16) {
                    const Py_ssize_t x0 = ox + 16 <= ow ? ox : ow - 16;
                    const float *r0 = x + oy * w + x0, *r1 = r0 + w, *r2 = r1 + w;
                    __m256 lo = b, hi = b;
                    #define PYCNN_TAP(R, J, W)                                              \
                        lo = _mm256_add_ps(lo, _mm256_mul_ps(W, _mm256_loadu_ps(R + J)));   \
                        hi = _mm256_add_ps(hi, _mm256_mul_ps(W, _mm256_loadu_ps(R + J + 8)));
                    PYCNN_TAP(r0, 0, w0) PYCNN_TAP(r0, 1, w1) PYCNN_TAP(r0, 2, w2)
                    PYCNN_TAP(r1, 0, w3) PYCNN_TAP(r1, 1, w4) PYCNN_TAP(r1, 2, w5)
                    PYCNN_TAP(r2, 0, w6) PYCNN_TAP(r2, 1, w7) PYCNN_TAP(r2, 2, w8)
                    #undef PYCNN_TAP
                    if (relu) {  /* 0 where <= 0 (-0 too), NaN kept: relu_forward's */
                        lo = _mm256_blendv_ps(lo, zero, _mm256_cmp_ps(lo, zero, _CMP_LE_OQ));
                        hi = _mm256_blendv_ps(hi, zero, _mm256_cmp_ps(hi, zero, _CMP_LE_OQ));
                    }
                    _mm256_storeu_ps(o + oy * ow + x0, lo);
                    _mm256_storeu_ps(o + oy * ow + x0 + 8, hi);
                }
            }
        }
    }

    /* out (f, oh, ow) of one padded image x (c, h, w), 3x3 windows at stride 1, ow >= 16
       (a row's last block ends at its end, overlapping the one before, as in
       csrc/conv_direct.c) */
    __attribute__((target("avx2"))) static void pycnn_direct3x3_f32_avx2(
        const float *x, Py_ssize_t c, Py_ssize_t h, Py_ssize_t w, const float *weight,
        Py_ssize_t f, const float *bias, Py_ssize_t oh, Py_ssize_t ow, float *out, int relu)
    {
        const Py_ssize_t plane = oh * ow, taps = 9 * c;
        if (c == 1) {
            pycnn_direct3_c1(x, w, weight, f, bias, oh, ow, out, relu);
            return;
        }
        for (Py_ssize_t fo = 0; fo < f;) {
            const Py_ssize_t nf = f - fo >= 4 ? 4 : 1;
            const float *wf = weight + fo * taps, *b = bias ? bias + fo : NULL;
            float *o = out + fo * plane;
            for (Py_ssize_t oy = 0; oy < oh; oy++) {
                for (Py_ssize_t ox = 0; ox < ow; ox += 16) {
                    const Py_ssize_t x0 = ox + 16 <= ow ? ox : ow - 16;
                    if (nf == 4)
                        pycnn_direct3_block4(x, c, h * w, w, wf, b, oy, x0, o, plane, ow, relu);
                    else
                        pycnn_direct3_block1(x, c, h * w, w, wf, b, oy, x0, o, plane, ow, relu);
                }
            }
            fo += nf;
        }
    }
    #else
    #define PYCNN_DIRECT3_AVX2 0
    static void pycnn_direct3x3_f32_avx2(const float *x, Py_ssize_t c, Py_ssize_t h,
        Py_ssize_t w, const float *weight, Py_ssize_t f, const float *bias, Py_ssize_t oh,
        Py_ssize_t ow, float *out, int relu)
    {
        (void)x; (void)c; (void)h; (void)w; (void)weight; (void)f; (void)bias; (void)oh;
        (void)ow; (void)out; (void)relu;
    }
    #endif
    """
    int PYCNN_DIRECT3_AVX2
    void pycnn_direct3x3_f32_avx2(const float *x, Py_ssize_t c, Py_ssize_t h,
                                  Py_ssize_t w, const float *weight, Py_ssize_t f,
                                  const float *bias, Py_ssize_t oh, Py_ssize_t ow,
                                  float *out, int relu) noexcept nogil
