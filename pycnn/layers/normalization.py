"""Normalisation layers: batch normalisation over the channel axis (BatchNorm1d,
BatchNorm2d), and per-sample LayerNorm and GroupNorm."""

import math

import numpy as np

from pycnn import _eltwise
from pycnn import _validation as V
from pycnn.layers.base import BaseLayer, _check_grad, _check_layer_input, _Slot


class _BatchNorm(BaseLayer):
    """Normalise each channel (axis 1) over every other axis, like PyTorch.

    Train mode normalises with the batch mean and the *biased* batch variance and
    updates the running statistics with PyTorch's convention
    ``running = (1 - momentum) * running + momentum * batch_stat``, using the
    *unbiased* variance (n / (n - 1)) for `running_var`; ``momentum=None`` makes them
    the cumulative average of every batch's statistics (momentum 1 / t at the t-th
    training batch). Eval mode normalises with the running statistics. `weight` (ones)
    and `bias` (zeros) are the affine parameters; `running_mean` (zeros), `running_var`
    (ones) and `num_batches_tracked` (a 0-d int64 array counting the training forward
    passes, as PyTorch's) are buffers, saved with the model. An empty batch in train
    mode passes through and leaves the statistics as they were (the counter still
    counts it; weight and bias get zero gradients), as in PyTorch.
    """

    _ndims: tuple = ()  # input ranks accepted, set by the subclasses
    _layout = ""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, *, dtype=np.float32):
        super().__init__()
        self.num_features = V.positive_int(num_features, "num_features")
        self.eps = V.real(eps, "eps", 0, min_open=True)
        self.momentum = None if momentum is None else V.real(momentum, "momentum", 0, 1)
        self.affine = bool(affine)
        self.dtype = V.float_dtype(dtype)
        if self.affine:
            self.params["weight"] = np.ones(self.num_features, dtype=self.dtype)
            self.params["bias"] = np.zeros(self.num_features, dtype=self.dtype)
        self.buffers["running_mean"] = np.zeros(self.num_features, dtype=self.dtype)
        self.buffers["running_var"] = np.ones(self.num_features, dtype=self.dtype)
        self.buffers["num_batches_tracked"] = np.zeros((), dtype=np.int64)
        self._cache = None

    weight = _Slot()
    bias = _Slot()
    running_mean = _Slot("buffers")
    running_var = _Slot("buffers")
    num_batches_tracked = _Slot("buffers")

    def forward(self, x):
        return self._forward(x, relu=False)

    def _forward_relu(self, x):
        """``relu(self.forward(x))``, the same bits, in the normalising pass (what
        `Sequential` calls for a batch norm followed by a ReLU)."""
        return self._forward(x, relu=True)

    def _forward(self, x, relu):
        name = type(self).__name__
        c = self.num_features
        _check_layer_input(
            self,
            x,
            lambda a: a.ndim in self._ndims and a.shape[1] == c,
            f"input with num_features={c} channels {self._layout.replace('C', str(c))}",
            self.running_mean.dtype,
            channels=c if 4 in self._ndims else None,
        )
        # (N, C, M), M = H*W or L or 1: a view of a C-contiguous x, which the compiled
        # loops take (pycnn._eltwise; NumPy does the same work otherwise)
        x3 = x.reshape(x.shape[0], c, math.prod(x.shape[2:]))
        if self.training:
            n = x.size // c
            if n:
                stats = _eltwise.batch_norm_stats(x3)
            else:  # no values here (SyncBatchNorm: maybe on other ranks)
                stats = np.zeros(c), np.zeros(c)
            mean, var, n = self._batch_stats(n, *stats)
            if n == 1:
                raise ValueError(
                    f"{name}: expected more than 1 value per channel when "
                    f"training. Received: x.shape={x.shape}"
                )
            count = self.num_batches_tracked
            np.add(count, 1, out=count)  # in place: the 0-d array in `buffers`
            if n == 0:  # an empty batch, as PyTorch: the statistics stay as they were
                self._cache = (x3, None, None, True, x.shape, x.dtype)
                return x.copy()
            m = 1 / int(count) if self.momentum is None else self.momentum
            # mean and 1/sqrt(var + eps) in x's dtype; the running statistics move
            # towards the batch's, the variance unbiased (times n / (n - 1))
            mean, inv_std = _eltwise.batch_norm_statistics(
                mean, var, self.running_mean, self.running_var, m, m * n / (n - 1), self.eps
            )
        else:  # copies: backward must see these even if the buffers change meanwhile
            mean = self.running_mean.copy()
            inv_std = 1 / np.sqrt(self.running_var + self.eps)
        weight, bias = (self.weight, self.bias) if self.affine else (None, None)
        out = _eltwise.batch_norm_forward(x3, mean, inv_std, weight, bias, relu)
        # x itself, not xhat: backward recomputes xhat in its own passes, and the forward
        # writes one array instead of two
        self._cache = (x3, mean, inv_std, self.training, x.shape, x.dtype)
        return out.reshape(x.shape)

    def backward(self, grad):
        name = type(self).__name__
        if self._cache is None:
            raise RuntimeError(f"{name}.backward called before forward")
        x3, mean, inv_std, training, shape, dtype = self._cache
        _check_grad(grad, shape, dtype, name)
        if mean is None:  # an empty batch: no gradient, zeros for weight and bias
            if self.affine:
                zero = np.zeros(self.num_features, dtype)
                self._accumulate_grad("weight", zero)
                self._accumulate_grad("bias", zero.copy())
            return grad.copy()
        grad3 = grad.reshape(x3.shape)
        if self.affine or training:
            sum_g, sum_gx = _eltwise.batch_norm_grad_sums(grad3, x3, mean, inv_std)
        if self.affine:
            self._accumulate_grad("weight", sum_gx.astype(dtype))
            self._accumulate_grad("bias", sum_g.astype(dtype))
        mean_g = mean_gx = None  # eval: the running statistics are constants
        if training:
            # d/dx of (x - mean) / std with mean and (biased) var taken over the batch:
            # dx = inv_std * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)), with
            # dxhat = grad * weight, whose means are weight times those of grad
            mean_g, mean_gx = self._grad_means(x3.size // self.num_features, sum_g, sum_gx)
            mean_g, mean_gx = mean_g.astype(dtype), mean_gx.astype(dtype)
        weight = self.weight if self.affine else None
        dx = _eltwise.batch_norm_backward(grad3, x3, mean, inv_std, weight, mean_g, mean_gx)
        return dx.reshape(shape)

    # --- the batch reductions (SyncBatchNorm takes them over every rank) ----------------

    def _batch_stats(self, n, mean, m2):
        """The batch's per-channel mean and biased variance (float64) and the number of
        values per channel they were taken over, from this process's `n` values per
        channel, their per-channel `mean` and sums of squared deviations `m2` (float64)."""
        return mean, (m2 / n if n else m2), n

    def _grad_means(self, n, sum_g, sum_gx):
        """Per-channel means (float64) of ``grad`` and ``grad * xhat`` over the batch,
        from this process's `n` values per channel and their per-channel sums."""
        return sum_g / n, sum_gx / n

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
    momentum : float in [0, 1], weight of the batch statistic in the running average,
        or None for the cumulative average
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
    momentum : float in [0, 1], weight of the batch statistic in the running average,
        or None for the cumulative average
    affine : bool, learn `weight` and `bias`
    dtype : float32 (default) or float64

    Shape
    -----
    x (N, C, H, W) -> (N, C, H, W).
    """

    _ndims = (4,)
    _layout = "(N, C, H, W)"


# --- per-sample normalisation: LayerNorm and GroupNorm ---------------------------------


def _normalise(x, axes, eps):
    """(x - mean) / sqrt(var + eps) over `axes` (biased variance), and 1/sqrt(var + eps)
    with those axes kept, in x's dtype."""
    mean = x.mean(axis=axes, keepdims=True)
    centred = x - mean
    var = np.mean(centred * centred, axis=axes, keepdims=True)
    inv_std = 1 / np.sqrt(var + x.dtype.type(eps))
    return centred * inv_std, inv_std


def _normalise_backward(dxhat, xhat, inv_std, axes):
    """d/dx of (x - mean) / std, mean and biased var over `axes`, given d/dxhat."""
    mean_d = np.mean(dxhat, axis=axes, keepdims=True)
    mean_dx = np.mean(dxhat * xhat, axis=axes, keepdims=True)
    return (dxhat - mean_d - xhat * mean_dx) * inv_std


class _SampleNorm(BaseLayer):
    """Shared plumbing: the affine parameters, the dtype check and the cache."""

    def _init_affine(self, shape, affine, dtype):
        self.dtype = V.float_dtype(dtype)
        if affine:
            self.params["weight"] = np.ones(shape, dtype=self.dtype)
            self.params["bias"] = np.zeros(shape, dtype=self.dtype)
        self._cache = None

    weight = _Slot()
    bias = _Slot()

    def _check(self, x, ok, expected, channels=None):
        _check_layer_input(self, x, ok, expected, self.dtype, channels)

    def _cached(self, grad):
        name = type(self).__name__
        if self._cache is None:
            raise RuntimeError(f"{name}.backward called before forward")
        _check_grad(grad, self._cache[0].shape, self.dtype, name)
        return self._cache


class LayerNorm(_SampleNorm):
    """Layer normalisation over the last axes of each sample, like ``torch.nn.LayerNorm``.

    ``y = (x - mean) / sqrt(var + eps) * weight + bias``, mean and biased variance over
    the last ``len(normalized_shape)`` axes of x, which must equal `normalized_shape`;
    `weight` (ones) and `bias` (zeros) have that shape. The same in train and eval mode.

    Parameters
    ----------
    normalized_shape : int or tuple of ints, the trailing shape normalised over
    eps : float > 0, added to the variance
    elementwise_affine : bool, learn `weight` and `bias`
    dtype : float32 (default) or float64

    Shape
    -----
    x (*, *normalized_shape) -> the same shape.
    """

    def __init__(
        self, normalized_shape, eps=1e-5, elementwise_affine=True, *, dtype=np.float32
    ):
        super().__init__()
        shape = (normalized_shape,) if np.ndim(normalized_shape) == 0 else normalized_shape
        try:
            shape = tuple(V.positive_int(s, "normalized_shape") for s in shape)
        except TypeError:
            raise TypeError(
                "`normalized_shape` must be an int or a tuple of ints. "
                f"Received: normalized_shape={normalized_shape!r}"
            ) from None
        if not shape:
            raise ValueError(
                "`normalized_shape` must have at least one axis. "
                f"Received: normalized_shape={normalized_shape!r}"
            )
        self.normalized_shape = shape
        self.eps = V.real(eps, "eps", 0, min_open=True)
        self.elementwise_affine = V.flag(elementwise_affine, "elementwise_affine")
        self._init_affine(shape, self.elementwise_affine, dtype)

    def _axes(self, x):
        return tuple(range(x.ndim - len(self.normalized_shape), x.ndim))

    def forward(self, x):
        shape = self.normalized_shape
        k = len(shape)
        self._check(
            x,
            lambda a: a.ndim >= k and a.shape[a.ndim - k :] == shape,
            f"input ending in normalized_shape={shape} (*, {', '.join(map(str, shape))})",
        )
        xhat, inv_std = _normalise(x, self._axes(x), self.eps)
        self._cache = (xhat, inv_std)
        if self.elementwise_affine:
            return xhat * self.weight + self.bias
        return xhat

    def backward(self, grad):
        xhat, inv_std = self._cached(grad)
        dxhat = grad
        if self.elementwise_affine:
            lead = tuple(range(grad.ndim - len(self.normalized_shape)))
            self._accumulate_grad("weight", np.sum(grad * xhat, axis=lead))
            self._accumulate_grad("bias", np.sum(grad, axis=lead))
            dxhat = grad * self.weight
        return _normalise_backward(dxhat, xhat, inv_std, self._axes(grad))

    def extra_repr(self):
        s = f"{self.normalized_shape}"
        if self.eps != 1e-5:
            s += f", eps={self.eps!r}"
        if not self.elementwise_affine:
            s += ", elementwise_affine=False"
        if self.dtype != np.float32:
            s += f", dtype={self.dtype.name}"
        return s


class GroupNorm(_SampleNorm):
    """Group normalisation, like ``torch.nn.GroupNorm``.

    The C channels of each sample are split into `num_groups` groups of consecutive
    channels; each group is normalised with its own mean and biased variance (over its
    channels and every spatial position), then scaled by `weight` and shifted by `bias`,
    one value per channel. The same in train and eval mode.

    Parameters
    ----------
    num_groups : int, dividing `num_channels`
    num_channels : int, C
    eps : float > 0, added to the variance
    affine : bool, learn `weight` (ones) and `bias` (zeros), shape (C,)
    dtype : float32 (default) or float64

    Shape
    -----
    x (N, C, *) -> the same shape.
    """

    def __init__(self, num_groups, num_channels, eps=1e-5, affine=True, *, dtype=np.float32):
        super().__init__()
        self.num_groups = V.positive_int(num_groups, "num_groups")
        self.num_channels = V.positive_int(num_channels, "num_channels")
        if self.num_channels % self.num_groups:
            raise ValueError(
                "`num_groups` must divide `num_channels`. Received: "
                f"num_groups={num_groups!r}, num_channels={num_channels!r}"
            )
        self.eps = V.real(eps, "eps", 0, min_open=True)
        self.affine = V.flag(affine, "affine")
        self._init_affine(self.num_channels, self.affine, dtype)

    def _grouped(self, a):
        """(N, C, *) -> (N, G, C/G * prod(*)), a view where possible."""
        return a.reshape(a.shape[0], self.num_groups, math.prod(a.shape[1:]) // self.num_groups)

    def _channels(self, v, ndim):
        """A (C,) vector shaped to broadcast against an (N, C, *) array of `ndim` axes."""
        return v.reshape((1, self.num_channels) + (1,) * (ndim - 2))

    def forward(self, x):
        c = self.num_channels
        self._check(
            x,
            lambda a: a.ndim >= 2 and a.shape[1] == c,
            f"input with num_channels={c} channels (N, {c}, *)",
            channels=c,
        )
        xhat, inv_std = _normalise(self._grouped(x), 2, self.eps)
        xhat = xhat.reshape(x.shape)
        self._cache = (xhat, inv_std)
        if self.affine:
            return xhat * self._channels(self.weight, x.ndim) + self._channels(
                self.bias, x.ndim
            )
        return xhat

    def backward(self, grad):
        xhat, inv_std = self._cached(grad)
        dxhat = grad
        if self.affine:
            axes = (0,) + tuple(range(2, grad.ndim))
            self._accumulate_grad("weight", np.sum(grad * xhat, axis=axes))
            self._accumulate_grad("bias", np.sum(grad, axis=axes))
            dxhat = grad * self._channels(self.weight, grad.ndim)
        dx = _normalise_backward(self._grouped(dxhat), self._grouped(xhat), inv_std, 2)
        return dx.reshape(grad.shape)

    def extra_repr(self):
        s = f"{self.num_groups}, {self.num_channels}"
        if self.eps != 1e-5:
            s += f", eps={self.eps!r}"
        if not self.affine:
            s += ", affine=False"
        if self.dtype != np.float32:
            s += f", dtype={self.dtype.name}"
        return s
