"""Thread settings of the compiled kernels, and the Winograd switch.

pycnn's own kernels (pooling, standalone im2col/col2im) run over the images of a batch
on `get_num_threads()` OpenMP threads; convolutions run that many Python threads over
ranges of images, each with single-threaded BLAS (see `pycnn._parallel`). The default
is the number of CPUs this process may use, or the environment variable
PYCNN_NUM_THREADS.

Stride-1 3x3 convolutions may run Winograd's F(4x4, 3x3) algorithm, which does a
quarter of the multiplications of im2col + GEMM but rounds more in float32 (see
`set_winograd`); it is on by default, or as the environment variable PYCNN_WINOGRAD
says (0 turns it off).
"""

import os

_num_threads = None
_winograd = None


def _default_num_threads():
    env = os.environ.get("PYCNN_NUM_THREADS", "").strip()
    if env:
        try:
            value = int(env)
        except ValueError:
            raise ValueError(
                "PYCNN_NUM_THREADS must be a positive integer. "
                f"Received: PYCNN_NUM_THREADS={env!r}"
            ) from None
        if value >= 1:
            return value
        raise ValueError(
            f"PYCNN_NUM_THREADS must be a positive integer. Received: PYCNN_NUM_THREADS={env!r}"
        )
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def get_num_threads():
    """Number of threads pycnn's compiled kernels use."""
    global _num_threads
    if _num_threads is None:
        _num_threads = _default_num_threads()
    return _num_threads


def set_num_threads(n):
    """Set the number of threads pycnn's compiled kernels and convolutions use.

    BLAS's own thread count is left as it is, except that pycnn's convolutions and
    `Linear` layers hold BLAS to one thread while they run (they spread their work
    over pycnn's threads instead).
    """
    global _num_threads
    from pycnn._validation import positive_int

    _num_threads = positive_int(n, "n")


def _default_winograd():
    """On, unless PYCNN_WINOGRAD says 0; a value it cannot read keeps the default with a
    RuntimeWarning (as PYCNN_SIMD does), rather than failing the first convolution."""
    env = os.environ.get("PYCNN_WINOGRAD", "").strip().lower()
    if env in ("", "1", "on", "yes", "true"):
        return True
    if env in ("0", "off", "no", "false"):
        return False
    import warnings

    warnings.warn(
        f"PYCNN_WINOGRAD must be 0 or 1; ignoring PYCNN_WINOGRAD={env!r}: Winograd stays on",
        RuntimeWarning,
        stacklevel=3,
    )
    return True


def get_winograd():
    """Whether stride-1 3x3 convolutions may use the Winograd algorithm."""
    global _winograd
    if _winograd is None:
        _winograd = _default_winograd()
    return _winograd


def set_winograd(enabled):
    """Allow (True, the default) or forbid (False) the Winograd path of convolutions.

    Where it measured faster (stride-1 3x3 convolutions of at least 16 input and output
    channels, 2 images and 16 4x4 output tiles an image; see
    `pycnn._conv._winograd_pays`), `conv2d`, its input gradient and the layers built
    on them compute with Winograd's F(4x4, 3x3) algorithm: a quarter of the
    multiplications of im2col + GEMM, 1.1-2.4x faster on the measured layers. Its float32
    rounding error is larger: on random normal data the largest error is about 3e-6 to
    1.3e-5 of the output's largest magnitude for 1 to 512 input channels, against 1e-7 to
    5e-7 for im2col (the tests hold it below 2e-5); float64 stays near 1e-14. Turn it
    off for the im2col path's results bit for bit. The environment variable
    PYCNN_WINOGRAD=0 sets the default to off. Plans made under the other setting are
    not reused.
    """
    global _winograd
    if not isinstance(enabled, bool):
        raise TypeError(f"`enabled` must be True or False. Received: enabled={enabled!r}")
    _winograd = enabled
