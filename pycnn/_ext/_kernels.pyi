# Type stub for the compiled module pycnn._ext._kernels (Cython types in comments).
import numpy as np
from numpy.typing import NDArray

_Float = NDArray[np.float32] | NDArray[np.float64]

def debug_build() -> bool: ...
def openmp_enabled() -> bool: ...
def openmp_max_threads() -> int: ...
def im2col(
    x: _Float,       # const floating[:, :, :, ::1]  IN  (N, C, H, W)
    cols: _Float,    # floating[:, :, ::1]           OUT (N, C*KH*KW, OH*OW)
    kh: int, kw: int, sh: int, sw: int, ph: int, pw: int, dh: int, dw: int,
    oh: int, ow: int, n_threads: int = 1,
) -> None: ...
def col2im(
    cols: _Float,    # const floating[:, :, ::1]     IN  (N, C*KH*KW, OH*OW)
    x: _Float,       # floating[:, :, :, ::1]        OUT (N, C, H, W)
    kh: int, kw: int, sh: int, sw: int, ph: int, pw: int, dh: int, dw: int,
    oh: int, ow: int, n_threads: int = 1,
) -> None: ...
