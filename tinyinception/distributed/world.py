"""The world of processes: who am I (``rank``), how many are we (``size``), and the collectives, each with a deadline.

    world = ti.distributed.init()          # under `mpirun -n 4`: rank 0..3 of 4; plain `python`: rank 0 of 1
    world.allreduce(array)                  # in place: every rank ends with the element-wise sum over the ranks

mpi4py is imported here and only here, and only when ``init`` finds that an MPI launcher started this process
(`launched_by_mpi`): a plain ``python`` run never loads MPI, and a world of one process answers every collective
at once without it.

No hang: every collective is started non-blocking (``Iallreduce``, ``Ibcast``, ``Ibarrier``) and waited for by
polling ``Test`` against a deadline (``timeout`` seconds, default 300, or ``$TINYINCEPTION_MPI_TIMEOUT``). A rank
that died or hangs stops the others with one clear line on stderr and ``MPI_Abort``, which ends every process of
the job. (MPICH's and Open MPI's launchers already end the job when a rank is killed; the deadline covers the rank
that hangs, and the network that drops.)

CuPy arrays: summed with NCCL (``cupy.cuda.nccl``, one communicator set up through MPI on first use) where CuPy
has it, otherwise copied to the host, reduced over MPI and copied back.
"""
import os
import sys
import time

import numpy as np

from .. import backend

DEFAULT_TIMEOUT = 300.0
TIMEOUT_VARIABLE = "TINYINCEPTION_MPI_TIMEOUT"

# Environment variables the common MPI launchers set in every process they start (MPICH/Hydra, Open MPI, PMIx,
# Slurm's PMI2). Reading them costs nothing, so a plain `python` run never imports mpi4py.
LAUNCHER_VARIABLES = ("PMI_RANK", "PMI_SIZE", "PMIX_RANK", "OMPI_COMM_WORLD_SIZE", "MPI_LOCALNRANKS",
                      "HYDI_CONTROL_FD", "MPIEXEC_HOSTNAME")


def launched_by_mpi():
    """True when an MPI launcher (mpirun, mpiexec, srun) started this process; looks at the environment only."""
    return any(name in os.environ for name in LAUNCHER_VARIABLES)


def launcher_number(names, default):
    """The first of the environment variables ``names`` that a launcher (MPICH, Open MPI, PMIx, Slurm) set to a whole
    number, as an int; ``default`` when none is set."""
    for name in names:
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    return default


def _launched_size():
    """The number of processes the launcher says it started (1 when it does not say)."""
    return launcher_number(("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "SLURM_NTASKS"), 1)


def _timeout_from_environment():
    value = os.environ.get(TIMEOUT_VARIABLE)
    if value is None:
        return DEFAULT_TIMEOUT
    try:
        seconds = float(value)
    except ValueError:
        raise ValueError(f"${TIMEOUT_VARIABLE} must be a number of seconds, got {value!r}") from None
    if not seconds > 0:
        raise ValueError(f"${TIMEOUT_VARIABLE} must be positive, got {value!r}")
    return seconds


class Pending:
    """A started collective: ``test()`` says whether it is done (and moves it on), ``wait()`` blocks until it is,
    under the world's deadline. ``started`` and ``finished`` (when a test first saw it done): ``time.perf_counter``
    times."""

    def __init__(self, world, test, what, finish=None):
        self.world, self._test, self.what, self._finish = world, test, what, finish
        self.started, self.done, self.finished = time.perf_counter(), False, None

    def test(self):
        if not self.done and self._test():
            self.done, self.finished = True, time.perf_counter()
            if self._finish is not None:
                self._finish()
        return self.done

    def wait(self):
        """Block until done; past the world's deadline, stop the whole job with a message naming the collective."""
        deadline = time.monotonic() + self.world.timeout
        pause = 0.0
        while not self.test():
            if time.monotonic() > deadline:
                self.world.abort(f"{self.what} got no answer from the other ranks within {self.world.timeout:g} s "
                                 f"(a rank died or hangs)")
            time.sleep(pause)
            pause = min(pause * 2 or 2e-5, 1e-3)   # poll fast at first, then every millisecond


class _Done(Pending):
    def __init__(self, world, what):
        super().__init__(world, lambda: True, what)
        self.done, self.finished = True, self.started


class World:
    """``rank`` of ``size`` processes, and the collectives over them (all in place, all with a deadline).

    comm: an mpi4py communicator (None for the world of one process). timeout: seconds a collective may wait.
    """

    def __init__(self, comm=None, timeout=None):
        self.comm = comm
        self.rank = 0 if comm is None else comm.Get_rank()
        self.size = 1 if comm is None else comm.Get_size()
        self.timeout = _timeout_from_environment() if timeout is None else float(timeout)
        self._nccl = None

    @property
    def is_main(self):
        """Rank 0: the process that writes files and prints."""
        return self.rank == 0

    def __repr__(self):
        return f"World(rank={self.rank}, size={self.size}, timeout={self.timeout:g})"

    # --- collectives ---------------------------------------------------------------------------------------------
    def iallreduce(self, array, what="all-reduce"):
        """Start summing ``array`` (NumPy or CuPy, contiguous) over the ranks, in place; returns a `Pending`."""
        if self.size == 1:
            return _Done(self, what)
        if backend.is_cupy_array(array):
            return self._gpu().iallreduce(array, what)
        _check_contiguous(array, what)
        from mpi4py import MPI
        request = self.comm.Iallreduce(MPI.IN_PLACE, array, op=MPI.SUM)
        return Pending(self, request.Test, f"rank {self.rank}: {what}")

    def allreduce(self, array, what="all-reduce"):
        """Sum ``array`` over the ranks, in place, and return it (waits under the deadline)."""
        self.iallreduce(array, what).wait()
        return array

    def broadcast(self, array, root=0, what="broadcast"):
        """Copy rank ``root``'s ``array`` into every rank's ``array``, in place; returns it."""
        if self.size == 1:
            return array
        if backend.is_cupy_array(array):
            host = backend.to_device(array, "cpu")
            self.broadcast(host, root, what)
            array[...] = backend.to_device(host, "cuda")
            return array
        _check_contiguous(array, what)
        Pending(self, self.comm.Ibcast(array, root=root).Test, f"rank {self.rank}: {what}").wait()
        return array

    def barrier(self, what="barrier"):
        """Wait until every rank has reached this point."""
        if self.size > 1:
            Pending(self, self.comm.Ibarrier().Test, f"rank {self.rank}: {what}").wait()

    def sum_numbers(self, numbers, what="all-reduce of counts"):
        """Element-wise sum over the ranks of a list of Python numbers (float64); returns a list of floats."""
        return self.allreduce(np.asarray(numbers, dtype=np.float64).copy(), what).tolist()

    def abort(self, message):
        """Print ``message`` on stderr and end every process of the job (MPI_Abort); a world of one raises."""
        text = f"tinyinception.distributed: rank {self.rank} of {self.size}: {message}; stopping all ranks"
        if self.comm is None:
            raise RuntimeError(text)
        print(text, file=sys.stderr, flush=True)
        self.comm.Abort(1)

    def _gpu(self):
        if self._nccl is None:
            from .gpu import GpuReducer
            self._nccl = GpuReducer(self)
        return self._nccl


def _check_contiguous(array, what):
    if not array.flags.c_contiguous:
        raise ValueError(f"tinyinception.distributed {what}: the array must be C-contiguous (shape {array.shape}, "
                         f"strides {array.strides}); pass a contiguous copy")


_state = {"world": None}


def init(timeout=None):
    """The world of this process, set up once: under an MPI launcher, MPI's ``COMM_WORLD``; otherwise (or when
    mpi4py is not installed) a world of one process whose collectives return at once.

    timeout: seconds a collective waits before the job is stopped (default ``$TINYINCEPTION_MPI_TIMEOUT`` or 300).
    """
    if _state["world"] is None:
        comm = None
        if launched_by_mpi():
            try:
                from mpi4py import MPI
            except ImportError:
                if _launched_size() > 1:
                    raise RuntimeError(f"tinyinception.distributed: an MPI launcher started {_launched_size()} "
                                       "processes but mpi4py is not installed: pip install 'tinyinception[mpi]'") \
                        from None
            else:
                comm = MPI.COMM_WORLD
        _state["world"] = World(comm, timeout)
    elif timeout is not None:
        _state["world"].timeout = float(timeout)
    return _state["world"]


def get_world():
    """The world ``init`` set up (a world of one process if ``init`` was not called)."""
    return _state["world"] or World()
