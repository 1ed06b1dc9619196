"""Data-parallel training throughput on this machine: 1 process x 2 threads against 2 MPI processes x 1 thread.

    python benchmarks/distributed.py [--steps 8] [--batch 32] [--width 0.25] [--size 64]

The job: GoogLeNet (width 0.25, the 32x32 stem, as `tinyinception train`) on Shapes10 images of 64x64, global batch
32, Adam. Three runs, each in fresh processes:

    alone        1 process, NUMBA_NUM_THREADS=2, batch 32
    alone-1t     1 process, 1 thread, batch 32 (to tell thread contention from the rest on a busy machine)
    blocking     mpiexec -n 2, 1 thread each, batch 16 per rank, DataParallel(overlap=False): gradients
                 all-reduced bucket after bucket once backward is over
    overlap      the same with overlap=True: each bucket's Iallreduce starts from the gradient hooks during backward
                 (default buckets: 1 MB, then 25 MB -- this 2.5 MB gradient makes two)
    overlap-small  overlap with 0.25 MB buckets (ten of them), so that most buckets can start before backward ends

Per run: median step time, images/s, and for the MPI runs the all-reduce time per step (blocking: the time the
step waits for it; overlap: from each bucket's start to its end, and the part the step still waited for). The
overlap is 1 - (wait with overlap) / (all-reduce time when blocking). Also the bandwidth and latency of a plain
2-rank Allreduce here, fitted from a 1 kB and a gradient-sized message, which docs/distributed.md's cost model uses.

On a machine shared with other jobs the numbers are indicative only: say so when you quote them.
"""
import argparse
import json
import os
import pathlib
import subprocess
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
MODES = ("alone", "alone-1t", "blocking", "overlap", "overlap-small")


def _arguments(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=8, help="timed steps per run (after 2 warm-up steps)")
    parser.add_argument("--batch", type=int, default=32, help="global batch")
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--size", type=int, default=64, help="image side")
    parser.add_argument("--worker", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "distributed.json"))
    return parser.parse_args(argv)


# --- one run (inside the measured processes) --------------------------------------------------------------------
def _allreduce_fit(world, gradient_elements):
    """Seconds of a 2-rank Allreduce of 256 floats and of the gradient; (latency s, bandwidth bytes/s) fitted to
    t = 2 (K-1)/K * bytes / bandwidth + 2 (K-1) * latency."""
    times = {}
    for count in (256, gradient_elements):
        buffer = np.ones(count, np.float32)
        for _ in range(2):
            world.allreduce(buffer)
        samples = []
        for _ in range(10):
            world.barrier()
            started = time.perf_counter()
            world.allreduce(buffer)
            samples.append(time.perf_counter() - started)
        times[count] = float(np.median(samples))
    k = world.size
    small, large = times[256], times[gradient_elements]
    bandwidth = 2 * (k - 1) / k * (gradient_elements - 256) * 4 / max(large - small, 1e-9)
    latency = max(small - 2 * (k - 1) / k * 256 * 4 / bandwidth, 0.0) / (2 * (k - 1))
    return {"allreduce_1kB_s": small, "allreduce_gradient_s": large, "latency_s": latency,
            "bandwidth_GBps": bandwidth / 1e9}


def worker(args):
    import tinyinception as ti
    from tinyinception.data import Shapes10
    world = ti.distributed.init(timeout=600)
    per_rank = args.batch // world.size
    ti.manual_seed(0)
    data = Shapes10("train", size=args.batch * (args.steps + 2), seed=0, image_size=args.size)
    sampler = ti.distributed.DistributedSampler(len(data), world.size, world.rank, shuffle=False)
    loader = ti.data.DataLoader(data, per_rank, drop_last=True, sampler=sampler)
    model = ti.models.create("googlenet", num_classes=10, width=args.width, small_input=True)
    optimizer = ti.optim.Adam(model.parameters(), lr=5e-4)
    options = {"overlap": args.worker.startswith("overlap"),
               "bucket_cap_mb": 0.25 if args.worker == "overlap-small" else 25}
    replica = ti.distributed.DataParallel(model, world, **options) if world.size > 1 else None
    step_seconds, allreduce, waited = [], [], []
    for index, (images, labels) in enumerate(loader):
        started = time.perf_counter()
        outputs = (replica or model)(ti.Tensor(images))
        loss = ti.train.training_loss(outputs, labels, ti.train.cross_entropy_loss(), 0.3)[0]
        optimizer.zero_grad()
        loss.backward()
        if replica is not None:
            replica.synchronize()
        optimizer.step()
        if index >= 2:
            step_seconds.append(time.perf_counter() - started)
            if replica is not None:
                allreduce.append(replica.timings["allreduce_seconds"])
                waited.append(replica.timings["wait_seconds"])
    report = {"mode": args.worker, "ranks": world.size, "threads_per_rank": int(os.environ["NUMBA_NUM_THREADS"]),
              "batch_per_rank": per_rank, "parameters": model.num_parameters(),
              "step_s": float(np.median(step_seconds)), "images_per_s": args.batch / float(np.median(step_seconds))}
    if replica is not None:
        report.update(buckets=len(replica.buckets), allreduce_s=float(np.median(allreduce)),
                      wait_s=float(np.median(waited)))
        report.update(_allreduce_fit(world, sum(p.numel() for p in model.parameters())))
    if world.rank == 0:
        print("RESULT " + json.dumps(report), flush=True)


# --- the driver ---------------------------------------------------------------------------------------------------
def _launch(args, mode):
    ranks, threads = {"alone": (1, 2), "alone-1t": (1, 1)}.get(mode, (2, 1))
    env = dict(os.environ, NUMBA_NUM_THREADS=str(threads), OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    command = [sys.executable, __file__, "--worker", mode, "--steps", str(args.steps), "--batch", str(args.batch),
               "--width", str(args.width), "--size", str(args.size)]
    if ranks > 1:
        launcher = pathlib.Path(sys.executable).parent / "mpiexec"
        command = [str(launcher) if launcher.exists() else "mpiexec", "-n", str(ranks)] + command
    output = subprocess.run(command, capture_output=True, text=True, env=env, check=True).stdout
    return json.loads(next(line for line in output.splitlines() if line.startswith("RESULT "))[7:])


def main(argv=None):
    args = _arguments(argv)
    if args.worker:
        return worker(args)
    results = {mode: _launch(args, mode) for mode in MODES}
    print(f"GoogLeNet width {args.width}, {args.size}x{args.size}, global batch {args.batch}, "
          f"{results['alone']['parameters']:,} parameters ({results['alone']['parameters'] * 4 / 1e6:.1f} MB of "
          f"float32 gradient); median of {args.steps} steps")
    print(f"{'run':14s} {'ranks x threads':>16s} {'step ms':>9s} {'images/s':>9s} {'buckets':>8s} "
          f"{'all-reduce ms':>14s} {'waited ms':>10s}")
    for mode, r in results.items():
        comm = (f"{r['buckets']:8d} {r['allreduce_s'] * 1e3:14.1f} {r['wait_s'] * 1e3:10.1f}"
                if "allreduce_s" in r else "")
        print(f"{mode:14s} {r['ranks']:>9d} x {r['threads_per_rank']:<4d} {r['step_s'] * 1e3:9.1f} "
              f"{r['images_per_s']:9.1f} {comm}")
    fit = results["blocking"]
    for mode in ("overlap", "overlap-small"):
        hidden = 1 - results[mode]["wait_s"] / max(results["blocking"]["wait_s"], 1e-12)
        results[mode]["hidden_fraction"] = hidden
        print(f"{mode}: share of the blocking all-reduce time hidden behind backward: {hidden:.0%}")
    print(f"2-rank Allreduce here: 1 kB {fit['allreduce_1kB_s'] * 1e6:.0f} us, gradient "
          f"{fit['allreduce_gradient_s'] * 1e3:.2f} ms -> latency {fit['latency_s'] * 1e6:.1f} us per ring step, "
          f"bandwidth {fit['bandwidth_GBps']:.2f} GB/s")
    pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(args.out).write_text(json.dumps(results, indent=1))
    print(f"written {args.out}")


if __name__ == "__main__":
    sys.exit(main())
