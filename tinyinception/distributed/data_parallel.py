"""`DataParallel`: one model replica per rank, gradients averaged over the ranks after every backward.

Each rank runs forward and backward on its own shard of the batch; before the optimizer steps, every gradient is
replaced by its mean over the ranks, so every replica takes the same step and the weights stay identical (they
start identical: rank 0's parameters and buffers are broadcast when the wrapper is built).

Buckets (as PyTorch's DDP does): the parameters, in reverse order of registration (backward reaches the last layers
first), are grouped into flat buffers of about ``bucket_cap_mb`` MB (the first of 1 MB, so that communication
starts early in backward). One all-reduce per bucket instead of one per
tensor pays the network's latency a few times, not hundreds of times.

Overlap (``overlap=True``, the default): each parameter has a post-accumulate-grad hook
(`Tensor.register_post_accumulate_grad_hook`). When the last gradient of a bucket has arrived, the bucket is packed
and a non-blocking ``Iallreduce`` starts, while backward goes on computing the earlier layers' gradients. Buckets
are started strictly in bucket order (a bucket that is ready early waits for the ones before it), because MPI needs
every rank to start its collectives in the same order. MPI moves a non-blocking collective along only while some
MPI call runs, so each hook also polls the buckets in flight. ``synchronize()`` (the trainer calls it right after
``loss.backward()``) starts any bucket still waiting, waits for all, divides by the number of ranks and writes the
means back into ``.grad``.

Blocking (``overlap=False``): no hooks; ``synchronize()`` all-reduces the buckets one after the other once backward
is over. Slower, and the easiest to read.

A parameter that got no gradient on a rank counts as zeros there (its averaged gradient is then set on every rank).
"""
import time

import numpy as np

from .. import backend
from ..nn.module import Module
from .world import get_world

DEFAULT_BUCKET_MB = 25
FIRST_BUCKET_MB = 1


class _Bucket:
    """Parameters whose gradients travel together in one flat buffer (one dtype, one device)."""

    def __init__(self, index, parameters):
        self.index, self.parameters = index, parameters
        self.sizes = [p.numel() for p in parameters]
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)]).astype(int)
        self.flat = None
        self.ready, self.pending, self.launched_at = set(), None, None

    @property
    def nbytes(self):
        return int(self.offsets[-1]) * self.parameters[0].dtype.itemsize

    def is_complete(self):
        return len(self.ready) == len(self.parameters)

    def pack(self):
        """Copy every gradient into the flat buffer (zeros where a parameter has none)."""
        first = self.parameters[0].data
        if self.flat is None or backend.device_of(self.flat) != backend.device_of(first):
            self.flat = backend.get_array_module(first).empty(int(self.offsets[-1]), dtype=first.dtype)
        for p, start, stop in zip(self.parameters, self.offsets[:-1], self.offsets[1:]):
            if p.grad is None:
                self.flat[start:stop] = 0
            else:
                self.flat[start:stop] = p.grad.reshape(-1)

    def unpack_mean(self, world_size):
        """Divide the summed buffer by the number of ranks and write each slice back into its ``.grad``."""
        self.flat /= self.flat.dtype.type(world_size)
        for p, start, stop in zip(self.parameters, self.offsets[:-1], self.offsets[1:]):
            mean = self.flat[start:stop].reshape(p.shape)
            if p.grad is None:
                p.grad = mean.copy()
            else:
                p.grad[...] = mean


def make_buckets(parameters, cap_bytes, first_cap_bytes=None):
    """Group ``parameters`` (in the given order) into buckets of at most ``cap_bytes`` (a parameter larger than
    the cap gets a bucket of its own), one dtype and device per bucket. ``first_cap_bytes`` caps the first bucket
    (DDP's 1 MB): the last layers' gradients start travelling early instead of waiting for 25 MB of them."""
    buckets, current, current_bytes, current_kind = [], [], 0, None
    for p in parameters:
        kind = (p.dtype, p.device)
        size = p.numel() * p.dtype.itemsize
        cap = first_cap_bytes if not buckets and first_cap_bytes is not None else cap_bytes
        if current and (kind != current_kind or current_bytes + size > cap):
            buckets.append(_Bucket(len(buckets), current))
            current, current_bytes = [], 0
        current.append(p)
        current_bytes += size
        current_kind = kind
    if current:
        buckets.append(_Bucket(len(buckets), current))
    return buckets


def _broadcast_group(world, arrays, what):
    """Broadcast rank 0's ``arrays`` in place, one flat message per dtype."""
    by_dtype = {}
    for array in arrays:
        by_dtype.setdefault(array.dtype, []).append(array)
    for dtype, group in by_dtype.items():
        xp = backend.get_array_module(group[0])
        flat = xp.concatenate([a.reshape(-1) for a in group]) if group else None
        world.broadcast(flat, 0, what)
        start = 0
        for a in group:
            a[...] = flat[start:start + a.size].reshape(a.shape)
            start += a.size


def broadcast_parameters(module, world=None):
    """Make every rank's parameters and buffers equal to rank 0's (in place)."""
    world = world or get_world()
    if world.size > 1:
        arrays = [p.data for p in module.parameters()] + [b.data for b in module.buffers()]
        _broadcast_group(world, arrays, "broadcast of parameters and buffers from rank 0")


class DataParallel(Module):
    """Wrap ``module`` so that after ``loss.backward()`` and ``synchronize()`` its gradients are means over ranks.

    module: the replica (a ``ti.nn.Module``), already on its device. world: a ``World`` (default: ``init()``'s).
    bucket_cap_mb: bucket size in MB (default 25, the first one 1, as PyTorch's DDP). overlap: start each
    bucket's all-reduce from the gradient hooks, during backward (True), or all at the end (False).
    broadcast_buffers: copy rank 0's buffers
    (BatchNorm's running statistics) to every rank before each training forward, as DDP does, so the replicas
    stay identical.

    ``timings`` holds, for the last step: ``allreduce_seconds`` (from each bucket's start to its end, summed),
    ``wait_seconds`` (what ``synchronize`` spent waiting: the part backward did not hide) and ``buckets``.
    """

    def __init__(self, module, world=None, bucket_cap_mb=DEFAULT_BUCKET_MB, overlap=True, broadcast_buffers=True):
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(f"DataParallel: expected a ti.nn.Module, got {type(module).__name__}")
        self.module = module
        object.__setattr__(self, "world", world or get_world())
        self.overlap, self.broadcast_buffers = bool(overlap), bool(broadcast_buffers)
        broadcast_parameters(module, self.world)
        parameters = [p for p in module.parameters() if p.requires_grad]
        cap = float(bucket_cap_mb) * 2 ** 20
        self.buckets = make_buckets(list(reversed(parameters)), cap, min(cap, FIRST_BUCKET_MB * 2 ** 20))
        self._bucket_of = {id(p): bucket for bucket in self.buckets for p in bucket.parameters}
        self._next_launch, self._armed = 0, False
        self._hooks = []
        if self.overlap and self.world.size > 1:
            self._hooks = [p.register_post_accumulate_grad_hook(self._gradient_ready) for p in parameters]
        self.timings = {"allreduce_seconds": 0.0, "wait_seconds": 0.0, "buckets": len(self.buckets)}

    def forward(self, *args, **kwargs):
        if self.world.size > 1:
            self._start_round()
            if self.broadcast_buffers and self.training:
                buffers = [b.data for b in self.module.buffers()]
                if buffers:
                    _broadcast_group(self.world, buffers, "broadcast of buffers from rank 0")
        return self.module(*args, **kwargs)

    def _start_round(self, armed=True):
        """Forget the last step's buckets; ``armed``: this forward's backward may start buckets from the hooks (a
        backward through the bare module, which the other ranks may not run, starts nothing)."""
        for bucket in self.buckets:
            bucket.ready, bucket.pending, bucket.launched_at = set(), None, None
        self._next_launch, self._armed = 0, armed

    # --- during backward -------------------------------------------------------------------------------------
    def _gradient_ready(self, parameter):
        if not self._armed:
            return
        self._bucket_of[id(parameter)].ready.add(id(parameter))
        while self._next_launch < len(self.buckets) and self.buckets[self._next_launch].is_complete():
            self._launch(self.buckets[self._next_launch])
        for bucket in self.buckets[:self._next_launch]:   # MPI moves collectives along only inside MPI calls
            bucket.pending.test()

    def _launch(self, bucket):
        bucket.pack()
        bucket.launched_at = time.perf_counter()
        bucket.pending = self.world.iallreduce(bucket.flat, f"all-reduce of gradient bucket {bucket.index}")
        self._next_launch = bucket.index + 1

    # --- after backward --------------------------------------------------------------------------------------
    def synchronize(self):
        """Finish averaging the gradients over the ranks (call after ``loss.backward()``, before the step)."""
        if self.world.size == 1:
            return
        waited = 0.0
        for bucket in self.buckets:
            if bucket.pending is None:
                self._launch(bucket)
            if not self.overlap:
                waited += self._finish(bucket)   # blocking mode: one bucket after the other
        for bucket in self.buckets:
            waited += self._finish(bucket)
            bucket.unpack_mean(self.world.size)
        self.timings = {"allreduce_seconds": sum(b.pending.finished - b.pending.started for b in self.buckets),
                        "wait_seconds": waited, "buckets": len(self.buckets)}
        self._start_round(armed=False)

    @staticmethod
    def _finish(bucket):
        """Wait for the bucket's all-reduce; returns the seconds spent waiting."""
        if bucket.pending.done:
            return 0.0
        started = time.perf_counter()
        bucket.pending.wait()
        return time.perf_counter() - started

    def remove_hooks(self):
        for handle in self._hooks:
            handle.remove()
        self._hooks = []

    def extra_repr(self):
        sizes = ", ".join(f"{b.nbytes / 2 ** 20:.1f}" for b in self.buckets)
        return (f"rank {self.world.rank} of {self.world.size}, {len(self.buckets)} bucket(s) of [{sizes}] MB, "
                f"overlap={self.overlap}")
