# Type stub for the compiled module pycnn._ext._kernels (Cython types in comments).
import numpy as np
from numpy.typing import NDArray

_Float = NDArray[np.float32] | NDArray[np.float64]

SIMD_TARGETS: tuple[str, ...]
DIRECT_VECTOR_BYTES: int  # PYCNN_DIRECT_VECTOR_BYTES in csrc/conv_direct.h

def simd_supported() -> tuple[str, ...]: ...
def simd_default() -> str: ...
def avx512_verified() -> bool: ...
def simd_sources_digest() -> str: ...
def simd_target() -> str: ...
def simd_request() -> tuple[str | None, str | None]: ...
def set_simd_target(name: str | None = None) -> str: ...
def debug_build() -> bool: ...
def sanitize_build() -> bool: ...
def openmp_enabled() -> bool: ...
def openmp_max_threads() -> int: ...
def im2col(
    x: _Float,  # const floating[:, :, :, ::1]  IN  (N, C, H, W)
    cols: _Float,  # floating[:, :, ::1]           OUT (N, C*KH*KW, OH*OW)
    kh: int,
    kw: int,
    sh: int,
    sw: int,
    ph: int,
    pw: int,
    dh: int,
    dw: int,
    oh: int,
    ow: int,
    n_threads: int = 1,
) -> None: ...
def conv2d_direct(
    x: _Float,  # const floating[:, :, :, ::1]  IN  (N, C, H, W), padded
    weight: _Float,  # const floating[:, :, :, ::1]  IN  (F, C/G, KH, KW)
    bias: _Float | None,  # const floating[::1]     IN  (F,)
    out: _Float,  # floating[:, :, :, ::1]        OUT (N, F, OH, OW)
    groups: int,
    sh: int,
    sw: int,
    dh: int,
    dw: int,
    n_threads: int = 1,
    relu: bool = False,
) -> None: ...
def col2im(
    cols: _Float,  # const floating[:, :, ::1]     IN  (N, C*KH*KW, OH*OW)
    x: _Float,  # floating[:, :, :, ::1]        OUT (N, C, H, W)
    kh: int,
    kw: int,
    sh: int,
    sw: int,
    ph: int,
    pw: int,
    dh: int,
    dw: int,
    oh: int,
    ow: int,
    n_threads: int = 1,
) -> None: ...
def max_pool2d_forward(
    x: _Float,  # const floating[:, :, ::1]  IN  (P, H, W)
    out: _Float,  # floating[:, :, ::1]        OUT (P, OH, OW)
    indices: NDArray[np.int64] | None,  # int64_t[:, :, ::1]         OUT (P, OH, OW)
    kh: int,
    kw: int,
    sh: int,
    sw: int,
    ph: int,
    pw: int,
    dh: int,
    dw: int,
    n_threads: int = 1,
) -> None: ...
def max_pool2d_backward(
    grad_out: _Float,  # const floating[:, :, ::1]  IN  (P, OH, OW)
    indices: NDArray[np.int64],  # const int64_t[:, :, ::1]   IN  (P, OH, OW)
    grad_x: _Float,  # floating[:, :, ::1]        OUT (P, H, W)
    n_threads: int = 1,
) -> int: ...  # Py_ssize_t: indices outside [0, H*W), skipped
def avg_pool2d_forward(
    x: _Float,  # const floating[:, :, ::1]  IN  (P, H, W)
    out: _Float,  # floating[:, :, ::1]        OUT (P, OH, OW)
    kh: int,
    kw: int,
    sh: int,
    sw: int,
    ph: int,
    pw: int,
    count_include_pad: bool,  # bint
    divisor_override: int,  # Py_ssize_t, 0 for none
    n_threads: int = 1,
) -> None: ...
def avg_pool2d_backward(
    grad_out: _Float,  # const floating[:, :, ::1]  IN  (P, OH, OW)
    grad_x: _Float,  # floating[:, :, ::1]        OUT (P, H, W)
    kh: int,
    kw: int,
    sh: int,
    sw: int,
    ph: int,
    pw: int,
    count_include_pad: bool,  # bint
    divisor_override: int,  # Py_ssize_t, 0 for none
    n_threads: int = 1,
) -> None: ...
def relu_forward(
    x: _Float,  # const floating[::1]  IN  (P,)
    out: _Float,  # floating[::1]        OUT (P,)
) -> None: ...
def add_relu(
    a: _Float,  # const floating[::1]  IN  (P,)
    b: _Float,  # const floating[::1]  IN  (P,)
    out: _Float,  # floating[::1]        OUT (P,)
) -> None: ...
def plane_means(
    x: _Float,  # const floating[:, ::1]  IN  (P, M)
    out: _Float,  # floating[::1]         OUT (P,)
) -> None: ...
def bias_relu(
    out: _Float,  # floating[:, :, ::1]  IN/OUT (P, F, L)
    bias: _Float | None,  # const floating[::1]  IN  (F,)
    relu: bool,  # bint
    residual: _Float | None = None,  # const floating[:, :, ::1]  IN (P, F, L)
) -> None: ...
def relu_backward(
    grad: _Float,  # const floating[::1]  IN  (P,)
    x: _Float,  # const floating[::1]  IN  (P,), the forward input or output
    dx: _Float,  # floating[::1]        OUT (P,)
) -> None: ...
def batch_norm_stats(
    x: _Float,  # const floating[:, :, ::1]  IN  (N, C, M)
    mean: NDArray[np.float64],  # double[::1]  OUT (C,), entries [c_lo, c_hi)
    m2: NDArray[np.float64],  # double[::1]    OUT (C,), entries [c_lo, c_hi)
    c_lo: int,
    c_hi: int,
) -> None: ...
def cross_entropy_labels(
    logits: _Float,  # const floating[:, ::1]  IN  (N, C)
    labels: NDArray[np.int64],  # const int64_t[::1]  IN  (N,)
    ignore_index: int,
    loss: _Float,  # floating[::1]      OUT (N,)
    grad: _Float,  # floating[:, ::1]   OUT (N, C)
) -> int: ...
def batch_norm_statistics(
    mean: NDArray[np.float64],  # const double[::1]  IN  (C,)
    var: NDArray[np.float64],  # const double[::1]   IN  (C,)
    running_mean: _Float | None,  # floating[::1]    IN/OUT (C,)
    running_var: _Float | None,  # floating[::1]     IN/OUT (C,)
    momentum: float,
    var_momentum: float,
    eps: float,
    mean_out: _Float,  # floating[::1]  OUT (C,)
    inv_std: _Float,  # floating[::1]   OUT (C,)
) -> None: ...
def batch_norm_forward(
    x: _Float,  # const floating[:, :, ::1]  IN  (N, C, M)
    mean: _Float,  # const floating[::1]     IN  (C,)
    inv_std: _Float,  # const floating[::1]  IN  (C,)
    weight: _Float | None,  # const floating[::1]  IN  (C,)
    bias: _Float | None,  # const floating[::1]    IN  (C,)
    out: _Float,  # floating[:, :, ::1]      OUT (N, C, M)
    c_lo: int,
    c_hi: int,
    relu: bool = False,
) -> None: ...
def batch_norm_grad_sums(
    grad: _Float,  # const floating[:, :, ::1]  IN  (N, C, M)
    x: _Float,  # const floating[:, :, ::1]     IN  (N, C, M)
    mean: _Float,  # const floating[::1]        IN  (C,)
    inv_std: _Float,  # const floating[::1]     IN  (C,)
    sum_g: NDArray[np.float64],  # double[::1]  OUT (C,), entries [c_lo, c_hi)
    sum_gx: NDArray[np.float64],  # double[::1] OUT (C,), entries [c_lo, c_hi)
    c_lo: int,
    c_hi: int,
) -> None: ...
def batch_norm_backward(
    grad: _Float,  # const floating[:, :, ::1]  IN  (N, C, M)
    x: _Float,  # const floating[:, :, ::1]     IN  (N, C, M)
    mean: _Float,  # const floating[::1]        IN  (C,)
    inv_std: _Float,  # const floating[::1]     IN  (C,)
    weight: _Float | None,  # const floating[::1]   IN  (C,)
    mean_g: _Float | None,  # const floating[::1]   IN  (C,), None in eval
    mean_gx: _Float | None,  # const floating[::1]  IN  (C,), None in eval
    dx: _Float,  # floating[:, :, ::1]          OUT (N, C, M)
    c_lo: int,
    c_hi: int,
) -> None: ...

# Winograd F(4x4, 3x3) transforms (_winograd.pxi); p = 6 * row + column of a 6x6 tile

def winograd_filter(
    weight: _Float,  # const floating[:, :, :, ::1]  IN  (F, C, 3, 3)
    u: _Float,  # floating[:, :, ::1]           OUT (36, F, C)
) -> None: ...
def winograd_input(
    x: _Float,  # const floating[:, :, :, ::1]  IN  (N, C, H, W)
    v: _Float,  # floating[:, :, ::1]           OUT (36, C, N*TH*TW)
    ph: int,
    pw: int,
    th: int,
    tw: int,
) -> None: ...
def winograd_output(
    m: _Float,  # const floating[:, :, ::1]     IN  (36, F, N*TH*TW)
    out: _Float,  # floating[:, :, :, ::1]        OUT (N, F, OH, OW)
    bias: _Float | None,  # const floating[::1]     IN  (F,)
    th: int,
    tw: int,
    relu: bool = False,
    residual: _Float | None = None,  # const floating[:, :, :, ::1]  IN (N, F, OH, OW)
) -> None: ...
def winograd_forward(
    x: _Float,  # const floating[:, :, :, ::1]  IN  (N, J, H, W)
    u: _Float,  # const floating[:, :, ::1]     IN  (36, K, J)
    out: _Float,  # floating[:, :, :, ::1]      OUT (N, K, OH, OW)
    bias: _Float | None,  # const floating[::1]   IN  (K,)
    ph: int,
    pw: int,
    relu: bool,
    residual: _Float | None,  # const floating[:, :, :, ::1]  IN (N, K, OH, OW)
    n_chunks: int,
    n_threads: int = 1,
    pooled_from_h: int = 0,  # > 0: out is the 2x2 max pooling of an (H, W) output
    pooled_from_w: int = 0,
) -> None: ...

# small planes through a table of flat positions (_gather.pxi)

def gather_columns(
    x: _Float,  # const floating[:, ::1]   IN  (N, S)
    table: NDArray[np.int32],  # const int32_t[::1]  IN  (T,), in [0, S]
    cols: _Float,  # floating[:, ::1]      OUT (N, T)
) -> None: ...
def max_pool_2x2(
    x: _Float,  # const floating[:, ::1]  IN  (P, H * W)
    h: int,
    w: int,
    out: _Float,  # floating[:, ::1]        OUT (P, (H // 2) * (W // 2))
    indices: NDArray[np.int64] | None,  # int64_t[:, ::1]  OUT like out, or None
    n_threads: int = 1,
) -> None: ...
def max_pool_gather(
    x: _Float,  # const floating[:, ::1]   IN  (P, S)
    table: NDArray[np.int32],  # const int32_t[:, ::1]  IN  (K, O), in [0, S)
    out: _Float,  # floating[:, ::1]       OUT (P, O)
    indices: NDArray[np.int64] | None,  # int64_t[:, ::1]  OUT (P, O)
) -> None: ...
def gather_columns_t(
    x: _Float,  # const floating[:, ::1]   IN  (N, S)
    table: NDArray[np.int32],  # const int32_t[::1]  IN  (R*L,), in [0, S]
    cols_t: _Float,  # floating[:, ::1]    OUT (R, N*L)
) -> None: ...
def winograd_grad_output(
    grad: _Float,  # const floating[:, :, :, ::1]  IN  (N, F, OH, OW)
    w: _Float,  # floating[:, :, ::1]           OUT (36, F, N*TH*TW)
    th: int,
    tw: int,
) -> None: ...
def winograd_filter_grad(
    m: _Float,  # const floating[:, :, ::1]     IN  (36, F, C)
    grad_w: _Float,  # floating[:, :, :, ::1]   OUT (F, C, 3, 3)
) -> None: ...

# the fixed-order product of Winograd's convolution (_matmul.pxi)

def matmul_fixed(
    a: _Float,  # const floating[:, :, ::1]  IN  (B, M, K)
    b: _Float,  # const floating[:, :, ::1]  IN  (B, K, N)
    c: _Float,  # floating[:, :, ::1]        OUT (B, M, N)
) -> None: ...
