"""Pooling layers: max, average, power-average (Lp) and adaptive pooling. No parameters."""

import numpy as np

from pycnn import _validation as V
from pycnn.layers.base import BaseLayer, _backend


class _Pool2d(BaseLayer):
    """Shared plumbing: the backend switch, what forward keeps for backward, the repr."""

    _defaults: dict = {}

    def __init__(self, backend):
        super().__init__()
        self.backend = backend
        self._ops = _backend(backend)
        self._saved = None

    def _forward_state(self):
        if self._saved is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward")
        return self._saved

    def _lead_repr(self):
        return f"kernel_size={self.kernel_size}"

    def extra_repr(self):
        s = self._lead_repr()
        for name, default in self._defaults.items():
            value = getattr(self, name)
            if value != default:
                s += f", {name}={value!r}"
        return s


class MaxPool2d(_Pool2d):
    """2-D max pooling over an NCHW batch, like ``torch.nn.MaxPool2d``.

    Padding counts as -inf; the first maximum in row-major window order wins ties and
    a window holding NaN gives NaN. `backward` routes each gradient to the position of
    its window's maximum (overlapping windows add up). In training mode the forward
    records those positions; in eval mode it keeps the input instead (inference needs
    no positions) and a backward finds them from it, so an input changed in place
    between the two gives the changed input's positions, as a Conv2d's backward reads
    its input.

    Parameters
    ----------
    kernel_size, dilation : int or (H, W) pair
    stride : int, (H, W) pair, or None for `kernel_size`
    padding : int or (H, W) pair, at most half of `kernel_size`
    ceil_mode : bool, round the output size up instead of down
    backend : 'compiled' (pycnn.functional) or 'numpy' (pycnn.reference)

    Shape
    -----
    x (N, C, H, W) -> (N, C, OH, OW), ``OH = floor((H + 2*PH - DH*(KH-1) - 1)/SH) + 1``
    (``ceil`` with `ceil_mode`, minus one if the last window would start in the bottom
    padding); OW likewise.
    """

    _defaults = dict(stride=None, padding=(0, 0), dilation=(1, 1), ceil_mode=False)

    def __init__(
        self,
        kernel_size,
        stride=None,
        padding=0,
        dilation=1,
        ceil_mode=False,
        *,
        backend="compiled",
    ):
        super().__init__(backend)
        args = V.pool_geometry(kernel_size, stride, padding, dilation, ceil_mode)
        self.kernel_size = args.kernel_size
        self.stride = None if stride is None else args.stride
        self.padding, self.dilation = args.padding, args.dilation
        self.ceil_mode = args.ceil_mode
        self._geometries = {}  # by input and arguments, see forward

    def forward(self, x):
        args = (self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode)
        if self.backend != "compiled":
            out, indices = self._ops.max_pool2d(x, *args, return_indices=True)
        else:
            # the geometry, checked once per input type, shape and dtype (any other
            # input goes through every check)
            key = (type(x), getattr(x, "shape", None), getattr(x, "dtype", None), args)
            geometry = self._geometries.get(key)
            if geometry is None:
                geometry = self._ops._max_pool_geometry(x, *args, True)
                if len(self._geometries) >= 8:  # a few shapes (the last, smaller batch)
                    self._geometries.clear()
                self._geometries[key] = geometry
            if not self.training:
                # eval: no argmax indices (8 bytes an output, written for a backward
                # that inference never runs); backward finds them from the input
                out = self._ops._max_pool2d(x, geometry, False)
                self._saved = (x.shape, None, x, geometry)
                return out
            out, indices = self._ops._max_pool2d(x, geometry, True)
        self._saved = (x.shape, indices, None, None)  # the input itself is not needed
        return out

    def backward(self, grad_out):
        input_shape, indices, x, geometry = self._forward_state()
        if indices is None:  # after an eval forward
            indices = self._ops._max_pool2d(x, geometry, True)[1]
        if (
            self.backend == "compiled"
            and type(grad_out) is np.ndarray
            and grad_out.shape == indices.shape
            and grad_out.dtype in V.FLOAT_DTYPES
        ):  # checked as far as our own forward's indices need
            return self._ops._max_pool2d_backward(grad_out, indices, input_shape)
        return self._ops.max_pool2d_backward(grad_out, indices, input_shape)


class AvgPool2d(_Pool2d):
    """2-D average pooling over an NCHW batch, like ``torch.nn.AvgPool2d``.

    Each window's sum is divided by `divisor_override` if given, else by the window size
    clipped to the padded input (`count_include_pad`: padding counts as zeros) or by the
    number of input pixels in the window.

    Parameters
    ----------
    kernel_size : int or (H, W) pair
    stride : int, (H, W) pair, or None for `kernel_size`
    padding : int or (H, W) pair, at most half of `kernel_size`
    ceil_mode, count_include_pad : bool
    divisor_override : int >= 1 or None
    backend : 'compiled' (pycnn.functional) or 'numpy' (pycnn.reference)

    Shape
    -----
    x (N, C, H, W) -> (N, C, OH, OW), ``OH = floor((H + 2*PH - KH)/SH) + 1`` (``ceil``
    with `ceil_mode`, minus one if the last window would start in the bottom padding);
    OW likewise.
    """

    _defaults = dict(
        stride=None,
        padding=(0, 0),
        ceil_mode=False,
        count_include_pad=True,
        divisor_override=None,
    )

    def __init__(
        self,
        kernel_size,
        stride=None,
        padding=0,
        ceil_mode=False,
        count_include_pad=True,
        divisor_override=None,
        *,
        backend="compiled",
    ):
        super().__init__(backend)
        args = V.pool_geometry(kernel_size, stride, padding, 1, ceil_mode)
        self.kernel_size = args.kernel_size
        self.stride = None if stride is None else args.stride
        self.padding, self.ceil_mode = args.padding, args.ceil_mode
        self.count_include_pad = V.flag(count_include_pad, "count_include_pad")
        self.divisor_override = V.divisor(divisor_override)

    @property
    def _geometry(self):
        return dict(
            kernel_size=self.kernel_size,
            stride=self.stride,
            padding=self.padding,
            ceil_mode=self.ceil_mode,
            count_include_pad=self.count_include_pad,
            divisor_override=self.divisor_override,
        )

    def forward(self, x):
        out = self._ops.avg_pool2d(x, **self._geometry)
        self._saved = x.shape
        return out

    def backward(self, grad_out):
        return self._ops.avg_pool2d_backward(grad_out, self._forward_state(), **self._geometry)


class LPPool2d(_Pool2d):
    """2-D power-average pooling over an NCHW batch, like ``torch.nn.LPPool2d``.

    ``out = (sum over the window of x**p) ** (1/p)``: p = 1 is sum pooling, large p
    approaches max pooling. As in PyTorch, a window clipped by `ceil_mode` sums
    ``KH*KW / (pixels in it)`` times its pixels' powers; the gradient is zero where a
    window's sum is zero.

    Parameters
    ----------
    norm_type : positive finite number p
    kernel_size : int or (H, W) pair
    stride : int, (H, W) pair, or None for `kernel_size`
    ceil_mode : bool
    backend : 'compiled' (pycnn.functional) or 'numpy' (pycnn.reference)

    Shape
    -----
    x (N, C, H, W) -> (N, C, OH, OW), ``OH = floor((H - KH)/SH) + 1`` (``ceil`` with
    `ceil_mode`); OW likewise.
    """

    _defaults = dict(stride=None, ceil_mode=False)

    def __init__(
        self, norm_type, kernel_size, stride=None, ceil_mode=False, *, backend="compiled"
    ):
        super().__init__(backend)
        self.norm_type = V.norm_type(norm_type)
        args = V.pool_geometry(kernel_size, stride, 0, 1, ceil_mode)
        self.kernel_size = args.kernel_size
        self.stride = None if stride is None else args.stride
        self.ceil_mode = args.ceil_mode

    def _lead_repr(self):
        return f"norm_type={self.norm_type!r}, kernel_size={self.kernel_size}"

    def forward(self, x):
        out = self._ops.lp_pool2d(
            x, self.norm_type, self.kernel_size, self.stride, self.ceil_mode
        )
        self._saved = x
        return out

    def backward(self, grad_out):
        return self._ops.lp_pool2d_backward(
            grad_out,
            self._forward_state(),
            self.norm_type,
            self.kernel_size,
            self.stride,
            self.ceil_mode,
        )


class _AdaptivePool2d(_Pool2d):
    """An adaptive pooling: the output size is fixed, the windows follow the input."""

    def __init__(self, output_size, backend):
        super().__init__(backend)
        self.output_size = V.adaptive_output_size(output_size)

    def _lead_repr(self):
        return f"output_size={self.output_size}"


class AdaptiveAvgPool2d(_AdaptivePool2d):
    """2-D adaptive average pooling over an NCHW batch, like ``torch.nn.AdaptiveAvgPool2d``.

    Output pixel (i, j) is the mean of input rows ``floor(i*H/OH) .. ceil((i+1)*H/OH)-1``
    and columns likewise; ``AdaptiveAvgPool2d(1)`` is global average pooling.

    Parameters
    ----------
    output_size : int or (OH, OW) pair; a None entry keeps that input size
    backend : 'compiled' (pycnn.functional) or 'numpy' (pycnn.reference)

    Shape
    -----
    x (N, C, H, W) -> (N, C, OH, OW).
    """

    def __init__(self, output_size, *, backend="compiled"):
        super().__init__(output_size, backend)

    def forward(self, x):
        out = self._ops.adaptive_avg_pool2d(x, self.output_size)
        self._saved = x.shape
        return out

    def backward(self, grad_out):
        return self._ops.adaptive_avg_pool2d_backward(
            grad_out, self._forward_state(), self.output_size
        )


class AdaptiveMaxPool2d(_AdaptivePool2d):
    """2-D adaptive max pooling over an NCHW batch, like ``torch.nn.AdaptiveMaxPool2d``.

    The windows of `AdaptiveAvgPool2d`; the first maximum in row-major window order wins
    ties and a window holding NaN gives NaN. With `return_indices`, `forward` returns
    (out, indices), the indices as flat positions ``h*W + w`` in each input plane.
    `backward` takes the gradient of `out`.

    Parameters
    ----------
    output_size : int or (OH, OW) pair; a None entry keeps that input size
    return_indices : bool
    backend : 'compiled' (pycnn.functional) or 'numpy' (pycnn.reference)

    Shape
    -----
    x (N, C, H, W) -> (N, C, OH, OW).
    """

    _defaults = dict(return_indices=False)

    def __init__(self, output_size, return_indices=False, *, backend="compiled"):
        super().__init__(output_size, backend)
        self.return_indices = V.flag(return_indices, "return_indices")

    def forward(self, x):
        out, indices = self._ops.adaptive_max_pool2d(x, self.output_size, return_indices=True)
        self._saved = (x.shape, indices)
        return (out, indices) if self.return_indices else out

    def backward(self, grad_out):
        input_shape, indices = self._forward_state()
        return self._ops.adaptive_max_pool2d_backward(grad_out, indices, input_shape)
