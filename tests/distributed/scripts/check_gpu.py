"""Run under `mpiexec -n K` on a machine with CuPy and a GPU: CuPy gradients averaged over the ranks (NCCL, or
through the host where NCCL refuses, e.g. two ranks on one GPU) equal the mean of the per-rank gradients."""
import json

import cupy
import numpy as np
from mpi4py import MPI

import tinyinception as ti
from small import make_data, make_model

world = ti.distributed.init(timeout=60)
cupy.cuda.Device(world.rank % cupy.cuda.runtime.getDeviceCount()).use()
summed = cupy.arange(5, dtype=cupy.float32) * (world.rank + 1)
world.allreduce(summed)
expected = np.arange(5, dtype=np.float32) * sum(range(1, world.size + 1))
assert np.array_equal(cupy.asnumpy(summed), expected), cupy.asnumpy(summed)
model = make_model(np.float32).to("cuda")
replica = ti.distributed.DataParallel(model, world, bucket_cap_mb=1e-3)
images, labels = make_data(4 * world.size, np.float32, seed=3)
x, y = images[4 * world.rank:4 * world.rank + 4], labels[4 * world.rank:4 * world.rank + 4]
loss = ti.functional.cross_entropy(replica(ti.Tensor(cupy.asarray(x))), cupy.asarray(y))
loss.backward()
replica.synchronize()
gathered = MPI.COMM_WORLD.allgather({n: cupy.asnumpy(p.grad) for n, p in model.named_parameters()})
assert all(np.array_equal(g[n], gathered[0][n]) for g in gathered for n in g), "ranks disagree"
if world.rank == 0:
    print(json.dumps({"size": world.size, "gpu": "ok"}))
