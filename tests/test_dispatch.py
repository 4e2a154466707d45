"""Each runtime-dispatched instruction-set variant, forced on, agrees with the reference."""
import numpy as np
import pytest
from conftest import CONV_CASES, assert_close, make_conv

from pycnn import functional, reference
from pycnn._ext import _kernels


@pytest.fixture(params=_kernels.SIMD_TARGETS)
def simd(request):
    if request.param not in _kernels.simd_supported():
        pytest.skip(f"{request.param} is not supported on this CPU")
    before = _kernels.simd_target()
    assert _kernels.set_simd_target(request.param) == request.param
    yield request.param
    _kernels.set_simd_target(before)


@pytest.mark.parametrize("name", ["mixed", "same-even-dilated", "stride-not-dividing",
                                  "c1", "groups3"])
def test_conv2d_variant_matches_reference(simd, name, dtype, rng):
    x, w, b, kw = make_conv(CONV_CASES[name], dtype, rng)
    out = functional.conv2d(x, w, b, **kw)
    assert_close(out, reference.conv2d(x, w, b, **kw), dtype)
    g = rng.standard_normal(out.shape).astype(dtype)
    for got, want in zip(functional.conv2d_backward(g, x, w, **kw),
                         reference.conv2d_backward(g, x, w, **kw)):
        assert_close(got, want, dtype)


def test_im2col_variant_matches_reference(simd, dtype, rng):
    x = rng.standard_normal((3, 2, 11, 13)).astype(dtype)
    kwargs = dict(kernel_size=(3, 4), stride=(1, 2), padding=(2, 1), dilation=(2, 1))
    cols = functional.im2col(x, **kwargs)
    np.testing.assert_array_equal(cols, reference.im2col(x, **kwargs))
    assert_close(functional.col2im(cols, (11, 13), **kwargs),
                 reference.col2im(cols, (11, 13), **kwargs), dtype)


def test_best_variant_is_the_default():
    assert _kernels.simd_target() in _kernels.simd_supported()
    assert _kernels.simd_supported()[0] == "baseline"


def test_unknown_or_unsupported_variant_is_refused():
    before = _kernels.simd_target()
    with pytest.raises(ValueError, match="`name` must be one of"):
        _kernels.set_simd_target("sse9")
    assert _kernels.simd_target() == before
