"""Data-parallel training over MPI, through mpi4py.

Every rank (process) holds a full copy of the model and trains on its own share of each
global batch; after the backward pass the gradients are averaged across ranks, so every
rank takes the same optimizer step and the copies stay identical. Run a script on N
processes with MPI's launcher::

    mpiexec -n 4 python train.py

::

    from pycnn import distributed as dist

    dist.init()                                   # MPI.COMM_WORLD, fail-fast on errors
    model = dist.DistributedDataParallel(make_model())
    ...                                           # the usual loop: forward, loss,
    model.backward(loss.backward())               # backward (gradients are averaged)
    optimizer.step()                              # the same step on every rank

MPI comes from the optional extra (``pip install mpi4py mpich``); ``import pycnn`` never
needs it, and this module imports mpi4py only when a function is called. pycnn does not
implement communication itself: every message is an MPI collective.
"""

import sys
import traceback

import numpy as np

from pycnn.layers.base import BaseLayer
from pycnn.layers.normalization import BatchNorm2d

__all__ = [
    "init",
    "rank",
    "world_size",
    "is_main",
    "barrier",
    "DistributedDataParallel",
    "SyncBatchNorm",
    "convert_sync_batchnorm",
]

_COMM = None  # the communicator `init` chose


def _mpi():
    try:
        from mpi4py import MPI
    except ImportError as err:
        raise ImportError(
            "pycnn.distributed needs mpi4py and an MPI library: "
            "pip install mpi4py mpich (or mpi4py built against your cluster's MPI)"
        ) from err
    return MPI


def init(comm=None, abort_on_error=True):
    """Start (or join) the MPI job and return its communicator.

    Parameters
    ----------
    comm : mpi4py communicator, optional
        The ranks to train over; ``MPI.COMM_WORLD`` by default.
    abort_on_error : bool
        Install a `sys.excepthook` that prints an uncaught exception once, with the
        rank that raised it, and then aborts every rank of the job (``MPI_Abort``), so
        that no rank is left waiting in a collective for one that died.
    """
    global _COMM
    MPI = _mpi()
    if comm is None:
        comm = MPI.COMM_WORLD
    if not isinstance(comm, MPI.Comm):
        raise TypeError(
            f"`comm` must be an mpi4py communicator. Received: comm of type "
            f"{type(comm).__name__}"
        )
    _COMM = comm
    if abort_on_error:
        _install_abort_hook(comm)
    return comm


def _install_abort_hook(comm):
    previous = sys.excepthook

    def abort_all(kind, value, tb):
        if comm.Get_size() == 1:
            previous(kind, value, tb)
            return
        text = "".join(traceback.format_exception(kind, value, tb))
        sys.stderr.write(f"pycnn.distributed: rank {comm.Get_rank()} failed:\n{text}")
        sys.stderr.flush()
        comm.Abort(1)

    sys.excepthook = abort_all


def _comm(comm=None):
    if comm is not None:
        return comm
    return _COMM if _COMM is not None else init()


def rank(comm=None):
    """This process's rank, 0 to ``world_size() - 1``."""
    return _comm(comm).Get_rank()


def world_size(comm=None):
    """The number of ranks in the job."""
    return _comm(comm).Get_size()


def is_main(comm=None):
    """True on rank 0, the one that prints, saves and checkpoints."""
    return rank(comm) == 0


def barrier(comm=None):
    """Wait until every rank gets here."""
    _comm(comm).Barrier()


# --- averaging and broadcasting arrays, packed into one message per dtype -------------


class _FlatBuffers:
    """One reused contiguous buffer per dtype, so that a set of arrays travels in one
    collective per dtype instead of one message per array."""

    def __init__(self):
        self._buffers = {}

    def get(self, dtype, size):
        buf = self._buffers.get(dtype)
        if buf is None or buf.size < size:
            buf = self._buffers[dtype] = np.empty(size, dtype=dtype)
        return buf[:size]


def _state_arrays(model):
    """(key, array, kind) of every parameter and buffer, in state-dict order."""
    for path, layer in model.named_layers():
        for kind, store in (("parameter", layer.params), ("buffer", layer.buffers)):
            for name, arr in store.items():
                yield (f"{path}.{name}" if path else name), arr, kind


def _signature(model):
    return [(key, kind, tuple(a.shape), a.dtype.str) for key, a, kind in _state_arrays(model)]


def _first_difference(mine, main):
    """A sentence naming the first entry where two model signatures differ."""
    for i, (a, b) in enumerate(zip(mine, main)):
        if a != b:
            (ka, kinda, sa, da), (kb, kindb, sb, db) = a, b
            return (
                f"entry {i}: {kinda} {ka!r} shape {sa} dtype {np.dtype(da).name} vs "
                f"rank 0's {kindb} {kb!r} shape {sb} dtype {np.dtype(db).name}"
            )
    longer, shorter = (mine, "this rank") if len(mine) > len(main) else (main, "rank 0")
    extra = longer[min(len(mine), len(main))][0]
    return f"{len(mine)} entries vs rank 0's {len(main)}; {shorter} lacks {extra!r}"


class DistributedDataParallel(BaseLayer):
    """Train `module` on every rank with gradients averaged across ranks.

    At construction, every rank checks that it built the same model as rank 0 (the
    names, shapes and dtypes of all parameters and buffers; a `ValueError` naming the
    first difference otherwise, raised on every rank) and then takes rank 0's values,
    so the copies start identical however each rank initialised them.

    ``backward(grad)`` runs the module's backward and then averages every parameter's
    gradient over the ranks: one ``Allreduce`` per dtype on a reused flat buffer, of
    which the gradients then are views (see `allreduce_gradients`). With
    each rank's loss the mean over its share of the global batch (and equal shares),
    the averaged gradient is the gradient of the mean loss over the whole global batch,
    so N ranks take exactly the step one process would take on the global batch.

    Parameters
    ----------
    module : BaseLayer
        The model (a `Sequential`, a container, a layer). It is held as ``.module`` and
        its state-dict keys gain the prefix ``"module."``, as in PyTorch.
    comm : mpi4py communicator, optional
        Defaults to the one `init` chose (``MPI.COMM_WORLD``).
    broadcast_buffers : bool
        Before each training-mode forward, copy rank 0's buffers (batch-norm running
        statistics) to every rank, as PyTorch does, so the ranks never drift apart.
        (`SyncBatchNorm` keeps them equal without this.)
    """

    def __init__(self, module, comm=None, broadcast_buffers=True):
        super().__init__()
        if not isinstance(module, BaseLayer):
            raise TypeError(
                f"`module` must be a pycnn layer or model. Received: module of type "
                f"{type(module).__name__}"
            )
        self.module = module
        self.comm = _comm(comm)
        self.broadcast_buffers = bool(broadcast_buffers)
        self.training = module.training
        self._flat = _FlatBuffers()
        self._views = {}  # dtype -> the gradient views of its flat buffer
        self._check_same_model()
        self.broadcast_state()

    # --- construction ------------------------------------------------------------------

    def _check_same_model(self):
        signatures = self.comm.allgather(_signature(self.module))
        main = signatures[0]
        bad = [r for r, s in enumerate(signatures) if s != main]
        if bad:
            me = self.comm.Get_rank()
            where = _first_difference(signatures[bad[0]], main)
            raise ValueError(
                f"DistributedDataParallel: every rank must build the same model; rank "
                f"{bad[0]} differs from rank 0 at {where} (ranks that differ: {bad}; "
                f"this is rank {me})"
            )

    def broadcast_state(self):
        """Copy rank 0's parameters and buffers to every rank."""
        self._broadcast(a for _, a, _ in _state_arrays(self.module))

    def _broadcast(self, arrays):
        """Copy rank 0's values of `arrays` into every rank's, in one message: their
        bytes side by side, each array at a multiple of 8 bytes (the buffers of a model
        are float and int64 arrays; one message instead of one per dtype)."""
        arrays = list(arrays)
        offsets = [0]
        for a in arrays:
            offsets.append(offsets[-1] + -(-a.nbytes // 8) * 8)
        flat = self._flat.get(np.dtype(np.uint8), offsets[-1])
        main = self.comm.Get_rank() == 0
        if main:
            for a, start in zip(arrays, offsets):
                flat[start : start + a.nbytes] = (
                    np.ascontiguousarray(a).reshape(-1).view(np.uint8)
                )
        self.comm.Bcast(flat, root=0)
        if not main:
            for a, start in zip(arrays, offsets):
                np.copyto(a, flat[start : start + a.nbytes].view(a.dtype).reshape(a.shape))

    # --- the layer interface -------------------------------------------------------------

    def named_children(self):
        yield "module", self.module

    def forward(self, x):
        if self.training and self.broadcast_buffers and self.comm.Get_size() > 1:
            buffers = [
                a for _, layer in self.module.named_layers() for a in layer.buffers.values()
            ]
            if buffers:
                self._broadcast(buffers)
        return self.module.forward(x)

    def backward(self, grad):
        grad_x = self.module.backward(grad)
        self.allreduce_gradients()
        return grad_x

    def _backward_params(self, grad):
        self.module._backward_params(grad)
        self.allreduce_gradients()

    def allreduce_gradients(self):
        """Average every parameter's gradient over the ranks, in place.

        Called by `backward`; call it yourself only after running the module's backward
        directly. A parameter without a gradient on this rank contributes zeros (and
        gets the average), so every rank sends the same message.

        Afterwards each gradient is a view of a flat buffer that this model reuses
        (PyTorch's ``gradient_as_bucket_view``): the next backward that accumulates
        into it and the next average write there, so copy a gradient to keep it past
        the next step. A gradient that is already that view is not copied again.
        """
        groups = {}
        for _, layer in self.module.named_layers():
            for name, param in layer.params.items():
                groups.setdefault(param.dtype, []).append((layer.grads, name, param))
        size = self.comm.Get_size()
        for dtype, group in groups.items():
            flat = self._flat.get(dtype, sum(param.size for _, _, param in group))
            views = self._gradient_views(flat, group)
            for (grads, name, _), view in zip(group, views):
                g = grads.get(name)
                if g is None:
                    view.fill(0)
                elif g is not view:
                    np.copyto(view, g)
            if size > 1:
                self.comm.Allreduce(_mpi().IN_PLACE, flat, op=_mpi().SUM)
                flat /= size
            for (grads, name, _), view in zip(group, views):
                grads[name] = view

    def _gradient_views(self, flat, group):
        """The arrays of `flat` shaped as the parameters of `group`, kept from the last
        call while `flat` and the shapes are the same."""
        key = (flat.__array_interface__["data"][0], flat.size, flat.dtype)
        shapes = [param.shape for _, _, param in group]
        cached = self._views.get(flat.dtype)
        if cached is not None and cached[0] == key and cached[1] == shapes:
            return cached[2]
        views, start = [], 0
        for shape in shapes:
            n = int(np.prod(shape))
            views.append(flat[start : start + n].reshape(shape))
            start += n
        self._views[flat.dtype] = (key, shapes, views)
        return views

    def extra_repr(self):
        return f"world_size={self.comm.Get_size()}"


# --- batch normalisation over the global batch ------------------------------------------


class SyncBatchNorm(BatchNorm2d):
    """`BatchNorm2d` whose training statistics are those of the global batch, like
    ``torch.nn.SyncBatchNorm``.

    In training mode the per-channel mean and variance are combined from every rank's
    share (one ``Allgather`` of each rank's count, mean and sum of squared deviations,
    combined exactly), and backward reduces its two per-channel sums across ranks (one
    ``Allreduce``). With `DistributedDataParallel`, N ranks then take the step that one
    process with `BatchNorm2d` takes on the whole global batch, and their running
    statistics stay equal. A rank whose share is empty still takes part (with a count
    of 0), so a last batch smaller than the job works. Eval mode is plain batch norm
    with the running statistics.

    Parameters
    ----------
    num_features, eps, momentum, affine, dtype
        As for `BatchNorm2d`.
    comm : mpi4py communicator, optional
        Defaults to the one `init` chose.
    """

    def __init__(
        self, num_features, eps=1e-5, momentum=0.1, affine=True, *, dtype=np.float32, comm=None
    ):
        super().__init__(num_features, eps, momentum, affine, dtype=dtype)
        self.comm = _comm(comm)

    def _batch_stats(self, n, mean, m2):
        c = self.num_features
        local = np.concatenate([[float(n)], mean, m2])
        every = np.empty((self.comm.Get_size(), local.size))
        self.comm.Allgather(local, every)
        counts, means, m2s = every[:, :1], every[:, 1 : 1 + c], every[:, 1 + c :]
        total = counts.sum()
        if total == 0:  # every rank's share is empty: batch norm's empty-batch rule
            return np.zeros(c), np.zeros(c), 0
        # Chan et al.'s pairwise update: the sum of squared deviations from the global
        # mean is each rank's own plus its count times its mean's squared distance
        g_mean = (counts * means).sum(axis=0) / total
        g_var = (m2s + counts * (means - g_mean) ** 2).sum(axis=0) / total
        return g_mean, g_var, int(total)

    def _grad_means(self, n, sum_g, sum_gx):
        MPI = _mpi()
        c = self.num_features
        sums = np.concatenate([[float(n)], sum_g, sum_gx])
        self.comm.Allreduce(MPI.IN_PLACE, sums, op=MPI.SUM)
        means = sums[1:] / sums[0]
        return means[:c], means[c:]


def convert_sync_batchnorm(model, comm=None):
    """Replace every `BatchNorm2d` in `model` (nested ones included) by a
    `SyncBatchNorm` holding the same parameters and running statistics.

    Returns the model (or the new layer, when `model` itself is a `BatchNorm2d`).
    Convert before creating the optimizer, which must be bound to the new layers'
    parameters.
    """

    def sync(bn):
        new = SyncBatchNorm(
            bn.num_features, bn.eps, bn.momentum, bn.affine, dtype=bn.dtype, comm=comm
        )
        new.params, new.buffers, new.training = bn.params, bn.buffers, bn.training
        return new

    if type(model) is BatchNorm2d:
        return sync(model)
    for _, layer in list(model.named_layers()):
        for name, value in list(vars(layer).items()):
            if type(value) is BatchNorm2d:
                setattr(layer, name, sync(value))
            elif isinstance(value, list):
                value[:] = [sync(v) if type(v) is BatchNorm2d else v for v in value]
    return model
