"""`Sequential`: a stack of layers with the layer interface (forward, backward, train and
eval modes, parameters, state), its shapes and its summary. Training and inference loops
live in `pycnn.training` and the model files in `pycnn.io`; the methods `fit`,
`evaluate`, `predict`, `save` and `load` delegate to them."""

import sys

import numpy as np

from pycnn import _buffers, _parallel, training
from pycnn import _validation as V
from pycnn import io as model_files
from pycnn.layers.activation import ReLU
from pycnn.layers.base import BaseLayer, _call_child, _runs_fused

__all__ = ["Sequential"]


class Sequential(BaseLayer):
    """Layers applied in order; backward runs them in reverse (the articles' LayerManager).

    ``model = Sequential(Conv2d(1, 16, 3, padding=1), ReLU(), Flatten(), Linear(1024, 10))``

    `parameters()` yields `pycnn.parameter.Parameter` handles, what an optimizer is bound
    to (``optim.SGD(model.parameters(), lr=0.1)``); `named_parameters()` pairs them with
    keys ``"<index>.<name>"`` (``"0.weight"``). `state_dict()` holds the parameters and
    the buffers (batch-norm running statistics) under the same keys, PyTorch's for the
    same architecture, and `load_state_dict` takes one back (from PyTorch too); `save`
    writes it to an ``.npz`` or ``.safetensors`` file and `load` reads one back without
    pickle. `to(np.float64)` converts the model in place.

    A `Sequential` is a layer (a `BaseLayer`), so it nests in containers (`Residual`,
    `Concat`, another `Sequential`) and they nest in it; keys then follow the path, as
    PyTorch's do: ``"3.body.0.weight"`` is parameter `weight` of layer 0 of the body of
    the `Residual` at index 3.

    Every layer must hold parameters of one dtype, the model's `dtype` (float32 unless
    the layers say otherwise); `fit`, `evaluate` and `predict` convert their inputs to
    it once, `forward` does not (``model.to(np.float64)`` converts the model).

    An error raised by a layer's forward or backward is raised again, of the same type
    and chained to it, with the layer's key path and repr in front:
    ``"layer 3.body.0 (Conv2d(3, 16, kernel_size=(3, 3))): expected input with 3
    channels (N, 3, H, W); got x.shape=(8, 1, 28, 28)"``.
    """

    def __init__(self, *layers):
        for i, layer in enumerate(layers):
            if not isinstance(layer, BaseLayer):
                raise TypeError(
                    f"`layers` must be pycnn layers (BaseLayer instances). "
                    f"Received: layer {i} of type {type(layer).__name__}"
                )
        super().__init__()
        self.layers = list(layers)
        dtypes = {
            arr.dtype
            for layer in self.layers
            for arr in layer.state_dict().values()
            if arr.dtype.kind == "f"  # not the integer num_batches_tracked
        }
        if len(dtypes) > 1:
            raise TypeError(
                "`layers` must all hold parameters of one dtype. Received: "
                + ", ".join(sorted(d.name for d in dtypes))
            )
        self.dtype = dtypes.pop() if dtypes else np.dtype(np.float32)
        self.history = None
        self.loss = None

    # --- the layer interface -----------------------------------------------------------

    # an error in a layer is raised again as "layer <index> (<repr>): <message>", the
    # same type, chained to the original (see `_call_child`)

    # BLAS is held at one thread for the whole pass (`pycnn._parallel`): the ops inside
    # then skip setting and restoring its thread count, once each

    # a layer with a `_forward_relu` method (Conv2d, BatchNorm*, Linear, Residual) then a
    # ReLU runs as one: the ReLU in the layer's own pass over its output, the ReLU
    # keeping that output for its backward (`ReLU._absorbed`); the same bits, one pass
    # and one array less. Not where either layer's `forward` is replaced on the
    # instance (`summary` records shapes that way), so that it is still called.

    # A `Residual` whose body is a Sequential ending in a layer with `_forward_add` (a
    # `FusedConv2d`) has that layer add the shortcut's output and apply the ReLU after
    # the sum in its epilogue (`_forward_add`).

    def forward(self, x):
        with _parallel.one_blas_thread():
            return self._run(x, len(self.layers))

    def _run(self, x, n):
        """`x` through the first `n` layers."""
        layers = self.layers
        i = 0
        while i < n:
            layer = layers[i]
            if i + 1 < n and _fuses_with_relu(layer, layers[i + 1]):
                x = _call_child(str(i), layer, "_forward_relu", x)
                layers[i + 1]._absorbed(x)
                i += 2
            else:
                x = _call_child(str(i), layer, "forward", x)
                i += 1
        return x

    def _forward_add(self, x, residual, relu):
        """``(out, True)`` with out = ``relu(self.forward(x) + residual)`` (no ReLU
        unless `relu`), the same bits, where the last layer adds `residual` in its own
        pass (see `FusedConv2d._forward_add`, whose contract this is); else
        ``(self.forward(x), False)``."""
        last = len(self.layers) - 1
        if last < 0 or not _runs_fused(self.layers[last], "_forward_add"):
            return self.forward(x), False
        with _parallel.one_blas_thread():
            x = self._run(x, last)
            return _call_child(str(last), self.layers[last], "_forward_add", x, residual, relu)

    def backward(self, grad, input_grad=True):
        """Gradients of the last `forward`: each layer's parameter gradients accumulate
        in its `grads`, and the gradient with respect to the input is returned.

        ``input_grad=False`` returns None instead and lets the first layer skip the work
        only that gradient needs (a first `Conv2d` skips its input gradient), as
        PyTorch skips it for an input that does not require a gradient: what a
        training loop wants (`fit` does it)."""
        with _parallel.one_blas_thread():
            for i in range(len(self.layers) - 1, 0, -1):
                grad = _call_child(str(i), self.layers[i], "backward", grad)
            if not self.layers:
                return grad if input_grad else None
            if input_grad:
                return _call_child("0", self.layers[0], "backward", grad)
            _call_child("0", self.layers[0], "_backward_params", grad)
        return None

    def _backward_params(self, grad):
        self.backward(grad, input_grad=False)

    def named_children(self):
        return ((str(i), layer) for i, layer in enumerate(self.layers))

    # `train`/`eval`, `parameters()` and `state_dict()` come from BaseLayer, which walks
    # `named_children`: keys "<index>.<name>", nested layers included

    def num_parameters(self):
        return sum(p.size for p in self.parameters())

    def fuse(self):
        """A copy for inference with batch norm folded into the convolutions and
        ReLU-family activations in their epilogues; see `pycnn.fuse`."""
        from pycnn.fusion import fuse

        return fuse(self)

    def __len__(self):
        return len(self.layers)

    def __getitem__(self, index):
        return self.layers[index]

    def __iter__(self):
        return iter(self.layers)

    # --- shapes --------------------------------------------------------------------------

    def output_shape(self, input_shape):
        """Output shape (batch axis None) for inputs of `input_shape` (no batch axis)."""
        return self._shapes(input_shape)[-1]

    def _shapes(self, input_shape, nested=None):
        """Shape after each layer, from a dry forward of one zero sample in eval mode.

        With a dict `nested`, it also gets ``{key: shape}`` for the output of every
        nested layer (keys as in `named_layers`), seen through their `forward` methods,
        wrapped for the dry run only."""
        try:
            shape = tuple(V.integer(s, "input_shape") for s in input_shape)
        except TypeError:
            raise TypeError(
                f"`input_shape` must be a tuple of ints (no batch axis). "
                f"Received: input_shape={input_shape!r}"
            ) from None
        mode = self.training
        self.eval()
        wrapped = []
        try:
            if nested is not None:
                for key, layer, _ in _tree(self):
                    layer.forward = _recording(layer, key, nested)
                    wrapped.append(layer)
            x = np.zeros((1,) + shape, dtype=self.dtype)
            shapes = [(None,) + shape]
            for i, layer in enumerate(self.layers):
                x = _call_child(str(i), layer, "forward", x)
                shapes.append((None,) + x.shape[1:])
        finally:
            for layer in wrapped:
                vars(layer).pop("forward", None)  # back to the class's method
            self.train(mode)
        return shapes

    # --- training and inference --------------------------------------------------------

    def fit(
        self,
        x,
        y,
        epochs,
        batch_size,
        optimizer,
        loss,
        validation_data=None,
        shuffle=True,
        rng=None,
        progress=True,
        *,
        scheduler=None,
        validation_split=None,
        callbacks=None,
        distributed=False,
    ):
        """Train with mini-batches; return the history of per-epoch metrics.

        Parameters
        ----------
        x : array (N, ...), converted once to the model's dtype
        y : (N,) integer class labels, or float targets of the output's shape
        epochs, batch_size : int
        optimizer : a `pycnn.optim` optimizer bound to this model's parameters
            (``optim.Adam(model.parameters(), lr=1e-3)``), stepped once a batch after
            the gradients are zeroed and computed; an unbound one
            (``optim.Adam(lr=1e-3)``) is bound to them here. Eve gets the batch's loss.
        loss : a `pycnn.losses` loss, e.g. ``CrossEntropyLoss()``
        validation_data : optional ``(x_val, y_val)``, evaluated after every epoch
        shuffle : bool, a new order of the samples every epoch
        rng : numpy Generator or seed for the shuffling and the validation split (fix it
            to repeat a run)
        progress : show a progress bar (tqdm, on a terminal) or one line per epoch
        scheduler : optional LR schedule of `pycnn.lr_scheduler`, stepped once per
            epoch (`ReduceLROnPlateau` with ``val_loss``, or ``loss`` without validation)
        validation_split : optional float in (0, 1), instead of `validation_data`: that
            fraction of `x`, `y` (rounded up) is held out, drawn with `rng`, evaluated
            after every epoch and not trained on. Integer labels are split per class, so
            each class keeps its share within one sample; float targets at random. The
            caller's arrays are not modified.
        callbacks : optional list of objects with any of the methods
            ``on_train_begin(model)`` (before the first epoch), ``on_epoch_end(epoch,
            logs)`` (after each epoch; `epoch` counts from 0, `logs` is a dict of the
            epoch's metrics, as in the history; a true return value stops the training
            after this epoch) and ``on_train_end(model)`` (after the last epoch, stopped
            or not; not called when fit raises). `pycnn.callbacks` has `EarlyStopping`
            and `ModelCheckpoint`.
        distributed : bool, train data-parallel over the ranks of an MPI job
            (`pycnn.distributed`; run the script with ``mpiexec -n N``): every rank
            computes a disjoint, seed-determined share of each global batch (whose size
            stays `batch_size`), the gradients are averaged, and each step equals the
            one a single process takes on the global batch. Metrics and validation are
            reduced across ranks; only rank 0 shows progress and saves checkpoints.

        Returns
        -------
        dict of lists, one value per epoch: ``loss`` (mean over the epoch's samples,
        in train mode), ``accuracy`` (for classification), and ``val_loss``,
        ``val_accuracy`` with `validation_data` or `validation_split`. Also kept as
        ``model.history``; shorter than `epochs` when a callback stopped the training.

        Raises
        ------
        ValueError
            for both `validation_data` and `validation_split`, or a `validation_split`
            outside (0, 1) or that leaves no training sample.
        FloatingPointError
            when a batch's loss, or the model's arrays after its update, are not finite.
            The parameters, the buffers (batch-norm statistics) and the optimizer's state
            are then bit for bit those from before that batch, and ``model.history``
            holds the epochs that finished.
        """
        try:
            return training.fit(
                self,
                x,
                y,
                epochs,
                batch_size,
                optimizer,
                loss,
                validation_data,
                shuffle,
                rng,
                progress,
                scheduler=scheduler,
                validation_split=validation_split,
                callbacks=callbacks,
                distributed=distributed,
            )
        finally:
            _buffers.clear()  # the arrays kept between steps (`pycnn._buffers`)

    def evaluate(self, x, y, batch_size=256, loss=None):
        """(mean loss per sample, accuracy) in eval mode; accuracy is None if not
        classification. `loss` defaults to the one last given to `fit`, else
        ``CrossEntropyLoss()``."""
        try:
            return training.evaluate(self, x, y, batch_size, loss)
        finally:
            _buffers.clear()

    def predict(self, x, batch_size=256):
        """Outputs (e.g. logits) for `x` in eval mode, in batches; model's dtype."""
        try:
            return training.predict(self, x, batch_size)
        finally:
            _buffers.clear()

    # --- inspection and persistence ------------------------------------------------------

    def summary(self, input_shape, file=None):
        """Print each layer, its output shape and parameter count, and the totals.

        The layers nested in containers have rows of their own, keyed by their path
        (``1.body.0``, as in `state_dict`) and indented under their container, whose
        count includes theirs.
        `input_shape` is one sample's shape, without the batch axis, e.g. (1, 8, 8).
        The shapes come from a dry forward pass of one zero sample in eval mode.
        """
        nested = {}
        shapes = self._shapes(input_shape, nested)
        rows = [("#", "layer", "output shape", "params")]
        rows.append(("", "input", str(shapes[0]), ""))
        for key, layer, depth in _tree(self):
            count = sum(p.size for p in layer.parameters())
            shape = nested.get(key, "")
            rows.append((key, "  " * depth + _one_line(layer), str(shape), f"{count:,}"))
        widths = [max(len(r[k]) for r in rows) for k in range(4)]

        def line(r):
            return (
                f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  "
                f"{r[2]:<{widths[2]}}  {r[3]:>{widths[3]}}"
            ).rstrip()

        rule = "-" * (sum(widths) + 6)
        total = self.num_parameters()
        buffers = sum(
            b.size
            for _, layer in self.named_layers()
            for b in layer.buffers.values()
            if b.dtype.kind == "f"  # the statistics, not the num_batches_tracked counters
        )
        text = (
            [line(rows[0]), rule]
            + [line(r) for r in rows[1:]]
            + [
                rule,
                f"total parameters: {total:,} ({total * self.dtype.itemsize:,} bytes, "
                f"{self.dtype.name})",
            ]
        )
        if buffers:
            text.append(f"buffers (running statistics): {buffers:,}")
        print("\n".join(text), file=file or sys.stdout)

    def save(self, path):
        """Write parameters and buffers (the `state_dict`) to a file; see `load`.

        The suffix of `path` picks the format: ``.npz`` (NumPy, read back without
        pickle), ``.safetensors`` (the `safetensors` package: ``pip install
        safetensors``; the tensors are named by the state-dict keys, so PyTorch's
        ``safetensors.torch.load_file`` and ``load_state_dict`` open it in a PyTorch
        twin of the model), or none: ``.npz`` is then appended, like ``numpy.savez``.
        Any other suffix raises a ValueError. The name of the file written is returned.
        The file gets the permissions of any new file (``0o666`` less the umask).

        Atomic: the file is written to a temporary file ``.pycnn-save-<random>.npz``
        (or ``.safetensors``) beside `path`, then renamed over it, so a crash mid-save
        never leaves a half-written file in place of the previous model. A save that
        is killed leaves that temporary file behind; the next save into the same
        folder removes such files of this user older than an hour (younger ones may
        be saves in progress).
        """
        return model_files.save(self, path)

    def load(self, path):
        """Read parameters and buffers saved by `save` (or by PyTorch, see below) into
        this model; return the model.

        `path` is the one given to `save`: ``model.save("m")`` wrote ``m.npz``, and
        ``load("m")`` reads ``m.npz`` when ``m`` itself is not a file.

        ``.npz``: the archive must hold exactly this model's keys (a batch norm's
        ``num_batches_tracked`` may be absent, as in files from older pycnn), each an
        ``.npy`` member of the model's shape and dtype. Every member's header is checked
        before any data is read, and only the bytes the model needs are read, so a
        hostile or corrupt file costs no more time and memory than the model itself.
        Anything else (not a zip, truncated, a member that is not an ``.npy``, pickled
        objects, trailing data, a wrong key, shape or dtype) raises one ValueError
        naming the file and the member, and leaves the model unchanged.

        ``.safetensors`` (``pip install safetensors``), e.g. written by PyTorch's
        ``safetensors.torch.save_file(torch_model.state_dict(), path)``: the tensors'
        names, shapes and dtypes are checked before their data is read, every
        mismatch listed in one ValueError; values are cast to the model's dtype as by
        `load_state_dict`.

        A path that does not exist raises FileNotFoundError.
        """
        return model_files.load_into(self, path)


def _fuses_with_relu(layer, following):
    """Whether `layer` then `following` run as one call (see `Sequential.forward`)."""
    return (
        type(following) is ReLU
        and ReLU.forward is _RELU_FORWARD
        and "forward" not in vars(following)
        and _runs_fused(layer, "_forward_relu")
    )


_RELU_FORWARD = ReLU.forward  # a ReLU.forward patched later is called, not bypassed


# --- summary helpers -------------------------------------------------------------------------


def _tree(layer, prefix="", depth=0):
    """``(key, layer, depth)`` of every layer nested in `layer`, depth first; the children
    of `layer` have depth 0."""
    for name, child in layer.named_children():
        key = f"{prefix}.{name}" if prefix else name
        yield key, child, depth
        yield from _tree(child, key, depth + 1)


def _one_line(layer):
    """A layer's repr on one line: containers show their name and arguments only (their
    children have rows of their own)."""
    if next(iter(layer.named_children()), None) is None:
        return repr(layer)
    return f"{type(layer).__name__}({layer.extra_repr()})"


def _recording(layer, key, shapes):
    """`layer.forward`, also writing the output's shape (batch axis None) to `shapes`."""
    forward = type(layer).forward.__get__(layer)

    def recording_forward(x):
        out = forward(x)
        shapes[key] = (None,) + out.shape[1:]
        return out

    return recording_forward
