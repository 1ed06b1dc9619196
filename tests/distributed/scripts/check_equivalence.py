"""Run under `mpiexec -n K`: the correctness checks of data parallelism, rank 0 printing one JSON line.

1. Sharding: the ranks' shards of each epoch are disjoint, cover every index, and have one length.
2. Without SyncBatchNorm: after DataParallel.synchronize() every rank's gradient equals the mean of the per-rank
   gradients (gathered before the all-reduce), in overlap and blocking mode, with buckets of a few tensors.
3. With SyncBatchNorm: K ranks at batch B / K take 20 SGD steps; rank 0 compares the weights with one process at
   batch B (plain BatchNorm2d), float64 and float32.
"""
import json
import sys

import numpy as np
from mpi4py import MPI

import tinyinception as ti
from small import make_data, make_model, weights

world = ti.distributed.init(timeout=60)
comm, rank, size = MPI.COMM_WORLD, world.rank, world.size
BATCH = 12                      # divisible by 2 and 3
report = {"size": size}


def check_sharding():
    for count in (47, 48, 5):
        for epoch in range(2):
            sampler = ti.distributed.DistributedSampler(count, size, rank, shuffle=True, seed=3)
            shards = comm.allgather(sampler.indices(epoch).tolist())
            assert len({len(s) for s in shards}) == 1, f"unequal shard lengths {[len(s) for s in shards]}"
            everything = sorted(i for s in shards for i in s)
            assert set(everything) == set(range(count)), "an index is missing"
            assert len(everything) - count < size, "more padding than K - 1"
            exact = ti.distributed.DistributedSampler(count, size, rank, shuffle=True, seed=3, pad=False)
            assert sorted(i for s in comm.allgather(exact.indices(epoch).tolist()) for i in s) == list(range(count))
    report["sharding"] = "ok"


def local_batch(images, labels, step):
    """This rank's slice of global batch ``step`` (contiguous slices: their union is the global batch)."""
    start = step * BATCH + rank * (BATCH // size)
    return images[start:start + BATCH // size], labels[start:start + BATCH // size]


def check_gradient_mean(overlap):
    model = make_model(np.float64, seed=rank)            # different on purpose: DataParallel broadcasts rank 0's
    replica = ti.distributed.DataParallel(model, world, bucket_cap_mb=2e-4, overlap=overlap)  # ~200-byte buckets
    assert len(replica.buckets) > 3
    images, labels = make_data(BATCH * 2, seed=7)
    x, y = local_batch(images, labels, 1)
    loss = ti.functional.cross_entropy(replica(ti.Tensor(x)), y)
    model.zero_grad()
    loss.backward()
    if not overlap:
        local = {n: p.grad.copy() for n, p in model.named_parameters()}
    replica.synchronize()
    if overlap:   # the hooks may have started some buckets; recompute the local gradients without DataParallel
        model_alone = make_model(np.float64, seed=0)
        model_alone.load_state_dict(weights(model))
        out = ti.functional.cross_entropy(model_alone(ti.Tensor(x)), y)
        out.backward()
        local = {n: p.grad.copy() for n, p in model_alone.named_parameters()}
    gathered = comm.allgather(local)
    for name, p in model.named_parameters():
        expected = sum(g[name] for g in gathered) / size
        worst = float(np.max(np.abs(p.grad - expected)))
        if size == 2:
            assert worst == 0.0, f"{name}: averaged gradient differs from the mean by {worst}"
        else:   # three summands: the order of the additions may differ from MPI's
            assert worst <= 1e-15 * max(1.0, float(np.max(np.abs(expected)))), f"{name}: off by {worst}"
    report[f"gradient_mean_overlap_{overlap}"] = "ok"


def train(model, images, labels, steps, distributed):
    optimizer = ti.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    replica = ti.distributed.DataParallel(model, world) if distributed else None
    for step in range(steps):
        if distributed:
            x, y = local_batch(images, labels, step)
            logits = replica(ti.Tensor(x))
        else:
            x, y = images[step * BATCH:(step + 1) * BATCH], labels[step * BATCH:(step + 1) * BATCH]
            logits = model(ti.Tensor(x))
        loss = ti.functional.cross_entropy(logits, y)
        optimizer.zero_grad()
        loss.backward()
        if distributed:
            replica.synchronize()
        optimizer.step()
    return weights(model)


def check_sync_batchnorm(dtype, tolerance):
    steps = 20
    images, labels = make_data(BATCH * steps, dtype, seed=11)
    model = ti.distributed.SyncBatchNorm.convert_sync_batchnorm(make_model(dtype), world)
    distributed = train(model, images, labels, steps, distributed=True)
    if rank == 0:
        alone = train(make_model(dtype), images, labels, steps, distributed=False)
        worst = max(float(np.max(np.abs(distributed[k].astype(np.float64) - alone[k].astype(np.float64))))
                    for k in alone if k.endswith(("weight", "bias", "running_mean", "running_var")))
        assert worst <= tolerance, f"{np.dtype(dtype).name}: K={size} differs from one process by {worst}"
        report[f"sync_batchnorm_{np.dtype(dtype).name}_max_difference"] = worst
    others = comm.allgather(weights(model))
    assert all(np.array_equal(others[0][k], o[k]) for o in others for k in others[0]), "replicas differ"


check_sharding()
check_gradient_mean(overlap=False)
check_gradient_mean(overlap=True)
check_sync_batchnorm(np.float64, 1e-10)
check_sync_batchnorm(np.float32, 2e-5)
if rank == 0:
    print(json.dumps(report))
sys.stdout.flush()
