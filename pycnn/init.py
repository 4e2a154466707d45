"""Weight initialisers: Xavier (Glorot) and He (Kaiming), uniform and normal.

Each takes a shape, an optional `rng` (a numpy Generator or a seed) and a dtype, and
returns a new array. Fans follow PyTorch: for a conv weight (F, C/groups, KH, KW),
fan_in = C/groups*KH*KW and fan_out = F*KH*KW; for a linear weight (out, in),
fan_in = in and fan_out = out.
"""
import numpy as np

__all__ = ["fans", "xavier_uniform", "xavier_normal", "he_uniform", "he_normal"]


def fans(shape):
    """(fan_in, fan_out) of a weight of `shape` (2-d linear or 4-d conv)."""
    shape = tuple(shape)
    if len(shape) < 2:
        raise ValueError(f"`shape` must have at least 2 dimensions to compute fans. "
                         f"Received: shape={shape}")
    receptive = int(np.prod(shape[2:], dtype=np.int64))
    return shape[1] * receptive, shape[0] * receptive


def _generator(rng):
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def xavier_uniform(shape, rng=None, dtype=np.float32, gain=1.0):
    """U(-a, a) with a = gain * sqrt(6 / (fan_in + fan_out))."""
    fan_in, fan_out = fans(shape)
    a = gain * np.sqrt(6.0 / (fan_in + fan_out))
    return _generator(rng).uniform(-a, a, size=shape).astype(dtype)


def xavier_normal(shape, rng=None, dtype=np.float32, gain=1.0):
    """N(0, std^2) with std = gain * sqrt(2 / (fan_in + fan_out))."""
    fan_in, fan_out = fans(shape)
    std = gain * np.sqrt(2.0 / (fan_in + fan_out))
    return (_generator(rng).standard_normal(size=shape) * std).astype(dtype)


def he_uniform(shape, rng=None, dtype=np.float32):
    """U(-a, a) with a = sqrt(6 / fan_in), for ReLU networks."""
    a = np.sqrt(6.0 / fans(shape)[0])
    return _generator(rng).uniform(-a, a, size=shape).astype(dtype)


def he_normal(shape, rng=None, dtype=np.float32):
    """N(0, std^2) with std = sqrt(2 / fan_in), for ReLU networks."""
    std = np.sqrt(2.0 / fans(shape)[0])
    return (_generator(rng).standard_normal(size=shape) * std).astype(dtype)
