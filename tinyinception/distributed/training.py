"""What the trainer and the command line call when the world has more than one process (and only then).

``ti.train.fit(..., world=world)`` with ``world.size > 1`` builds a `ParallelTraining`: the model is wrapped in
`DataParallel` (after a resume, so rank 0's weights are broadcast), each step's loss is averaged over the ranks
before the finite check (so every rank stops together on a nan), gradients are averaged after backward, the epoch's
training and evaluation sums (loss, correct predictions, examples) are added up over the ranks, and only rank 0
writes files or prints.
"""
import os

from ..data.loader import DataLoader
from .data_parallel import DataParallel
from .sampler import DistributedSampler
from .world import launcher_number


class ParallelTraining:
    """The data-parallel side of one ``fit`` call. replica: the `DataParallel` wrapper of the model."""

    def __init__(self, world, model, overlap=True):
        self.world = world
        self.replica = DataParallel(model, world, overlap=overlap)

    @property
    def is_writer(self):
        return self.world.is_main

    def mean_over_ranks(self, value):
        """The mean of a float over the ranks (nan or inf if any rank has one)."""
        return self.world.sum_numbers([value], "all-reduce of the loss")[0] / self.world.size

    def after_backward(self):
        self.replica.synchronize()

    def sum_meter(self, meter):
        """Replace an EpochMeter's sums (loss * examples, correct, examples) by their totals over the ranks."""
        meter.loss_sum, correct, count = self.world.sum_numbers([meter.loss_sum, meter.correct, meter.count],
                                                                "all-reduce of the epoch's training sums")
        meter.correct, meter.count = int(round(correct)), int(round(count))
        return meter

    def sum_evaluation(self, metrics):
        """``evaluate``'s {"loss", "accuracy", "count"} of this rank's shard -> the same over the whole set."""
        count = metrics["count"]
        correct = round(metrics["accuracy"] * count) if count else 0
        loss_sum = metrics["loss"] * count if count else 0.0
        loss_sum, correct, count = self.world.sum_numbers([loss_sum, correct, count], "all-reduce of evaluation")
        count = int(round(count))
        return {"loss": loss_sum / count if count else float("nan"),
                "accuracy": round(correct) / count if count else float("nan"), "count": count}


def sharded_loaders(world, train_set, test_set, batch_size, seed, train_transform=None, test_transform=None,
                    test_batch_size=256):
    """(train loader, test loader) of this rank: ``batch_size`` is the GLOBAL batch, split evenly over the ranks
    (each takes batch_size / K from its shard of the shuffled, padded order); the test set is split without
    padding, so summed over the ranks every test image counts once."""
    if batch_size % world.size:
        raise ValueError(f"--batch-size {batch_size} is the batch over all {world.size} ranks and must be a "
                         f"multiple of {world.size}")
    train_sampler = DistributedSampler(len(train_set), world.size, world.rank, shuffle=True, seed=seed)
    test_sampler = DistributedSampler(len(test_set), world.size, world.rank, shuffle=False, pad=False)
    train_loader = DataLoader(train_set, batch_size // world.size, drop_last=True, seed=seed,
                              transform=train_transform, sampler=train_sampler)
    test_loader = DataLoader(test_set, max(1, test_batch_size // world.size), transform=test_transform,
                             sampler=test_sampler)
    return train_loader, test_loader


def local_rank():
    """This process's index among the ranks on its machine (from the launcher's environment; 0 if unknown)."""
    return launcher_number(("MPI_LOCALRANKID", "OMPI_COMM_WORLD_LOCAL_RANK", "PMIX_LOCAL_RANK", "SLURM_LOCALID"), 0)


def use_local_gpu():
    """Make GPU ``local rank % device count`` CuPy's current device (one GPU per rank on each machine)."""
    import cupy
    device = local_rank() % cupy.cuda.runtime.getDeviceCount()
    cupy.cuda.Device(device).use()
    return device


def local_size():
    """How many ranks the launcher started on this machine (1 if it does not say)."""
    return launcher_number(("MPI_LOCALNRANKS", "OMPI_COMM_WORLD_LOCAL_SIZE", "PMIX_LOCAL_SIZE", "SLURM_NTASKS_PER_NODE"),
                           1)


def share_cores():
    """Give each rank on this machine an equal share of its cores for Numba's threads (unless NUMBA_NUM_THREADS
    says otherwise): two ranks with two threads each on two cores would fight over them. Returns the count."""
    from ..kernels._numba import NUMBA_AVAILABLE
    if not NUMBA_AVAILABLE or "NUMBA_NUM_THREADS" in os.environ:
        return None
    import numba
    threads = max(1, min(numba.config.NUMBA_NUM_THREADS, (os.cpu_count() or 1) // local_size()))
    numba.set_num_threads(threads)
    return threads
