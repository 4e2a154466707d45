"""Layer classes behind one `BaseLayer` interface."""
from pycnn.layers.base import BaseLayer
from pycnn.layers.conv import Conv2d

__all__ = ["BaseLayer", "Conv2d"]
