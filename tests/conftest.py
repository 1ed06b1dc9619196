"""Shared test set-up: markers that skip cleanly, seeded randomness, and Hypothesis's files kept out of the tree."""
import os
import tempfile

import numpy as np
import pytest

import tinyinception as ti
from tinyinception.backend import gpu_available

# Hypothesis keeps its example database (failing examples, replayed first on the next run) and its caches in
# HYPOTHESIS_STORAGE_DIRECTORY, by default ``.hypothesis/`` in the folder pytest runs from: the checkout. Here, unless
# set already, a folder of the system's temporary directory instead (read before any Hypothesis test runs).
os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY",
                      os.path.join(tempfile.gettempdir(), f"tinyinception-hypothesis-{os.getuid()}"
                                   if hasattr(os, "getuid") else "tinyinception-hypothesis"))


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
