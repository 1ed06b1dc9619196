"""Run under `mpiexec -n K` (or alone): ``ti.train.fit`` of the small network with SyncBatchNorm, data parallel.

    train_small.py OUT EPOCHS [--resume CKPT] [--kill-at-step S] [--hang-at-step S]

Global batch 12 (12 / K per rank) over 48 training and 30 test images, SGD with momentum, float64. ``--kill-at-step``
makes rank 1 kill itself (SIGKILL) after that optimizer step; ``--hang-at-step`` makes it sleep instead, so the
other ranks' collectives reach their deadline.
"""
import argparse
import os
import signal
import time

import numpy as np

import tinyinception as ti
from tinyinception.data import ArrayDataset
from small import make_data, make_model

parser = argparse.ArgumentParser()
parser.add_argument("out")
parser.add_argument("epochs", type=int)
parser.add_argument("--resume")
parser.add_argument("--kill-at-step", type=int)
parser.add_argument("--hang-at-step", type=int)
args = parser.parse_args()

world = ti.distributed.init()
train_images, train_labels = make_data(48, seed=21)
test_images, test_labels = make_data(30, seed=22)
train_set = ArrayDataset(train_images, train_labels, [str(c) for c in range(5)])
test_set = ArrayDataset(test_images, test_labels, [str(c) for c in range(5)])
train_loader, test_loader = ti.distributed.sharded_loaders(world, train_set, test_set, batch_size=12, seed=5,
                                                           test_batch_size=8)
model = ti.distributed.SyncBatchNorm.convert_sync_batchnorm(make_model(np.float64), world)
optimizer = ti.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)


def on_step(step, loss):
    if world.rank == 1 and step == args.kill_at_step:
        os.kill(os.getpid(), signal.SIGKILL)
    if world.rank == 1 and step == args.hang_at_step:
        time.sleep(600)


ti.train.fit(model, train_loader, test_loader, optimizer, args.epochs, out_dir=args.out, resume=args.resume,
             progress=False, on_step=on_step, world=world)
