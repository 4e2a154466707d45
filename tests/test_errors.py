"""Bad input: the same TypeError/ValueError with the same message from every backend."""
import numpy as np
import pytest

from pycnn import functional, naive, reference

CONV_IMPLS = [functional, reference, naive]
IDS = ["compiled", "reference", "naive"]


def _conv_inputs(dtype=np.float32):
    x = np.zeros((2, 4, 6, 6), dtype)
    w = np.zeros((6, 2, 3, 3), dtype)
    b = np.zeros(6, dtype)
    return x, w, b


def _replace(**overrides):
    x, w, b = _conv_inputs()
    args = dict(x=x, weight=w, bias=b, stride=1, padding=0, dilation=1, groups=2)
    args.update(overrides)
    return args


CONV_ERRORS = {
    "x-list": (_replace(x=[[1.0]]), TypeError, r"`x` must be a numpy.ndarray. Received: x of type list"),
    "x-int": (_replace(x=np.zeros((2, 4, 6, 6), np.int64)), TypeError, r"`x` must have dtype float32 or float64. Received: x.dtype=int64"),
    "x-float16": (_replace(x=np.zeros((2, 4, 6, 6), np.float16)), TypeError, r"x.dtype=float16"),
    "x-complex": (_replace(x=np.zeros((2, 4, 6, 6), complex)), TypeError, r"x.dtype=complex128"),
    "mixed-dtypes": (_replace(weight=np.zeros((6, 2, 3, 3))), TypeError, r"`weight` must have the same dtype as `x` \(float32\). Received: weight.dtype=float64"),
    "bias-dtype": (_replace(bias=np.zeros(6)), TypeError, r"`bias` must have the same dtype as `x`"),
    "x-3d": (_replace(x=np.zeros((4, 6, 6), np.float32)), ValueError, r"`x` must be a 4-d array \(N, C, H, W\). Received: x.shape=\(4, 6, 6\)"),
    "weight-5d": (_replace(weight=np.zeros((6, 2, 3, 3, 1), np.float32)), ValueError, r"`weight` must be a 4-d array"),
    "channel-mismatch": (_replace(weight=np.zeros((6, 3, 3, 3), np.float32)), ValueError, r"`weight` must have C/groups = 2 input channels for x with C=4 and groups=2. Received: weight.shape=\(6, 3, 3, 3\)"),
    "groups-not-dividing-c": (_replace(groups=3, weight=np.zeros((6, 1, 3, 3), np.float32)), ValueError, r"`groups` must divide the input channels. Received: groups=3"),
    "groups-not-dividing-f": (_replace(weight=np.zeros((5, 2, 3, 3), np.float32), bias=None), ValueError, r"`groups` must divide the output channels"),
    "groups-zero": (_replace(groups=0), ValueError, r"`groups` must be >= 1. Received: groups=0"),
    "groups-float": (_replace(groups=2.0), TypeError, r"`groups` must be an int. Received: groups=2.0"),
    "bias-shape": (_replace(bias=np.zeros(5, np.float32)), ValueError, r"`bias` must have shape \(6,\), one value per filter. Received: bias.shape=\(5,\)"),
    "stride-zero": (_replace(stride=0), ValueError, r"`stride` must be >= 1. Received: stride=0"),
    "stride-negative-pair": (_replace(stride=(1, -2)), ValueError, r"`stride` must be >= 1. Received: stride=\(1, -2\)"),
    "stride-float": (_replace(stride=1.5), TypeError, r"`stride` must be an int or a pair of ints. Received: stride=1.5"),
    "stride-bool": (_replace(stride=True), TypeError, r"`stride` must be an int or a pair of ints. Received: stride=True"),
    "stride-triple": (_replace(stride=(1, 1, 1)), ValueError, r"`stride` must have 2 elements. Received: stride=\(1, 1, 1\)"),
    "dilation-zero": (_replace(dilation=(0, 1)), ValueError, r"`dilation` must be >= 1"),
    "padding-negative": (_replace(padding=-1), ValueError, r"`padding` must be >= 0. Received: padding=-1"),
    "padding-word": (_replace(padding="full"), ValueError, r"`padding` must be an int, a pair of ints, 'valid' or 'same'. Received: padding='full'"),
    "same-strided": (_replace(padding="same", stride=(1, 2)), ValueError, r"padding='same' is not supported for strided convolutions. Received: stride=\(1, 2\)"),
    "kernel-too-large": (_replace(weight=np.zeros((6, 2, 7, 3), np.float32)), ValueError, r"`kernel_size` \(dilated\) must not exceed the padded input size. Received: kernel_size=\(7, 3\), dilation=\(1, 1\) spans \(7, 3\), padded input is \(6, 6\)"),
    "dilated-kernel-too-large": (_replace(dilation=3), ValueError, r"spans \(7, 7\), padded input is \(6, 6\)"),
    "zero-channels": (_replace(x=np.zeros((2, 0, 6, 6), np.float32)), ValueError, r"`x` must have non-zero C, H and W"),
    "zero-width": (_replace(x=np.zeros((2, 4, 6, 0), np.float32)), ValueError, r"`x` must have non-zero C, H and W"),
}


@pytest.mark.parametrize("impl", CONV_IMPLS, ids=IDS)
@pytest.mark.parametrize("args, exc, match", CONV_ERRORS.values(), ids=CONV_ERRORS.keys())
def test_conv2d_rejects_bad_input(impl, args, exc, match):
    with pytest.raises(exc, match=match):
        impl.conv2d(**args)
    bwd = dict(args)
    bias = bwd.pop("bias")
    grad_out = np.zeros((2, 6, 4, 4), np.float32)
    if isinstance(bias, np.ndarray) and bias.dtype == np.float32 and bias.shape == (6,):
        with pytest.raises(exc, match=match):
            impl.conv2d_backward(grad_out, **bwd)


@pytest.mark.parametrize("args, exc, match", CONV_ERRORS.values(), ids=CONV_ERRORS.keys())
def test_every_backend_gives_the_same_message(args, exc, match):
    messages = set()
    for impl in CONV_IMPLS:
        with pytest.raises(exc) as info:
            impl.conv2d(**args)
        messages.add(str(info.value))
    assert len(messages) == 1, messages


@pytest.mark.parametrize("impl", CONV_IMPLS, ids=IDS)
@pytest.mark.parametrize("grad_out, exc, match", [
    (np.zeros((2, 6, 4, 5), np.float32), ValueError, r"`grad_out` must have the forward output's shape \(2, 6, 4, 4\). Received: grad_out.shape=\(2, 6, 4, 5\)"),
    (np.zeros((2, 6, 4, 4)), TypeError, r"`grad_out` must have the same dtype as `x` \(float32\)"),
    (np.zeros((6, 4, 4), np.float32), ValueError, r"`grad_out` must be a 4-d array"),
    ("grad", TypeError, r"`grad_out` must be a numpy.ndarray. Received: grad_out of type str"),
])
def test_conv2d_backward_rejects_bad_grad_out(impl, grad_out, exc, match):
    x, w, _ = _conv_inputs()
    with pytest.raises(exc, match=match):
        impl.conv2d_backward(grad_out, x, w, groups=2)


IM2COL_IMPLS = [functional, reference]


@pytest.mark.parametrize("impl", IM2COL_IMPLS, ids=IDS[:2])
@pytest.mark.parametrize("x, kwargs, exc, match", [
    (np.zeros((1, 2, 4, 4), np.int32), {}, TypeError, r"`x` must have dtype float32 or float64"),
    (np.zeros((2, 4, 4)), {}, ValueError, r"`x` must be a 4-d array"),
    (np.zeros((1, 2, 4, 4)), dict(kernel_size=5), ValueError, r"padded input is \(4, 4\)"),
    (np.zeros((1, 2, 4, 4)), dict(kernel_size=(2, 0)), ValueError, r"`kernel_size` must be >= 1"),
    (np.zeros((1, 2, 4, 4)), dict(padding="same"), TypeError, r"`padding` must be an int or a pair of ints"),
    (np.zeros((1, 2, 4, 4)), dict(stride=-1), ValueError, r"`stride` must be >= 1"),
])
def test_im2col_rejects_bad_input(impl, x, kwargs, exc, match):
    kwargs = {"kernel_size": 2, **kwargs}
    with pytest.raises(exc, match=match):
        impl.im2col(x, **kwargs)


@pytest.mark.parametrize("impl", IM2COL_IMPLS, ids=IDS[:2])
@pytest.mark.parametrize("cols, output_size, exc, match", [
    (np.zeros((1, 8, 9)), (4, 5), ValueError, r"`output_size` gives 3x4=12 blocks but `cols` has L=9 columns"),
    (np.zeros((1, 7, 9)), (4, 4), ValueError, r"`cols` must have C\*KH\*KW rows, a non-zero multiple of KH\*KW=4"),
    (np.zeros((8, 9)), (4, 4), ValueError, r"`cols` must be a 3-d array"),
    (np.zeros((1, 8, 9)), (0, 4), ValueError, r"`output_size` must be >= 1"),
    (np.zeros((1, 8, 9)), (1, 1), ValueError, r"must not exceed the padded input size"),
    (np.zeros((1, 8, 9), np.float16), (4, 4), TypeError, r"`cols` must have dtype float32 or float64"),
])
def test_col2im_rejects_bad_input(impl, cols, output_size, exc, match):
    with pytest.raises(exc, match=match):
        impl.col2im(cols, output_size, 2)
