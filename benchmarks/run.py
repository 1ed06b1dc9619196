"""Run the benchmark suites and print one table (and JSON).

    python -m benchmarks --suite ops            # or blocks, models, train, memory, startup, inference, all
    python -m benchmarks --suite inference --quick --torch-modes eager channels_last
    python benchmarks/run.py --suite ops --quick --json results.json --markdown results.md

Our time and PyTorch's are measured in the same process on the same data; ``ratio`` = ours / PyTorch's
(below 1.0 we are faster). OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are unset for this process only (they are set on
some of these machines for older OpenBLAS builds and slow a current NumPy down); the BLAS kernel in use is printed.
"""
import argparse
import importlib
import os
import sys

SUITES = ("ops", "blocks", "models", "train", "memory", "startup", "inference", "inference_memory")


MODE_SUITES = ("inference", "blocks", "train")  # the suites that time PyTorch in several modes

THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS",
                    "TINYINCEPTION_BENCH_THREADS")


def _reexec(keep_blas_env, threads):
    """Variables read when NumPy, Numba and torch load cannot be changed afterwards: restart this process once
    without OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE and, with ``--threads``, with every library on that many threads."""
    from benchmarks.common import BLAS_VARIABLES
    if os.environ.get("TINYINCEPTION_BENCH_REEXEC"):
        return
    env = dict(os.environ)
    if not keep_blas_env:
        for k in BLAS_VARIABLES:
            env.pop(k, None)
    if threads:
        env.update({k: str(threads) for k in THREAD_VARIABLES})
    if env != dict(os.environ):
        env["TINYINCEPTION_BENCH_REEXEC"] = "1"
        os.execve(sys.executable, [sys.executable, "-m", "benchmarks"] + sys.argv[1:], env)


def main(argv=None):
    parser = argparse.ArgumentParser(description="tinyinception benchmarks, side by side with PyTorch")
    parser.add_argument("--suite", default="ops", choices=SUITES + ("all",),
                        help="models: each network's forward and forward+backward, then the memory suite")
    parser.add_argument("--quick", action="store_true", help="smaller batches, fewer repeats")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    parser.add_argument("--markdown", default=None, help="also write the results as Markdown tables to this file")
    parser.add_argument("--keep-blas-env", action="store_true", help="do not unset OPENBLAS_* variables")
    parser.add_argument("--threads", type=int, default=0,
                        help="run BLAS, Numba and torch on this many threads (default: all cores)")
    parser.add_argument("--clock", default="wall", choices=("wall", "cpu"),
                        help="cpu: process CPU time, for a loaded machine; meaningful with --threads 1 only")
    parser.add_argument("--cases", nargs="*", default=None, help="only the cases whose name contains one of these")
    parser.add_argument("--torch-modes", nargs="*", default=None, choices=("eager", "channels_last", "compile"),
                        help="PyTorch's modes in the suites that measure several (inference, blocks, train); "
                             "default: all three")
    args = parser.parse_args(argv)
    _reexec(args.keep_blas_env, args.threads)

    from benchmarks.common import blas_report, format_table, set_clock, write_json, write_markdown
    set_clock(args.clock)
    header = blas_report()
    print(header, flush=True)
    repeats = args.repeats or (3 if args.quick else 7)
    results = []
    suites = {"all": tuple(s for s in SUITES if s != "inference_memory"),  # the inference suite runs it
              "models": ("models", "memory")}.get(args.suite, (args.suite,))
    for suite in suites:
        print(f"\n== suite {suite} ==", flush=True)
        try:
            module = importlib.import_module(f"benchmarks.{suite}")
        except ImportError as error:
            print(f"suite {suite} is not available: {error}")
            continue
        options = {"cases": args.cases} if args.cases else {}
        if args.torch_modes and suite in MODE_SUITES:
            options["modes"] = tuple(args.torch_modes)
        results.extend(module.run(quick=args.quick, repeats=repeats, **options))
    print("\nratio = our time / PyTorch eager's time; /best = our time / PyTorch's best mode's time "
          "(below 1.0: faster)\n")
    print(format_table(results))
    if args.json:
        write_json(results, args.json, header)
        print(f"\nresults written to {args.json}")
    if args.markdown:
        write_markdown(results, args.markdown, header)
        print(f"Markdown table written to {args.markdown}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    sys.exit(main())
