"""Data-parallel training over MPI: ``mpirun -n 4 python -m tinyinception train ...``.

    import tinyinception as ti
    world = ti.distributed.init()                       # rank and size from MPI (a world of one without it)
    sampler = ti.distributed.DistributedSampler(len(train_set), world.size, world.rank, seed=0)
    loader = ti.data.DataLoader(train_set, batch_size=32, sampler=sampler, drop_last=True)
    model = ti.distributed.SyncBatchNorm.convert_sync_batchnorm(model)   # optional
    replica = ti.distributed.DataParallel(model)          # broadcasts rank 0's weights
    for images, labels in loader:
        loss = loss_fn(replica(ti.Tensor(images)), labels)
        optimizer.zero_grad(); loss.backward(); replica.synchronize(); optimizer.step()

mpi4py is imported only in `world`, and only under an MPI launcher; the rest works without it (a world of one).
docs/distributed.md explains the cost model and how to run on several machines.
"""
from .data_parallel import DataParallel, broadcast_parameters, make_buckets
from .sampler import DistributedSampler
from .sync_batchnorm import SyncBatchNorm
from .training import ParallelTraining, sharded_loaders
from .world import World, get_world, init, launched_by_mpi

__all__ = ["init", "get_world", "World", "launched_by_mpi", "DistributedSampler", "DataParallel",
           "broadcast_parameters", "make_buckets", "SyncBatchNorm", "ParallelTraining", "sharded_loaders"]
