"""The ring all-reduce cost model of docs/distributed.md, for every network: prints the Markdown tables.

    python benchmarks/distributed_cost.py [--batch 32] [--tflops 10] [--quick]

Model (data parallelism, K replicas, weak scaling: each replica keeps its batch):

    gradient bytes  G = 4 x trainable parameters (float32), in b = 1 + ceil((G - 1 MB) / 25 MB) buckets
    all-reduce      T_ar(K) = 2 (K - 1) / K x G / bandwidth  +  b x 2 (K - 1) x latency
    compute         T_c = 3 x 2 x multiply-adds per image x batch / sustained FLOP/s   (forward + 2x backward)
    step            no overlap: T_c + T_ar         overlap with backward (2/3 of T_c): T_c / 3 + max(2 T_c / 3, T_ar)
    efficiency      T_c / step                    (1 = perfect scaling: K replicas train K times faster)

Parameters and multiply-adds are counted with the builders (ImageNet configuration, 1000 classes, auxiliary heads
as built, at each network's published resolution). The networks: 10 Gb/s Ethernet with 30 us per ring step
(TCP), 100 Gb/s with 3 us (RDMA). The worker is an assumption: ``--tflops`` sustained float32 FLOP/s.
"""
import argparse
import math

NETWORKS = {"googlenet": 224, "bn_inception": 224, "inception_v3": 299, "inception_v4": 299,
            "inception_resnet_v1": 160, "inception_resnet_v2": 299}
LINKS = {"10 Gb/s (30 us)": (10e9 / 8, 30e-6), "100 Gb/s (3 us)": (100e9 / 8, 3e-6)}
RANKS = (2, 4, 8, 16, 32, 64, 128, 256)
BUCKET, FIRST_BUCKET = 25 * 2 ** 20, 2 ** 20


def allreduce_seconds(gradient_bytes, ranks, bandwidth, latency):
    buckets = 1 + math.ceil(max(gradient_bytes - FIRST_BUCKET, 0) / BUCKET)
    return 2 * (ranks - 1) / ranks * gradient_bytes / bandwidth + buckets * 2 * (ranks - 1) * latency


def efficiencies(compute, communication):
    """(no overlap, overlap with backward) scaling efficiency."""
    return compute / (compute + communication), compute / (compute / 3 + max(2 * compute / 3, communication))


def count(name, size, quick):
    """(trainable parameters, forward multiply-adds per image) of the ImageNet configuration."""
    import tinyinception as ti
    kwargs = {"num_classes": 1000}
    if name != "inception_resnet_v1":
        kwargs["small_input"] = False
    model = ti.models.create(name, **kwargs)
    parameters = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if quick:
        return parameters, float("nan")
    model.eval()
    return parameters, ti.summary(model, (3, size, size), show=False).total_macs


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=32, help="images per replica and step")
    parser.add_argument("--tflops", type=float, default=10.0, help="sustained float32 TFLOP/s of one replica")
    parser.add_argument("--quick", action="store_true", help="parameters only (no forward pass to count MACs)")
    args = parser.parse_args(argv)
    rows = []
    for name, size in NETWORKS.items():
        parameters, macs = count(name, size, args.quick)
        compute = 6 * macs * args.batch / (args.tflops * 1e12)
        rows.append((name, size, parameters, macs, compute))
    print(f"| network | input | parameters | gradient MiB | GMACs / image | compute ms (batch {args.batch}) | "
          + " | ".join(f"all-reduce ms, K=256, {link}" for link in LINKS) + " |")
    print("|" + " --- |" * (6 + len(LINKS)))
    for name, size, parameters, macs, compute in rows:
        cells = [f"{allreduce_seconds(4 * parameters, 256, *link) * 1e3:.1f}" for link in LINKS.values()]
        print(f"| {name} | {size} | {parameters / 1e6:.1f} M | {4 * parameters / 2 ** 20:.0f} | {macs / 1e9:.2f} | "
              f"{compute * 1e3:.0f} | " + " | ".join(cells) + " |")
    for link, (bandwidth, latency) in LINKS.items():
        print(f"\nScaling efficiency at {link}, no overlap / overlap with backward:\n")
        print("| network | " + " | ".join(f"K={k}" for k in RANKS) + " |")
        print("|" + " --- |" * (1 + len(RANKS)))
        for name, _, parameters, _, compute in rows:
            cells = []
            for k in RANKS:
                plain, hidden = efficiencies(compute, allreduce_seconds(4 * parameters, k, bandwidth, latency))
                cells.append(f"{plain:.0%} / {hidden:.0%}")
            print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
