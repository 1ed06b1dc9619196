"""Where does the time go? ``with ti.profiler.profile() as prof: ...`` then ``print(prof.table())``.

While a profile is active, every `Function`'s forward and backward is timed under its name, and code marked with
``section("gemm")`` (the matrix products inside convolutions and linear layers) is timed under that name too.
When no profile is active the cost is one ``is None`` check per operation.

A profile belongs to the thread that opened it: it times the operations of that thread only, and other threads
(each may open a profile of its own) neither add to it nor see it.
"""
import contextlib
import contextvars
import time
from collections import defaultdict


_active = contextvars.ContextVar("tinyinception_profile", default=None)  # the calling thread's active Profile


class Profile:
    def __init__(self):
        self.seconds = defaultdict(float)
        self.calls = defaultdict(int)
        self.wall = 0.0

    def add(self, name, seconds):
        self.seconds[name] += seconds
        self.calls[name] += 1

    def share(self, name):
        """Fraction of the profiled wall time spent in ``name`` (e.g. ``"gemm"``)."""
        return self.seconds.get(name, 0.0) / self.wall if self.wall else 0.0

    def table(self, top=20):
        rows = sorted(self.seconds.items(), key=lambda item: -item[1])[:top]
        lines = [f"{'name':36s} {'calls':>7s} {'total ms':>10s} {'share':>7s}"]
        for name, seconds in rows:
            lines.append(f"{name:36s} {self.calls[name]:7d} {seconds * 1e3:10.2f} {self.share(name):7.1%}")
        lines.append(f"{'wall time':36s} {'':7s} {self.wall * 1e3:10.2f}")
        return "\n".join(lines)


def active():
    """The calling thread's active profile, or None."""
    return _active.get()


@contextlib.contextmanager
def profile():
    """Collect timings of everything the calling thread runs inside the block (nested forward/backward times
    overlap: they are inclusive, so shares of different names need not add up to 100%)."""
    previous, current = _active.get(), Profile()
    _active.set(current)
    start = time.perf_counter()
    try:
        yield current
    finally:
        current.wall = time.perf_counter() - start
        _active.set(previous)


@contextlib.contextmanager
def _timed(profile_, name):
    start = time.perf_counter()
    try:
        yield
    finally:
        profile_.add(name, time.perf_counter() - start)


_NOTHING = contextlib.nullcontext()


def section(name):
    """A context manager timing its block under ``name`` while a profile is active (a no-op otherwise)."""
    current = _active.get()
    return _NOTHING if current is None else _timed(current, name)
