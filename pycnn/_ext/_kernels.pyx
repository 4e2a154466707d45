# cython: language_level=3
"""Batch loops around the C kernels.

Each function takes C-contiguous arrays of one dtype (float32 or float64), checks only
what protects memory (shapes against each other, geometry ranges), releases the GIL and
runs the one-image C kernel over the batch, in parallel when OpenMP was built in.
The element-wise passes of ReLU and batch norm (at the end) are plain loops here, with
no C kernel, and run one range per call. User-facing validation and messages live in
pycnn/_validation.py.
"""
from cython cimport floating
from cython.parallel cimport prange
cimport cython
from libc.math cimport INFINITY, exp, expf, log, logf, sqrt, sqrtf
from libc.stdint cimport int64_t

import os
import warnings

from pycnn._ext._csrc cimport (
    pycnn_col2im_f32, pycnn_col2im_f64, pycnn_im2col_f32, pycnn_im2col_f64,
    pycnn_conv2d_direct_f32, pycnn_conv2d_direct_f64, PYCNN_DIRECT_VECTOR_BYTES,
    pycnn_avx512_verified, pycnn_isa_active, pycnn_isa_default, pycnn_isa_set,
    pycnn_isa_supported,
)
from pycnn._ext._csrc cimport (
    pycnn_avg_pool2d_backward_f32, pycnn_avg_pool2d_backward_f64,
    pycnn_avg_pool2d_forward_f32, pycnn_avg_pool2d_forward_f64,
    pycnn_max_pool2d_backward_f32, pycnn_max_pool2d_backward_f64,
    pycnn_max_pool2d_forward_f32, pycnn_max_pool2d_forward_f64,
)

cdef extern from *:
    """
    #ifdef PYCNN_DEBUG_BUILD
    static int pycnn_debug_build(void) { return 1; }
    #else
    static int pycnn_debug_build(void) { return 0; }
    #endif
    #ifdef PYCNN_SANITIZE_BUILD
    static int pycnn_sanitize_build(void) { return 1; }
    #else
    static int pycnn_sanitize_build(void) { return 0; }
    #endif
    #define PYCNN_STR_(x) #x
    #define PYCNN_STR(x) PYCNN_STR_(x)
    #ifdef PYCNN_SOURCES_DIGEST
    static const char *pycnn_sources_digest(void) { return PYCNN_STR(PYCNN_SOURCES_DIGEST); }
    #else
    static const char *pycnn_sources_digest(void) { return ""; }
    #endif
    #ifdef _OPENMP
    #include <omp.h>
    static int pycnn_openmp_enabled(void) { return 1; }
    static int pycnn_omp_max_threads(void) { return omp_get_max_threads(); }
    #else
    static int pycnn_openmp_enabled(void) { return 0; }
    static int pycnn_omp_max_threads(void) { return 1; }
    #endif
    """
    const char *pycnn_sources_digest()
    int pycnn_openmp_enabled()
    int pycnn_omp_max_threads()
    int pycnn_debug_build()
    int pycnn_sanitize_build()


def debug_build():
    """Whether the extension was built with PYCNN_DEBUG=1 (bounds checks, -O0 -g)."""
    return bool(pycnn_debug_build())


def sanitize_build():
    """Whether the extension was built with PYCNN_SANITIZE=1 (ASan + UBSan, -O1 -g)."""
    return bool(pycnn_sanitize_build())


def openmp_enabled():
    """Whether the extension was compiled with OpenMP."""
    return bool(pycnn_openmp_enabled())


def openmp_max_threads():
    """OpenMP's default team size (1 without OpenMP)."""
    return pycnn_omp_max_threads()


# --- runtime instruction-set dispatch ------------------------------------------------

SIMD_TARGETS = ("baseline", "avx2", "avx512")


def simd_supported():
    """The instruction-set variants this CPU and build can run."""
    return tuple(name for i, name in enumerate(SIMD_TARGETS) if pycnn_isa_supported(i))


def simd_default():
    """The variant that runs unless one is asked for: the best this CPU supports, but
    avx512 only if `avx512_verified()` (else it runs only when asked: issue 12)."""
    return SIMD_TARGETS[pycnn_isa_default()]


def avx512_verified():
    """Whether the AVX-512 variants of this build's sources passed tools/verify_simd.py
    on AVX-512 hardware: setup.py found the digest of the sources it built in
    csrc/VERIFIED_AVX512."""
    return bool(pycnn_avx512_verified())


def simd_sources_digest():
    """sha256 of the C sources this extension was built from (tools/simd_digest.py)."""
    return pycnn_sources_digest().decode("ascii")


def simd_target():
    """The variant the kernels use now: 'baseline', 'avx2' or 'avx512'."""
    return SIMD_TARGETS[pycnn_isa_active()]


def set_simd_target(name=None):
    """Force a variant by name (None: the default, `simd_default()`). For tests and benchmarks;
    do not call while kernels run in other threads."""
    if name is None:
        pycnn_isa_set(-1)
        return simd_target()
    if name not in SIMD_TARGETS:
        raise ValueError(f"`name` must be one of {SIMD_TARGETS} or None. "
                         f"Received: name={name!r}")
    if pycnn_isa_set(SIMD_TARGETS.index(name)) != 0:
        raise ValueError(f"SIMD target {name!r} is not supported on this CPU/build. "
                         f"Supported: {simd_supported()}")
    return simd_target()


def _resolve_simd_request(value, supported, default):
    """The variant PYCNN_SIMD=`value` selects, as (name, problem): problem is None when
    the value is usable (unset or empty: the default), else why it is not, and name is
    then the default that runs instead. Pure logic, so that a CPU without a variant can
    be simulated: `supported` is the variants this CPU and build can run."""
    if value is None or not value.strip():
        return default, None
    name = value.strip().lower()
    if name not in SIMD_TARGETS:
        return default, (f"PYCNN_SIMD={value!r} is not a SIMD variant (one of "
                         f"{', '.join(SIMD_TARGETS)}); running {default} instead")
    if name not in supported:
        return default, (f"PYCNN_SIMD={value!r}: this CPU/build cannot run {name} (it "
                         f"can run {', '.join(supported)}); running {default} instead")
    return name, None


# PYCNN_SIMD=baseline|avx2|avx512 picks the variant (e.g. to compare variants). A value
# that cannot be used must not stop `import pycnn` (issue 12, defect 5): the default
# runs instead, with a RuntimeWarning, and `pycnn info` shows what was asked.
_SIMD_REQUEST = os.environ.get("PYCNN_SIMD")
_simd_name, _SIMD_REQUEST_PROBLEM = _resolve_simd_request(
    _SIMD_REQUEST, simd_supported(), simd_default())
set_simd_target(_simd_name)
if _SIMD_REQUEST_PROBLEM is not None:
    # explicit: module-level Cython code has no frame of its own, and "warn" would
    # blame importlib's
    warnings.warn_explicit(_SIMD_REQUEST_PROBLEM, RuntimeWarning, "pycnn/_ext/_kernels.pyx",
                           0, module="pycnn._ext._kernels")


def simd_request():
    """(PYCNN_SIMD as read at import or None, None or why it could not be used)."""
    return _SIMD_REQUEST, _SIMD_REQUEST_PROBLEM


# --- kernels -------------------------------------------------------------------------

# Memory guards. These wrappers are importable, so they protect memory themselves
# (issue 12, defect 6): every size product is overflow-checked, and every read and
# write of a kernel must land inside the arrays it is given. The public functions check
# arguments first, with their own messages; these only refuse what would corrupt memory.

cdef extern from *:
    """
    #define PYCNN_SSIZE_MAX PY_SSIZE_T_MAX
    """
    const Py_ssize_t PYCNN_SSIZE_MAX


cdef inline bint _mul_overflows(Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    """Whether a*b exceeds Py_ssize_t, for a, b >= 0."""
    return a != 0 and b > PYCNN_SSIZE_MAX // a


cdef Py_ssize_t _mul(str what, Py_ssize_t a, Py_ssize_t b) except -1:
    """a*b for a, b >= 0, or ValueError naming `what` when it overflows."""
    if a < 0 or b < 0 or _mul_overflows(a, b):
        raise ValueError(f"{what} = {a} * {b} is negative or overflows")
    return a * b


cdef Py_ssize_t _add(str what, Py_ssize_t a, Py_ssize_t b) except -1:
    """a + b for a, b >= 0, or ValueError naming `what` when it overflows."""
    if a < 0 or b < 0 or b > PYCNN_SSIZE_MAX - a:
        raise ValueError(f"{what} = {a} + {b} is negative or overflows")
    return a + b


cdef int _check_geometry(Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw,
                         Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t dh,
                         Py_ssize_t dw) except -1:
    if kh < 1 or kw < 1 or sh < 1 or sw < 1 or dh < 1 or dw < 1 or ph < 0 or pw < 0:
        raise ValueError(f"invalid geometry: kernel=({kh}, {kw}) stride=({sh}, {sw}) "
                         f"padding=({ph}, {pw}) dilation=({dh}, {dw})")
    return 0


cdef Py_ssize_t _check_axis(str name, str axis, Py_ssize_t size, Py_ssize_t k,
                            Py_ssize_t s, Py_ssize_t p, Py_ssize_t d,
                            Py_ssize_t o) except -1:
    """The reach (o-1)*s + (k-1)*d of the last tap along one axis (0 when o == 0),
    after checking that no coordinate a kernel computes along it can overflow: the
    kernels form o*s - p + i*d, size + p, p + s and p + d (common.h, pool2d.c), all
    bounded by reach + 2p + size + s + d. Geometry already checked (k, s, d >= 1)."""
    cdef Py_ssize_t reach = 0
    what = f"{name}: along {axis}"
    if size < 0 or o < 0:
        raise ValueError(f"{what}, size {size} and output size {o} must be >= 0")
    if o > 0:
        reach = _add(f"{what}, the reach (o-1)*stride + (k-1)*dilation",
                     _mul(f"{what}, (o-1)*stride", o - 1, s),
                     _mul(f"{what}, (k-1)*dilation", k - 1, d))
    total = reach
    for term in (p, p, size, s, d):
        total = _add(f"{what}, reach + 2*padding + size + stride + dilation", total, term)
    return reach


cdef int _check_pool_out(str name, Py_ssize_t n, Py_ssize_t got_n, Py_ssize_t h,
                         Py_ssize_t w, Py_ssize_t oh, Py_ssize_t ow, Py_ssize_t kh,
                         Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph,
                         Py_ssize_t pw, Py_ssize_t dh, Py_ssize_t dw) except -1:
    """An output of (got_n, OH, OW) planes for (n, H, W) input planes: as many planes,
    and every window starting inside the input or its top/left padding,
    (o-1)*stride - padding < size, as PyTorch's output size (ceil_mode included) has.
    The kernels clip each window's taps to the plane, so this and the overflow checks
    are what keep every read and write in bounds."""
    if got_n != n:
        raise ValueError(f"{name} has {got_n} planes, expected {n}")
    _check_axis(name, "H", h, kh, sh, ph, dh, oh)
    _check_axis(name, "W", w, kw, sw, pw, dw, ow)
    if (oh > 0 and (oh - 1) * sh - ph >= h) or (ow > 0 and (ow - 1) * sw - pw >= w):
        raise ValueError(
            f"{name} of {(oh, ow)} windows per plane does not fit input planes {(h, w)} "
            f"with kernel=({kh}, {kw}) stride=({sh}, {sw}) padding=({ph}, {pw}) "
            f"dilation=({dh}, {dw}): the last window starts past the input")
    return 0


def im2col(const floating[:, :, :, ::1] x,   # IN  (N, C, H, W)
           floating[:, :, ::1] cols,          # OUT (N, C*KH*KW, OH*OW)
           Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw,
           Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t dh, Py_ssize_t dw,
           Py_ssize_t oh, Py_ssize_t ow, int n_threads=1):
    cdef Py_ssize_t b, n = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3]
    _check_geometry(kh, kw, sh, sw, ph, pw, dh, dw)
    _check_axis("im2col", "H", h, kh, sh, ph, dh, oh)
    _check_axis("im2col", "W", w, kw, sw, pw, dw, ow)
    # the kernel reads only taps inside the plane (pycnn_valid_range) and writes
    # C*KH*KW rows of OH*OW columns per image: `cols` must hold exactly that
    rows = _mul("im2col: C*KH*KW", _mul("im2col: C*KH", c, kh), kw)
    blocks = _mul("im2col: OH*OW", oh, ow)
    if cols.shape[0] != n or cols.shape[1] != rows or cols.shape[2] != blocks:
        raise ValueError(f"im2col: `cols` has shape {(cols.shape[0], cols.shape[1], cols.shape[2])}, "
                         f"expected {(n, rows, blocks)}")
    if cols.size == 0:
        return
    if x.size == 0:                             # H or W is 0: every tap is padding
        cols[...] = 0                           # (and &x[0, 0, 0, 0] is out of bounds)
        return
    for b in prange(n, nogil=True, schedule="static", num_threads=max(n_threads, 1)):
        if floating is float:
            pycnn_im2col_f32(&x[b, 0, 0, 0], c, h, w, kh, kw, sh, sw, ph, pw, dh, dw,
                             oh, ow, &cols[b, 0, 0])
        else:
            pycnn_im2col_f64(&x[b, 0, 0, 0], c, h, w, kh, kw, sh, sw, ph, pw, dh, dw,
                             oh, ow, &cols[b, 0, 0])


def col2im(const floating[:, :, ::1] cols,    # IN  (N, C*KH*KW, OH*OW)
           floating[:, :, :, ::1] x,          # OUT (N, C, H, W), overwritten
           Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw,
           Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t dh, Py_ssize_t dw,
           Py_ssize_t oh, Py_ssize_t ow, int n_threads=1):
    cdef Py_ssize_t b, n = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3]
    _check_geometry(kh, kw, sh, sw, ph, pw, dh, dw)
    _check_axis("col2im", "H", h, kh, sh, ph, dh, oh)
    _check_axis("col2im", "W", w, kw, sw, pw, dw, ow)
    # the kernel reads only taps inside the plane (pycnn_valid_range) and writes
    # C*KH*KW rows of OH*OW columns per image: `cols` must hold exactly that
    rows = _mul("col2im: C*KH*KW", _mul("col2im: C*KH", c, kh), kw)
    blocks = _mul("col2im: OH*OW", oh, ow)
    if cols.shape[0] != n or cols.shape[1] != rows or cols.shape[2] != blocks:
        raise ValueError(f"col2im: `cols` has shape {(cols.shape[0], cols.shape[1], cols.shape[2])}, "
                         f"expected {(n, rows, blocks)}")
    if x.size == 0:
        return
    if cols.size == 0:                          # nothing to scatter: the image is zero
        x[...] = 0
        return
    # one image per iteration: scatter-adds of different images never touch the same memory
    for b in prange(n, nogil=True, schedule="static", num_threads=max(n_threads, 1)):
        if floating is float:
            pycnn_col2im_f32(&cols[b, 0, 0], c, h, w, kh, kw, sh, sw, ph, pw, dh, dw,
                             oh, ow, &x[b, 0, 0, 0])
        else:
            pycnn_col2im_f64(&cols[b, 0, 0], c, h, w, kh, kw, sh, sw, ph, pw, dh, dw,
                             oh, ow, &x[b, 0, 0, 0])


# Bytes of the direct kernel's vectors (csrc/conv_direct.h): a row narrower than two
# vectors of outputs runs one output at a time, so the plan (pycnn/_conv.py) reads it
# from here instead of restating the C constant.
DIRECT_VECTOR_BYTES = PYCNN_DIRECT_VECTOR_BYTES


include "_direct3x3.pxi"


def conv2d_direct(const floating[:, :, :, ::1] x,        # IN  (N, C, H, W), padded
                  const floating[:, :, :, ::1] weight,   # IN  (F, C/G, KH, KW)
                  const floating[::1] bias,              # IN  (F,), or None
                  floating[:, :, :, ::1] out,            # OUT (N, F, OH, OW)
                  Py_ssize_t groups, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t dh,
                  Py_ssize_t dw, int n_threads=1, bint relu=False):
    """The direct convolution of padded images (csrc/conv_direct.c), then with `relu`
    max(out, 0) as relu_forward computes it. 3x3 windows at stride 1 without dilation
    or groups, in float32 on AVX2 with rows of 16 outputs or more, go to
    `pycnn_direct3x3_f32_avx2` (_direct3x3.pxi), the ReLU in its pass; the same bits."""
    cdef Py_ssize_t b, i, n = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3]
    cdef Py_ssize_t f = weight.shape[0], kh = weight.shape[2], kw = weight.shape[3]
    cdef Py_ssize_t oh = out.shape[2], ow = out.shape[3]
    cdef const floating *bias_ptr = NULL
    cdef floating *po
    cdef floating v
    cdef bint fast = (floating is float and PYCNN_DIRECT3_AVX2 and groups == 1 and kh == 3
                      and kw == 3 and sh == 1 and sw == 1 and dh == 1 and dw == 1
                      and ow >= 16 and pycnn_isa_active() >= 1)
    _check_geometry(kh, kw, sh, sw, 0, 0, dh, dw)
    if (groups < 1 or c % groups or f % groups or _mul_overflows(weight.shape[1], groups)
            or weight.shape[1] * groups != c):
        raise ValueError(f"conv2d_direct: weight {tuple(weight.shape)[:4]} does not fit "
                         f"{c} input channels in {groups} groups")
    # no bounds test in the kernel: every tap of every window must lie inside x
    reach_h = _check_axis("conv2d_direct", "H", h, kh, sh, 0, dh, oh)
    reach_w = _check_axis("conv2d_direct", "W", w, kw, sw, 0, dw, ow)
    if (out.shape[0] != n or out.shape[1] != f or (oh > 0 and reach_h >= h)
            or (ow > 0 and reach_w >= w)):
        raise ValueError(f"conv2d_direct: `out` of shape {tuple(out.shape)[:4]} does not "
                         f"fit input {(n, c, h, w)} and weight {tuple(weight.shape)[:4]} "
                         f"with stride ({sh}, {sw}) and dilation ({dh}, {dw})")
    if bias is not None:
        if bias.shape[0] != f:
            raise ValueError(f"conv2d_direct: `bias` has {bias.shape[0]} entries, expected {f}")
        if f:
            bias_ptr = &bias[0]
    if out.size == 0:
        return
    if x.size == 0 or weight.size == 0:
        raise ValueError("conv2d_direct: empty input with a non-empty output")
    for b in prange(n, nogil=True, schedule="static", num_threads=max(n_threads, 1)):
        if floating is float:
            if fast:
                pycnn_direct3x3_f32_avx2(&x[b, 0, 0, 0], c, h, w, &weight[0, 0, 0, 0], f,
                                         bias_ptr, oh, ow, &out[b, 0, 0, 0], relu)
                continue
            pycnn_conv2d_direct_f32(&x[b, 0, 0, 0], c, h, w, &weight[0, 0, 0, 0], f,
                                    groups, kh, kw, sh, sw, dh, dw, oh, ow, bias_ptr,
                                    &out[b, 0, 0, 0])
        else:
            pycnn_conv2d_direct_f64(&x[b, 0, 0, 0], c, h, w, &weight[0, 0, 0, 0], f,
                                    groups, kh, kw, sh, sw, dh, dw, oh, ow, bias_ptr,
                                    &out[b, 0, 0, 0])
        if relu:
            po = &out[b, 0, 0, 0]
            for i in range(f * oh * ow):
                v = po[i]
                po[i] = 0 if v <= 0 else v


# --- pooling: one (H, W) plane per kernel call, planes in parallel ------------------
# The Python layer reshapes (N, C, H, W) to (N*C, H, W). The kernels clip every window
# to the plane, so reads stay in bounds for any geometry whose arithmetic cannot
# overflow; these wrappers check that, and that the arrays agree with each other and
# with the geometry (_check_pool_out), which is what protects the writes.


def max_pool2d_forward(const floating[:, :, ::1] x,     # IN  (P, H, W)
                       floating[:, :, ::1] out,         # OUT (P, OH, OW)
                       int64_t[:, :, ::1] indices,      # OUT (P, OH, OW), or None
                       Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw,
                       Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t dh, Py_ssize_t dw,
                       int n_threads=1):
    cdef Py_ssize_t b, n = x.shape[0], h = x.shape[1], w = x.shape[2]
    cdef Py_ssize_t oh = out.shape[1], ow = out.shape[2]
    cdef bint with_indices = indices is not None
    cdef int64_t *ind = NULL
    _check_geometry(kh, kw, sh, sw, ph, pw, dh, dw)
    _check_pool_out("max_pool2d: `out`", n, out.shape[0], h, w, oh, ow, kh, kw, sh, sw,
                    ph, pw, dh, dw)
    if with_indices and (indices.shape[0], indices.shape[1], indices.shape[2]) != (n, oh, ow):
        raise ValueError(f"max_pool2d: `indices` has shape {tuple(indices.shape)[:3]}, "
                         f"expected {(n, oh, ow)} like `out`")
    if out.size == 0:
        return
    if x.size == 0:                             # no input pixel in any window (H or W
        out[...] = -INFINITY                    # is 0): what the kernel gives such a
        if with_indices:                        # window; &x[0, 0, 0] is out of bounds
            indices[...] = -1
        return
    for b in prange(n, nogil=True, schedule="static", num_threads=max(n_threads, 1)):
        ind = &indices[b, 0, 0] if with_indices else NULL
        if floating is float:
            pycnn_max_pool2d_forward_f32(&x[b, 0, 0], h, w, kh, kw, sh, sw, ph, pw, dh, dw,
                                         oh, ow, &out[b, 0, 0], ind)
        else:
            pycnn_max_pool2d_forward_f64(&x[b, 0, 0], h, w, kh, kw, sh, sw, ph, pw, dh, dw,
                                         oh, ow, &out[b, 0, 0], ind)


def max_pool2d_backward(const floating[:, :, ::1] grad_out,   # IN  (P, OH, OW)
                        const int64_t[:, :, ::1] indices,     # IN  (P, OH, OW)
                        floating[:, :, ::1] grad_x,           # OUT (P, H, W), overwritten
                        int n_threads=1):
    """Scatter grad_out into grad_x through indices; return how many indices were
    outside [0, H*W) (skipped: the caller raises)."""
    cdef Py_ssize_t b, n = grad_x.shape[0], h = grad_x.shape[1], w = grad_x.shape[2]
    cdef Py_ssize_t oh = grad_out.shape[1], ow = grad_out.shape[2]
    cdef Py_ssize_t bad = 0
    # the kernel reads OH*OW gradients and indices per plane and writes only at indices
    # inside [0, H*W): the planes must agree, and indices have grad_out's shape
    if grad_out.shape[0] != n:
        raise ValueError(f"max_pool2d_backward: `grad_out` has {grad_out.shape[0]} planes, "
                         f"expected {n} like `grad_x`")
    if (indices.shape[0], indices.shape[1], indices.shape[2]) != (n, oh, ow):
        raise ValueError(f"max_pool2d_backward: `indices` has shape "
                         f"{tuple(indices.shape)[:3]}, expected {(n, oh, ow)} like `grad_out`")
    if grad_x.size == 0:
        return 0
    if grad_out.size == 0:                      # nothing to scatter
        grad_x[...] = 0
        return 0
    # one plane per iteration: the scatter-adds of different planes never meet
    for b in prange(n, nogil=True, schedule="static", num_threads=max(n_threads, 1)):
        if floating is float:
            bad += pycnn_max_pool2d_backward_f32(&grad_out[b, 0, 0], &indices[b, 0, 0],
                                                 h, w, oh, ow, &grad_x[b, 0, 0])
        else:
            bad += pycnn_max_pool2d_backward_f64(&grad_out[b, 0, 0], &indices[b, 0, 0],
                                                 h, w, oh, ow, &grad_x[b, 0, 0])
    return bad


def avg_pool2d_forward(const floating[:, :, ::1] x,     # IN  (P, H, W)
                       floating[:, :, ::1] out,         # OUT (P, OH, OW)
                       Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw,
                       Py_ssize_t ph, Py_ssize_t pw, bint count_include_pad,
                       Py_ssize_t divisor_override, int n_threads=1):
    """divisor_override: 0 for none."""
    cdef Py_ssize_t b, n = x.shape[0], h = x.shape[1], w = x.shape[2]
    cdef Py_ssize_t oh = out.shape[1], ow = out.shape[2]
    _check_geometry(kh, kw, sh, sw, ph, pw, 1, 1)
    _check_pool_out("avg_pool2d: `out`", n, out.shape[0], h, w, oh, ow, kh, kw, sh, sw,
                    ph, pw, 1, 1)
    _mul("avg_pool2d: the window size KH*KW", kh, kw)       # divisors are products
    if out.size == 0:
        return
    if x.size == 0:                             # no input pixel: the kernel writes 0
        out[...] = 0
        return
    for b in prange(n, nogil=True, schedule="static", num_threads=max(n_threads, 1)):
        if floating is float:
            pycnn_avg_pool2d_forward_f32(&x[b, 0, 0], h, w, kh, kw, sh, sw, ph, pw, oh, ow,
                                         count_include_pad, divisor_override, &out[b, 0, 0])
        else:
            pycnn_avg_pool2d_forward_f64(&x[b, 0, 0], h, w, kh, kw, sh, sw, ph, pw, oh, ow,
                                         count_include_pad, divisor_override, &out[b, 0, 0])


def avg_pool2d_backward(const floating[:, :, ::1] grad_out,   # IN  (P, OH, OW)
                        floating[:, :, ::1] grad_x,           # OUT (P, H, W), overwritten
                        Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw,
                        Py_ssize_t ph, Py_ssize_t pw, bint count_include_pad,
                        Py_ssize_t divisor_override, int n_threads=1):
    cdef Py_ssize_t b, n = grad_x.shape[0], h = grad_x.shape[1], w = grad_x.shape[2]
    cdef Py_ssize_t oh = grad_out.shape[1], ow = grad_out.shape[2]
    _check_geometry(kh, kw, sh, sw, ph, pw, 1, 1)
    _check_pool_out("avg_pool2d_backward: `grad_out`", n, grad_out.shape[0], h, w, oh, ow,
                    kh, kw, sh, sw, ph, pw, 1, 1)
    _mul("avg_pool2d_backward: the window size KH*KW", kh, kw)
    if grad_x.size == 0:
        return
    if grad_out.size == 0:
        grad_x[...] = 0
        return
    for b in prange(n, nogil=True, schedule="static", num_threads=max(n_threads, 1)):
        if floating is float:
            pycnn_avg_pool2d_backward_f32(&grad_out[b, 0, 0], h, w, kh, kw, sh, sw, ph, pw,
                                          oh, ow, count_include_pad, divisor_override,
                                          &grad_x[b, 0, 0])
        else:
            pycnn_avg_pool2d_backward_f64(&grad_out[b, 0, 0], h, w, kh, kw, sh, sw, ph, pw,
                                          oh, ow, count_include_pad, divisor_override,
                                          &grad_x[b, 0, 0])


# --- element-wise passes: ReLU and batch norm ---------------------------------------
# Plain loops, without a csrc/ kernel: memory-bound passes that the compiler vectorises
# as they are. Each call covers one range (flat elements, or channels [c_lo, c_hi) of a
# C-contiguous (N, C, M) array); pycnn/_eltwise.py spreads the ranges over pycnn's
# threads. The per-channel sums run over one channel in a fixed order, so the results
# do not depend on how the channels are split.


cdef int _check_channels(str name, Py_ssize_t c, Py_ssize_t c_lo,
                         Py_ssize_t c_hi) except -1:
    if not 0 <= c_lo <= c_hi <= c:
        raise ValueError(f"{name}: channel range [{c_lo}, {c_hi}) is not inside [0, {c})")
    return 0


cdef int _check_vector(str name, str what, Py_ssize_t got, Py_ssize_t c) except -1:
    if got != c:
        raise ValueError(f"{name}: `{what}` has {got} entries, expected {c}")
    return 0


cdef int _check_pair(str name, str a, bint has_a, Py_ssize_t len_a, str b, bint has_b,
                     Py_ssize_t len_b, Py_ssize_t c) except -1:
    """Optional vectors `a` and `b` (given or not, their lengths): both, with `c`
    entries each, or neither."""
    if has_a != has_b:
        raise ValueError(f"{name}: give both `{a}` and `{b}` or neither")
    if has_a:
        _check_vector(name, a, len_a, c)
        _check_vector(name, b, len_b, c)
    return 0


cdef int _check_like(str name, str what, Py_ssize_t n, Py_ssize_t c, Py_ssize_t m,
                     Py_ssize_t n_x, Py_ssize_t c_x, Py_ssize_t m_x) except -1:
    if (n, c, m) != (n_x, c_x, m_x):
        raise ValueError(f"{name}: `{what}` has shape {(n, c, m)}, expected "
                         f"{(n_x, c_x, m_x)}")
    return 0


def relu_forward(const floating[::1] x,     # IN  (P,)
                 floating[::1] out):        # OUT (P,)
    """out = x where x > 0, else 0; NaN passes through, as in np.maximum(x, 0)."""
    cdef Py_ssize_t i, n = x.shape[0]
    cdef const floating *px
    cdef floating *po
    cdef floating v
    if out.shape[0] != n:
        raise ValueError(f"relu_forward: `out` has {out.shape[0]} entries, expected {n}")
    if n == 0:
        return
    px, po = &x[0], &out[0]
    with nogil:
        for i in range(n):
            v = px[i]
            po[i] = 0 if v <= 0 else v


def bias_relu(floating[:, :, ::1] out,       # IN/OUT (P, F, L)
              const floating[::1] bias,      # IN  (F,), or None
              bint relu,
              const floating[:, :, ::1] residual=None):  # IN (P, F, L), or None
    """out += bias per channel (axis 1), then out += residual, then (with `relu`)
    out = max(out, 0) as relu_forward computes it: a convolution's epilogue in one pass
    over its output (with `residual`, a residual block's sum and ReLU too)."""
    cdef Py_ssize_t b, ch, i, n = out.shape[0], f = out.shape[1], m = out.shape[2]
    cdef bint add = bias is not None, has_res = residual is not None
    cdef floating beta = 0, v
    cdef floating *po
    cdef const floating *pr
    if add:
        _check_vector("bias_relu", "bias", bias.shape[0], f)
    if has_res and (residual.shape[0] != n or residual.shape[1] != f
                    or residual.shape[2] != m):
        raise ValueError(f"bias_relu: `residual` has shape ({residual.shape[0]}, "
                         f"{residual.shape[1]}, {residual.shape[2]}), expected "
                         f"({n}, {f}, {m}) like `out`")
    if n * f * m == 0 or not (add or relu or has_res):
        return
    with nogil:
        for b in range(n):
            for ch in range(f):
                po = &out[b, ch, 0]
                if add:
                    beta = bias[ch]
                if has_res:  # bias (when there is one), then the residual, then ReLU
                    pr = &residual[b, ch, 0]
                    if add:
                        for i in range(m):
                            po[i] = po[i] + beta
                    if relu:
                        for i in range(m):
                            v = po[i] + pr[i]
                            po[i] = 0 if v <= 0 else v
                    else:
                        for i in range(m):
                            po[i] = po[i] + pr[i]
                elif add and relu:
                    for i in range(m):
                        v = po[i] + beta
                        po[i] = 0 if v <= 0 else v
                elif add:
                    for i in range(m):
                        po[i] = po[i] + beta
                else:
                    for i in range(m):
                        v = po[i]
                        po[i] = 0 if v <= 0 else v


cdef extern from *:
    """
    /* the mean of m values at row, summed in double as 8 running sums (of the values
       at i % 8 == k), added ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7)): eight
       independent chains of additions, where one chain waits on each addition */
    #define PYCNN_DEFINE_ROW_MEAN(T, SFX)                                                \
    static double pycnn_row_mean_##SFX(const T *row, Py_ssize_t m)                      \
    {                                                                                   \
        double s[8] = {0, 0, 0, 0, 0, 0, 0, 0};                                         \
        Py_ssize_t i = 0;                                                               \
        for (; i + 8 <= m; i += 8)                                                      \
            for (int k = 0; k < 8; k++)                                                 \
                s[k] += row[i + k];                                                     \
        for (; i < m; i++)                                                              \
            s[i % 8] += row[i];                                                         \
        return (((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]))) / m; \
    }
    PYCNN_DEFINE_ROW_MEAN(float, f32)
    PYCNN_DEFINE_ROW_MEAN(double, f64)
    """
    double pycnn_row_mean_f32(const float *row, Py_ssize_t m) noexcept nogil
    double pycnn_row_mean_f64(const double *row, Py_ssize_t m) noexcept nogil


def plane_means(const floating[:, ::1] x,    # IN  (P, M)
                floating[::1] out):          # OUT (P,)
    """out[p] = the mean of row p of x, its sum taken in double (`pycnn_row_mean`):
    global average pooling, one plane a row."""
    cdef Py_ssize_t p, n = x.shape[0], m = x.shape[1]
    if out.shape[0] != n:
        raise ValueError(f"plane_means: `out` has {out.shape[0]} entries, expected {n}")
    if m == 0:
        raise ValueError("plane_means: rows of no values have no mean")
    with nogil:
        for p in range(n):
            if floating is float:
                out[p] = <float>pycnn_row_mean_f32(&x[p, 0], m)
            else:
                out[p] = pycnn_row_mean_f64(&x[p, 0], m)


def add_relu(const floating[::1] a,     # IN  (P,)
             const floating[::1] b,     # IN  (P,)
             floating[::1] out):        # OUT (P,), may be a or b
    """out = max(a + b, 0) as relu_forward computes it on a + b, in one pass: a
    residual block's sum and the ReLU after it."""
    cdef Py_ssize_t i, n = a.shape[0]
    cdef const floating *pa
    cdef const floating *pb
    cdef floating *po
    cdef floating v
    if b.shape[0] != n or out.shape[0] != n:
        raise ValueError(f"add_relu: `b` has {b.shape[0]} and `out` {out.shape[0]} "
                         f"entries, expected {n} like `a`")
    if n == 0:
        return
    pa, pb, po = &a[0], &b[0], &out[0]
    with nogil:
        for i in range(n):
            v = pa[i] + pb[i]
            po[i] = 0 if v <= 0 else v


def relu_backward(const floating[::1] grad,   # IN  (P,)
                  const floating[::1] x,      # IN  (P,) the forward input or output
                  floating[::1] dx):          # OUT (P,)
    """dx = grad where x > 0, else 0 (NaN x too), as np.where(x > 0, grad, 0). The
    forward's output is > 0 exactly where its input is, so either can be `x`."""
    cdef Py_ssize_t i, n = grad.shape[0]
    cdef const floating *pg
    cdef const floating *px
    cdef floating *pd
    cdef floating g
    if x.shape[0] != n or dx.shape[0] != n:
        raise ValueError(f"relu_backward: `x` has {x.shape[0]} and `dx` {dx.shape[0]} "
                         f"entries, expected {n} like `grad`")
    if n == 0:
        return
    pg, px, pd = &grad[0], &x[0], &dx[0]
    with nogil:
        for i in range(n):
            g = pg[i]                   # read unconditionally: the compiler can then
            pd[i] = g if px[i] > 0 else 0   # select instead of branching (4x faster)


# The sums below keep eight accumulators, each summing every eighth value: the compiler
# turns them into four chains of two-lane double vectors, where one accumulator would
# wait on each add in turn (and it may not reorder floating-point sums itself). The
# order is fixed by the code, so the result does not depend on the build's instruction
# set. Each loop computes one sum: two sums in one loop were not vectorised (gcc 12).


cdef inline double _sum(const floating *p, Py_ssize_t m) noexcept nogil:
    """Sum of p[0:m] in double."""
    cdef double s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0
    cdef Py_ssize_t i = 0
    while i + 8 <= m:
        s0 += p[i]
        s1 += p[i + 1]
        s2 += p[i + 2]
        s3 += p[i + 3]
        s4 += p[i + 4]
        s5 += p[i + 5]
        s6 += p[i + 6]
        s7 += p[i + 7]
        i += 8
    while i < m:
        s0 += p[i]
        i += 1
    return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))


cdef inline double _sum_sq_dev(const floating *p, Py_ssize_t m, double mu) noexcept nogil:
    """Sum of (p[i] - mu)**2 over p[0:m] in double."""
    cdef double s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0
    cdef Py_ssize_t i = 0
    while i + 8 <= m:
        s0 += (p[i] - mu) * (p[i] - mu)
        s1 += (p[i + 1] - mu) * (p[i + 1] - mu)
        s2 += (p[i + 2] - mu) * (p[i + 2] - mu)
        s3 += (p[i + 3] - mu) * (p[i + 3] - mu)
        s4 += (p[i + 4] - mu) * (p[i + 4] - mu)
        s5 += (p[i + 5] - mu) * (p[i + 5] - mu)
        s6 += (p[i + 6] - mu) * (p[i + 6] - mu)
        s7 += (p[i + 7] - mu) * (p[i + 7] - mu)
        i += 8
    while i < m:
        s0 += (p[i] - mu) * (p[i] - mu)
        i += 1
    return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))


cdef inline double _sum_g_xhat(const floating *g, const floating *x, Py_ssize_t m,
                               floating mu, floating s) noexcept nogil:
    """Sum of g[i] * xhat[i] over [0, m) in double, xhat = (x - mu) * s computed in x's
    dtype as the forward computed it."""
    cdef double s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0
    cdef Py_ssize_t i = 0
    while i + 8 <= m:
        s0 += <double>g[i] * <double>((x[i] - mu) * s)
        s1 += <double>g[i + 1] * <double>((x[i + 1] - mu) * s)
        s2 += <double>g[i + 2] * <double>((x[i + 2] - mu) * s)
        s3 += <double>g[i + 3] * <double>((x[i + 3] - mu) * s)
        s4 += <double>g[i + 4] * <double>((x[i + 4] - mu) * s)
        s5 += <double>g[i + 5] * <double>((x[i + 5] - mu) * s)
        s6 += <double>g[i + 6] * <double>((x[i + 6] - mu) * s)
        s7 += <double>g[i + 7] * <double>((x[i + 7] - mu) * s)
        i += 8
    while i < m:
        s0 += <double>g[i] * <double>((x[i] - mu) * s)
        i += 1
    return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))


def batch_norm_stats(const floating[:, :, ::1] x,   # IN  (N, C, M)
                     double[::1] mean,              # OUT (C,) entries [c_lo, c_hi)
                     double[::1] m2,                # OUT (C,) entries [c_lo, c_hi)
                     Py_ssize_t c_lo, Py_ssize_t c_hi):
    """Per-channel mean and sum of squared deviations from it, over N and M, in double:
    two passes (the mean, then the deviations), which loses nothing to cancellation."""
    cdef Py_ssize_t b, ch, n = x.shape[0], c = x.shape[1], m = x.shape[2]
    cdef double s, mu
    _check_channels("batch_norm_stats", c, c_lo, c_hi)
    _check_vector("batch_norm_stats", "mean", mean.shape[0], c)
    _check_vector("batch_norm_stats", "m2", m2.shape[0], c)
    if n * m == 0:
        raise ValueError("batch_norm_stats: no values per channel")
    with nogil:
        for ch in range(c_lo, c_hi):
            s = 0
            for b in range(n):
                s += _sum(&x[b, ch, 0], m)
            mu = s / (n * m)
            s = 0
            for b in range(n):
                s += _sum_sq_dev(&x[b, ch, 0], m, mu)
            mean[ch] = mu
            m2[ch] = s


def batch_norm_forward(const floating[:, :, ::1] x,    # IN  (N, C, M)
                       const floating[::1] mean,       # IN  (C,)
                       const floating[::1] inv_std,    # IN  (C,)
                       const floating[::1] weight,     # IN  (C,), or None
                       const floating[::1] bias,       # IN  (C,), or None
                       floating[:, :, ::1] out,        # OUT (N, C, M)
                       Py_ssize_t c_lo, Py_ssize_t c_hi, bint relu=False):
    """out = (x - mean) * inv_std * weight + bias per channel, in x's dtype, as NumPy
    computes it (without weight and bias: the normalised x); with `relu`, then
    max(out, 0) as relu_forward computes it, in the same pass."""
    cdef Py_ssize_t b, ch, i, n = x.shape[0], c = x.shape[1], m = x.shape[2]
    cdef bint affine = weight is not None
    cdef floating mu, s, w, beta, v
    cdef const floating *px
    cdef floating *po
    _check_channels("batch_norm_forward", c, c_lo, c_hi)
    _check_like("batch_norm_forward", "out", out.shape[0], out.shape[1], out.shape[2],
                n, c, m)
    _check_vector("batch_norm_forward", "mean", mean.shape[0], c)
    _check_vector("batch_norm_forward", "inv_std", inv_std.shape[0], c)
    _check_pair("batch_norm_forward", "weight", affine, weight.shape[0] if affine else 0,
                "bias", bias is not None, bias.shape[0] if bias is not None else 0, c)
    if n * m == 0:
        return
    with nogil:
        for ch in range(c_lo, c_hi):
            mu, s = mean[ch], inv_std[ch]
            for b in range(n):
                px, po = &x[b, ch, 0], &out[b, ch, 0]
                if affine:
                    w, beta = weight[ch], bias[ch]
                    if relu:
                        for i in range(m):
                            v = (px[i] - mu) * s * w + beta
                            po[i] = 0 if v <= 0 else v
                    else:
                        for i in range(m):
                            po[i] = (px[i] - mu) * s * w + beta
                elif relu:
                    for i in range(m):
                        v = (px[i] - mu) * s
                        po[i] = 0 if v <= 0 else v
                else:
                    for i in range(m):
                        po[i] = (px[i] - mu) * s


def batch_norm_grad_sums(const floating[:, :, ::1] grad,   # IN  (N, C, M)
                         const floating[:, :, ::1] x,      # IN  (N, C, M)
                         const floating[::1] mean,         # IN  (C,)
                         const floating[::1] inv_std,      # IN  (C,)
                         double[::1] sum_g,                # OUT (C,) entries [c_lo, c_hi)
                         double[::1] sum_gx,               # OUT (C,) entries [c_lo, c_hi)
                         Py_ssize_t c_lo, Py_ssize_t c_hi):
    """Per-channel sums of grad and grad * xhat over N and M, in double, with
    xhat = (x - mean) * inv_std recomputed as the forward computed it."""
    cdef Py_ssize_t b, ch, n = x.shape[0], c = x.shape[1], m = x.shape[2]
    cdef double sg, sgx
    cdef floating mu, s
    _check_channels("batch_norm_grad_sums", c, c_lo, c_hi)
    _check_like("batch_norm_grad_sums", "grad", grad.shape[0], grad.shape[1],
                grad.shape[2], n, c, m)
    _check_vector("batch_norm_grad_sums", "mean", mean.shape[0], c)
    _check_vector("batch_norm_grad_sums", "inv_std", inv_std.shape[0], c)
    _check_vector("batch_norm_grad_sums", "sum_g", sum_g.shape[0], c)
    _check_vector("batch_norm_grad_sums", "sum_gx", sum_gx.shape[0], c)
    if n * m == 0:
        sum_g[c_lo:c_hi] = 0
        sum_gx[c_lo:c_hi] = 0
        return
    with nogil:
        for ch in range(c_lo, c_hi):
            mu, s = mean[ch], inv_std[ch]
            sg = sgx = 0
            for b in range(n):
                sg += _sum(&grad[b, ch, 0], m)
                sgx += _sum_g_xhat(&grad[b, ch, 0], &x[b, ch, 0], m, mu, s)
            sum_g[ch] = sg
            sum_gx[ch] = sgx


def batch_norm_backward(const floating[:, :, ::1] grad,   # IN  (N, C, M)
                        const floating[:, :, ::1] x,      # IN  (N, C, M)
                        const floating[::1] mean,         # IN  (C,)
                        const floating[::1] inv_std,      # IN  (C,)
                        const floating[::1] weight,       # IN  (C,), or None
                        const floating[::1] mean_g,       # IN  (C,), or None
                        const floating[::1] mean_gx,      # IN  (C,), or None
                        floating[:, :, ::1] dx,           # OUT (N, C, M)
                        Py_ssize_t c_lo, Py_ssize_t c_hi):
    """dx of batch norm, with dxhat = grad * weight (grad without weight). Training
    (the batch means of grad and grad * xhat given): dx = (dxhat - weight * mean_g -
    xhat * (weight * mean_gx)) * inv_std, xhat recomputed as the forward computed it;
    eval (both None): dx = dxhat * inv_std."""
    cdef Py_ssize_t b, ch, i, n = x.shape[0], c = x.shape[1], m = x.shape[2]
    cdef bint affine = weight is not None, training = mean_g is not None
    cdef floating mu, s, w, a = 0, k = 0
    cdef const floating *pg
    cdef const floating *px
    cdef floating *pd
    _check_channels("batch_norm_backward", c, c_lo, c_hi)
    _check_like("batch_norm_backward", "grad", grad.shape[0], grad.shape[1],
                grad.shape[2], n, c, m)
    _check_like("batch_norm_backward", "dx", dx.shape[0], dx.shape[1], dx.shape[2],
                n, c, m)
    _check_vector("batch_norm_backward", "mean", mean.shape[0], c)
    _check_vector("batch_norm_backward", "inv_std", inv_std.shape[0], c)
    if affine:
        _check_vector("batch_norm_backward", "weight", weight.shape[0], c)
    _check_pair("batch_norm_backward", "mean_g", training, mean_g.shape[0] if training else 0,
                "mean_gx", mean_gx is not None,
                mean_gx.shape[0] if mean_gx is not None else 0, c)
    if n * m == 0:
        return
    with nogil:
        for ch in range(c_lo, c_hi):
            mu, s = mean[ch], inv_std[ch]
            w = weight[ch] if affine else 1
            if training:
                a, k = w * mean_g[ch], w * mean_gx[ch]
            for b in range(n):
                pg, px, pd = &grad[b, ch, 0], &x[b, ch, 0], &dx[b, ch, 0]
                if training:
                    for i in range(m):
                        pd[i] = (pg[i] * w - a - (px[i] - mu) * s * k) * s
                elif affine:
                    for i in range(m):
                        pd[i] = pg[i] * w * s
                else:
                    for i in range(m):
                        pd[i] = pg[i] * s

cdef inline floating _exp(floating x) noexcept nogil:
    if floating is float:
        return expf(x)
    else:
        return exp(x)


cdef inline floating _log(floating x) noexcept nogil:
    if floating is float:
        return logf(x)
    else:
        return log(x)


def cross_entropy_labels(const floating[:, ::1] logits,   # IN  (N, C)
                         const int64_t[::1] labels,        # IN  (N,)
                         int64_t ignore_index,
                         floating[::1] loss,               # OUT (N,)
                         floating[:, ::1] grad):           # OUT (N, C)
    """Cross-entropy of each row of `logits` against its label, and the gradient of
    their sum: ``loss = log(sum(exp(z))) - z[label]`` and ``grad = softmax(z) -
    onehot(label)``, z the row less its maximum, the sum of exponentials taken in
    double; rows labelled `ignore_index` get 0 in both. Returns the number of rows
    counted, or -1 - i when label i (not ignored) is outside [0, C), having written
    nothing meaningful."""
    cdef Py_ssize_t i, j, n = logits.shape[0], c = logits.shape[1]
    cdef Py_ssize_t counted = 0, bad = -1
    cdef int64_t label
    cdef floating top, total_f
    cdef double total
    cdef const floating *z
    cdef floating *g
    if labels.shape[0] != n or loss.shape[0] != n:
        raise ValueError(f"cross_entropy_labels: `labels` has {labels.shape[0]} and "
                         f"`loss` {loss.shape[0]} entries, expected {n}")
    _check_like("cross_entropy_labels", "grad", grad.shape[0], grad.shape[1], 1, n, c, 1)
    if c == 0:
        raise ValueError("cross_entropy_labels: no classes")
    with nogil:
        for i in range(n):
            label = labels[i]
            g = &grad[i, 0]
            if label == ignore_index:
                loss[i] = 0
                for j in range(c):
                    g[j] = 0
                continue
            if label < 0 or label >= c:
                bad = i
                break
            z = &logits[i, 0]
            top = z[0]
            for j in range(1, c):
                if z[j] > top or z[j] != z[j]:  # a NaN wins, as in max()
                    top = z[j]
            total = 0
            for j in range(c):
                g[j] = _exp(z[j] - top)
                total += g[j]
            total_f = <floating>total
            for j in range(c):
                g[j] = g[j] / total_f
            g[label] -= 1
            loss[i] = _log(total_f) - (z[label] - top)
            counted += 1
    return -1 - bad if bad >= 0 else counted


cdef inline floating _sqrt(floating x) noexcept nogil:
    if floating is float:
        return sqrtf(x)
    else:
        return sqrt(x)


@cython.cdivision(True)
def batch_norm_statistics(const double[::1] mean,     # IN  (C,) the batch's mean
                          const double[::1] var,      # IN  (C,) its biased variance
                          floating[::1] running_mean,  # IN/OUT (C,), or None
                          floating[::1] running_var,   # IN/OUT (C,), or None
                          double momentum, double var_momentum, double eps,
                          floating[::1] mean_out,      # OUT (C,)
                          floating[::1] inv_std):      # OUT (C,)
    """A training forward's per-channel vectors in one call: `mean_out` and `var` rounded
    to the dtype, ``inv_std = 1 / sqrt(var + eps)``, and (unless None) the running
    statistics moved by `momentum` m, ``running_mean = running_mean * (1 - m) + m *
    mean`` and ``running_var = running_var * (1 - m) + var_momentum * var``. Each
    operation is rounded to the dtype as NumPy's in-place operations on those arrays
    round it (the scalars first rounded to the dtype), so the bits are NumPy's."""
    cdef Py_ssize_t ch, c = mean.shape[0]
    cdef bint running = running_mean is not None
    cdef floating mu, v, keep = <floating>(1 - momentum)
    cdef floating m = <floating>momentum, mv = <floating>var_momentum
    cdef floating e = <floating>eps, one = 1
    _check_vector("batch_norm_statistics", "var", var.shape[0], c)
    _check_vector("batch_norm_statistics", "mean_out", mean_out.shape[0], c)
    _check_vector("batch_norm_statistics", "inv_std", inv_std.shape[0], c)
    _check_pair("batch_norm_statistics", "running_mean", running,
                running_mean.shape[0] if running else 0, "running_var",
                running_var is not None,
                running_var.shape[0] if running_var is not None else 0, c)
    with nogil:
        for ch in range(c):
            mu, v = <floating>mean[ch], <floating>var[ch]
            mean_out[ch] = mu
            inv_std[ch] = one / _sqrt(v + e)
            if running:
                running_mean[ch] = running_mean[ch] * keep
                running_mean[ch] = running_mean[ch] + m * mu
                running_var[ch] = running_var[ch] * keep
                running_var[ch] = running_var[ch] + mv * v


include "_winograd_avx2.pxi"
include "_winograd.pxi"
include "_gather.pxi"
include "_matmul.pxi"
include "_winograd_forward.pxi"
include "_pool2x2.pxi"
