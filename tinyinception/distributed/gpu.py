"""Summing CuPy arrays over the ranks: NCCL when CuPy has it (``cupy.cuda.nccl``), else through the host over MPI.

NCCL needs one communicator per job: rank 0 draws a unique id, MPI broadcasts it, and every rank joins with
``NcclCommunicator(size, id, rank)`` on its own GPU (device ``rank % device count``, chosen by `init` users with
``cupy.cuda.Device(...).use()`` before building the model). ``allReduce`` is queued on the current stream, so it
overlaps the kernels queued after it; a CUDA event recorded behind it says when it is done.
"""
import sys

import numpy as np

from .world import Pending


class GpuReducer:
    def __init__(self, world):
        self.world = world
        self.comm = None
        try:
            from cupy.cuda import nccl
        except ImportError:
            nccl = None
        self.nccl = nccl if nccl is not None and getattr(nccl, "available", True) else None
        if self.nccl is not None:
            unique_id = self.nccl.get_unique_id() if world.rank == 0 else None
            unique_id = world.comm.bcast(unique_id, root=0)
            try:
                self.comm = self.nccl.NcclCommunicator(world.size, unique_id, world.rank)
            except self.nccl.NcclError as error:   # e.g. two ranks on one GPU: NCCL refuses, the host path works
                print(f"tinyinception.distributed: rank {world.rank}: NCCL unavailable ({error}); CuPy arrays "
                      "are reduced through the host", file=sys.stderr, flush=True)

    def iallreduce(self, array, what):
        import cupy
        if self.comm is None:
            return self._through_host(array, what)
        types = {np.dtype(np.float32): self.nccl.NCCL_FLOAT32, np.dtype(np.float64): self.nccl.NCCL_FLOAT64,
                 np.dtype(np.float16): self.nccl.NCCL_FLOAT16}
        if array.dtype not in types:
            return self._through_host(array, what)
        stream = cupy.cuda.get_current_stream()
        self.comm.allReduce(array.data.ptr, array.data.ptr, array.size, types[array.dtype], self.nccl.NCCL_SUM,
                            stream.ptr)
        event = stream.record()
        return Pending(self.world, lambda: event.done, f"rank {self.world.rank}: {what} (NCCL)")

    def _through_host(self, array, what):
        import cupy
        host = cupy.asnumpy(array)
        self.world.allreduce(host, what)
        array.set(host)
        return Pending(self.world, lambda: True, what)
