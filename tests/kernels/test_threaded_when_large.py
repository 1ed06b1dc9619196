"""Parallel kernels run serially on small arrays (kernels/_numba.py), with the same results."""
import numpy as np
import pytest

from tinyinception.kernels import _numba, batchnorm

pytestmark = pytest.mark.skipif(not _numba.NUMBA_AVAILABLE, reason="needs numba")


def test_serial_twin_computes_the_same_values():
    x3 = np.random.default_rng(0).standard_normal((2, 3, 50)).astype(np.float32)
    mean, scale, bias = (np.array([0.5, -1.0, 2.0], np.float32), np.array([2.0, 0.5, 1.0], np.float32),
                         np.array([0.1, 0.2, 0.3], np.float32))
    kernel = batchnorm._normalise
    assert isinstance(kernel, _numba.ThreadedWhenLarge)
    y_parallel, y_serial = np.empty_like(x3), np.empty_like(x3)
    kernel.parallel(x3, mean, scale, bias, True, y_parallel)
    kernel.serial(x3, mean, scale, bias, True, y_serial)
    np.testing.assert_array_equal(y_parallel, y_serial)
    np.testing.assert_array_equal(y_serial, np.maximum((x3 - mean[:, None]) * scale[:, None] + bias[:, None], 0))


def test_the_size_of_the_first_argument_chooses(monkeypatch):
    calls = []

    class Recorder:
        def __init__(self, name):
            self.name = name

        def __call__(self, *args):
            calls.append(self.name)

    kernel = object.__new__(_numba.ThreadedWhenLarge)
    kernel.parallel, kernel.serial, kernel.serial_below = Recorder("parallel"), Recorder("serial"), None
    monkeypatch.setattr(_numba, "SERIAL_BELOW", 100)
    kernel(np.zeros(99))
    kernel(np.zeros(100))
    kernel.serial_below = 10  # a kernel's own limit (pooling's is lower) wins over the default
    kernel(np.zeros(10))
    assert calls == ["serial", "parallel", "parallel"]
