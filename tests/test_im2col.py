"""im2col / col2im: compiled vs reference, PyTorch's unfold/fold, the adjoint property."""

import numpy as np
import pytest
from conftest import assert_close
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from pycnn import functional, reference

# name: (N, C, H, W, kernel_size, stride, padding, dilation)
IM2COL_CASES = {
    "3x3": (2, 3, 6, 6, 3, 1, 0, 1),
    "non-square-kernel": (2, 2, 7, 9, (2, 4), 1, 0, 1),
    "unequal-strides-padding": (2, 3, 9, 10, 3, (2, 3), (1, 2), 1),
    "stride-not-dividing": (1, 2, 10, 10, 3, 4, 0, 1),
    "stride-gt-kernel": (2, 1, 11, 8, 2, 3, 0, 1),
    "kernel-equals-input": (2, 3, 5, 4, (5, 4), 1, 0, 1),
    "dilation": (2, 2, 9, 9, 3, 1, 2, (2, 3)),
    "padding-wider-than-kernel": (1, 2, 3, 4, 2, 2, 3, 1),
    "1x1": (2, 4, 5, 3, 1, 1, 0, 1),
}
cases = pytest.mark.parametrize("case", IM2COL_CASES.values(), ids=IM2COL_CASES.keys())


def _args(case):
    n, c, h, w, k, s, p, d = case
    return (n, c, h, w), dict(kernel_size=k, stride=s, padding=p, dilation=d)


@cases
def test_im2col_and_col2im_agree(case, dtype, rng):
    shape, kw = _args(case)
    x = rng.standard_normal(shape).astype(dtype)
    cols = functional.im2col(x, **kw)
    want = reference.im2col(x, **kw)
    assert cols.shape == want.shape and cols.dtype == want.dtype == dtype
    np.testing.assert_array_equal(cols, want)  # a pure gather: exact
    y = rng.standard_normal(cols.shape).astype(dtype)
    back = functional.col2im(y, shape[2:], **kw)
    assert back.shape == shape and back.dtype == dtype
    assert_close(back, reference.col2im(y, shape[2:], **kw), dtype)


@cases
def test_im2col_and_col2im_match_torch(case, dtype, rng):
    torch = pytest.importorskip("torch")
    shape, kw = _args(case)
    x = rng.standard_normal(shape).astype(dtype)
    want = torch.nn.functional.unfold(torch.tensor(x), **kw).numpy()
    for impl in (functional, reference):
        np.testing.assert_array_equal(impl.im2col(x, **kw), want)
    y = rng.standard_normal(want.shape).astype(dtype)
    want = torch.nn.functional.fold(torch.tensor(y), shape[2:], **kw).numpy()
    for impl in (functional, reference):
        assert_close(impl.col2im(y, shape[2:], **kw), want, dtype)


def test_col2im_of_full_padding_counts_every_pixel_kh_kw_times(rng):
    x = rng.standard_normal((2, 3, 5, 7))
    for impl in (functional, reference):
        cols = impl.im2col(x, (3, 2), padding=(2, 1))
        assert_close(impl.col2im(cols, (5, 7), (3, 2), padding=(2, 1)), 6 * x, np.float64)


dims = st.integers(1, 3)


@settings(max_examples=60, deadline=None)
@given(
    n=dims,
    c=dims,
    h=st.integers(1, 7),
    w=st.integers(1, 7),
    kh=dims,
    kw=dims,
    sh=st.integers(1, 3),
    sw=st.integers(1, 3),
    ph=st.integers(0, 2),
    pw=st.integers(0, 2),
    dh=st.integers(1, 2),
    dw=st.integers(1, 2),
    seed=st.integers(0, 2**32 - 1),
)
def test_col2im_is_adjoint_of_im2col(n, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, seed):
    """<im2col(x), y> == <x, col2im(y)> for every geometry, and the output size formula."""
    oh = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    ow = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    assume(oh >= 1 and ow >= 1)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w))
    kwargs = dict(kernel_size=(kh, kw), stride=(sh, sw), padding=(ph, pw), dilation=(dh, dw))
    cols = functional.im2col(x, **kwargs)
    assert cols.shape == (n, c * kh * kw, oh * ow)
    y = rng.standard_normal(cols.shape)
    xt = functional.col2im(y, (h, w), **kwargs)
    assert np.isclose(np.vdot(cols, y), np.vdot(x, xt), rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(cols, reference.im2col(x, **kwargs))
