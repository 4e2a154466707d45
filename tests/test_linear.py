"""linear and linear_backward: compiled vs reference vs naive against the definition
(float64) and PyTorch if installed. Bad arguments, layouts, the empty batch and
unmodified inputs: tests/test_ops_table.py."""

import numpy as np
import pytest
from conftest import assert_close

from pycnn import Linear, functional, naive, reference

IMPLS = {"compiled": functional, "reference": reference, "naive": naive}

# name: (x shape, out_features, bias)
LINEAR_CASES = {
    "rows": ((5, 6), 4, True),
    "no-bias": ((5, 6), 4, False),
    "one-row": ((1, 7), 3, True),
    "vector": ((7,), 3, True),
    "leading-axes": ((2, 3, 5), 4, True),
    "in-features-1": ((4, 1), 2, True),
    "out-features-1": ((3, 5), 1, False),
    "many-rows": ((67, 9), 5, True),  # enough rows to spread over threads
}


@pytest.mark.parametrize("case", LINEAR_CASES.values(), ids=LINEAR_CASES.keys())
def test_linear_matches_definition(case, dtype, rng):
    shape, out_f, with_bias = case
    x = rng.standard_normal(shape).astype(dtype)
    w = rng.standard_normal((out_f, shape[-1])).astype(dtype)
    b = rng.standard_normal(out_f).astype(dtype) if with_bias else None
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    want = x64 @ w64.T + (0 if b is None else b.astype(np.float64))
    g = rng.standard_normal(want.shape).astype(dtype)
    g2, x2 = g.reshape(-1, out_f).astype(np.float64), x64.reshape(-1, shape[-1])
    want_grads = ((g.astype(np.float64) @ w64), g2.T @ x2, g2.sum(0))
    for name, impl in IMPLS.items():
        out = impl.linear(x, w, b)
        assert out.shape == want.shape and out.dtype == dtype, name
        assert_close(out, want, dtype, err_msg=name)
        grads = impl.linear_backward(g, x, w)
        for got, ref, arg in zip(grads, want_grads, ("grad_x", "grad_weight", "grad_bias")):
            assert got.shape == ref.shape and got.dtype == dtype, f"{name} {arg}"
            assert_close(got, ref, dtype, err_msg=f"{name} {arg}")


@pytest.mark.parametrize("case", LINEAR_CASES.values(), ids=LINEAR_CASES.keys())
def test_linear_matches_torch(case, dtype, rng):
    torch = pytest.importorskip("torch")
    shape, out_f, with_bias = case
    x = rng.standard_normal(shape).astype(dtype)
    w = rng.standard_normal((out_f, shape[-1])).astype(dtype)
    b = rng.standard_normal(out_f).astype(dtype) if with_bias else None
    xt, wt = (torch.tensor(a, requires_grad=True) for a in (x, w))
    bt = None if b is None else torch.tensor(b, requires_grad=True)
    out_t = torch.nn.functional.linear(xt, wt, bt)
    g = rng.standard_normal(tuple(out_t.shape)).astype(dtype)
    out_t.backward(torch.tensor(g))
    for name, impl in IMPLS.items():
        assert_close(impl.linear(x, w, b), out_t.detach().numpy(), dtype, name)
        gx, gw, gb = impl.linear_backward(g, x, w)
        assert_close(gx, xt.grad.numpy(), dtype, name)
        assert_close(gw, wt.grad.numpy(), dtype, name)
        if bt is not None:
            assert_close(gb, bt.grad.numpy(), dtype, name)


def test_layer_refuses_a_bias_of_the_wrong_shape_set_without_checks():
    """`params["bias"] = ...` skips the assignment checks; the forward still refuses a
    bias that would broadcast (the layer's trusted path leaves it to the full check)."""
    layer = Linear(4, 3)
    layer.params["bias"] = np.zeros(1, np.float32)
    with pytest.raises(ValueError, match="bias"):
        layer.forward(np.ones((2, 4), np.float32))
