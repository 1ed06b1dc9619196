"""Run the benchmark suites and print one table (and JSON).

    python -m benchmarks --suite ops            # or blocks, models, train, all
    python benchmarks/run.py --suite ops --quick --json results.json

Our time and PyTorch's are measured in the same process on the same data; ``ratio`` = ours / PyTorch's
(below 1.0 we are faster). OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are unset for this process only (they are set on
some of these machines for older OpenBLAS builds and slow a current NumPy down); the BLAS kernel in use is printed.
"""
import argparse
import importlib
import os
import sys

SUITES = ("ops", "blocks", "models", "train")


def _reexec_without_blas_overrides():
    """Variables read when NumPy loads cannot be changed afterwards: restart this process without them."""
    from benchmarks.common import BLAS_VARIABLES
    if any(k in os.environ for k in BLAS_VARIABLES) and not os.environ.get("TINYINCEPTION_BENCH_REEXEC"):
        env = {k: v for k, v in os.environ.items() if k not in BLAS_VARIABLES}
        env["TINYINCEPTION_BENCH_REEXEC"] = "1"
        os.execve(sys.executable, [sys.executable, "-m", "benchmarks"] + sys.argv[1:], env)


def main(argv=None):
    parser = argparse.ArgumentParser(description="tinyinception benchmarks, side by side with PyTorch")
    parser.add_argument("--suite", default="ops", choices=SUITES + ("all",))
    parser.add_argument("--quick", action="store_true", help="smaller batches, fewer repeats")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    parser.add_argument("--keep-blas-env", action="store_true", help="do not unset OPENBLAS_* variables")
    args = parser.parse_args(argv)
    if not args.keep_blas_env:
        _reexec_without_blas_overrides()

    from benchmarks.common import blas_report, format_table, write_json
    header = blas_report()
    print(header, flush=True)
    repeats = args.repeats or (3 if args.quick else 7)
    results = []
    for suite in (SUITES if args.suite == "all" else (args.suite,)):
        print(f"\n== suite {suite} ==", flush=True)
        try:
            module = importlib.import_module(f"benchmarks.{suite}")
        except ImportError as error:
            print(f"suite {suite} is not available: {error}")
            continue
        results.extend(module.run(quick=args.quick, repeats=repeats))
    print("\nratio = our time / PyTorch's time (below 1.0: faster than PyTorch)\n")
    print(format_table(results))
    if args.json:
        write_json(results, args.json, header)
        print(f"\nresults written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    sys.exit(main())
