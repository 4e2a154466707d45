"""Batch normalisation over the channel axis: BatchNorm1d and BatchNorm2d."""
import numpy as np

from pycnn import _validation as V
from pycnn.layers.base import BaseLayer, _check_grad, _check_input


class _BatchNorm(BaseLayer):
    """Normalise each channel (axis 1) over every other axis, like PyTorch.

    Train mode normalises with the batch mean and the *biased* batch variance and
    updates the running statistics with PyTorch's convention
    ``running = (1 - momentum) * running + momentum * batch_stat``, using the
    *unbiased* variance (n / (n - 1)) for `running_var`. Eval mode normalises with the
    running statistics. `weight` (ones) and `bias` (zeros) are the affine parameters;
    `running_mean` (zeros) and `running_var` (ones) are buffers, saved with the model.
    """

    _ndims: tuple = ()   # input ranks accepted, set by the subclasses
    _layout = ""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, *,
                 dtype=np.float32):
        super().__init__()
        self.num_features = V.positive_int(num_features, "num_features")
        self.eps = V.real(eps, "eps", 0, min_open=True)
        self.momentum = V.real(momentum, "momentum", 0, 1)
        self.affine = bool(affine)
        self.dtype = V.float_dtype(dtype)
        if self.affine:
            self.params["weight"] = np.ones(self.num_features, dtype=self.dtype)
            self.params["bias"] = np.zeros(self.num_features, dtype=self.dtype)
        self.buffers["running_mean"] = np.zeros(self.num_features, dtype=self.dtype)
        self.buffers["running_var"] = np.ones(self.num_features, dtype=self.dtype)
        self._cache = None

    @property
    def weight(self):
        return self.params.get("weight")

    @property
    def bias(self):
        return self.params.get("bias")

    @property
    def running_mean(self):
        return self.buffers["running_mean"]

    @property
    def running_var(self):
        return self.buffers["running_var"]

    def _axes_and_shape(self, x):
        """Reduction axes (all but 1) and the shape that broadcasts a (C,) vector."""
        axes = (0,) + tuple(range(2, x.ndim))
        return axes, (1, self.num_features) + (1,) * (x.ndim - 2)

    def forward(self, x):
        name = type(self).__name__
        _check_input(x, name)
        if x.ndim not in self._ndims or x.shape[1] != self.num_features:
            raise ValueError(f"{name}: `x` must be a {self._layout} array with "
                             f"C=num_features={self.num_features}. "
                             f"Received: x.shape={x.shape}")
        V.check_same_dtype(self.running_mean, "running_mean", x, "x")
        axes, bshape = self._axes_and_shape(x)
        n = x.size // self.num_features       # values per channel
        if self.training:
            if n <= 1:
                raise ValueError(f"{name}: expected more than 1 value per channel when "
                                 f"training. Received: x.shape={x.shape}")
            mean = x.mean(axis=axes)
            centred = x - mean.reshape(bshape)
            var = np.mean(centred * centred, axis=axes)          # biased
            m = self.momentum
            rm, rv = self.running_mean, self.running_var
            rm *= 1 - m
            rm += m * mean
            rv *= 1 - m
            rv += (m * n / (n - 1)) * var                        # unbiased
        else:
            mean, var = self.running_mean, self.running_var
            centred = x - mean.reshape(bshape)
        inv_std = 1 / np.sqrt(var + self.eps)
        xhat = centred * inv_std.reshape(bshape)
        out = xhat
        if self.affine:
            out = xhat * self.weight.reshape(bshape) + self.bias.reshape(bshape)
        self._cache = (xhat, inv_std, self.training, x.shape, x.dtype)
        return out

    def backward(self, grad):
        name = type(self).__name__
        if self._cache is None:
            raise RuntimeError(f"{name}.backward called before forward")
        xhat, inv_std, training, shape, dtype = self._cache
        _check_grad(grad, shape, dtype, name)
        axes, bshape = self._axes_and_shape(grad)
        if self.affine:
            self.grads["weight"] = np.sum(grad * xhat, axis=axes)
            self.grads["bias"] = np.sum(grad, axis=axes)
            dxhat = grad * self.weight.reshape(bshape)
        else:
            dxhat = grad
        if not training:               # running statistics are constants
            return dxhat * inv_std.reshape(bshape)
        # d/dx of (x - mean) / std with mean and (biased) var taken over the batch:
        # dx = inv_std * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))
        mean_d = np.mean(dxhat, axis=axes).reshape(bshape)
        mean_dx = np.mean(dxhat * xhat, axis=axes).reshape(bshape)
        return (dxhat - mean_d - xhat * mean_dx) * inv_std.reshape(bshape)

    def extra_repr(self):
        s = f"{self.num_features}"
        if self.eps != 1e-5:
            s += f", eps={self.eps!r}"
        if self.momentum != 0.1:
            s += f", momentum={self.momentum!r}"
        if not self.affine:
            s += ", affine=False"
        if self.dtype != np.float32:
            s += f", dtype={self.dtype.name}"
        return s


class BatchNorm1d(_BatchNorm):
    """Batch normalisation of (N, C) or (N, C, L) inputs, like ``torch.nn.BatchNorm1d``.

    ``y = (x - mean) / sqrt(var + eps) * weight + bias`` per channel C, statistics over
    N (and L). See `_BatchNorm` for the train/eval behaviour and the running statistics.

    Parameters
    ----------
    num_features : int, C
    eps : float > 0, added to the variance
    momentum : float in [0, 1], weight of the batch statistic in the running average
    affine : bool, learn `weight` and `bias`
    dtype : float32 (default) or float64

    Shape
    -----
    x (N, C) or (N, C, L) -> the same shape.
    """

    _ndims = (2, 3)
    _layout = "(N, C) or (N, C, L)"


class BatchNorm2d(_BatchNorm):
    """Batch normalisation of NCHW inputs per channel, like ``torch.nn.BatchNorm2d``.

    ``y = (x - mean) / sqrt(var + eps) * weight + bias`` per channel C, statistics over
    N, H and W. See `_BatchNorm` for the train/eval behaviour and the running statistics.

    Parameters
    ----------
    num_features : int, C
    eps : float > 0, added to the variance
    momentum : float in [0, 1], weight of the batch statistic in the running average
    affine : bool, learn `weight` and `bias`
    dtype : float32 (default) or float64

    Shape
    -----
    x (N, C, H, W) -> (N, C, H, W).
    """

    _ndims = (4,)
    _layout = "4-d (N, C, H, W)"
