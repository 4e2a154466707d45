"""Thread settings of the compiled kernels.

pycnn's own kernels (pooling, standalone im2col/col2im) run over the images of a batch
on `get_num_threads()` OpenMP threads; convolutions run that many Python threads over
ranges of images, each with single-threaded BLAS (see `pycnn._parallel`). The default
is the number of CPUs this process may use, or the environment variable
PYCNN_NUM_THREADS.
"""

import os

_num_threads = None


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
