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


def test_one_pool_lowers_the_serial_limit(monkeypatch):
    """Once the products run on Numba's OpenMP threads, small kernels go parallel too (they no longer compete
    with OpenBLAS's threads), below every kernel's own limit."""
    calls = []
    kernel = object.__new__(_numba.ThreadedWhenLarge)
    kernel.parallel, kernel.serial = (lambda *a: calls.append("parallel")), (lambda *a: calls.append("serial"))
    kernel.serial_below = 1 << 16
    monkeypatch.setitem(_numba._pool, "one", False)
    kernel(np.zeros(_numba.SERIAL_BELOW_ONE_POOL))
    monkeypatch.setitem(_numba._pool, "one", True)
    kernel(np.zeros(_numba.SERIAL_BELOW_ONE_POOL))
    kernel(np.zeros(_numba.SERIAL_BELOW_ONE_POOL - 1))
    assert calls == ["serial", "parallel", "serial"]


def test_same_size_avg_pool_backward_writes_only_inside_its_block():
    """Regression: the parallel kernel once added 0 for out-of-plane taps into pixels of the NEXT block of planes,
    a read-modify-write that raced with the thread owning that block and now and then lost its update (seen as a
    1e-3 error in Inception-ResNet-v2's input gradient, once in a few runs). A race hides from repetition; the
    invariant does not: every write of a block stays inside it."""
    from tinyinception.kernels import pooling

    for count in (1, 7, 81, 2025):
        for shift in range(-100, 101):
            lo, hi = pooling._block_own_range(count, shift)
            written = np.arange(lo, hi) + shift
            assert written.size == 0 or (written.min() >= 0 and written.max() < count), (count, shift)
            # ... and nothing inside the block is left out
            assert hi - lo == max(0, count - abs(shift)), (count, shift)


def test_same_size_avg_pool_backward_parallel_matches_numpy(monkeypatch):
    from tinyinception.kernels import pooling

    shape = (8, 48, 9, 9)  # many blocks of whole planes, several per thread
    grad_out = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    window = ((3, 3), (1, 1), (1, 1), (9, 9), False)
    kernel = pooling._avg_pool_same_size_backward
    monkeypatch.setattr(kernel, "serial", kernel.parallel)  # the threaded version, whatever the size
    np.testing.assert_allclose(pooling.avg_pool2d_backward_numba(grad_out, shape, *window),
                               pooling.avg_pool2d_backward_numpy(grad_out, shape, *window), rtol=1e-5, atol=1e-6)
