"""Weight initialisers: Xavier (Glorot) and He (Kaiming), uniform and normal.

Each takes a shape, an optional `rng` (a numpy Generator or a seed) and a dtype, and
returns a new array of that dtype (float32 or float64). Fans follow PyTorch: for a conv
weight (F, C/groups, KH, KW), fan_in = C/groups*KH*KW and fan_out = F*KH*KW; for a
linear weight (out, in), fan_in = in and fan_out = out.

================  =======================================  =================
function          distribution                             PyTorch equivalent
================  =======================================  =================
`xavier_uniform`  U(-a, a), a = gain*sqrt(6/(fi+fo))       `xavier_uniform_`
`xavier_normal`   N(0, std^2), std = gain*sqrt(2/(fi+fo))  `xavier_normal_`
`he_uniform`      U(-a, a), a = sqrt(6/fan)                `kaiming_uniform_`
`he_normal`       N(0, std^2), std = sqrt(2/fan)           `kaiming_normal_`
================  =======================================  =================

fi and fo are fan_in and fan_out; PyTorch's He initialisers with
`nonlinearity='relu'`. He's `fan` is fan_in by default (`mode='fan_in'`
keeps the forward activations' scale; `'fan_out'` keeps the backward gradients').
"""

import numpy as np

from pycnn import _validation as V

__all__ = ["fans", "xavier_uniform", "xavier_normal", "he_uniform", "he_normal"]


def fans(shape):
    """(fan_in, fan_out) of a weight of `shape` (2-d linear or 4-d conv, any rank >= 2)."""
    try:
        shape = tuple(V.integer(s, "shape") for s in shape)
    except TypeError:
        raise TypeError(f"`shape` must be a tuple of ints. Received: shape={shape!r}") from None
    if len(shape) < 2:
        raise ValueError(
            f"`shape` must have at least 2 dimensions to compute fans. Received: shape={shape}"
        )
    if min(shape) < 1:
        raise ValueError(
            f"`shape` must have sizes >= 1 to compute fans. Received: shape={shape}"
        )
    receptive = int(np.prod(shape[2:], dtype=np.int64))
    return shape[1] * receptive, shape[0] * receptive


def _generator(rng):
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def _he_fan(shape, mode):
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"`mode` must be 'fan_in' or 'fan_out'. Received: mode={mode!r}")
    fan_in, fan_out = fans(shape)
    return fan_in if mode == "fan_in" else fan_out


def xavier_uniform(shape, rng=None, dtype=np.float32, gain=1.0):
    """U(-a, a) with a = gain * sqrt(6 / (fan_in + fan_out))."""
    fan_in, fan_out = fans(shape)
    a = V.real(gain, "gain", 0) * np.sqrt(6.0 / (fan_in + fan_out))
    return _generator(rng).uniform(-a, a, size=shape).astype(V.float_dtype(dtype))


def xavier_normal(shape, rng=None, dtype=np.float32, gain=1.0):
    """N(0, std^2) with std = gain * sqrt(2 / (fan_in + fan_out))."""
    fan_in, fan_out = fans(shape)
    std = V.real(gain, "gain", 0) * np.sqrt(2.0 / (fan_in + fan_out))
    return (_generator(rng).standard_normal(size=shape) * std).astype(V.float_dtype(dtype))


def he_uniform(shape, rng=None, dtype=np.float32, mode="fan_in"):
    """U(-a, a) with a = sqrt(6 / fan), fan = fan_in (default) or fan_out; for ReLU."""
    a = np.sqrt(6.0 / _he_fan(shape, mode))
    return _generator(rng).uniform(-a, a, size=shape).astype(V.float_dtype(dtype))


def he_normal(shape, rng=None, dtype=np.float32, mode="fan_in"):
    """N(0, std^2) with std = sqrt(2 / fan), fan = fan_in (default) or fan_out; for ReLU."""
    std = np.sqrt(2.0 / _he_fan(shape, mode))
    return (_generator(rng).standard_normal(size=shape) * std).astype(V.float_dtype(dtype))
