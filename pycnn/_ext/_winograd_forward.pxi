# Included in _kernels.pyx after _winograd.pxi and _matmul.pxi: Winograd's forward over
# chunks of images in one call, each chunk's input transform, 36 fixed-order products
# and output transform on one OpenMP thread. Three Python-level calls a chunk, spread
# over pycnn's Python threads, paid the hand-off and the GIL between them: in the MNIST
# CNN (64 images, 2 threads), its 16 -> 32 and 32 -> 32 convolutions at 14x14 ran at
# 1.6x their one-thread speed.

from cython.parallel cimport threadid


def winograd_forward(const floating[:, :, :, ::1] x,      # IN  (N, J, H, W)
                     const floating[:, :, ::1] u,         # IN  (36, K, J)
                     floating[:, :, :, ::1] out,          # OUT (N, K, OH, OW)
                     const floating[::1] bias,            # IN  (K,) or None
                     Py_ssize_t ph, Py_ssize_t pw, bint relu,
                     const floating[:, :, :, ::1] residual,  # IN (N, K, OH, OW) or None
                     Py_ssize_t n_chunks, int n_threads=1, Py_ssize_t pooled_from_h=0,
                     Py_ssize_t pooled_from_w=0):
    """`out` = the stride-1 3x3 convolution of `x`, zero-padded by `ph` rows on top and
    `pw` columns on the left (and as needed past the end), with the transformed filters
    `u`, (+ bias) (+ residual), then with `relu` max(., 0): for each of `n_chunks`
    chunks of images (chunk c: images [N * c // n_chunks, N * (c + 1) // n_chunks)),
    `winograd_input`, then
    `matmul_fixed` at the 36 positions, then `winograd_output`; the chunks spread over
    `n_threads` OpenMP threads. The same bits as those three calls, in any chunking.

    With `pooled_from_h` and `pooled_from_w` (> 0: the convolution's output size; float32
    on AVX2, no residual), `out` is (N, K, that // 2) and receives the 2x2 max pooling
    at stride 2 of that output, max_pool_2x2's values, computed tile by tile."""
    cdef Py_ssize_t n = x.shape[0], j = x.shape[1], h = x.shape[2], w = x.shape[3]
    cdef Py_ssize_t k = u.shape[1], oh = out.shape[2], ow = out.shape[3]
    cdef bint pool = pooled_from_h > 0 or pooled_from_w > 0
    cdef bint can_pool = floating is float and PYCNN_WINO_AVX2 and pycnn_isa_active() >= 1
    cdef int rc
    cdef Py_ssize_t th = (oh + 3) // 4, tw = (ow + 3) // 4, tiles, step, per, ci, p
    cdef Py_ssize_t start, stop, cols
    cdef const floating *bias_ptr = NULL
    cdef const floating *res_ptr = NULL
    cdef const floating *res
    cdef floating *bufs
    cdef floating *vb
    cdef floating *mb
    cdef int failed[1]
    cdef int avx2 = pycnn_isa_active() >= 1, threads = max(n_threads, 1)
    if u.shape[0] != 36 or u.shape[2] != j:
        raise ValueError(f"winograd_forward: u must be (36, K, {j}); got "
                         f"{tuple(u.shape)[:3]}")
    if out.shape[0] != n or out.shape[1] != k:
        raise ValueError(f"winograd_forward: out must be ({n}, {k}, OH, OW); got "
                         f"{tuple(out.shape)[:4]}")
    if pool:
        if (pooled_from_h < 2 or pooled_from_w < 2 or oh != pooled_from_h // 2
                or ow != pooled_from_w // 2):
            raise ValueError(f"winograd_forward: out must be pooled from "
                             f"{(pooled_from_h, pooled_from_w)}; got {(oh, ow)}")
        if residual is not None:
            raise ValueError("winograd_forward: pooling takes no residual")
        if not can_pool:
            raise ValueError("winograd_forward: pooling needs float32 and AVX2")
        oh, ow = pooled_from_h, pooled_from_w  # the convolution's output, from here on
        th, tw = (oh + 3) // 4, (ow + 3) // 4
    if ph < 0 or pw < 0:
        raise ValueError("winograd_forward: ph, pw >= 0")
    if bias is not None:
        if bias.shape[0] != k:
            raise ValueError("winograd_forward: bias must be (K,)")
        bias_ptr = &bias[0]
    if residual is not None:
        if (residual.shape[0] != n or residual.shape[1] != k or residual.shape[2] != oh
                or residual.shape[3] != ow):
            raise ValueError("winograd_forward: residual must have the shape of out")
        res_ptr = &residual[0, 0, 0, 0]
    if n == 0 or k == 0 or oh == 0 or ow == 0:
        return
    if n_chunks < 1 or n_chunks > n:
        raise ValueError(f"winograd_forward: n_chunks must be in [1, {n}]; got {n_chunks}")
    if j == 0:
        raise ValueError("winograd_forward: images of no channels")
    tiles = th * tw
    threads = min(threads, n_chunks)  # a buffer for each thread that gets a chunk
    step = (n + n_chunks - 1) // n_chunks  # (C division: no negative operands)
    per = 36 * (j + k) * step * tiles
    bufs = <floating *>malloc(threads * per * sizeof(floating))
    if bufs == NULL:
        raise MemoryError()
    failed[0] = 0
    try:
        for ci in prange(n_chunks, nogil=True, schedule="static", num_threads=threads):
            vb = bufs + threadid() * per
            start = n * ci // n_chunks
            stop = n * (ci + 1) // n_chunks
            cols = (stop - start) * tiles
            mb = vb + 36 * j * cols
            if _input_core(&x[start, 0, 0, 0], stop - start, j, h, w, vb, ph, pw, th, tw):
                failed[0] = 1
                continue
            for p in range(36):
                if floating is float:
                    pycnn_matmul_f32(k, cols, j, &u[p, 0, 0], vb + p * j * cols,
                                     mb + p * k * cols, avx2)
                else:
                    pycnn_matmul_f64(k, cols, j, &u[p, 0, 0], vb + p * j * cols,
                                     mb + p * k * cols, avx2)
            res = NULL
            if res_ptr != NULL:
                res = res_ptr + start * k * oh * ow
            rc = _output_core(mb, stop - start, k, oh, ow, &out[start, 0, 0, 0], bias_ptr,
                              th, tw, relu, res, pool)
            if rc:
                failed[0] = rc
    finally:
        free(bufs)
    if failed[0] == -2:  # refused above already; kept as a guard
        raise ValueError("winograd_forward: pooling needs float32 and AVX2")
    if failed[0]:
        raise MemoryError()
