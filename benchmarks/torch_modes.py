"""PyTorch's strongest CPU modes for a recorded program (`benchmarks.torch_mirror`), and interleaved timing.

Modes (each on its own copy of the program, so that one mode's conversion never reaches another):

* ``eager``: the program as recorded, NCHW tensors;
* ``channels_last``: every 4-D tensor (the input, the convolution weights) in ``torch.channels_last`` memory
  format, which oneDNN's convolutions prefer on CPUs;
* ``compile``: ``torch.compile`` (default inductor backend) of the program's ``run``; the first call, which
  compiles, is timed on its own and reported as ``compile_seconds``, never inside the medians. Where inductor fails
  on the machine (no C compiler, an unsupported op), the error is recorded instead of a time.

`interleaved` times several callables in alternating rounds (ours, PyTorch eager, channels_last, compile, ours,
...), so that a change of load on a shared machine hits every implementation alike; it reports each one's median
and its range over the rounds.
"""
import statistics
import time

from benchmarks.common import CLOCKS, SETTLE_SECONDS, clock_name

MODES = ("eager", "channels_last", "compile")


def to_channels_last(torch, program):
    """Convert the program's 4-D leaves (input, weights) to channels_last, in place (``.data``: same leaves)."""
    for leaf in program.leaves.values():
        if leaf.ndim == 4:
            leaf.data = leaf.data.contiguous(memory_format=torch.channels_last)
    return program


def mode_callable(torch, program, mode, body):
    """``body(run)`` with ``run`` the program's replay in ``mode``; returns (callable, compile_seconds or None).

    body: makes the timed callable from a ``run`` function (e.g. forward under no_grad, or forward+backward)."""
    if mode == "channels_last":
        to_channels_last(torch, program)
        return body(program.run), None
    if mode == "compile":
        compiled = torch.compile(program.run)
        timed = body(compiled)
        start = time.perf_counter()
        timed()  # compiles (forward, and backward when the body runs one)
        return timed, time.perf_counter() - start
    return body(program.run), None


def interleaved(callables, rounds, warmup=1):
    """{name: (median, low, high)} seconds of each callable over ``rounds`` alternating rounds after ``warmup``
    runs of each; a pause of SETTLE_SECONDS before every timed call lets the other thread pools fall asleep."""
    clock = CLOCKS[clock_name()]
    for fn in callables.values():
        for _ in range(warmup):
            fn()
    times = {name: [] for name in callables}
    for _ in range(rounds):
        for name, fn in callables.items():
            time.sleep(SETTLE_SECONDS)
            start = clock()
            fn()
            times[name].append(clock() - start)
    return {name: (statistics.median(t), min(t), max(t)) for name, t in times.items()}
