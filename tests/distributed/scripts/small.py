"""A small Conv-BN-ReLU network and data for the MPI test scripts (fast, but with the BatchNorm that matters)."""
import numpy as np

import tinyinception as ti
from tinyinception import nn


class SmallNet(nn.Module):
    """conv 3x3 (3 -> 6) -> BN -> ReLU -> conv 1x1 (6 -> 8) -> BN -> ReLU -> global average -> linear (8 -> 5)."""

    def __init__(self, dtype=np.float64):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(6)
        self.conv2 = nn.Conv2d(6, 8, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8, 5)
        self._cast_floats(dtype)

    def forward(self, x):
        x = self.bn1.forward_relu(self.conv1(x))
        x = self.bn2.forward_relu(self.conv2(x))
        return self.fc(x.mean(axis=(2, 3)))


def make_model(dtype=np.float64, seed=0):
    ti.manual_seed(seed)
    return SmallNet(dtype)


def make_data(count, dtype=np.float64, seed=1):
    """images (count, 3, 6, 6) with a per-channel offset (so BatchNorm's statistics matter), labels (count,)."""
    rng = np.random.default_rng(seed)
    images = (rng.standard_normal((count, 3, 6, 6)) * 2 + np.array([1.0, -0.5, 3.0])[None, :, None, None])
    labels = rng.integers(0, 5, count)
    return images.astype(dtype), labels.astype(np.int64)


def weights(model):
    """{state_dict key: a copy of the array}."""
    return {name: value.copy() for name, value in model.state_dict().items()}
