"""Layer errors that point at the layer (issue 19, item 6): what the layer expected and
what it got, a hint for channels-last input and for a dtype mismatch, and, inside a
`Sequential` or a nested container, the layer's path and repr."""

import re

import numpy as np
import pytest

from pycnn import functional
from pycnn.layers import (
    BaseLayer,
    BatchNorm1d,
    BatchNorm2d,
    Concat,
    Conv2d,
    ConvTranspose2d,
    Flatten,
    GroupNorm,
    LayerNorm,
    Linear,
    ReLU,
    Residual,
)
from pycnn.model import Sequential

F32 = np.float32


def _message(fn, exc):
    with pytest.raises(exc) as info:
        fn()
    return str(info.value), info.value


def test_conv2d_wrong_channels_names_the_layer():
    layer = Conv2d(3, 16, 3)
    text, _ = _message(lambda: layer(np.zeros((8, 1, 28, 28), F32)), ValueError)
    assert text == (
        "Conv2d(3, 16, kernel_size=(3, 3)): expected input with 3 channels (N, 3, H, W); "
        "got x.shape=(8, 1, 28, 28)"
    )


def test_conv2d_channels_last_hint():
    layer = Conv2d(3, 16, 3)
    text, _ = _message(lambda: layer(np.zeros((8, 28, 28, 3), F32)), ValueError)
    assert text.endswith(
        "got x.shape=(8, 28, 28, 3); input looks channels-last: use x.transpose(0, 3, 1, 2)"
    )
    # the hint's fix works
    x = np.zeros((8, 28, 28, 3), F32)
    assert layer(x.transpose(0, 3, 1, 2)).shape == (8, 16, 26, 26)
    # no hint when the last axis is not the channel count
    text, _ = _message(lambda: layer(np.zeros((8, 1, 28, 28), F32)), ValueError)
    assert "channels-last" not in text


def test_conv2d_wrong_rank():
    text, _ = _message(lambda: Conv2d(1, 4, 3)(np.zeros((28, 28), F32)), ValueError)
    assert text == (
        "Conv2d(1, 4, kernel_size=(3, 3)): expected input with 1 channels (N, 1, H, W); "
        "got x.shape=(28, 28)"
    )


def test_float64_input_to_a_float32_layer_suggests_both_fixes():
    layer = Conv2d(1, 4, 3, rng=0)
    x = np.random.default_rng(0).standard_normal((2, 1, 6, 6))
    text, _ = _message(lambda: layer(x), TypeError)
    assert text.startswith(
        "Conv2d(1, 4, kernel_size=(3, 3)): expected float32 input (the dtype of the "
        "layer's parameters); got x.dtype=float64."
    )
    assert "model.to(np.float64)" in text and "x.astype(np.float32)" in text
    # both fixes work: the input cast, and the layer converted
    out32 = layer(x.astype(np.float32))
    assert out32.dtype == np.float32
    out64 = layer.to(np.float64)(x)
    assert out64.dtype == np.float64
    np.testing.assert_allclose(out64, out32, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "layer, x, exc, expected",
    [
        (
            Linear(4, 2),
            np.zeros((3, 5), F32),
            ValueError,
            "Linear(4, 2): expected input with in_features=4 on its last axis (*, 4); "
            "got x.shape=(3, 5)",
        ),
        (
            ConvTranspose2d(3, 2, 2),
            np.zeros((2, 5, 4, 4), F32),
            ValueError,
            "ConvTranspose2d(3, 2, kernel_size=(2, 2)): expected input with 3 channels "
            "(N, 3, H, W); got x.shape=(2, 5, 4, 4)",
        ),
        (
            BatchNorm2d(3),
            np.zeros((2, 5, 5, 3), F32),
            ValueError,
            "BatchNorm2d(3): expected input with num_features=3 channels (N, 3, H, W); "
            "got x.shape=(2, 5, 5, 3); input looks channels-last: use x.transpose(0, 3, 1, 2)",
        ),
        (
            BatchNorm1d(3),
            np.zeros((2, 4), F32),
            ValueError,
            "BatchNorm1d(3): expected input with num_features=3 channels (N, 3) or "
            "(N, 3, L); got x.shape=(2, 4)",
        ),
        (
            LayerNorm((4, 5)),
            np.zeros((2, 5, 4), F32),
            ValueError,
            "LayerNorm((4, 5)): expected input ending in normalized_shape=(4, 5) "
            "(*, 4, 5); got x.shape=(2, 5, 4)",
        ),
        (
            GroupNorm(2, 4),
            np.zeros((2, 6, 3), F32),
            ValueError,
            "GroupNorm(2, 4): expected input with num_channels=4 channels (N, 4, *); "
            "got x.shape=(2, 6, 3)",
        ),
    ],
)
def test_shape_errors_of_each_layer(layer, x, exc, expected):
    text, _ = _message(lambda: layer(x), exc)
    assert text == expected


@pytest.mark.parametrize(
    "layer, shape",
    [
        (Linear(4, 2), (3, 4)),
        (ConvTranspose2d(3, 2, 2), (2, 3, 4, 4)),
        (BatchNorm2d(3), (2, 3, 4, 4)),
        (LayerNorm(4), (2, 4)),
        (GroupNorm(2, 4), (2, 4, 3)),
    ],
)
def test_dtype_errors_of_each_layer(layer, shape):
    text, _ = _message(lambda: layer(np.zeros(shape)), TypeError)
    assert re.match(
        re.escape(repr(layer)) + r": expected float32 input .*; got x\.dtype=float64\. "
        r"Convert the model, model\.to\(np\.float64\), or the input, x\.astype\(np\.float32\)",
        text,
    )


def test_functional_messages_unchanged():
    # the functional ops keep their own messages (the ops table compares them)
    with pytest.raises(ValueError, match=r"^`weight` must have C/groups = 1 input channels"):
        functional.conv2d(np.zeros((1, 1, 5, 5), F32), np.zeros((2, 3, 3, 3), F32))


# --- Sequential and containers: the layer's path and repr ----------------------------------


def test_sequential_names_the_index_and_repr_and_chains_the_original():
    model = Sequential(Conv2d(1, 4, 3), ReLU(), Flatten(), Linear(5, 2))
    text, err = _message(lambda: model(np.zeros((2, 1, 8, 8), F32)), ValueError)
    assert text == (
        "layer 3 (Linear(5, 2)): expected input with in_features=5 on its last axis "
        "(*, 5); got x.shape=(2, 144)"
    )
    assert isinstance(err.__cause__, ValueError)
    assert str(err.__cause__) == (
        "Linear(5, 2): expected input with in_features=5 on its last axis (*, 5); "
        "got x.shape=(2, 144)"
    )


def test_sequential_keeps_the_exception_type():
    model = Sequential(Conv2d(1, 4, 3), ReLU())
    text, err = _message(lambda: model(np.zeros((2, 1, 8, 8))), TypeError)
    assert text.startswith("layer 0 (Conv2d(1, 4, kernel_size=(3, 3))): expected float32")
    assert type(err.__cause__) is TypeError


def test_nested_containers_give_one_message_with_the_full_path():
    body = Sequential(Conv2d(3, 4, 3, padding=1), ReLU())
    model = Sequential(Conv2d(1, 4, 3), ReLU(), Flatten(), Residual(body))
    model.layers[2] = ReLU()  # so the residual gets the 4-channel map
    text, err = _message(lambda: model(np.zeros((2, 1, 8, 8), F32)), ValueError)
    assert text == (
        "layer 3.body.0 (Conv2d(3, 4, kernel_size=(3, 3), padding=(1, 1))): expected "
        "input with 3 channels (N, 3, H, W); got x.shape=(2, 4, 6, 6)"
    )
    assert text.count("layer ") == 1
    # chained straight to the layer's own error, not to an intermediate wrapper
    assert str(err.__cause__).startswith("Conv2d(3, 4, kernel_size=(3, 3), padding=(1, 1))")
    assert getattr(err.__cause__, "__cause__", None) is None


def test_concat_branch_path():
    model = Sequential(Concat(Conv2d(1, 2, 1), Conv2d(2, 2, 1)))
    text, _ = _message(lambda: model(np.zeros((1, 1, 4, 4), F32)), ValueError)
    assert text.startswith("layer 0.branches.1 (Conv2d(2, 2, kernel_size=(1, 1))): expected")


def test_backward_errors_name_the_layer():
    model = Sequential(Conv2d(1, 2, 3), ReLU())
    text, err = _message(lambda: model.backward(np.zeros((1, 2, 2, 2), F32)), RuntimeError)
    assert text.startswith("layer ")
    assert "backward called before forward" in text
    model(np.zeros((1, 1, 4, 4), F32))
    text, err = _message(lambda: model.backward(np.zeros((1, 2, 3, 3), F32)), ValueError)
    assert text.startswith("layer 1 (ReLU()): ")
    assert type(err.__cause__) is ValueError


def test_container_error_shows_the_container_on_one_line():
    # a Residual whose paths disagree: the Residual itself raises
    res = Residual(Conv2d(1, 2, 3, padding=1))
    model = Sequential(ReLU(), res)
    text, _ = _message(lambda: model(np.zeros((1, 1, 4, 4), F32)), ValueError)
    assert text.startswith("layer 1 (Residual()): the outputs of `body` and `shortcut`")


class _TwoArgError(Exception):
    def __init__(self, a, b):
        super().__init__(f"{a} {b}")


class _Raises(BaseLayer):
    def forward(self, x):
        raise _TwoArgError("needs", "two")


def test_exception_types_that_take_other_arguments_pass_unchanged():
    model = Sequential(ReLU(), _Raises())
    with pytest.raises(_TwoArgError, match="^needs two$"):
        model(np.zeros(2, F32))


def test_summary_dry_run_names_the_layer():
    model = Sequential(Flatten(), Linear(5, 2))
    with pytest.raises(ValueError, match=r"^layer 1 \(Linear\(5, 2\)\): expected input"):
        model.summary((1, 4, 4))


# --- to(dtype) -----------------------------------------------------------------------------


def test_to_converts_parameters_and_buffers():
    model = Sequential(Conv2d(1, 2, 3, rng=0), BatchNorm2d(2), Flatten(), Linear(8, 3, rng=1))
    x = np.random.default_rng(2).standard_normal((4, 1, 4, 4))
    expected = model(x.astype(F32)).astype(np.float64)
    assert model.to(np.float64) is model
    assert model.dtype == np.float64
    floats = {a.dtype for a in model.state_dict().values() if a.dtype.kind == "f"}
    assert floats == {np.dtype(np.float64)}  # num_batches_tracked stays int64
    out = model(x)
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)
    with pytest.raises(TypeError, match="`dtype`"):
        model.to(np.int32)


def test_predict_converts_float64_where_forward_explains():
    model = Sequential(Flatten(), Linear(16, 3, rng=0))
    x = np.random.default_rng(0).standard_normal((5, 1, 4, 4))
    out = model.predict(x)  # converts its input to the model's dtype, as fit does
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, model(x.astype(F32)), rtol=1e-6)
    text, _ = _message(lambda: model(x), TypeError)
    assert text.startswith("layer 1 (Linear(16, 3)): expected float32 input")
    assert "fit, evaluate and predict convert their input; forward does not" in text
