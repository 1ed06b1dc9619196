"""Timing helpers shared by every benchmark suite: medians after warm-up, BLAS report, result tables and JSON.

Every case runs here and in PyTorch (when installed) in the same process, on the same data, and reports
``ratio = our time / PyTorch's time`` (below 1.0: we are faster).
"""
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field

import numpy as np

import tinyinception as ti
from tinyinception.kernels import layout

BLAS_VARIABLES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def native_layout(array, kernels=None):
    """An (N, C, H, W) array in the layout the kernels' own layers produce and hand on: channel-major on the Numba
    path (as inside a network), plain NCHW otherwise (as for PyTorch). ``kernels``: default the current ones."""
    if (kernels or ti.get_kernels()) == "numba" and array.ndim == 4:
        return layout.from_channel_major(layout.channel_major(array))
    return array


def run_child(arguments):
    """Run ``python <arguments>`` from the repository root in a fresh interpreter; its last printed line is JSON."""
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    completed = subprocess.run([sys.executable, *arguments], capture_output=True, text=True, timeout=1800, cwd=root)
    if completed.returncode != 0:
        raise RuntimeError(completed.stderr.strip().splitlines()[-1] if completed.stderr.strip() else "failed")
    return json.loads(completed.stdout.strip().splitlines()[-1])


@dataclass
class Result:
    suite: str
    name: str
    variant: str  # e.g. "forward", "forward+backward", "train step"
    seconds: dict = field(default_factory=dict)  # implementation -> median seconds ("numba", "numpy", "torch")
    flops: float = 0.0  # floating point operations of one run (2 per multiply-add), 0 if not counted
    gemm_share: float = None  # fraction of our (numba) time spent in matrix products
    extra: dict = field(default_factory=dict)

    def ratio(self, implementation="numba"):
        if "torch" not in self.seconds or implementation not in self.seconds:
            return None
        return self.seconds[implementation] / self.seconds["torch"]

    def best_torch(self):
        """(mode key, seconds) of PyTorch's fastest mode measured ("torch" is eager), or None."""
        modes = {k: v for k, v in self.seconds.items() if k.startswith("torch")}
        return min(modes.items(), key=lambda item: item[1]) if modes else None

    def ratio_to_best(self, implementation="numba"):
        """Our time / the time of PyTorch's fastest mode (below 1.0: faster than PyTorch's best)."""
        best = self.best_torch()
        if best is None or implementation not in self.seconds:
            return None
        return self.seconds[implementation] / best[1]

    def gflops(self, implementation="numba"):
        if not self.flops or implementation not in self.seconds:
            return None
        return self.flops / self.seconds[implementation] / 1e9


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
_clock = {"name": "wall"}


def set_clock(name):
    """``"wall"`` (default) or ``"cpu"``: process CPU time, which stays meaningful on a loaded machine but only
    compares like with like when everything runs on ONE thread (``--threads 1``): with more threads it adds up
    the time of every thread, spinning included."""
    if name not in CLOCKS:
        raise ValueError(f"set_clock: expected one of {', '.join(CLOCKS)}, got {name!r}")
    _clock["name"] = name


def clock_name():
    return _clock["name"]


# Thread pools keep spinning for a while after their last task (OpenBLAS's for ~0.1 s, OpenMP's for less), stealing a
# core from whatever runs next in the process: measured, PyTorch's 1x7 convolution ran 8.7 ms right after our
# products (when they still ran on OpenBLAS's threads) and 4.5 ms alone, and a Numba kernel right after a NumPy
# product 1.5-2x slower than alone. Each series of runs therefore starts after a pause that lets every other pool
# fall asleep: ours after PyTorch's, PyTorch's after ours, the NumPy reference path's after either.
SETTLE_SECONDS = 0.25


MIN_SERIES_SECONDS = 0.3  # a series of runs lasts at least this long: short operations get more runs
MAX_REPEATS = 200


def median_seconds(fn, repeats=7, warmup=2, min_time=MIN_SERIES_SECONDS):
    """Median time of ``fn()`` over at least ``repeats`` runs after ``warmup`` runs (on the clock chosen by
    set_clock), after a pause of SETTLE_SECONDS (see above). Short operations run more often, until the series has
    lasted ``min_time`` seconds (at most MAX_REPEATS runs): seven runs of a 0.5 ms convolution gave medians 10-15%
    apart from one run of the suite to the next."""
    clock = CLOCKS[_clock["name"]]
    time.sleep(SETTLE_SECONDS)
    for _ in range(warmup):
        fn()
    times = []
    while len(times) < repeats or (sum(times) < min_time and len(times) < MAX_REPEATS):
        start = clock()
        fn()
        times.append(clock() - start)
    return statistics.median(times)


def gemm_share(fn):
    """Fraction of one run of ``fn`` spent inside matrix products (``ti.profiler`` section "gemm", and "winograd":
    Winograd's products fused with their transforms)."""
    with ti.profiler.profile() as profile:
        fn()
    return profile.share("gemm") + profile.share("winograd")


def torch_or_none():
    try:
        import torch
    except ImportError:
        return None
    threads = int(os.environ.get("TINYINCEPTION_BENCH_THREADS", 0)) or os.cpu_count() or 1
    torch.set_num_threads(threads)
    return torch


def load_average():
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def blas_report():
    """Which BLAS NumPy (and torch) use, with their kernel and threads (threadpoolctl when installed)."""
    from tinyinception.kernels import threaded_blas
    one_pool = threaded_blas.enabled()  # starts Numba's threads first: with one pool, OpenBLAS reports its one thread
    lines = [f"NumPy {np.__version__}, Python {platform.python_version()}, {os.cpu_count()} CPUs, "
             f"kernels: {ti.get_kernels()}, clock: {clock_name()}, load average {load_average():.2f}"]
    leftovers = {k: os.environ[k] for k in BLAS_VARIABLES if k in os.environ}
    lines.append(f"OPENBLAS_* in this process: {leftovers or 'unset'}")
    try:
        from threadpoolctl import threadpool_info
        for pool in threadpool_info():
            lines.append(f"  {pool.get('internal_api')} {pool.get('version')} kernel={pool.get('architecture')} "
                         f"threads={pool.get('num_threads')} ({os.path.basename(pool.get('filepath', ''))})")
    except ImportError:
        lines.append("  (install threadpoolctl to see the BLAS kernel in use)")
    try:
        import numba
        lines.append(f"Numba {numba.__version__}, {numba.get_num_threads()} threads, {numba.threading_layer()} layer; "
                     + ("our products on Numba's threads, OpenBLAS on 1 thread (one pool)" if one_pool
                        else "our products on OpenBLAS's threads"))
    except ImportError:
        pass
    torch = torch_or_none()
    if torch is not None:
        lines.append(f"PyTorch {torch.__version__}, {torch.get_num_threads()} threads")
    return "\n".join(lines)


def format_table(results):
    """The timing results as one table (PyTorch eager's time, its best mode's, and our ratios to both), then the
    memory results (if any) as a second one."""
    timed = [r for r in results if r.seconds]
    header = (f"{'suite':7s} {'case':44s} {'variant':16s} {'numba ms':>9s} {'numpy ms':>9s} {'torch ms':>9s} "
              f"{'ratio':>6s} {'best torch mode':>22s} {'/best':>6s} {'GFLOP/s':>8s} {'gemm':>5s}")
    lines = [header, "-" * len(header)]
    for r in timed:
        def ms(key):
            return f"{r.seconds[key] * 1e3:9.2f}" if key in r.seconds else f"{'-':>9s}"
        ratio, to_best, best = r.ratio(), r.ratio_to_best(), r.best_torch()
        gflops = r.gflops()
        best_text = f"{best[0].replace('torch_', '')} {best[1] * 1e3:.1f}" if best and best[0] != "torch" else (
            "eager" if best else "-")
        lines.append(
            f"{r.suite:7s} {r.name[:44]:44s} {r.variant[:16]:16s} {ms('numba')} {ms('numpy')} {ms('torch')} "
            f"{(f'{ratio:6.2f}' if ratio is not None else '     -')} {best_text:>22s} "
            f"{(f'{to_best:6.2f}' if to_best is not None else '     -')} "
            f"{(f'{gflops:8.1f}' if gflops is not None else '       -')} "
            f"{(f'{r.gemm_share:5.0%}' if r.gemm_share is not None else '    -')}"
        )
        notes = dict(r.extra.get("torch_notes") or {}) if r.extra else {}
        if r.extra and "vs_models_block" in r.extra:
            notes["time / the ti.models block's"] = f"{r.extra['vs_models_block']:.2f}"
        if notes:
            lines.append(" " * 8 + "; ".join(f"{mode}: {note}" for mode, note in notes.items()))
    memory = [r for r in results if r.suite == "memory"]
    if memory:
        lines += ["", f"{'peak memory above imports (torch: best mode)':50s} {'ours MiB':>9s} {'torch MiB':>9s} "
                      f"{'ratio':>6s}"]
        for r in memory:
            lines.append(f"{r.name[:50]:50s} {r.extra['numba_peak_mib']:9.1f} {r.extra['torch_peak_mib']:9.1f} "
                         f"{r.extra['memory_ratio']:6.2f}")
    return "\n".join(lines)


def format_markdown(results, header):
    """The results as Markdown tables for the README: the environment (load average, BLAS kernel) as a header,
    then the timings (speed = PyTorch's time / ours, above 1.0: faster than PyTorch), then peak memory."""
    lines = ["Measured with `python -m benchmarks`:", "", "```", header, "```", ""]
    timed = [r for r in results if r.seconds]
    if timed:
        lines += ["| suite | case | variant | ours ms | PyTorch eager ms | speed vs eager | PyTorch best mode ms | "
                  "speed vs best | GFLOP/s | GEMM share |",
                  "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for r in timed:
            ours, theirs, best = r.seconds.get("numba"), r.seconds.get("torch"), r.best_torch()
            speed = f"{1 / r.ratio():.2f}x" if r.ratio() else "-"
            to_best = f"{1 / r.ratio_to_best():.2f}x" if r.ratio_to_best() else "-"
            best_text = f"{best[1] * 1e3:.1f} ({best[0].replace('torch_', '').replace('torch', 'eager')})" \
                if best else "-"
            gflops = f"{r.gflops():.1f}" if r.gflops() else "-"
            share = f"{r.gemm_share:.0%}" if r.gemm_share is not None else "-"
            theirs_ms = f"{theirs * 1e3:.1f}" if theirs else "-"
            if "vs_models_block" in r.extra:
                theirs_ms = f"(ti.models block: {r.extra['models_block_seconds'] * 1e3:.1f}, ratio " \
                            f"{r.extra['vs_models_block']:.2f})"
            lines.append(f"| {r.suite} | {r.name} | {r.variant} | {ours * 1e3:.1f} | {theirs_ms} | {speed} | "
                         f"{best_text} | {to_best} | {gflops} | {share} |")
    memory = [r for r in results if r.suite == "memory"]
    if memory:
        lines += ["", "| case | peak MiB above imports, ours | PyTorch (inference: its lower mode) | ours / PyTorch |",
                  "| --- | ---: | ---: | ---: |"]
        for r in memory:
            lines.append(f"| {r.name} | {r.extra['numba_peak_mib']:.1f} | {r.extra['torch_peak_mib']:.1f} | "
                         f"{r.extra['memory_ratio']:.2f} |")
    return "\n".join(lines) + "\n"


def write_markdown(results, path, header):
    with open(path + ".tmp", "w") as f:
        f.write(format_markdown(results, header))
    os.replace(path + ".tmp", path)


def write_json(results, path, header):
    payload = {"environment": header, "results": [dict(asdict(r), ratio=r.ratio()) for r in results]}
    with open(path + ".tmp", "w") as f:
        json.dump(payload, f, indent=1)
    os.replace(path + ".tmp", path)
