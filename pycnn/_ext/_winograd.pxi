# Included at the end of _kernels.pyx: the transforms of Winograd's F(4x4, 3x3).
#
# A stride-1 3x3 convolution computes each 4x4 block of output (a tile) from the 6x6
# block of input under it as  Y = A^T [(G g G^T) * (B^T d B)] A  (Lavin & Gray, 2016,
# interpolation points 0, +-1, +-2, infinity), where * is elementwise. Summed over
# input channels, each of the 36 elementwise positions is one GEMM, (F, C) @ (C, tiles):
# 36 * F * C multiply-adds per tile instead of 144 * F * C. The GEMMs run in NumPy
# (BLAS); these loops do the three transforms:
#
# - winograd_filter:  U[p, f, c] = (G g[f, c] G^T)[p]          (once per weight)
# - winograd_input:   V[p, c, t] = (B^T d[c, t] B)[p]          (per chunk of images)
# - winograd_output:  out[b, f, tile t] = (A^T M[:, f, t] A) + bias[f]
#
# p = 6 * k + l indexes the 6x6 transformed tile: k its row, l its column. Tiles are
# numbered image by image, row-major within an image; a tile reaching past the input
# reads zeros there, and one reaching past the output writes only its part inside, so
# any output size works. Each transform works on one channel (or filter) of all the
# images of a chunk at once, its inner loops contiguous over their tiles, so that the
# compiler vectorises them.

from libc.stdlib cimport calloc, free, malloc


def winograd_filter(const floating[:, :, :, ::1] weight,  # IN  (F, C, 3, 3)
                    floating[:, :, ::1] u):                # OUT (36, F, C)
    """U = G g G^T for every (filter, channel) pair of a 3x3 `weight`, computed in
    double and rounded once to the dtype, in two passes whose inner loops run over the
    pairs (the second one contiguous, vectorised)."""
    cdef Py_ssize_t nf = weight.shape[0], nc = weight.shape[1], n = nf * nc, q, k, l, j
    cdef const floating *g
    cdef double *t
    cdef floating *o
    cdef double *d
    cdef double *t0
    cdef double *t1
    cdef double *t2
    # G, 6x3: one row per interpolation point (0, 1, -1, 2, -2; the last one infinity)
    cdef double gm[6][3]
    gm[0][0], gm[0][1], gm[0][2] = 0.25, 0, 0
    gm[1][0], gm[1][1], gm[1][2] = -1.0 / 6, -1.0 / 6, -1.0 / 6
    gm[2][0], gm[2][1], gm[2][2] = -1.0 / 6, 1.0 / 6, -1.0 / 6
    gm[3][0], gm[3][1], gm[3][2] = 1.0 / 24, 1.0 / 12, 1.0 / 6
    gm[4][0], gm[4][1], gm[4][2] = 1.0 / 24, -1.0 / 12, 1.0 / 6
    gm[5][0], gm[5][1], gm[5][2] = 0, 0, 1
    if weight.shape[2] != 3 or weight.shape[3] != 3:
        raise ValueError("winograd_filter: weight must be (F, C, 3, 3)")
    if u.shape[0] != 36 or u.shape[1] != nf or u.shape[2] != nc:
        raise ValueError("winograd_filter: u must be (36, F, C)")
    if n == 0:
        return
    t = <double *>malloc(18 * n * sizeof(double))  # G g: [k][column j][pair]
    if t == NULL:
        raise MemoryError()
    with nogil:
        g = &weight[0, 0, 0, 0]
        for k in range(6):
            for j in range(3):
                d = t + (3 * k + j) * n
                for q in range(n):
                    d[q] = gm[k][0] * <double>g[9 * q + j] + (
                        gm[k][1] * <double>g[9 * q + 3 + j]
                    ) + gm[k][2] * <double>g[9 * q + 6 + j]
        for k in range(6):  # (G g) G^T
            t0 = t + 3 * k * n
            t1 = t0 + n
            t2 = t0 + 2 * n
            for l in range(6):
                o = &u[6 * k + l, 0, 0]
                for q in range(n):
                    o[q] = <floating>(gm[l][0] * t0[q] + gm[l][1] * t1[q] + gm[l][2] * t2[q])
    free(t)


cdef inline void _bt(const floating *d0, const floating *d1, const floating *d2,
                     const floating *d3, const floating *d4, const floating *d5,
                     floating *o0, floating *o1, floating *o2, floating *o3,
                     floating *o4, floating *o5, Py_ssize_t n) noexcept nogil:
    """o[k][i] = (B^T d[:, i])[k] for i < n: six simple loops over contiguous arrays,
    which the compiler vectorises. (The constants are typed: Cython writes a literal 4
    as the double 4.0, which would turn float32 arithmetic into float64.)"""
    cdef Py_ssize_t i
    cdef floating two = 2, four = 4, five = 5
    for i in range(n):
        o0[i] = four * d0[i] - five * d2[i] + d4[i]
    for i in range(n):
        o1[i] = (d4[i] - four * d2[i]) + (d3[i] - four * d1[i])
    for i in range(n):
        o2[i] = (d4[i] - four * d2[i]) - (d3[i] - four * d1[i])
    for i in range(n):
        o3[i] = (d4[i] - d2[i]) + two * (d3[i] - d1[i])
    for i in range(n):
        o4[i] = (d4[i] - d2[i]) - two * (d3[i] - d1[i])
    for i in range(n):
        o5[i] = four * d1[i] - five * d3[i] + d5[i]


cdef inline void _pad_channel(const floating *x, Py_ssize_t n, Py_ssize_t xstride,
                              Py_ssize_t h, Py_ssize_t w, Py_ssize_t ph, Py_ssize_t pw,
                              Py_ssize_t th, Py_ssize_t tw,
                              floating *padded) noexcept nogil:
    """One channel of `n` images (channel `x` (h, w) of image b at x + b * xstride) into
    `padded`, n planes of (4 th + 2, 4 tw + 2) whose border is zero already, `ph` rows
    and `pw` columns in."""
    cdef Py_ssize_t hp = 4 * th + 2, wp = 4 * tw + 2, b, r, c
    cdef Py_ssize_t rows = min(h, hp - ph)  # the input rows and columns tiles read
    cdef Py_ssize_t cols = min(w, wp - pw)
    cdef const floating *src
    cdef floating *o
    for b in range(n):
        for r in range(rows):
            o = padded + (b * hp + r + ph) * wp + pw
            src = x + b * xstride + r * w
            for c in range(cols):
                o[c] = src[c]


cdef inline void _input_tiles(const floating *padded, Py_ssize_t wp, Py_ssize_t nt,
                              const Py_ssize_t *corner, floating *buf, floating *v,
                              Py_ssize_t pstride) noexcept nogil:
    """B^T d B of the `nt` tiles of one channel whose 6x6 blocks start at padded +
    corner[t] (rows `wp` apart); the 36 results of tile t go to v[p * pstride + t].

    The tiles are gathered whole into `buf` (72 * nt), D[6 r + c][t] = row r, column c
    of tile t, so that B on the right, then B^T on the left, are each six loops over all
    the tiles of all the images at once, which the compiler vectorises."""
    cdef Py_ssize_t r, c, t, k
    cdef floating *d = buf               # the tiles, D[6 r + c][tile]
    cdef floating *hs = buf + 36 * nt    # B on the right: H[6 r + l][tile]
    cdef const floating *src
    cdef floating *o
    for r in range(6):
        for c in range(6):
            o = d + (6 * r + c) * nt
            src = padded + r * wp + c
            for t in range(nt):
                o[t] = src[corner[t]]
    for r in range(6):
        src = d + 6 * r * nt
        o = hs + 6 * r * nt
        _bt(src, src + nt, src + 2 * nt, src + 3 * nt, src + 4 * nt, src + 5 * nt,
            o, o + nt, o + 2 * nt, o + 3 * nt, o + 4 * nt, o + 5 * nt, nt)
    for k in range(6):  # column l = k of every row
        src = hs + k * nt
        o = v + k * pstride
        _bt(src, src + 6 * nt, src + 12 * nt, src + 18 * nt, src + 24 * nt, src + 30 * nt,
            o, o + 6 * pstride, o + 12 * pstride, o + 18 * pstride, o + 24 * pstride,
            o + 30 * pstride, nt)


def winograd_input(const floating[:, :, :, ::1] x,  # IN  (N, C, H, W)
                   floating[:, :, ::1] v,            # OUT (36, C, N * TH * TW)
                   Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t th, Py_ssize_t tw):
    """V = B^T d B for the TH x TW tiles of every image and channel of `x`, zero-padded
    by `ph` rows on top and `pw` columns on the left (and as needed past the end).

    Each channel is copied into zero-bordered planes, then transformed: in float32 on
    AVX2 by `pycnn_wino_input_f32_avx2` (_winograd_avx2.pxi), else by `_input_tiles`;
    the same bits."""
    cdef Py_ssize_t n = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3]
    cdef int failed
    if th < 1 or tw < 1 or ph < 0 or pw < 0:
        raise ValueError("winograd_input: th, tw >= 1 and ph, pw >= 0")
    if v.shape[0] != 36 or v.shape[1] != c or v.shape[2] != n * th * tw:
        raise ValueError("winograd_input: v must be (36, C, N * th * tw)")
    if n == 0 or c == 0:
        return
    with nogil:
        failed = _input_core(&x[0, 0, 0, 0], n, c, h, w, &v[0, 0, 0], ph, pw, th, tw)
    if failed:
        raise MemoryError()


cdef int _input_core(const floating *x, Py_ssize_t n, Py_ssize_t c, Py_ssize_t h,
                     Py_ssize_t w, floating *v, Py_ssize_t ph, Py_ssize_t pw,
                     Py_ssize_t th, Py_ssize_t tw) noexcept nogil:
    """`winograd_input` of checked sizes: x (n, c, h, w) and v (36, c, n * th * tw),
    C-contiguous, n and c >= 1; -1 (nothing written) when out of memory, else 0."""
    cdef Py_ssize_t ch, nt = n * th * tw, pstride = c * nt, b, i, j, t = 0
    cdef Py_ssize_t hp = 4 * th + 2, wp = 4 * tw + 2
    cdef floating *padded
    cdef floating *buf = NULL
    cdef Py_ssize_t *corner
    cdef bint avx2 = floating is float and PYCNN_WINO_AVX2 and pycnn_isa_active() >= 1
    # 8 floats past the planes: the AVX2 transform reads every tile's rows as 8 floats
    padded = <floating *>calloc(n * hp * wp + 8, sizeof(floating))
    if not avx2:
        buf = <floating *>malloc(72 * nt * sizeof(floating))
    corner = <Py_ssize_t *>malloc(nt * sizeof(Py_ssize_t))
    if padded == NULL or corner == NULL or (buf == NULL and not avx2):
        free(padded)
        free(buf)
        free(corner)
        return -1
    for b in range(n):
        for i in range(th):
            for j in range(tw):
                corner[t] = (b * hp + 4 * i) * wp + 4 * j
                t += 1
    for ch in range(c):
        _pad_channel(x + ch * h * w, n, c * h * w, h, w, ph, pw, th, tw, padded)
        if floating is float:
            if avx2:
                pycnn_wino_input_f32_avx2(padded, wp, corner, nt, v + ch * nt, pstride)
                continue
        _input_tiles(padded, wp, nt, corner, buf, v + ch * nt, pstride)
    free(padded)
    free(buf)
    free(corner)
    return 0


cdef inline void _at(const floating *m0, const floating *m1, const floating *m2,
                     const floating *m3, const floating *m4, const floating *m5,
                     floating *o0, floating *o1, floating *o2, floating *o3,
                     Py_ssize_t n) noexcept nogil:
    """o[r][i] = (A^T m[:, i])[r] for i < n, in vectorisable loops like `_bt`."""
    cdef Py_ssize_t i
    cdef floating two = 2, four = 4, eight = 8
    for i in range(n):
        o0[i] = m0[i] + (m1[i] + m2[i]) + (m3[i] + m4[i])
    for i in range(n):
        o1[i] = (m1[i] - m2[i]) + two * (m3[i] - m4[i])
    for i in range(n):
        o2[i] = (m1[i] + m2[i]) + four * (m3[i] + m4[i])
    for i in range(n):
        o3[i] = (m1[i] - m2[i]) + eight * (m3[i] - m4[i]) + m5[i]


cdef inline void _output_filter(const floating *m, Py_ssize_t pstride, Py_ssize_t n,
                                Py_ssize_t th, Py_ssize_t tw, floating *out,
                                Py_ssize_t ostride, Py_ssize_t oh, Py_ssize_t ow,
                                floating bias, bint relu, const floating *res,
                                floating *buf) noexcept nogil:
    """A^T M A + bias (plus `res`, laid out as `out`, unless it is NULL; then max(., 0)
    with `relu`, as relu_forward computes it) for the th x tw tiles of one filter of `n`
    images, M of tile t at m[p * pstride + t], into the (oh, ow) planes at
    out + b * ostride; tiles reaching past the output write only their part inside.
    `buf` holds 40 * n * th * tw."""
    cdef Py_ssize_t tiles = th * tw, nt = n * th * tw, k, q, b, i, j, r, col, nrows
    cdef Py_ssize_t full = ow // 4
    cdef const floating *src
    cdef const floating *y0
    cdef const floating *y1
    cdef const floating *y2
    cdef const floating *y3
    cdef floating *cols = buf         # A on the right: [4 k + q][tile]
    cdef floating *y = buf + 24 * nt  # then A^T on the left: [4 r + q][tile]
    cdef floating *o
    cdef floating v
    for k in range(6):
        src = m + 6 * k * pstride
        o = cols + 4 * k * nt
        _at(src, src + pstride, src + 2 * pstride, src + 3 * pstride, src + 4 * pstride,
            src + 5 * pstride, o, o + nt, o + 2 * nt, o + 3 * nt, nt)
    for q in range(4):
        _at(cols + q * nt, cols + (4 + q) * nt, cols + (8 + q) * nt, cols + (12 + q) * nt,
            cols + (16 + q) * nt, cols + (20 + q) * nt,
            y + q * nt, y + (4 + q) * nt, y + (8 + q) * nt, y + (12 + q) * nt, nt)
    for b in range(n):  # tile (i, j)'s row r, column q is output pixel (4 i + r, 4 j + q)
        for i in range(th):
            nrows = oh - 4 * i if oh - 4 * i < 4 else 4
            for r in range(nrows):
                o = out + b * ostride + (4 * i + r) * ow
                y0 = y + 4 * r * nt + b * tiles + i * tw
                y1 = y0 + nt
                y2 = y0 + 2 * nt
                y3 = y0 + 3 * nt
                for j in range(full):  # an interleaved store, vectorised
                    o[4 * j] = y0[j] + bias
                    o[4 * j + 1] = y1[j] + bias
                    o[4 * j + 2] = y2[j] + bias
                    o[4 * j + 3] = y3[j] + bias
                for col in range(4 * full, ow):
                    o[col] = y0[(col % 4) * nt + col // 4] + bias
                if res != NULL:
                    y0 = res + (o - out)
                    for col in range(ow):
                        o[col] = o[col] + y0[col]
                if relu:
                    for col in range(ow):
                        v = o[col]
                        o[col] = 0 if v <= 0 else v


def winograd_output(const floating[:, :, ::1] m,     # IN  (36, F, N * TH * TW)
                    floating[:, :, :, ::1] out,       # OUT (N, F, OH, OW)
                    const floating[::1] bias,         # IN  (F,) or None
                    Py_ssize_t th, Py_ssize_t tw, bint relu=False,
                    const floating[:, :, :, ::1] residual=None):  # IN (N, F, OH, OW)
    """out = A^T M A (+ bias) (+ residual) for the TH x TW tiles of every image and
    filter, then with `relu` max(out, 0) as relu_forward computes it, in the same pass
    (a residual block's last convolution, its shortcut's output and the ReLU after the
    sum); tiles reaching past OH or OW write only their part inside. In float32 on AVX2
    by `pycnn_wino_output_f32_avx2` (_winograd_avx2.pxi), else by `_output_filter`; the
    same bits."""
    cdef Py_ssize_t n = out.shape[0], f = out.shape[1], oh = out.shape[2], ow = out.shape[3]
    cdef const floating *bias_ptr = NULL
    cdef const floating *res_ptr = NULL
    cdef int failed
    if th < 1 or tw < 1 or 4 * th < oh or 4 * tw < ow:
        raise ValueError("winograd_output: the tiles must cover the output")
    if m.shape[0] != 36 or m.shape[1] != f or m.shape[2] != n * th * tw:
        raise ValueError("winograd_output: m must be (36, F, N * th * tw)")
    if bias is not None and bias.shape[0] != f:
        raise ValueError("winograd_output: bias must be (F,)")
    if residual is not None and (residual.shape[0] != n or residual.shape[1] != f
                                 or residual.shape[2] != oh or residual.shape[3] != ow):
        raise ValueError("winograd_output: residual must have the shape of out")
    if n == 0 or f == 0 or oh == 0 or ow == 0:
        return
    if bias is not None:
        bias_ptr = &bias[0]
    if residual is not None:
        res_ptr = &residual[0, 0, 0, 0]
    with nogil:
        failed = _output_core(&m[0, 0, 0], n, f, oh, ow, &out[0, 0, 0, 0], bias_ptr, th,
                              tw, relu, res_ptr, False)
    if failed:
        raise MemoryError()


cdef int _output_core(const floating *m, Py_ssize_t n, Py_ssize_t f, Py_ssize_t oh,
                      Py_ssize_t ow, floating *out, const floating *bias, Py_ssize_t th,
                      Py_ssize_t tw, bint relu, const floating *residual,
                      bint pool) noexcept nogil:
    """`winograd_output` of checked sizes: m (36, f, n * th * tw), out and residual (n,
    f, oh, ow), C-contiguous, all sizes >= 1; bias and residual may be NULL. With
    `pool` (float32 on AVX2, no residual), out is (n, f, oh // 2, ow // 2), the 2x2 max
    pooling of the result (`pycnn_wino_output_pool_f32_avx2`). -1 (nothing written)
    when out of memory, -2 when `pool` cannot be done here, else 0."""
    cdef Py_ssize_t fi, nt = n * th * tw, pstride = f * nt, plane = oh * ow, b, i, j, t = 0
    cdef Py_ssize_t ph2 = oh // 2, pw2 = ow // 2
    cdef floating *buf = NULL
    cdef Py_ssize_t *place = NULL
    cdef floating bf = 0
    cdef const floating *res = NULL
    cdef bint avx2 = floating is float and PYCNN_WINO_AVX2 and pycnn_isa_active() >= 1
    if pool and (not avx2 or residual != NULL):
        return -2
    if avx2:  # per tile: its offset in an output plane, its rows and columns inside
        place = <Py_ssize_t *>malloc(3 * nt * sizeof(Py_ssize_t))
    else:
        buf = <floating *>malloc(40 * nt * sizeof(floating))
    if buf == NULL and place == NULL:
        return -1
    if pool:  # the same for the pooled plane: 2x2 of it a tile
        for b in range(n):
            for i in range(th):
                for j in range(tw):
                    place[3 * t] = b * f * ph2 * pw2 + 2 * i * pw2 + 2 * j
                    place[3 * t + 1] = max(0, min(2, ph2 - 2 * i))
                    place[3 * t + 2] = max(0, min(2, pw2 - 2 * j))
                    t += 1
        for fi in range(f):
            if bias != NULL:
                bf = bias[fi]
            if floating is float:
                pycnn_wino_output_pool_f32_avx2(m + fi * nt, pstride, nt, place,
                                                out + fi * ph2 * pw2, pw2, bf, relu)
        free(place)
        return 0
    if avx2:
        for b in range(n):
            for i in range(th):
                for j in range(tw):
                    place[3 * t] = b * f * plane + 4 * i * ow + 4 * j
                    place[3 * t + 1] = min(4, oh - 4 * i)
                    place[3 * t + 2] = min(4, ow - 4 * j)
                    t += 1
    for fi in range(f):
        if bias != NULL:
            bf = bias[fi]
        if residual != NULL:
            res = residual + fi * plane
        if floating is float:
            if avx2:
                pycnn_wino_output_f32_avx2(m + fi * nt, pstride, nt, place, out + fi * plane,
                                           ow, bf, relu, res)
                continue
        _output_filter(m + fi * nt, pstride, n, th, tw, out + fi * plane, f * plane, oh, ow,
                       bf, relu, res, buf)
    free(buf)
    free(place)
    return 0


# --- the weight gradient -----------------------------------------------------------------
# The forward is bilinear in the filter g and the input tile d, Y = A^T [(G g G^T) *
# (B^T d B)] A, so the gradient of a loss with respect to g, from dY, is
#     dg = G^T [(A dY A^T) * (B^T d B)] G,
# summed over every tile of every image; the sum moves inside the outer G^T ... G, and
# at each of the 36 positions it is one GEMM over all tiles, (F, tiles) @ (tiles, C),
# deep and efficient where im2col's weight gradient is one thin GEMM per image:
#
# - winograd_input:        V[p, c, t]  = (B^T d[c, t] B)[p]     (as for the forward)
# - winograd_grad_output:  W[p, f, t]  = (A dY[f, t] A^T)[p]
# - (NumPy)                M[p, f, c]  = sum over t of W[p, f, t] V[p, c, t]
# - winograd_filter_grad:  dg[f, c]    = G^T M[:, f, c] G


cdef inline void _a(const floating *i0, const floating *i1, const floating *i2,
                    const floating *i3, floating *o0, floating *o1, floating *o2,
                    floating *o3, floating *o4, floating *o5, Py_ssize_t n) noexcept nogil:
    """o[k][i] = (A y[:, i])[k] for i < n, A = (A^T)^T, 6x4: the values of the cubic
    through y at the points 0, 1, -1, 2, -2, and its leading coefficient."""
    cdef Py_ssize_t i
    cdef floating two = 2, four = 4, eight = 8
    for i in range(n):
        o0[i] = i0[i]
    for i in range(n):
        o1[i] = (i0[i] + i2[i]) + (i1[i] + i3[i])
    for i in range(n):
        o2[i] = (i0[i] + i2[i]) - (i1[i] + i3[i])
    for i in range(n):
        o3[i] = (i0[i] + four * i2[i]) + (two * i1[i] + eight * i3[i])
    for i in range(n):
        o4[i] = (i0[i] + four * i2[i]) - (two * i1[i] + eight * i3[i])
    for i in range(n):
        o5[i] = i3[i]


def winograd_grad_output(const floating[:, :, :, ::1] grad,  # IN  (N, F, OH, OW)
                         floating[:, :, ::1] w,               # OUT (36, F, N * TH * TW)
                         Py_ssize_t th, Py_ssize_t tw):
    """W = A dY A^T for the TH x TW tiles of every image and filter of the output
    gradient, zero past OH and OW. In float32 on AVX2 by
    `pycnn_wino_grad_output_f32_avx2` (_winograd_avx2.pxi); the same bits."""
    cdef Py_ssize_t n = grad.shape[0], f = grad.shape[1], oh = grad.shape[2]
    cdef Py_ssize_t ow = grad.shape[3], nt = w.shape[2], hp = 4 * th, wp = 4 * tw
    cdef Py_ssize_t fi, b, r, c, t = 0, i, j, k, pstride
    cdef floating *buf
    cdef floating *padded
    cdef floating *d
    cdef floating *hs
    cdef floating *o
    cdef const floating *src
    cdef Py_ssize_t *corner
    cdef bint avx2 = floating is float and PYCNN_WINO_AVX2 and pycnn_isa_active() >= 1
    if th < 1 or tw < 1 or 4 * th < oh or 4 * tw < ow:
        raise ValueError("winograd_grad_output: the tiles must cover the output")
    if w.shape[0] != 36 or w.shape[1] != f or nt != n * th * tw:
        raise ValueError("winograd_grad_output: w must be (36, F, N * th * tw)")
    if n == 0 or f == 0:
        return
    pstride = f * nt
    # n zero-padded planes (hp, wp), then the tiles D[4 r + c][t], then D A^T [6 r + l][t]
    # (those two for the baseline loops only)
    buf = <floating *>calloc(n * hp * wp + (0 if avx2 else 40 * nt), sizeof(floating))
    corner = <Py_ssize_t *>malloc(nt * sizeof(Py_ssize_t))
    if buf == NULL or corner == NULL:
        free(buf)
        free(corner)
        raise MemoryError()
    padded = buf
    d = buf + n * hp * wp
    hs = d + 16 * nt
    with nogil:
        for b in range(n):
            for i in range(th):
                for j in range(tw):
                    corner[t] = (b * hp + 4 * i) * wp + 4 * j
                    t += 1
        for fi in range(f):
            for b in range(n):  # the border past (oh, ow) stays zero
                for r in range(oh):
                    o = padded + (b * hp + r) * wp
                    src = &grad[b, fi, r, 0]
                    for c in range(ow):
                        o[c] = src[c]
            if floating is float:
                if avx2:
                    pycnn_wino_grad_output_f32_avx2(padded, wp, corner, nt, &w[0, fi, 0],
                                                    pstride)
                    continue
            for r in range(4):
                for c in range(4):
                    o = d + (4 * r + c) * nt
                    src = padded + r * wp + c
                    for t in range(nt):
                        o[t] = src[corner[t]]
            for r in range(4):  # A^T on the right: row r's 4 values -> 6
                src = d + 4 * r * nt
                o = hs + 6 * r * nt
                _a(src, src + nt, src + 2 * nt, src + 3 * nt,
                   o, o + nt, o + 2 * nt, o + 3 * nt, o + 4 * nt, o + 5 * nt, nt)
            for k in range(6):  # then A on the left: column k of the 4 rows -> 6 rows
                src = hs + k * nt
                o = &w[0, fi, 0] + k * pstride
                _a(src, src + 6 * nt, src + 12 * nt, src + 18 * nt,
                   o, o + 6 * pstride, o + 12 * pstride, o + 18 * pstride,
                   o + 24 * pstride, o + 30 * pstride, nt)
    free(buf)
    free(corner)


cdef inline void _gt(const floating *m0, const floating *m1, const floating *m2,
                     const floating *m3, const floating *m4, const floating *m5,
                     Py_ssize_t step, floating *o0, floating *o1, floating *o2,
                     Py_ssize_t ostep, Py_ssize_t n) noexcept nogil:
    """o[j][i * ostep] = (G^T m[:, i * step])[j] for i < n, G as in winograd_filter."""
    cdef Py_ssize_t i
    cdef floating a, b, s1, d1, s3, d3
    cdef floating quarter = 0.25, sixth = 1.0 / 6, twelfth = 1.0 / 12, t24 = 1.0 / 24
    for i in range(n):
        s1 = m1[i * step] + m2[i * step]
        d1 = m1[i * step] - m2[i * step]
        s3 = m3[i * step] + m4[i * step]
        d3 = m3[i * step] - m4[i * step]
        o0[i * ostep] = (quarter * m0[i * step] - sixth * s1) + t24 * s3
        o1[i * ostep] = twelfth * d3 - sixth * d1
        o2[i * ostep] = (sixth * s3 - sixth * s1) + m5[i * step]


def winograd_filter_grad(const floating[:, :, ::1] m,      # IN  (36, F, C)
                         floating[:, :, :, ::1] grad_w):   # OUT (F, C, 3, 3)
    """grad_w[f, c] = G^T M[:, f, c] G: the 6x6 sums of products back to 3x3 filters."""
    cdef Py_ssize_t nf = grad_w.shape[0], nc = grad_w.shape[1], n = nf * nc, l, j
    cdef floating *t
    cdef const floating *src
    cdef floating *o
    if grad_w.shape[2] != 3 or grad_w.shape[3] != 3:
        raise ValueError("winograd_filter_grad: grad_w must be (F, C, 3, 3)")
    if m.shape[0] != 36 or m.shape[1] != nf or m.shape[2] != nc:
        raise ValueError("winograd_filter_grad: m must be (36, F, C)")
    if n == 0:
        return
    t = <floating *>malloc(18 * n * sizeof(floating))  # G^T M: [3 j + ... ] see below
    if t == NULL:
        raise MemoryError()
    with nogil:
        src = &m[0, 0, 0]
        for l in range(6):  # G^T on the left: rows k of column l -> rows j, T[j][l][q]
            _gt(src + l * n, src + (6 + l) * n, src + (12 + l) * n, src + (18 + l) * n,
                src + (24 + l) * n, src + (30 + l) * n, 1,
                t + l * n, t + (6 + l) * n, t + (12 + l) * n, 1, n)
        o = &grad_w[0, 0, 0, 0]
        for j in range(3):  # then G on the right: row j's 6 values -> 3, into grad_w
            src = t + 6 * j * n
            _gt(src, src + n, src + 2 * n, src + 3 * n, src + 4 * n, src + 5 * n, 1,
                o + 3 * j, o + 3 * j + 1, o + 3 * j + 2, 9, n)
    free(t)
