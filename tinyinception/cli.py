"""The ``tinyinception`` command (also ``python -m tinyinception``).

    tinyinception train                      # a small GoogLeNet on the built-in Shapes10 data (the README's job)
    tinyinception train --model inception_v3 --width 0.25 --dataset cifar10 --data-dir data --download
    tinyinception train --resume runs/shapes/last.ckpt --epochs 6
    tinyinception eval --checkpoint runs/shapes/best.ckpt
    tinyinception summary googlenet --input-size 3 32 32
    tinyinception models
"""
import argparse
import os
import sys
import time

import numpy as np

DATASETS = ("shapes", "cifar10", "mnist", "fashion_mnist", "folder")
OPTIMIZERS = ("sgd", "rmsprop", "adam", "adamw")

# Defaults of ``tinyinception train``: a GoogLeNet at a quarter of the paper's widths with the 32x32 stem, Adam at
# lr 5e-4 with a short linear warm-up then cosine decay per step, batch 64, two epochs of Shapes10's 20,000 images.
# Measured with these defaults, single-threaded (NUMBA_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1) on a shared machine:
# 88.2% test accuracy after epoch 1, 98.6% after epoch 2, 329 s wall / 226 s CPU in all, ~125 images/s. (One epoch
# with the whole cosine in it: 84.1% in 149 s.)
# Larger steps stay at chance for the first epoch: Adam at 1e-3 / 1.5e-3, AdamW at 2e-3, SGD at 0.02, and SGD at
# 0.1 even after a Kaiming re-init -- GoogLeNet's torchvision init (std 0.01 under BatchNorm) makes a given step
# large relative to the weights. QUICK is the smoke-test setting (CI, tests): seconds; accuracy is not the point.
TRAIN_DEFAULTS = dict(model="googlenet", width=0.25, dataset="shapes", epochs=2, batch_size=64, lr=5e-4,
                      optimizer="adam", weight_decay=0.0, label_smoothing=0.0, warmup_epochs=0.1,
                      train_size=None, test_size=None, seed=0, out="runs/shapes")
QUICK = dict(width=0.125, epochs=1, batch_size=32, train_size=256, test_size=128)


# --- data -------------------------------------------------------------------------------------------------------
def _subset(dataset, size):
    """The first ``size`` examples of an ArrayDataset (all of them when size is None)."""
    from .data import ArrayDataset
    if size is None or size >= len(dataset):
        return dataset
    return ArrayDataset(dataset.data[:size], dataset.targets[:size], dataset.classes)


def _grey_to_rgb32(images):
    """(B, 1, 28, 28) grey digits -> (B, 3, 32, 32): every network here takes three-channel input."""
    from .data.transforms import resize_bilinear
    return np.repeat(resize_bilinear(images, (32, 32)), 3, axis=1)


def _folder_split(root, *names):
    for name in names:
        path = os.path.join(root, name)
        if os.path.isdir(path):
            return path
    raise FileNotFoundError(f"--dataset folder: expected {' or '.join(os.path.join(root, n) for n in names)} "
                            f"holding one sub-folder of images per class")


def load_datasets(name, data_dir=None, download=False, train_size=None, test_size=None, seed=0):
    """(train dataset, test dataset, batch transform for both or None) for a ``--dataset`` name."""
    from . import data
    if name == "shapes":
        return data.Shapes10("train", size=train_size, seed=seed), data.Shapes10("test", size=test_size,
                                                                                seed=seed), None
    if data_dir is None:
        raise SystemExit(f"tinyinception: --dataset {name} needs --data-dir (add --download to fetch it)")
    if name == "folder":
        train = data.ImageFolder(_folder_split(data_dir, "train"), image_size=32)
        test = data.ImageFolder(_folder_split(data_dir, "test", "val"), image_size=32)
        return _subset(train, train_size), _subset(test, test_size), None
    builder = {"cifar10": data.CIFAR10, "mnist": data.MNIST, "fashion_mnist": data.FashionMNIST}[name]
    train = builder(data_dir, train=True, download=download)
    test = builder(data_dir, train=False, download=False)
    transform = None if name == "cifar10" else _grey_to_rgb32
    return _subset(train, train_size), _subset(test, test_size), transform


def _train_transform(dataset_name, shared):
    """Augmentation: random crops and flips for CIFAR-10; none for the procedural shapes (every image is already
    a fresh random draw) or the digits (flips change their meaning)."""
    from .data import Compose, RandomCrop, RandomHorizontalFlip
    if dataset_name == "cifar10":
        return Compose([RandomCrop(32, padding=4), RandomHorizontalFlip()])
    return shared


# --- training pieces --------------------------------------------------------------------------------------------
def make_optimizer(name, parameters, lr, weight_decay):
    from . import optim
    if name == "sgd":
        return optim.SGD(parameters, lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay)
    if name == "rmsprop":
        return optim.RMSprop(parameters, lr=lr, alpha=0.9, eps=1e-3, momentum=0.9, weight_decay=weight_decay)
    if name == "adam":
        return optim.Adam(parameters, lr=lr, weight_decay=weight_decay)
    return optim.AdamW(parameters, lr=lr, weight_decay=weight_decay)


def make_scheduler(optimizer, total_steps, warmup_steps):
    """Linear warm-up over ``warmup_steps`` then cosine decay to 0 at ``total_steps`` (stepped per batch)."""
    from .optim import lr_scheduler
    warmup_steps = min(max(int(warmup_steps), 0), total_steps - 1)
    cosine = lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(total_steps - warmup_steps, 1))
    if warmup_steps == 0:
        return cosine
    warmup = lr_scheduler.LinearLR(optimizer, start_factor=0.1, total_iters=warmup_steps)
    return lr_scheduler.SequentialLR(optimizer, [warmup, cosine], milestones=[warmup_steps])


def _model_kwargs(args, num_classes):
    return {"num_classes": num_classes, "width": args.width, "small_input": True}


def build_model(name, model_kwargs):
    from . import models
    return models.create(name, **model_kwargs)


def _resolve_train_args(args):
    """Fill unset options from TRAIN_DEFAULTS (and QUICK with --quick)."""
    for key, value in TRAIN_DEFAULTS.items():
        if getattr(args, key) is None:
            setattr(args, key, QUICK.get(key, value) if args.quick and key in QUICK else value)
    return args


def _save_prediction_grid(model, test_set, transform, path, device, count=32):
    from .train import predict
    from .viz import plot_predictions
    images, labels = test_set.get_batch(np.arange(min(count, len(test_set))))
    shown = images if transform is None else transform(images)
    predictions = predict(model, shown, device=device)
    return plot_predictions(shown, labels, predictions, test_set.classes, path, columns=8,
                            title="test images: prediction (true class when wrong)")


def _mpi_world(args):
    """The MPI world when `mpirun -n K` (K > 1) started this process, else None (MPI is then never loaded)."""
    from .distributed.world import launched_by_mpi
    if not launched_by_mpi():
        return None
    from . import distributed
    world = distributed.init()
    if world.size > 1 and args.device == "cuda":
        distributed.training.use_local_gpu()
    elif world.size > 1:
        distributed.training.share_cores()
    if world.rank != 0:
        sys.stdout = open(os.devnull, "w")   # rank 0 alone prints (errors still reach stderr)
    return world if world.size > 1 else None


def cmd_train(args):
    import tinyinception as ti
    from .data import DataLoader
    args = _resolve_train_args(args)
    started = time.perf_counter()
    ti.manual_seed(args.seed)
    world = _mpi_world(args)
    train_set, test_set, shared_transform = load_datasets(args.dataset, args.data_dir, args.download,
                                                          args.train_size, args.test_size, args.seed)
    if world is None:
        train_loader = DataLoader(train_set, args.batch_size, shuffle=True, drop_last=True, seed=args.seed,
                                  transform=_train_transform(args.dataset, shared_transform))
        test_loader = DataLoader(test_set, 256, transform=shared_transform)
    else:
        from .distributed import sharded_loaders
        try:
            train_loader, test_loader = sharded_loaders(world, train_set, test_set, args.batch_size, args.seed,
                                                        _train_transform(args.dataset, shared_transform),
                                                        shared_transform)
        except ValueError as error:
            raise SystemExit(f"tinyinception train: {error}") from None
    model_kwargs = _model_kwargs(args, len(train_set.classes))
    model = build_model(args.model, model_kwargs)
    if world is not None and args.sync_batchnorm:
        model = ti.distributed.SyncBatchNorm.convert_sync_batchnorm(model, world)
    optimizer = make_optimizer(args.optimizer, model.parameters(), args.lr, args.weight_decay)
    steps = args.epochs * len(train_loader)
    scheduler = make_scheduler(optimizer, steps, args.warmup_epochs * len(train_loader)) if steps else None
    config = {"model": args.model, "model_kwargs": model_kwargs, "dataset": args.dataset, "data_dir": args.data_dir,
              "test_size": args.test_size, "seed": args.seed, "classes": list(train_set.classes)}
    print(f"training {args.model} (width {args.width}, {model.num_parameters():,} parameters) on {args.dataset}: "
          f"{len(train_set)} train / {len(test_set)} test images, {args.epochs} epochs of {len(train_loader)} "
          f"batches of {args.batch_size}, {args.optimizer} lr {args.lr}, device {args.device}", flush=True)
    if world is not None:
        print(f"data parallel over {world.size} MPI ranks: {args.batch_size // world.size} images per rank and "
              f"step{', SyncBatchNorm' if args.sync_batchnorm else ''}", flush=True)
    result = ti.train.fit(model, train_loader, test_loader, optimizer, args.epochs, scheduler=scheduler,
                          label_smoothing=args.label_smoothing, out_dir=args.out, resume=args.resume,
                          device=args.device, progress=not args.no_progress, scheduler_interval="step",
                          config=config, world=world)
    if world is not None and world.rank != 0:
        return result
    grid = _save_prediction_grid(model, test_set, shared_transform, os.path.join(args.out, "predictions.png"),
                                 args.device)
    final = result.history[-1] if result.history else {}
    print(f"done in {time.perf_counter() - started:.0f} s: test accuracy {final.get('val_accuracy', float('nan')):.4f} "
          f"(best {result.best_val_accuracy if result.best_val_accuracy is not None else float('nan'):.4f})")
    print(f"  checkpoint  {result.last_checkpoint} (best: {result.best_checkpoint})")
    print(f"  metrics     {result.metrics_path}")
    print(f"  plots       {result.curves_path}, {grid}")
    return result


def cmd_eval(args):
    from . import train
    from .data import DataLoader
    state = train.load_checkpoint(args.checkpoint)
    config = state.get("config") or {}
    if "model" not in config:
        raise SystemExit(f"tinyinception eval: {args.checkpoint} does not say which model it holds (no config); "
                         f"it was not written by `tinyinception train`")
    model = build_model(config["model"], config["model_kwargs"])
    model.load_state_dict(state["model"])
    _, test_set, transform = load_datasets(config["dataset"], args.data_dir or config.get("data_dir"), False,
                                           0, config.get("test_size"), config.get("seed", 0))
    metrics = train.evaluate(model, DataLoader(test_set, args.batch_size, transform=transform), device=args.device,
                             progress=not args.no_progress)
    model.to(args.device)
    print(f"{config['model']} from {args.checkpoint} (epoch {state['epoch']}) on {config['dataset']} test "
          f"({metrics['count']} images): accuracy {metrics['accuracy']:.4f}, loss {metrics['loss']:.4f}")
    return metrics


def cmd_summary(args):
    from .summary import summary
    model = build_model(args.model, {"num_classes": args.num_classes, "width": args.width,
                                     "small_input": args.small_input})
    return summary(model, tuple(args.input_size), max_depth=args.depth, show=True)   # prints the table


def cmd_models(args):
    from . import models
    from .models.registry import _BUILDERS
    for name in models.list_models():
        paragraph = " ".join((_BUILDERS[name].__doc__ or "").strip().split("\n\n")[0].split())
        print(f"{name:22s} {paragraph.split('. ')[0].split(' (')[0]}")


# --- parser -----------------------------------------------------------------------------------------------------
def _add_train_parser(commands):
    train = commands.add_parser("train", help="train a network (default: a small GoogLeNet on Shapes10)")
    d = TRAIN_DEFAULTS
    train.add_argument("--model", help=f"network name, see `tinyinception models` (default {d['model']})")
    train.add_argument("--width", type=float, help=f"channel multiplier (default {d['width']})")
    train.add_argument("--dataset", choices=DATASETS, help="default: shapes (built in, no download)")
    train.add_argument("--data-dir", help="where the dataset lives (cifar10, mnist, fashion_mnist, folder)")
    train.add_argument("--download", action="store_true", help="download the dataset into --data-dir first")
    train.add_argument("--epochs", type=int, help=f"default {d['epochs']}")
    train.add_argument("--batch-size", type=int, help=f"default {d['batch_size']}")
    train.add_argument("--lr", type=float, help=f"peak learning rate (default {d['lr']})")
    train.add_argument("--optimizer", choices=OPTIMIZERS, help=f"default {d['optimizer']}")
    train.add_argument("--weight-decay", type=float, help=f"default {d['weight_decay']}")
    train.add_argument("--label-smoothing", type=float, help="default 0 (Inception-v3 used 0.1)")
    train.add_argument("--warmup-epochs", type=float, help=f"linear warm-up length (default {d['warmup_epochs']})")
    train.add_argument("--train-size", type=int, help="use only this many training images")
    train.add_argument("--test-size", type=int, help="use only this many test images")
    train.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    train.add_argument("--out", help=f"output folder (default {d['out']})")
    train.add_argument("--resume", help="checkpoint to continue from (e.g. runs/shapes/last.ckpt)")
    train.add_argument("--seed", type=int, help=f"default {d['seed']}")
    train.add_argument("--quick", action="store_true", help="a seconds-long smoke run: tiny data and model")
    train.add_argument("--no-progress", action="store_true", help="no progress bars")
    train.add_argument("--sync-batchnorm", action="store_true",
                       help="under mpirun: BatchNorm statistics over all ranks' images (docs/distributed.md)")
    train.set_defaults(handler=cmd_train)


def build_parser():
    parser = argparse.ArgumentParser(prog="tinyinception", description="Build, train and understand Inception "
                                     "networks from scratch on NumPy.")
    commands = parser.add_subparsers(dest="command", required=True)
    _add_train_parser(commands)
    evaluate = commands.add_parser("eval", help="test accuracy of a checkpoint written by `train`")
    evaluate.add_argument("--checkpoint", required=True)
    evaluate.add_argument("--data-dir", help="override the data folder stored in the checkpoint")
    evaluate.add_argument("--batch-size", type=int, default=256)
    evaluate.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    evaluate.add_argument("--no-progress", action="store_true")
    evaluate.set_defaults(handler=cmd_eval)
    summary = commands.add_parser("summary", help="layer-by-layer table of a network")
    summary.add_argument("model")
    summary.add_argument("--input-size", type=int, nargs=3, default=(3, 32, 32), metavar=("C", "H", "W"))
    summary.add_argument("--width", type=float, default=1.0)
    summary.add_argument("--num-classes", type=int, default=10)
    summary.add_argument("--depth", type=int, help="show rows up to this nesting depth (1 = blocks only)")
    summary.add_argument("--small-input", action=argparse.BooleanOptionalAction, default=True,
                         help="the 32x32 stem (default; --no-small-input for the ImageNet stem)")
    summary.set_defaults(handler=cmd_summary)
    models = commands.add_parser("models", help="list the networks")
    models.set_defaults(handler=cmd_models)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        args.handler(args)
    except KeyboardInterrupt:
        print("\ninterrupted; the last checkpoint (if any) is intact", file=sys.stderr)
        return 130
    return 0
