"""Convolution layer."""

import numpy as np

from pycnn import _eltwise
from pycnn import _validation as V
from pycnn._config import get_winograd
from pycnn.layers.base import _backend, _check_layer_input, _WeightedLayer


class Conv2d(_WeightedLayer):
    """2-D convolution over an NCHW batch, like ``torch.nn.Conv2d``.

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size, stride, dilation : int or (H, W) pair
    padding : int, (H, W) pair, 'valid' or 'same'
    groups : int, divides both channel counts
    bias : bool
    dtype : float32 (default) or float64
    rng : numpy Generator or seed for the He-normal initial weights
    backend : 'compiled' (pycnn.functional) or 'numpy' (pycnn.reference)

    Shape
    -----
    x (N, C, H, W) -> (N, F, OH, OW), ``OH = floor((H + PT + PB - DH*(KH-1) - 1)/SH) + 1``
    with PT = PB = PH for an int or pair padding, and PT + PB = DH*(KH-1) for 'same' (the
    odd pixel of an even kernel at the bottom; OW likewise).
    `weight` is (F, C/groups, KH, KW), `bias` is (F,), initialised to zero.
    """

    def __init__(
        self,
        in_channels,
        out_channels,
        kernel_size,
        stride=1,
        padding=0,
        dilation=1,
        groups=1,
        bias=True,
        *,
        dtype=np.float32,
        rng=None,
        backend="compiled",
    ):
        super().__init__()
        self.in_channels = V.positive_int(in_channels, "in_channels")
        self.out_channels = V.positive_int(out_channels, "out_channels")
        self.kernel_size = V.pair(kernel_size, "kernel_size")
        self.stride = V.pair(stride, "stride")
        self.dilation = V.pair(dilation, "dilation")
        self.padding = (
            padding if isinstance(padding, str) else V.pair(padding, "padding", min_value=0)
        )
        V.conv_padding(self.padding, self.stride, self.dilation, self.kernel_size)
        self.groups = V.positive_int(groups, "groups")
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ValueError(
                "`groups` must divide in_channels and out_channels. Received: "
                f"in_channels={in_channels}, out_channels={out_channels}, "
                f"groups={groups}"
            )
        self.dtype = V.float_dtype(dtype)
        self.backend = backend
        self._ops = _backend(backend)
        self._plans = {}  # compiled plans by input shape and dtype, see _plan
        self._columns = None  # a training forward's column matrix, for backward
        shape = (self.out_channels, self.in_channels // self.groups) + self.kernel_size
        self._init_params(shape, bias, rng)

    @property
    def _geometry(self):
        return dict(
            stride=self.stride, padding=self.padding, dilation=self.dilation, groups=self.groups
        )

    def _plan(self, x):
        """The compiled convolution plan for input `x`, validated and built once per
        input shape (the compiled backend only; None with the NumPy one)."""
        if self.backend != "compiled":
            return None
        weight, bias = self.weight, self.bias
        key = (
            type(x),
            getattr(x, "shape", None),
            getattr(x, "dtype", None),
            weight.shape,
            weight.dtype,
            None if bias is None else (bias.shape, bias.dtype),
            get_winograd(),  # `pycnn.set_winograd` picks other plans
        )
        plan = self._plans.get(key)
        if plan is None:
            from pycnn import _conv

            args = V.conv2d_args(x, weight, bias, **self._geometry)  # raises if wrong
            plan = _conv.plan(x.shape, weight.shape, x.dtype, args)
            if len(self._plans) >= 8:  # a few shapes (the last, smaller batch)
                self._plans.clear()
            self._plans[key] = plan
        return plan

    def forward(self, x):
        return self._forward(x, relu=False)

    def _forward_relu(self, x):
        """``relu(self.forward(x))``, the same bits, with the ReLU in the convolution's
        epilogue: no pass over the output of its own (`Sequential` calls it for a
        Conv2d followed by a ReLU)."""
        return self._forward(x, relu=True)

    def _forward(self, x, relu):
        _check_nchw(self, x)
        plan = self._plan(x)
        if plan is None:
            out = self._ops.conv2d(x, self.weight, self.bias, **self._geometry)
            if relu:
                out = _eltwise.relu(out)
        else:
            from pycnn._conv import Epilogue

            bias = self.bias
            # training: small column matrices are kept for backward (`_conv`)
            keep = self.training and plan.keeps_columns
            self._columns = np.empty(plan.columns_shape, plan.dtype) if keep else None
            out = plan.forward(
                np.ascontiguousarray(x),
                np.ascontiguousarray(self.weight),
                Epilogue(
                    None if bias is None else np.ascontiguousarray(bias),
                    _eltwise.relu_ if relu else None,
                ),
                self._columns,
            )
        self._x = x
        return out

    def backward(self, grad_out):
        return self._backward(grad_out, need_x=True)

    def _backward_params(self, grad_out):
        # the first layer of a network: its input gradient (an im2col-sized GEMM and
        # col2im) is skipped, as PyTorch skips it for an input that needs no gradient
        self._backward(grad_out, need_x=False)

    def _backward(self, grad_out, need_x):
        if self._x is None:
            raise RuntimeError("Conv2d.backward called before forward")
        plan = self._plan(self._x)
        if plan is None:
            grad_x, grad_w, grad_b = self._ops.conv2d_backward(
                grad_out, self._x, self.weight, **self._geometry
            )
        else:
            V.check_grad_out(grad_out, self._x, plan.out_shape)
            grad_x, grad_w, grad_b = plan.backward(
                np.ascontiguousarray(grad_out),
                np.ascontiguousarray(self._x),
                np.ascontiguousarray(self.weight),
                need_x=need_x,
                need_bias="bias" in self.params,
                columns=self._columns,
            )
        self._accumulate_grad("weight", grad_w)
        if "bias" in self.params:
            self._accumulate_grad("bias", grad_b)
        return grad_x

    def extra_repr(self):
        return _conv_repr(self, dict(stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1))


def _check_nchw(layer, x):
    """A convolution layer's input: (N, in_channels, H, W), the weight's dtype."""
    c = layer.in_channels
    _check_layer_input(
        layer,
        x,
        lambda a: a.ndim == 4 and a.shape[1] == c,
        f"input with {c} channels (N, {c}, H, W)",
        layer.weight.dtype,
        channels=c,
    )


def _conv_repr(layer, defaults):
    """A convolution layer's arguments: channels, kernel, then only the non-defaults."""
    s = f"{layer.in_channels}, {layer.out_channels}, kernel_size={layer.kernel_size}"
    for name, default in defaults.items():
        value = getattr(layer, name)
        if value != default:
            s += f", {name}={value!r}"
    if "bias" not in layer.params:
        s += ", bias=False"
    if layer.dtype != np.float32:
        s += f", dtype={layer.dtype.name}"
    return s


class ConvTranspose2d(_WeightedLayer):
    """2-D transposed convolution, like ``torch.nn.ConvTranspose2d``: the input gradient
    of a `Conv2d` with the same arguments, so it maps that convolution's output shape
    back to its input shape (decoders, upsampling).

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size, stride, padding, dilation : int or (H, W) pair
    output_padding : int or (H, W) pair, added to the bottom/right of the output; smaller
        than the stride or the dilation (it picks among the input sizes a strided
        `Conv2d` maps to the same output size)
    groups : int, divides both channel counts
    bias : bool
    dtype, rng, backend : as for `Conv2d`

    Shape
    -----
    x (N, C_in, H, W) -> (N, C_out, OH, OW),
    ``OH = (H - 1)*SH - 2*PH + DH*(KH - 1) + OPH + 1`` (OW likewise).
    `weight` is (C_in, C_out/groups, KH, KW), He-normal initialised over its fan-in
    C_out/groups*KH*KW as PyTorch counts it; `bias` is (C_out,), initialised to zero.
    """

    def __init__(
        self,
        in_channels,
        out_channels,
        kernel_size,
        stride=1,
        padding=0,
        output_padding=0,
        groups=1,
        bias=True,
        dilation=1,
        *,
        dtype=np.float32,
        rng=None,
        backend="compiled",
    ):
        super().__init__()
        self.in_channels = V.positive_int(in_channels, "in_channels")
        self.out_channels = V.positive_int(out_channels, "out_channels")
        self.kernel_size = V.pair(kernel_size, "kernel_size")
        self.stride = V.pair(stride, "stride")
        self.padding = V.pair(padding, "padding", min_value=0)
        self.output_padding = V.pair(output_padding, "output_padding", min_value=0)
        self.dilation = V.pair(dilation, "dilation")
        self.groups = V.positive_int(groups, "groups")
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ValueError(
                "`groups` must divide in_channels and out_channels. Received: "
                f"in_channels={in_channels}, out_channels={out_channels}, "
                f"groups={groups}"
            )
        if any(
            op >= max(s, d) for op, s, d in zip(self.output_padding, self.stride, self.dilation)
        ):
            raise ValueError(
                "`output_padding` must be smaller than the stride or the "
                f"dilation. Received: output_padding={self.output_padding}, "
                f"stride={self.stride}, dilation={self.dilation}"
            )
        self.dtype = V.float_dtype(dtype)
        self.backend = backend
        self._ops = _backend(backend)
        shape = (self.in_channels, self.out_channels // self.groups) + self.kernel_size
        self._init_params(shape, False, rng)
        if bias:
            self.params["bias"] = np.zeros(self.out_channels, dtype=self.dtype)

    @property
    def _geometry(self):
        return dict(
            stride=self.stride,
            padding=self.padding,
            output_padding=self.output_padding,
            groups=self.groups,
            dilation=self.dilation,
        )

    def forward(self, x):
        _check_nchw(self, x)
        out = self._ops.conv_transpose2d(x, self.weight, self.bias, **self._geometry)
        self._x = x
        return out

    def backward(self, grad_out):
        if self._x is None:
            raise RuntimeError("ConvTranspose2d.backward called before forward")
        grad_x, grad_w, grad_b = self._ops.conv_transpose2d_backward(
            grad_out, self._x, self.weight, **self._geometry
        )
        self._accumulate_grad("weight", grad_w)
        if "bias" in self.params:
            self._accumulate_grad("bias", grad_b)
        return grad_x

    def extra_repr(self):
        defaults = dict(
            stride=(1, 1), padding=(0, 0), output_padding=(0, 0), groups=1, dilation=(1, 1)
        )
        return _conv_repr(self, defaults)
