"""GPU check: run the GPU tests, then time every operation (and an Inception-v3 training step) against PyTorch.

    python benchmarks/gpu_check.py            # on a machine with CUDA, CuPy and (optionally) PyTorch with CUDA
    python benchmarks/gpu_check.py --skip-tests --quick

One script, under five minutes on one GPU. Without a CUDA device it says so and exits 0 (nothing to check).
Times are medians of repeated runs after warm-up, with the device synchronised around each run.
"""
import argparse
import os
import statistics
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import tinyinception as ti  # noqa: E402
import tinyinception.functional as F  # noqa: E402


def run_tests(timeout):
    """The gpu-marked tests, then the whole CPU op suite re-pointed at the GPU (TINYINCEPTION_TEST_DEVICE=cuda)."""
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    commands = [
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/gpu"],
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not slow", "tests/functional"],
    ]
    env = dict(os.environ, TINYINCEPTION_TEST_DEVICE="cuda")
    codes = []
    for command in commands:
        print("$", " ".join(command[1:]), flush=True)
        try:
            result = subprocess.run(command, cwd=root, env=env, timeout=timeout, capture_output=True, text=True)
            print("\n".join(result.stdout.strip().splitlines()[-6:]), flush=True)
            codes.append(result.returncode)
        except subprocess.TimeoutExpired:
            print(f"  timed out after {timeout} s", flush=True)
            codes.append(124)
    return codes


def median_time(fn, sync, repeats, warmup=2):
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def op_cases(quick):
    n = 8 if quick else 32
    return {
        "conv 1x1 192->64 @28": ([(n, 192, 28, 28), (64, 192, 1, 1)], lambda x, w: F.conv2d(x, w),
                                 lambda tF, x, w: tF.conv2d(x, w)),
        "conv 3x3 96->128 @28": ([(n, 96, 28, 28), (128, 96, 3, 3)], lambda x, w: F.conv2d(x, w, padding=1),
                                 lambda tF, x, w: tF.conv2d(x, w, padding=1)),
        "conv 1x7 768->128 @17": ([(n, 128, 17, 17), (128, 128, 1, 7)],
                                  lambda x, w: F.conv2d(x, w, padding=(0, 3)),
                                  lambda tF, x, w: tF.conv2d(x, w, padding=(0, 3))),
        "max_pool 3x3/1 @28": ([(n, 192, 28, 28)], lambda x: F.max_pool2d(x, 3, 1, 1, ceil_mode=True),
                               lambda tF, x: tF.max_pool2d(x, 3, 1, 1, ceil_mode=True)),
        "avg_pool 3x3/1 @17": ([(n, 768, 17, 17)], lambda x: F.avg_pool2d(x, 3, 1, 1, count_include_pad=False),
                               lambda tF, x: tF.avg_pool2d(x, 3, 1, 1, count_include_pad=False)),
        "batch_norm+relu @28": ([(n, 192, 28, 28), (192,), (192,)],
                                lambda x, w, b: F.batch_norm_relu(x, None, None, w, b, training=True),
                                lambda tF, x, w, b: tF.relu(tF.batch_norm(x, None, None, w, b, training=True))),
        "concat 4 branches @28": ([(n, 64, 28, 28), (n, 128, 28, 28), (n, 32, 28, 28), (n, 32, 28, 28)],
                                  lambda *xs: ti.cat(xs, 1), lambda tF, *xs: __import__("torch").cat(xs, 1)),
    }


def time_ops(quick, repeats):
    import cupy
    try:
        import torch
        has_torch_cuda = torch.cuda.is_available()
    except ImportError:
        torch, has_torch_cuda = None, False
    sync = cupy.cuda.Device().synchronize
    print(f"\n{'operation':28s} {'ours fwd ms':>11s} {'torch fwd':>10s} {'ratio':>6s} "
          f"{'ours f+b ms':>11s} {'torch f+b':>10s} {'ratio':>6s}")
    rng = np.random.default_rng(0)
    for name, (shapes, ours, theirs) in op_cases(quick).items():
        arrays = [rng.standard_normal(s).astype(np.float32) for s in shapes]
        inputs = [ti.Tensor(cupy.asarray(a), requires_grad=True) for a in arrays]

        def forward():
            with ti.no_grad():
                ours(*inputs)

        def forward_backward():
            out = ours(*inputs)
            out.backward(cupy.ones(out.shape, np.float32))

        row = [median_time(forward, sync, repeats) * 1e3, None, None,
               median_time(forward_backward, sync, repeats) * 1e3, None, None]
        if has_torch_cuda:
            tF = torch.nn.functional
            t_inputs = [torch.tensor(a, device="cuda", requires_grad=True) for a in arrays]

            def t_forward():
                with torch.no_grad():
                    theirs(tF, *t_inputs)

            def t_forward_backward():
                out = theirs(tF, *t_inputs)
                out.backward(torch.ones_like(out))

            row[1] = median_time(t_forward, torch.cuda.synchronize, repeats) * 1e3
            row[4] = median_time(t_forward_backward, torch.cuda.synchronize, repeats) * 1e3
            row[2], row[5] = row[0] / row[1], row[3] / row[4]
        print(f"{name:28s} " + " ".join("      n/a" if v is None else f"{v:10.3f}" for v in row), flush=True)


def time_inception_v3_step(batch, size, repeats):
    """One SGD training step of Inception-v3 (aux head on, as torchvision trains it) here and in PyTorch."""
    import cupy
    if "inception_v3" not in ti.models.list_models():
        print("\ninception_v3 is not available in ti.models: training-step timing skipped")
        return
    model = ti.models.inception_v3(num_classes=1000).to("cuda")
    optimizer = ti.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = ti.Tensor(cupy.asarray(np.random.default_rng(0).standard_normal((batch, 3, size, size)).astype(np.float32)))
    y = cupy.asarray(np.arange(batch) % 1000)

    def step():
        optimizer.zero_grad()
        logits, aux = model(x)
        loss = F.cross_entropy(logits, y) + 0.4 * F.cross_entropy(aux, y)
        loss.backward()
        optimizer.step()

    ours = median_time(step, cupy.cuda.Device().synchronize, repeats, warmup=1)
    line = f"\nInception-v3 training step, batch {batch} at {size}: ours {ours * 1e3:.1f} ms"
    try:
        import torch
        import torchvision
        if torch.cuda.is_available():
            torch.backends.cudnn.benchmark = True
            tmodel = torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=False).cuda()
            topt = torch.optim.SGD(tmodel.parameters(), lr=0.01, momentum=0.9)
            tx = torch.tensor(x.data.get(), device="cuda")
            ty = torch.tensor(y.get(), device="cuda")

            def tstep():
                topt.zero_grad()
                out = tmodel(tx)
                loss = torch.nn.functional.cross_entropy(out.logits, ty) + \
                    0.4 * torch.nn.functional.cross_entropy(out.aux_logits, ty)
                loss.backward()
                topt.step()

            theirs = median_time(tstep, torch.cuda.synchronize, repeats, warmup=2)
            line += f", PyTorch+cuDNN {theirs * 1e3:.1f} ms, ratio {ours / theirs:.2f}x (target: within 2x)"
    except ImportError as error:
        line += f" (PyTorch comparison unavailable: {error})"
    print(line, flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller batches and fewer repeats")
    parser.add_argument("--skip-tests", action="store_true")
    parser.add_argument("--test-timeout", type=int, default=150)
    args = parser.parse_args(argv)
    if not ti.cuda.is_available():
        print("No CUDA device is available (ti.cuda.is_available() is False): nothing to check here.")
        return 0
    import cupy
    props = cupy.cuda.runtime.getDeviceProperties(0)
    print(f"GPU: {props['name'].decode()}, CuPy {cupy.__version__}, NumPy {np.__version__}", flush=True)
    codes = [] if args.skip_tests else run_tests(args.test_timeout)
    time_ops(args.quick, repeats=5 if args.quick else 20)
    time_inception_v3_step(batch=16 if args.quick else 64, size=299, repeats=3 if args.quick else 5)
    return 1 if any(codes) else 0


if __name__ == "__main__":
    sys.exit(main())
