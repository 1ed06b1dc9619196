"""A tiny training run with heavy checkpoints, to be killed during its saves (see test_kill_during_save.py).

    python killable_run.py OUT EPOCHS      # prints "save" just before each checkpoint write starts

Resumes from OUT/last.ckpt when it exists, so running it again after a kill finishes the run.
"""
import os
import sys

import numpy as np

import tinyinception as ti
from tinyinception import nn
from tinyinception.data import ArrayDataset, DataLoader, RandomHorizontalFlip
from tinyinception.train import checkpoint

BALLAST = np.ones(4 << 20, dtype=np.float32)   # 16 MiB in every checkpoint: a save takes long enough to be hit


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(4)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.dropout = nn.Dropout(0.2)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(self.dropout(self.flatten(self.pool(self.bn(self.conv(x)).relu()))))


def run(out, epochs, announce=False):
    """Train (or resume) to ``epochs``; returns the final state_dict."""
    if announce:
        write = checkpoint._write_payload

        def announced(handle, payload):
            print("save", flush=True)
            write(handle, payload)
        checkpoint._write_payload = announced
    ti.manual_seed(0)
    rng = np.random.default_rng(0)
    labels = np.arange(48) % 3
    images = rng.random((48, 3, 8, 8), dtype=np.float32)
    images[labels == 1, 0] += 0.5
    data = ArrayDataset(images, labels, ["a", "b", "c"])
    model = Net()
    optimizer = ti.optim.Adam(model.parameters(), lr=0.01)
    scheduler = ti.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs * 6)
    train = DataLoader(data, 8, shuffle=True, seed=0, transform=RandomHorizontalFlip())
    last = os.path.join(out, "last.ckpt")
    ti.train.fit(model, train, DataLoader(data, 24), optimizer, epochs, scheduler=scheduler, out_dir=out,
                 resume=last if os.path.exists(last) else None, progress=False, scheduler_interval="step",
                 config={"ballast": BALLAST})
    return model.state_dict()


if __name__ == "__main__":
    with ti.using_kernels("numpy"):
        run(sys.argv[1], int(sys.argv[2]), announce=True)
