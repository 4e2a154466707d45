"""Resizing layers: Upsample (nearest neighbour). No parameters."""

from pycnn import _validation as V
from pycnn.layers.base import BaseLayer, _backend


class Upsample(BaseLayer):
    """Nearest-neighbour resize of an NCHW batch, like ``torch.nn.Upsample``.

    Exactly one of `size` and `scale_factor`; both keyword-only, because PyTorch's
    positional order is (size, scale_factor) and ``Upsample(2)`` would otherwise mean
    different things here and there. Output pixel (i, j) copies input pixel
    (floor(i*H/OH), floor(j*W/OW)) (with `scale_factor`, 1/scale_factor stands for
    H/OH, as in PyTorch); `backward` sums the gradients of the copies. Only
    mode='nearest' exists; PyTorch's other modes raise NotImplementedError.

    Parameters
    ----------
    size : int or (OH, OW) pair
    scale_factor : positive real or (SH, SW) pair; OH = floor(H * SH)
    mode : 'nearest'
    backend : 'compiled' (pycnn.functional) or 'numpy' (pycnn.reference)

    Shape
    -----
    x (N, C, H, W) -> (N, C, OH, OW).
    """

    def __init__(self, *, size=None, scale_factor=None, mode="nearest", backend="compiled"):
        super().__init__()
        self.mode = V.interpolate_mode(mode)
        if (size is None) == (scale_factor is None):
            raise ValueError(
                "Exactly one of `size` and `scale_factor` must be given. "
                f"Received: size={size!r}, scale_factor={scale_factor!r}"
            )
        self.size = None if size is None else V.pair(size, "size")
        self.scale_factor = None if scale_factor is None else V.scale_pair(scale_factor)
        self.backend = backend
        self._ops = _backend(backend)
        self._shape = None

    @property
    def _geometry(self):
        return dict(scale_factor=self.scale_factor, size=self.size, mode=self.mode)

    def forward(self, x):
        out = self._ops.interpolate(x, **self._geometry)
        self._shape = x.shape
        return out

    def backward(self, grad_out):
        if self._shape is None:
            raise RuntimeError("Upsample.backward called before forward")
        return self._ops.interpolate_backward(grad_out, self._shape, **self._geometry)

    def extra_repr(self):
        s = (
            f"size={self.size}"
            if self.size is not None
            else f"scale_factor={self.scale_factor}"
        )
        s += f", mode={self.mode!r}"
        return s
