"""Shared test set-up: markers that skip cleanly, and seeded randomness."""
import numpy as np
import pytest

import tinyinception as ti
from tinyinception.backend import gpu_available


def pytest_collection_modifyitems(config, items):
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device (ti.cuda.is_available() is False)")
    has_gpu = gpu_available()
    for item in items:
        if "gpu" in item.keywords and not has_gpu:
            item.add_marker(skip_gpu)


@pytest.fixture(autouse=True)
def _seeded():
    ti.manual_seed(0)
    yield


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
