"""The ``tinyinception`` command (also ``python -m tinyinception``).

    tinyinception train            # a small GoogLeNet on the built-in Shapes10 data, into runs/shapes-googlenet
    tinyinception train --model inception_v3 --width 0.25 --dataset cifar10 --data-dir data --download
    tinyinception train --resume runs/shapes-googlenet/last.ckpt --epochs 6
    tinyinception eval --checkpoint runs/shapes-googlenet/best.ckpt
    tinyinception summary googlenet --input-size 3 32 32
    tinyinception models
    tinyinception predict photo.jpg --model inception_v3 --weights IMAGENET1K_V1 --top 5

A mistake on the command line (an unknown model, ``--epochs 0``, a missing checkpoint, a folder another run
writes to...) ends in one line on stderr and exit status 2; any other failure in one line and exit status 1.
``--debug`` (or ``TINYINCEPTION_DEBUG=1``) shows the traceback instead.

Each subcommand is one ``cmd_*`` function; `main` runs it inside the single wrapper that turns errors into
exit statuses (`run_command`).
"""
import argparse
import difflib
import math
import os
import re
import sys
import time
import traceback

import numpy as np

DATASETS = ("shapes", "cifar10", "mnist", "fashion_mnist", "folder")
OPTIMIZERS = ("sgd", "rmsprop", "adam", "adamw")
DEBUG_VARIABLE = "TINYINCEPTION_DEBUG"

# Defaults of ``tinyinception train``: a GoogLeNet at a quarter of the paper's widths with the 32x32 stem, Adam at
# lr 5e-4 with a short linear warm-up then cosine decay per step, batch 64, two epochs of Shapes10's 20,000 images.
# Measured with these defaults, single-threaded (NUMBA_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1) on a shared machine:
# 88.2% test accuracy after epoch 1, 98.6% after epoch 2, 329 s wall / 226 s CPU in all, ~125 images/s. (One epoch
# with the whole cosine in it: 84.1% in 149 s.)
# Larger steps stay at chance for the first epoch: Adam at 1e-3 / 1.5e-3, AdamW at 2e-3, SGD at 0.02, and SGD at
# 0.1 even after a Kaiming re-init -- GoogLeNet's torchvision init (std 0.01 under BatchNorm) makes a given step
# large relative to the weights. QUICK is the smoke-test setting (CI, tests): seconds; accuracy is not the point.
# The output folder defaults to runs/<dataset>-<model> (the checkpoint's folder when resuming).
TRAIN_DEFAULTS = dict(model="googlenet", width=0.25, dataset="shapes", epochs=2, batch_size=64, lr=5e-4,
                      optimizer="adam", weight_decay=0.0, label_smoothing=0.0, warmup_epochs=0.1,
                      train_size=None, test_size=None, seed=0, data_dir=None)
QUICK = dict(width=0.125, epochs=1, batch_size=32, train_size=256, test_size=128)
# Options a resumed run cannot change: the weights, the data and its order depend on them.
FIXED_AT_RESUME = ("model", "width", "dataset", "data_dir", "batch_size", "train_size", "seed")
# An input at least this many pixels high and wide is "ImageNet-sized": `summary` shows the published network.
IMAGENET_SIZED = 128


class UsageError(Exception):
    """A mistake in how the command was called: reported in one line, exit status 2."""


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
    raise UsageError(f"--dataset folder: expected {' or '.join(os.path.join(root, n) for n in names)} "
                     f"holding one sub-folder of images per class")


def load_datasets(name, data_dir=None, download=False, train_size=None, test_size=None, seed=0):
    """(train dataset, test dataset, batch transform for both or None) for a ``--dataset`` name."""
    from . import data
    if name == "shapes":
        return data.Shapes10("train", size=train_size, seed=seed), data.Shapes10("test", size=test_size,
                                                                                seed=seed), None
    if data_dir is None:
        if name == "folder":
            raise UsageError("--dataset folder needs --data-dir: a folder with train/ and test/ (or val/), each "
                             "holding one sub-folder of images per class")
        raise UsageError(f"--dataset {name} needs --data-dir (add --download to fetch it there)")
    if name == "folder":
        train = data.ImageFolder(_folder_split(data_dir, "train"), image_size=32)
        test = data.ImageFolder(_folder_split(data_dir, "test", "val"), image_size=32)
        return _subset(train, train_size), _subset(test, test_size), None
    builder = {"cifar10": data.CIFAR10, "mnist": data.MNIST, "fashion_mnist": data.FashionMNIST}[name]
    try:
        train = builder(data_dir, train=True, download=download)
        test = builder(data_dir, train=False, download=False)
    except FileNotFoundError as error:
        missing = getattr(error, "filename", None) or str(error).split(";")[0]
        raise UsageError(f"--dataset {name}: the files are not in {data_dir} ({missing}); add --download to "
                         f"fetch them there") from error
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


def check_model_name(name):
    """Raise UsageError for a name the registry does not know, suggesting the closest one."""
    from . import models
    names = models.list_models()
    if name not in names:
        close = difflib.get_close_matches(name, names, n=1, cutoff=0.5)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise UsageError(f"unknown model {name!r}; {hint}`tinyinception models` lists them")


def build_model(name, model_kwargs):
    from . import models
    check_model_name(name)
    return models.create(name, **model_kwargs)


def _load_resume_checkpoint(path):
    """The checkpoint to resume (read before any data is generated), or UsageError if it cannot be resumed."""
    from .train import load_checkpoint
    if not os.path.isfile(path):
        raise UsageError(f"--resume {path}: no such checkpoint file")
    state = load_checkpoint(path)      # CheckpointError (exit 2) if it is not one
    config = state.get("config") or {}
    if "model" not in config or "epoch" not in state:
        raise UsageError(f"--resume {path}: the checkpoint does not say which model it holds (no config); it was "
                         f"not written by `tinyinception train`")
    return state


def _saved_args(state):
    """The options of the run that wrote ``state`` (older checkpoints: what their config says)."""
    config = state.get("config") or {}
    saved = dict(config.get("args") or {})
    for key in ("model", "dataset", "data_dir", "test_size", "seed"):
        saved.setdefault(key, config.get(key))
    saved.setdefault("width", (config.get("model_kwargs") or {}).get("width"))
    return {key: value for key, value in saved.items() if key in TRAIN_DEFAULTS}


def _resolve_train_args(args):
    """Fill unset options: from the checkpoint with --resume, else from QUICK (with --quick) and TRAIN_DEFAULTS.

    Returns the checkpoint's state (or None). Options given on the command line always win, except those in
    FIXED_AT_RESUME, which a resume may not change (UsageError).
    """
    state = None
    saved = {}
    if args.resume:
        state = _load_resume_checkpoint(args.resume)
        saved = _saved_args(state)
        for key in FIXED_AT_RESUME:
            given, before = getattr(args, key), saved.get(key)
            if given is not None and before is not None and given != before:
                raise UsageError(f"--{key.replace('_', '-')} {given}: {args.resume} was trained with {before}, "
                                 f"and a resumed run cannot change it; start a new run with another --out")
    for key, value in TRAIN_DEFAULTS.items():
        if getattr(args, key) is None:
            if key in saved and saved[key] is not None:
                value = saved[key]
            elif args.quick and key in QUICK:
                value = QUICK[key]
            setattr(args, key, value)
    check_model_name(args.model)
    if state is not None and args.epochs <= int(state["epoch"]):
        raise UsageError(f"--epochs {args.epochs}: {args.resume} has already trained {state['epoch']} epochs; "
                         f"pass --epochs above {state['epoch']} to continue it")
    if args.out is None:
        args.out = (os.path.dirname(os.path.abspath(args.resume)) if args.resume
                    else os.path.join("runs", f"{args.dataset}-{args.model}"))
    return state


def _claim_out_folder(args):
    """The lock of ``args.out`` (held until the run ends), refusing a folder that holds another run's files."""
    from .train.run_folder import RunLock, run_files
    lock = RunLock(args.out).acquire()          # RunFolderBusy (exit 2) while another run writes there
    existing = run_files(args.out)
    if existing and not args.resume:
        if not args.overwrite:
            lock.release()
            raise UsageError(f"{args.out} already holds a run ({', '.join(existing)}); pass --resume "
                             f"{os.path.join(args.out, 'last.ckpt')} to continue it, --overwrite to replace it, or "
                             f"--out for a new folder")
        for name in existing:
            os.remove(os.path.join(args.out, name))
    return lock


def _save_prediction_grid(model, test_set, transform, path, device, count=32):
    from .train import predict
    from .viz import plot_predictions
    images, labels = test_set.get_batch(np.arange(min(count, len(test_set))))
    shown = images if transform is None else transform(images)
    predictions = predict(model, shown, device=device)
    return plot_predictions(shown, labels, predictions, test_set.classes, path, columns=8,
                            title="test images: prediction (true class when wrong)")


def _train_config(args, model_kwargs, classes):
    """What the checkpoints store about the run: how to rebuild the model and data, and every option."""
    options = {key: getattr(args, key) for key in TRAIN_DEFAULTS}
    return {"model": args.model, "model_kwargs": model_kwargs, "dataset": args.dataset, "data_dir": args.data_dir,
            "test_size": args.test_size, "seed": args.seed, "classes": list(classes), "args": options}


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
    """``tinyinception train``: see the module docstring; returns fit's FitResult."""
    import tinyinception as ti
    from .data import DataLoader
    _resolve_train_args(args)
    world = _mpi_world(args)
    lock = _claim_out_folder(args) if world is None or world.rank == 0 else None   # rank 0 alone writes
    try:
        return _train(ti, DataLoader, args, world)
    finally:
        if lock is not None:
            lock.release()


def _train(ti, DataLoader, args, world):
    started = time.perf_counter()
    ti.manual_seed(args.seed)
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
            raise UsageError(str(error)) from None
    if len(train_loader) == 0:
        raise UsageError(f"--batch-size {args.batch_size} is larger than the {len(train_set)} training images: "
                         f"no full batch to train on")
    model_kwargs = _model_kwargs(args, len(train_set.classes))
    model = build_model(args.model, model_kwargs)
    if world is not None and args.sync_batchnorm:
        model = ti.distributed.SyncBatchNorm.convert_sync_batchnorm(model, world)
    optimizer = make_optimizer(args.optimizer, model.parameters(), args.lr, args.weight_decay)
    steps = args.epochs * len(train_loader)
    scheduler = make_scheduler(optimizer, steps, args.warmup_epochs * len(train_loader))
    print(f"training {args.model} (width {args.width}, {model.num_parameters():,} parameters) on {args.dataset}: "
          f"{len(train_set)} train / {len(test_set)} test images, {args.epochs} epochs of {len(train_loader)} "
          f"batches of {args.batch_size}, {args.optimizer} lr {args.lr}, device {args.device}, into {args.out}",
          flush=True)
    if world is not None:
        print(f"data parallel over {world.size} MPI ranks: {args.batch_size // world.size} images per rank and "
              f"step{', SyncBatchNorm' if args.sync_batchnorm else ''}", flush=True)
    result = ti.train.fit(model, train_loader, test_loader, optimizer, args.epochs, scheduler=scheduler,
                          label_smoothing=args.label_smoothing, out_dir=args.out, resume=args.resume,
                          device=args.device, progress=not args.no_progress, scheduler_interval="step",
                          config=_train_config(args, model_kwargs, train_set.classes), world=world)
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
    """``tinyinception eval``: accuracy of a checkpoint written by ``train`` on its dataset's test split."""
    from . import train
    from .data import DataLoader
    if not os.path.isfile(args.checkpoint):
        raise UsageError(f"--checkpoint {args.checkpoint}: no such checkpoint file")
    state = train.load_checkpoint(args.checkpoint)
    config = state.get("config") or {}
    if "model" not in config or "model" not in state:
        raise UsageError(f"{args.checkpoint} does not say which model it holds (no config); it was not written "
                         f"by `tinyinception train`")
    model = build_model(config["model"], config["model_kwargs"])
    model.load_state_dict(state["model"])
    _, test_set, transform = load_datasets(config["dataset"], args.data_dir or config.get("data_dir"), False,
                                           0, config.get("test_size"), config.get("seed", 0))
    metrics = train.evaluate(model, DataLoader(test_set, args.batch_size, transform=transform), device=args.device,
                             progress=not args.no_progress)
    model.to(args.device)
    print(f"{config['model']} from {args.checkpoint} (epoch {state.get('epoch')}) on {config['dataset']} test "
          f"({metrics['count']} images): accuracy {metrics['accuracy']:.4f}, loss {metrics['loss']:.4f}")
    return metrics


def summary_variant(input_size, small_input=None, num_classes=None):
    """(small_input, num_classes) for `summary`: the published network (ImageNet stem, 1000 classes) for an input
    at least IMAGENET_SIZED pixels high and wide, else the 32x32 variant (small stem, 10 classes); given values
    win."""
    imagenet_sized = min(input_size[1:]) >= IMAGENET_SIZED
    small = (not imagenet_sized) if small_input is None else small_input
    classes = num_classes if num_classes is not None else (10 if small else 1000)
    return small, classes


def cmd_summary(args):
    """``tinyinception summary``: the table of one network for one input size (one row per block by default)."""
    from .summary import summary
    small_input, num_classes = summary_variant(args.input_size, args.small_input, args.num_classes)
    model = build_model(args.model, {"num_classes": num_classes, "width": args.width, "small_input": small_input})
    size = "x".join(str(s) for s in args.input_size)
    variant = "the 32x32 stem" if small_input else "the published ImageNet stem"
    print(f"{args.model}, width {args.width:g}, {variant}, {num_classes} classes, input {size}")
    try:
        return summary(model, tuple(args.input_size), max_depth=args.depth, show=True)   # prints the table
    except ValueError as error:
        raise UsageError(f"--input-size {size}: {error}") from error


def _plain_text(text):
    """reStructuredText roles and literals (``x``, `x`, :func:`x`) as plain words."""
    return re.sub(r"(?::\w+:)?`{1,2}([^`]+?)`{1,2}_?", r"\1", text)


def cmd_models(args):
    """``tinyinception models``: every network name with the first sentence of its description."""
    from . import models
    from .models.registry import _BUILDERS
    for name in models.list_models():
        paragraph = " ".join((_BUILDERS[name].__doc__ or "").strip().split("\n\n")[0].split())
        print(f"{name:22s} {_plain_text(paragraph.split('. ')[0].split(' (')[0])}")


# --- parser -----------------------------------------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    """argparse with no abbreviated options (``--epoch`` is not taken for ``--epochs``) and errors in one line."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _number(kind, minimum, inclusive=True):
    """An argparse type: ``kind`` (int or float), finite, >= minimum (or > minimum)."""
    def convert(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, "
                                             f"got {text!r}") from None
        if not math.isfinite(value) or value < minimum or (value == minimum and not inclusive):
            raise argparse.ArgumentTypeError(f"must be {'at least' if inclusive else 'above'} {minimum}, "
                                             f"got {text}")
        return value
    convert.__name__ = kind.__name__
    return convert


POSITIVE_INT = _number(int, 1)
POSITIVE_FLOAT = _number(float, 0.0, inclusive=False)
NON_NEGATIVE_FLOAT = _number(float, 0.0)


def _label_smoothing(text):
    value = NON_NEGATIVE_FLOAT(text)
    if value >= 1.0:
        raise argparse.ArgumentTypeError(f"must be below 1, got {text}")
    return value


def _debug_option(parser, default):
    parser.add_argument("--debug", action="store_true", default=default,
                        help=f"show the traceback of an error (also: {DEBUG_VARIABLE}=1)")


def _add_train_parser(commands):
    train = commands.add_parser("train", help="train a network (default: a small GoogLeNet on Shapes10)")
    d = TRAIN_DEFAULTS
    train.add_argument("--model", help=f"network name, see `tinyinception models` (default {d['model']})")
    train.add_argument("--width", type=POSITIVE_FLOAT, help=f"channel multiplier (default {d['width']})")
    train.add_argument("--dataset", choices=DATASETS, help="default: shapes (built in, no download)")
    train.add_argument("--data-dir", help="where the dataset lives (cifar10, mnist, fashion_mnist, folder)")
    train.add_argument("--download", action="store_true", help="download the dataset into --data-dir first")
    train.add_argument("--epochs", type=POSITIVE_INT, help=f"epochs in all, counting those of a resumed run "
                       f"(default {d['epochs']})")
    train.add_argument("--batch-size", type=POSITIVE_INT, help=f"default {d['batch_size']}")
    train.add_argument("--lr", type=POSITIVE_FLOAT, help=f"peak learning rate (default {d['lr']})")
    train.add_argument("--optimizer", choices=OPTIMIZERS, help=f"default {d['optimizer']}")
    train.add_argument("--weight-decay", type=NON_NEGATIVE_FLOAT, help=f"default {d['weight_decay']}")
    train.add_argument("--label-smoothing", type=_label_smoothing, help="default 0 (Inception-v3 used 0.1)")
    train.add_argument("--warmup-epochs", type=NON_NEGATIVE_FLOAT,
                       help=f"linear warm-up length (default {d['warmup_epochs']})")
    train.add_argument("--train-size", type=POSITIVE_INT, help="use only this many training images")
    train.add_argument("--test-size", type=POSITIVE_INT, help="use only this many test images")
    train.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    train.add_argument("--out", help="output folder (default runs/<dataset>-<model>, or the checkpoint's folder "
                       "with --resume); refused if another run is writing there or has left its files there")
    train.add_argument("--overwrite", action="store_true", help="replace the run files already in --out")
    train.add_argument("--resume", help="checkpoint to continue from (e.g. runs/shapes-googlenet/last.ckpt): the "
                       "options not given are the checkpoint's; a larger --epochs re-plans the schedule to the new "
                       "total; another --lr or --optimizer applies from here on (a new optimizer starts fresh)")
    train.add_argument("--seed", type=int, help=f"default {d['seed']}")
    train.add_argument("--quick", action="store_true", help="a seconds-long smoke run: tiny data and model")
    train.add_argument("--no-progress", action="store_true", help="no progress bars")
    train.add_argument("--sync-batchnorm", action="store_true",
                       help="under mpirun: BatchNorm statistics over all ranks' images (docs/distributed.md)")
    _debug_option(train, argparse.SUPPRESS)
    train.set_defaults(handler=cmd_train)


# --- predict (published weights, a weight file, or a `train` checkpoint) --------------------------------------------
def cmd_predict(args):
    """Top classes of each image: ``--model NAME --weights TAG|PATH [--like TAG]`` or ``--checkpoint RUN.ckpt``."""
    from . import models, train
    from .data.image_folder import ImageFolder
    from .interop import WeightFileError, WeightsDownloadError
    from .interop.hub import build_with_weights
    try:
        missing = [path for path in args.images if not os.path.isfile(path)]
        if missing:
            raise FileNotFoundError(f"no image file {missing[0]}")
        if args.checkpoint:
            state = train.load_checkpoint(args.checkpoint)
            config = state.get("config") or {}
            if "model" not in config:
                raise ValueError(f"{args.checkpoint} does not say which model it holds (not written by `train`)")
            model = build_model(config["model"], config["model_kwargs"])
            model.load_state_dict(state["model"])
            size = tuple(config.get("image_size", (32, 32)))
            batch = np.stack([ImageFolder._load(path, 3, size) for path in args.images])
            classes, label = config.get("classes"), f"{config['model']} from {args.checkpoint}"
        else:
            if not (args.model and args.weights):
                raise ValueError("give --model NAME --weights TAG|PATH, or --checkpoint RUN.ckpt")
            tags = models.list_weights(args.model)
            local = args.weights not in tags and args.weights != "DEFAULT"
            if local and not os.path.isfile(args.weights):
                raise ValueError(f"--weights {args.weights!r} is neither a published tag of {args.model} "
                                 f"({', '.join(tags) or 'none'}) nor a file")
            record = models.get_weights(args.model, args.like if local else args.weights)
            construct = lambda **kwargs: models.create(args.model, **kwargs)             # noqa: E731
            model = build_with_weights(args.model, construct, record, {}, path=args.weights if local else None,
                                       progress=not args.no_progress)
            preprocess = record.transforms()
            batch = np.stack([preprocess(path) for path in args.images])
            classes = record.class_names()
            label = f"{args.model} {record.tag}" + (f" from {args.weights}" if local else "")
    except (FileNotFoundError, ValueError, KeyError, OSError, WeightFileError, WeightsDownloadError,
            train.CheckpointError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        raise UsageError(str(message)) from error     # one line, exit status 2 (`run_command`)
    probabilities = _class_probabilities(model, batch)
    for path, row in zip(args.images, probabilities):
        print(f"{path}  ({label})")
        for rank, index in enumerate(np.argsort(-row)[:args.top], start=1):
            name = classes[index] if classes is not None and index < len(classes) else f"class {index}"
            print(f"  {rank:2d}. {name:32s} {row[index]:.4f}")
    return probabilities


def _class_probabilities(model, batch):
    """Softmax of the model's logits for batch (N, 3, H, W), in eval mode: (N, classes) float64."""
    import tinyinception as ti
    model.eval()
    with ti.no_grad():
        logits = np.asarray(model(ti.tensor(batch.astype(np.float32))).data, dtype=np.float64)
    logits -= logits.max(axis=1, keepdims=True)
    exp = np.exp(logits)
    return exp / exp.sum(axis=1, keepdims=True)


def _add_predict_parser(commands):
    predict = commands.add_parser("predict", help="classify images with published weights, a weight file or a "
                                  "checkpoint")
    predict.add_argument("images", nargs="+", metavar="IMAGE", help="JPEG or PNG files")
    predict.add_argument("--model", help="network name (with --weights), see `tinyinception models`")
    predict.add_argument("--weights", help="a published tag (e.g. IMAGENET1K_V1; downloaded on first use) or the "
                         "path of a .pth/.pt/.safetensors file")
    predict.add_argument("--like", default="DEFAULT", help="with --weights PATH: the published tag whose layout, "
                         "options and preprocessing the file follows (default: the model's first tag)")
    predict.add_argument("--checkpoint", help="a checkpoint written by `tinyinception train` (class names inside)")
    predict.add_argument("--top", type=int, default=5, help="how many classes to print (default 5)")
    predict.add_argument("--no-progress", action="store_true", help="no download progress bar")
    _debug_option(predict, argparse.SUPPRESS)
    predict.set_defaults(handler=cmd_predict)


def _add_eval_parser(commands):
    evaluate = commands.add_parser("eval", help="test accuracy of a checkpoint written by `train`")
    evaluate.add_argument("--checkpoint", required=True, help="a last.ckpt or best.ckpt written by `train`")
    evaluate.add_argument("--data-dir", help="override the data folder stored in the checkpoint")
    evaluate.add_argument("--batch-size", type=POSITIVE_INT, default=256)
    evaluate.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    evaluate.add_argument("--no-progress", action="store_true")
    _debug_option(evaluate, argparse.SUPPRESS)
    evaluate.set_defaults(handler=cmd_eval)


def _add_summary_parser(commands):
    summary = commands.add_parser("summary", help="table of a network's blocks: output shapes, parameters, "
                                  "multiply-adds")
    summary.add_argument("model", help="network name, see `tinyinception models`")
    summary.add_argument("--input-size", type=POSITIVE_INT, nargs=3, default=(3, 32, 32), metavar=("C", "H", "W"),
                         help=f"shape of one input image, channels height width (default 3 32 32). From "
                         f"{IMAGENET_SIZED}x{IMAGENET_SIZED} up the network is shown as published (ImageNet stem, "
                         f"1000 classes), below as the 32x32 variant (small stem, 10 classes)")
    summary.add_argument("--width", type=POSITIVE_FLOAT, default=1.0,
                         help="channel multiplier: 1 is the paper's network, 0.25 a quarter of its channels "
                         "(default 1)")
    summary.add_argument("--num-classes", type=POSITIVE_INT,
                         help="outputs of the classifier (default 1000 with the ImageNet stem, else 10)")
    summary.add_argument("--depth", type=POSITIVE_INT, default=1,
                         help="show rows up to this nesting depth (default 1: one row per block; 2 adds the "
                         "branches, a large number every layer)")
    summary.add_argument("--small-input", action=argparse.BooleanOptionalAction, default=None,
                         help="force the 32x32 stem (--small-input) or the ImageNet stem (--no-small-input); "
                         "default: chosen from --input-size")
    _debug_option(summary, argparse.SUPPRESS)
    summary.set_defaults(handler=cmd_summary)


def build_parser():
    parser = _Parser(prog="tinyinception", description="Build, train and understand Inception networks from "
                     "scratch on NumPy.")
    _debug_option(parser, False)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _add_train_parser(commands)
    _add_eval_parser(commands)
    _add_summary_parser(commands)
    models = commands.add_parser("models", help="list the networks")
    models.set_defaults(handler=cmd_models)
    _add_predict_parser(commands)
    return parser


# --- errors to exit statuses ------------------------------------------------------------------------------------
def _user_errors():
    """Exceptions that mean the user asked for something impossible: one line, exit status 2."""
    from .data import DatasetFormatError, DownloadError
    from .train import CheckpointError, RunFolderBusy
    return (UsageError, FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError, CheckpointError,
            DatasetFormatError, DownloadError, RunFolderBusy)


def run_command(handler, args, debug=False):
    """Run one subcommand; returns the exit status: 0 done, 2 a usage mistake, 1 any other failure, 130 Ctrl-C.

    Every error is reported as one line on stderr ("tinyinception <command>: ..."); with ``debug`` the traceback
    is printed too.
    """
    prefix = f"tinyinception {getattr(args, 'command', '')}".rstrip()
    try:
        handler(args)
    except KeyboardInterrupt:
        print("\ninterrupted; the last checkpoint (if any) is intact", file=sys.stderr)
        return 130
    except BrokenPipeError:     # `tinyinception models | head`: the reader left, nothing more to say
        sys.stdout = open(os.devnull, "w")
        return 0
    except Exception as error:      # noqa: BLE001 -- the one place that turns errors into exit statuses
        from .train import TrainingDiverged
        if debug:
            traceback.print_exc()
        user_mistake = isinstance(error, _user_errors())
        message = " ".join(str(error).split()) or type(error).__name__
        if not user_mistake and not isinstance(error, TrainingDiverged):
            message = f"{type(error).__name__}: {message}"
            if not debug:
                message += f" (run with --debug or {DEBUG_VARIABLE}=1 for the traceback)"
        print(f"{prefix}: error: {message}", file=sys.stderr)
        return 2 if user_mistake else 1
    return 0


def main(argv=None):
    """The command line; returns the exit status (argparse's own mistakes exit 2 through SystemExit)."""
    args = build_parser().parse_args(argv)
    debug = bool(getattr(args, "debug", False)) or os.environ.get(DEBUG_VARIABLE, "") not in ("", "0")
    return run_command(args.handler, args, debug)
