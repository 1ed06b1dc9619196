"""Several Python threads at once: each gets, bit for bit, what it gets alone; context state belongs to one thread.

A prediction server or a loader with threads runs convolutions of independent inputs at the same time. Every path
of `F.conv2d` (Winograd with its output written in place and through the output grid, shifted products, strided
products, 1x7 and 7x1, 1x1, im2col with dilation, groups, the NumPy reference), forward and backward, runs here in
several threads at once, each thread cycling through all of them, and must equal the single-threaded result exactly.
Then the switches that hold per thread: ``no_grad``, ``using_kernels`` and ``profiler.profile``.
"""
import os
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import tinyinception as ti
import tinyinception.functional as F
from tinyinception import profiler
from tinyinception.kernels import shifted_conv, strided_conv, threaded_blas, winograd

THREADS = 3
ROUNDS = 3
HANDSHAKES = 20

# name: (x shape, weight shape, conv2d keywords, kernels, products module F.conv2d picks or None, im2col or GEMM)
CASES = {
    "winograd": ((8, 32, 28, 28), (32, 32, 3, 3), dict(padding=1), "numba", winograd),
    "winograd_output_grid": ((2, 8, 96, 96), (64, 8, 3, 3), dict(padding=1), "numba", winograd),  # output > 4 MiB
    "shifted_5x5": ((8, 16, 14, 14), (24, 16, 5, 5), dict(padding=2), "numba", shifted_conv),
    "shifted_dilated": ((4, 16, 14, 14), (16, 16, 3, 3), dict(padding=2, dilation=2), "numba", shifted_conv),
    "strided": ((8, 16, 15, 15), (24, 16, 3, 3), dict(stride=2), "numba", strided_conv),
    "1x7": ((4, 16, 17, 17), (24, 16, 1, 7), dict(padding=(0, 3)), "numba", shifted_conv),
    "7x1": ((4, 16, 17, 17), (24, 16, 7, 1), dict(padding=(3, 0)), "numba", shifted_conv),
    "1x1": ((8, 32, 14, 14), (48, 32, 1, 1), {}, "numba", None),
    "im2col_dilated": ((4, 8, 15, 15), (16, 8, 3, 3), dict(stride=2, padding=1, dilation=2), "numba", None),
    "groups": ((4, 8, 12, 12), (8, 4, 3, 3), dict(padding=2, dilation=2, groups=2), "numba", None),
    "reference": ((4, 8, 12, 12), (8, 8, 3, 3), dict(padding=1), "numpy", None),
}


def _inputs(name):
    x_shape, w_shape = CASES[name][:2]
    rng = np.random.default_rng(sum(map(ord, name)))
    x, w = rng.standard_normal(x_shape).astype(np.float32), rng.standard_normal(w_shape).astype(np.float32)
    bias = rng.standard_normal(w_shape[0]).astype(np.float32)
    return x, w, bias


INPUTS = {name: _inputs(name) for name in CASES}
GRADS = {}  # name -> the output gradient, made at the first single-threaded run


def _convolve(name):
    """(no_grad output, output, grad x, grad weight, grad bias) of case ``name``, each a fresh copy."""
    x, w, bias = INPUTS[name]
    keywords, kernels = CASES[name][2:4]
    with ti.using_kernels(kernels):
        with ti.no_grad():
            quiet = F.conv2d(ti.tensor(x), ti.tensor(w), ti.tensor(bias), **keywords).numpy().copy()
        xt, wt, bt = (ti.tensor(array, requires_grad=True) for array in (x, w, bias))
        out = F.conv2d(xt, wt, bt, **keywords)
        grad = GRADS.setdefault(name, np.random.default_rng(7).standard_normal(out.shape).astype(np.float32))
        out.backward(grad)
    return quiet, out.numpy().copy(), xt.grad.copy(), wt.grad.copy(), bt.grad.copy()


def _path(name):
    """What F.conv2d runs for case ``name``: (products module or None, channel-major, output over 4 MiB)."""
    x, w, bias = INPUTS[name]
    keywords, kernels = CASES[name][2:4]
    with ti.using_kernels(kernels):
        out = F.conv2d(ti.tensor(x), ti.tensor(w, requires_grad=True), **keywords)
    return out.grad_fn.products, out.grad_fn.channel_major, out.data.nbytes > winograd.IN_PLACE_BYTES


def test_the_cases_reach_every_path():
    if not threaded_blas.available():
        pytest.skip("products on Numba's threads unavailable: Winograd is off")
    paths = {name: _path(name) for name in CASES}
    for name, (products, channel_major, _) in paths.items():
        assert products is CASES[name][4], name
        assert channel_major is (CASES[name][3] == "numba" and name != "groups"), name
    assert not paths["winograd"][2] and paths["winograd_output_grid"][2]  # the output transform both ways


def _run_in_threads(work, count=THREADS):
    """``work(index)`` in ``count`` threads released together; exceptions are re-raised here."""
    start, failures = threading.Barrier(count), []

    def run(index):
        try:
            start.wait()
            work(index)
        except BaseException as error:  # noqa: BLE001 -- reported in the main thread
            failures.append(error)

    threads = [threading.Thread(target=run, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]


def test_convolutions_in_several_threads_equal_one_thread_bit_for_bit():
    names = list(CASES)
    expected = {name: _convolve(name) for name in names}
    wrong = []

    def work(index):
        for round_ in range(ROUNDS):
            shift = (index * 4 + round_) % len(names)  # the threads run different paths at the same moment
            for name in names[shift:] + names[:shift]:
                for what, got, want in zip(("no_grad output", "output", "grad x", "grad weight", "grad bias"),
                                           _convolve(name), expected[name]):
                    if not np.array_equal(got, want):
                        error = float(np.nanmax(np.abs(got.astype(np.float64) - want)))
                        wrong.append(f"{name} {what} (thread {index}, round {round_}): max error {error:.3g}")

    _run_in_threads(work)
    assert not wrong, f"{len(wrong)} results differ from one thread's:\n" + "\n".join(wrong[:20])


def test_a_shared_network_in_eval_mode_serves_several_threads():
    """One model, several threads predicting at once (a prediction server): each gets its input's own logits."""
    from tinyinception.models.inception_v1 import Inception

    block = Inception(32, 16, 16, 24, 4, 8, 8).eval()  # GoogLeNet's block: 1x1 stack, 3x3, 5x5 and pool branches
    rng = np.random.default_rng(3)
    images = [rng.standard_normal((4, 32, 14, 14)).astype(np.float32) for _ in range(THREADS)]
    with ti.no_grad():
        expected = [block(ti.tensor(image)).numpy().copy() for image in images]
    wrong = []

    def work(index):
        for _ in range(ROUNDS * 3):
            with ti.no_grad():
                got = block(ti.tensor(images[index])).numpy()
            if not np.array_equal(got, expected[index]):
                wrong.append(index)

    _run_in_threads(work)
    assert not wrong, f"threads {sorted(set(wrong))} got another thread's or a corrupted result"


class _Handshake:
    """Two threads taking turns: the holder enters its context, then the other runs while the holder is inside."""

    def __init__(self):
        self.inside, self.done = threading.Event(), threading.Event()

    def hold(self, context):
        with context:
            self.inside.set()
            assert self.done.wait(30), "the other thread never finished"
        self.inside.clear()

    def while_held(self):
        assert self.inside.wait(30), "the holder never entered its context"

    def finished(self):
        self.done.set()


def _turns(holder, other, rounds=HANDSHAKES):
    """``holder(handshake)`` and ``other(handshake)`` in two threads, ``rounds`` times, fresh events each round."""
    for _ in range(rounds):
        handshake = _Handshake()
        _run_in_threads(lambda index: (holder if index == 0 else other)(handshake), count=2)


def test_no_grad_in_one_thread_leaves_recording_on_in_another():
    x = ti.tensor(np.ones((2, 3), np.float32), requires_grad=True)
    quiet_outputs, recorded_outputs = [], []

    def quiet(handshake):
        with ti.no_grad():
            handshake.inside.set()
            quiet_outputs.append(x * 2)
            assert handshake.done.wait(30)
            quiet_outputs.append(x * 2)  # after the other thread's ops: still not recording

    def recording(handshake):
        handshake.while_held()
        assert ti.is_grad_enabled()
        recorded_outputs.append(x * 2)
        handshake.finished()

    _turns(quiet, recording)
    assert len(recorded_outputs) == HANDSHAKES and all(y.grad_fn is not None for y in recorded_outputs)
    assert len(quiet_outputs) == 2 * HANDSHAKES and all(y.grad_fn is None for y in quiet_outputs)
    assert ti.is_grad_enabled()


def test_no_grad_in_a_loop_never_turns_recording_off_for_a_thread_that_records():
    x = ti.tensor(np.ones((4, 4), np.float32), requires_grad=True)
    stop, bad = threading.Event(), []

    def work(index):
        if index == 0:
            while not stop.is_set():
                with ti.no_grad():
                    if (x + 1).grad_fn is not None:
                        bad.append("a no_grad output has a grad_fn")
        else:
            try:
                for _ in range(2000):
                    if (x + 1).grad_fn is None:
                        bad.append("a recorded output has no grad_fn")
            finally:
                stop.set()

    _run_in_threads(work, count=2)
    assert not bad, f"{len(bad)} outputs wrong, e.g. {bad[0]}"


def test_a_thread_started_inside_no_grad_records():
    """As in PyTorch, a new thread starts in grad mode, whatever the thread that started it is doing."""
    x, seen = ti.tensor(np.ones(3, np.float32), requires_grad=True), []
    with ti.no_grad():
        thread = threading.Thread(target=lambda: seen.append((x * 2).grad_fn is not None))
        thread.start()
        thread.join()
    assert seen == [True]


def test_using_kernels_holds_for_its_own_thread_only():
    x = np.random.default_rng(0).standard_normal((2, 4, 6, 6)).astype(np.float32)
    w = np.random.default_rng(1).standard_normal((4, 4, 3, 3)).astype(np.float32)
    seen = {"numpy": [], "numba": []}

    def channel_major():
        return F.conv2d(ti.tensor(x), ti.tensor(w, requires_grad=True), padding=1).grad_fn.channel_major

    def holder(handshake):
        with ti.using_kernels("numpy"):
            handshake.inside.set()
            assert handshake.done.wait(30)
            seen["numpy"].append((ti.get_kernels(), channel_major()))

    def other(handshake):
        handshake.while_held()
        seen["numba"].append((ti.get_kernels(), channel_major()))
        handshake.finished()

    _turns(holder, other, rounds=5)
    assert seen == {"numpy": [("numpy", False)] * 5, "numba": [("numba", True)] * 5}


def test_set_kernels_sets_the_default_of_every_thread():
    seen = []
    try:
        ti.set_kernels("numpy")
        thread = threading.Thread(target=lambda: seen.append(ti.get_kernels()))
        thread.start()
        thread.join()
        with ti.using_kernels("numba"):
            assert ti.get_kernels() == "numba"
            ti.set_kernels("numpy")  # the default changes; this thread's block keeps its choice
            assert ti.get_kernels() == "numba"
        assert ti.get_kernels() == "numpy"
    finally:
        ti.set_kernels("numba")
    assert seen == ["numpy"] and ti.get_kernels() == "numba"


def test_a_profile_times_its_own_thread_only():
    x = ti.tensor(np.ones((2, 3, 8, 8), np.float32), requires_grad=True)
    w = ti.tensor(np.ones((4, 3, 3, 3), np.float32), requires_grad=True)
    profiles, others_saw = [], []

    def holder(handshake):
        with profiler.profile() as prof:
            F.relu(x)
            handshake.inside.set()
            assert handshake.done.wait(30)
        profiles.append(prof)

    def other(handshake):
        handshake.while_held()
        others_saw.append(profiler.active())
        F.conv2d(x, w, padding=1).sum().backward()
        handshake.finished()

    _turns(holder, other, rounds=5)
    assert others_saw == [None] * 5
    for prof in profiles:
        assert dict(prof.calls) == {"ReLU.forward": 1}, prof.table()


_WORK_QUEUE = """
import threading
import numba
import numpy as np
import tinyinception as ti
import tinyinception.functional as F

rng = np.random.default_rng(0)
x = rng.standard_normal((4, 64, 128, 128)).astype(np.float32)  # 4M values: the parallel kernels run
conv_x = rng.standard_normal((4, 16, 64, 64)).astype(np.float32)  # 16K anchors: the blocked weight gradient
conv_w = rng.standard_normal((16, 16, 3, 3)).astype(np.float32)

def work():
    out = F.relu(ti.tensor(x)).numpy().copy()
    xt, wt = ti.tensor(conv_x, requires_grad=True), ti.tensor(conv_w, requires_grad=True)
    F.conv2d(xt, wt, padding=1).sum().backward()
    return out, wt.grad.copy()

expected, results = work(), []
threads = [threading.Thread(target=lambda: results.extend(work() for _ in range(3))) for _ in range(2)]
[thread.start() for thread in threads]
[thread.join() for thread in threads]
same = all(np.array_equal(a, b) for result in results for a, b in zip(result, expected))
print(numba.threading_layer(), len(results), same)
"""


def test_the_work_queue_layer_is_never_entered_by_two_threads_at_once():
    """Numba's work queue (``TINYINCEPTION_ONE_POOL=0``) aborts the process when two Python threads start parallel
    regions at once; a thread that finds it busy runs the serial twin of the kernel instead (the same results)."""
    pytest.importorskip("numba")
    env = dict(os.environ, TINYINCEPTION_ONE_POOL="0")
    env.pop("NUMBA_THREADING_LAYER", None)
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(_WORK_QUEUE)], env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["workqueue", "6", "True"]
