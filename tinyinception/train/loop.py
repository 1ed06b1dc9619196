"""The training loop: ``fit`` (epochs of train steps, evaluation, metrics, plots, checkpoints) and ``evaluate``.

One training step, in order:
    forward in train mode -> loss (+ auxiliary losses) -> stop if the loss is not finite -> zero_grad ->
    backward -> optional gradient clipping -> optimizer.step -> optional per-step scheduler step.
Every epoch: evaluation in eval mode under no_grad, one metrics.jsonl line, the curves PNG, ``last.ckpt`` and,
when validation accuracy improved, ``best.ckpt``. Resuming loads model, optimizer, scheduler, loader position and
random state, so a resumed run ends with the same weights, bit for bit, as one that never stopped; a resume with
another plan (more epochs, another lr or optimizer) follows the rule of ``tinyinception.train.resume`` and prints
one line saying what is kept and what changed. While ``fit`` writes into ``out_dir`` it holds the folder's lock
(``tinyinception.train.run_folder``): a second run into the same folder is refused.
"""
import math
import os
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from ..autograd import Tensor, no_grad
from .. import backend
from ..nn.utils import clip_grad_norm_
from ..random import get_rng_state, set_rng_state
from .. import viz
from .checkpoint import CheckpointError, load_checkpoint, require_fields, save_checkpoint
from .losses import aux_weight_for, cross_entropy_loss, split_outputs, training_loss
from .metrics import EpochMeter, MetricsLog, count_correct
from .resume import Resumed, plan_of, restore_optimizer_and_schedule
from .run_folder import RunLock

LAST_CHECKPOINT = "last.ckpt"
BEST_CHECKPOINT = "best.ckpt"
METRICS_FILE = "metrics.jsonl"
CURVES_FILE = "curves.png"


class TrainingDiverged(RuntimeError):
    """The loss became nan or inf. ``epoch`` (1-based), ``step`` (global, 1-based) and ``loss`` say where;
    ``checkpoint`` is the last good checkpoint (untouched), or None when none was written yet."""

    def __init__(self, epoch, step, loss, checkpoint=None):
        self.epoch, self.step, self.loss, self.checkpoint = epoch, step, loss, checkpoint
        where = f"the last good checkpoint is {checkpoint}" if checkpoint else "no checkpoint was written yet"
        super().__init__(f"training diverged: the loss is {loss} at epoch {epoch}, step {step}; stopped before "
                         f"updating the weights ({where}). Try a smaller learning rate or clip_grad_norm.")


@dataclass
class FitResult:
    """What ``fit`` returns: the per-epoch history and where it wrote things (paths are None without out_dir)."""
    history: list
    global_step: int
    best_val_accuracy: float = None
    out_dir: str = None
    last_checkpoint: str = None
    best_checkpoint: str = None
    metrics_path: str = None
    curves_path: str = None
    extras: dict = field(default_factory=dict)


def _as_input(images, device):
    """A Tensor (no grad) of ``images`` (a NumPy or CuPy array) on ``device``."""
    return Tensor(backend.to_device(images, device))


def _progress_bar(total, description, enabled, leave=True):
    from tqdm import tqdm
    return tqdm(total=total, desc=description, disable=not enabled, leave=leave, dynamic_ncols=True,
                file=sys.stderr, unit="batch")


def _model_forward(model, images, device):
    return model(_as_input(images, device))


def evaluate(model, data, loss_fn=None, device="cpu", progress=False):
    """Loss and accuracy of ``model`` on ``data`` in eval mode, without recording a graph.

    data: an iterable of (images (B, C, H, W), labels (B,)) batches, e.g. a DataLoader.
    loss_fn: ``loss_fn(logits, labels) -> scalar Tensor`` (default: cross entropy).
    Returns {"loss": mean loss, "accuracy": fraction correct, "count": examples}. The model's train/eval mode is
    restored afterwards.
    """
    loss_fn = loss_fn or cross_entropy_loss()
    was_training = model.training
    model.eval()
    meter = EpochMeter()
    bar = _progress_bar(len(data) if hasattr(data, "__len__") else None, "eval", progress, leave=False)
    try:
        with no_grad():
            for images, labels in data:
                logits, _ = split_outputs(_model_forward(model, images, device))
                loss = loss_fn(logits, labels)
                meter.update(loss.item(), count_correct(logits, labels), len(labels))
                bar.update(1)
    finally:
        bar.close()
        model.train(was_training)
    return {"loss": meter.loss, "accuracy": meter.accuracy, "count": meter.count}


def predict(model, images, batch_size=256, device="cpu"):
    """Predicted class indices (N,) int64 for images (N, C, H, W), in eval mode under no_grad."""
    was_training = model.training
    model.eval()
    predictions = []
    try:
        with no_grad():
            for start in range(0, len(images), batch_size):
                logits, _ = split_outputs(_model_forward(model, images[start:start + batch_size], device))
                predictions.append(backend.to_device(logits.data.argmax(axis=1), "cpu"))
    finally:
        model.train(was_training)
    return np.concatenate(predictions).astype(np.int64) if predictions else np.zeros(0, np.int64)


class _Run:
    """The state of one ``fit`` call: what it trains, where it writes, and how far it got."""

    def __init__(self, model, optimizer, scheduler, train_data, out_dir, config, plan):
        self.model, self.optimizer, self.scheduler, self.train_data = model, optimizer, scheduler, train_data
        self.config, self.plan = dict(config or {}), plan
        self.out_dir = None if out_dir is None else os.fspath(out_dir)
        self.history, self.start_epoch, self.global_step, self.best_val_accuracy = [], 0, 0, None
        if self.out_dir is not None:
            os.makedirs(self.out_dir, exist_ok=True)
            self.metrics = MetricsLog(self.path(METRICS_FILE))

    def path(self, name):
        return None if self.out_dir is None else os.path.join(self.out_dir, name)

    def resume_from(self, path, scheduler_interval):
        """Load a checkpoint into the model, optimizer, scheduler, loader and random generator; returns Resumed.

        What is kept and what this call changes: see ``tinyinception.train.resume``.
        """
        state = load_checkpoint(path)
        require_fields(state, path, "model", "optimizer", "epoch", "global_step", "rng_state")
        try:
            self.model.load_state_dict(state["model"])
            kept, changed = restore_optimizer_and_schedule(state, self.optimizer, self.scheduler, self.plan,
                                                           scheduler_interval)
            if state.get("train_loader") is not None and hasattr(self.train_data, "load_state_dict"):
                self.train_data.load_state_dict(state["train_loader"])
            set_rng_state(state["rng_state"])
        except CheckpointError:
            raise
        except (KeyError, ValueError, TypeError, IndexError, AttributeError) as error:
            raise CheckpointError(f"{path} cannot be resumed into this run: {error}") from error
        self.start_epoch, self.global_step = int(state["epoch"]), int(state["global_step"])
        self.history = list(state.get("history") or [])
        self.best_val_accuracy = state.get("best_val_accuracy")
        self.config = {**state.get("config", {}), **self.config}
        if self.out_dir is not None:
            self.metrics.rewrite(self.history)
        kept = ["weights", "data position", "random state", "history"] + kept
        return Resumed(os.fspath(path), self.start_epoch, self.global_step, kept, changed)

    def save(self, epochs_done, name):
        loader_state = self.train_data.state_dict() if hasattr(self.train_data, "state_dict") else None
        save_checkpoint(
            self.path(name), model=self.model.state_dict(), optimizer=self.optimizer.state_dict(),
            scheduler=None if self.scheduler is None else self.scheduler.state_dict(), epoch=epochs_done,
            global_step=self.global_step, train_loader=loader_state, rng_state=get_rng_state(),
            history=self.history, best_val_accuracy=self.best_val_accuracy, config=self.config, plan=self.plan)

    def last_good_checkpoint(self):
        path = self.path(LAST_CHECKPOINT)
        return path if path is not None and os.path.exists(path) else None


_FIRST_STEP_DONE = []      # non-empty once this process ran a training step (its kernels are compiled or loaded)


def _kernels_cached():
    """True when Numba's on-disk cache already holds kernels of this package (a run on this machine compiled them)."""
    import glob
    try:
        import numba
    except ImportError:
        return True
    kernels = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "kernels")
    places = [os.path.join(kernels, "__pycache__")]
    if getattr(numba.config, "CACHE_DIR", ""):
        places.append(numba.config.CACHE_DIR)
    return any(glob.glob(os.path.join(place, "**", "*.nbi"), recursive=True) for place in places)


def _first_step_note(device):
    """The progress bar's text for the process's first step: the kernels compile (first run only) or load."""
    if _FIRST_STEP_DONE or device != "cpu" or backend.get_kernels() != "numba":
        return None
    return "loading the compiled kernels" if _kernels_cached() else \
        "first batch: compiling the kernels (first run on this machine only, about a minute)"


def _train_epoch(run, epoch, epochs, step_fn, progress, on_step, device="cpu"):
    """One pass over the training data; returns its EpochMeter. Raises TrainingDiverged on a non-finite loss.

    The process's first step compiles (or loads) the kernels: the bar says so, and its time and images are left
    out of the epoch's images per second.
    """
    run.model.train()
    meter = EpochMeter()
    total = len(run.train_data) if hasattr(run.train_data, "__len__") else None
    bar = _progress_bar(total, f"epoch {epoch + 1}/{epochs}", progress)
    try:
        for images, labels in run.train_data:
            note = _first_step_note(device)
            if note is not None:
                bar.set_postfix_str(note)
                started = time.perf_counter()
            main_loss, objective, correct = step_fn(images, labels)
            if note is not None:
                _FIRST_STEP_DONE.append(True)
                meter.exclude(time.perf_counter() - started, len(labels))
            if not math.isfinite(objective):
                raise TrainingDiverged(epoch + 1, run.global_step + 1, objective, run.last_good_checkpoint())
            run.global_step += 1
            meter.update(main_loss, correct, len(labels))
            bar.update(1)
            speed = meter.images_per_second         # nan until a batch after the compiling one is done
            bar.set_postfix(loss=f"{meter.loss:.4f}", acc=f"{meter.accuracy:.3f}",
                            img_s="..." if math.isnan(speed) else f"{speed:.0f}", refresh=False)
            if on_step is not None:
                on_step(run.global_step, objective)
    finally:
        bar.close()
    return meter


def _make_step(model, optimizer, loss_fn, aux_weight, clip_grad_norm, scheduler, scheduler_interval, device,
               parallel=None):
    """The function that runs one training step on a batch: (main loss, total objective, correct count).

    When the objective is not finite it returns before touching gradients or weights. ``parallel``: None, or a
    ``distributed.ParallelTraining`` (the objective is then the mean over the ranks, gradients are averaged).
    """
    parameters = [p for group in optimizer.param_groups for p in group["params"]]
    forward_model = model if parallel is None else parallel.replica

    def step(images, labels):
        outputs = _model_forward(forward_model, images, device)
        objective, logits = training_loss(outputs, labels, loss_fn, aux_weight)
        objective_value = float(objective.item())
        if parallel is not None:
            objective_value = parallel.mean_over_ranks(objective_value)
        if not math.isfinite(objective_value):
            return objective_value, objective_value, 0
        main_loss = objective_value
        if isinstance(outputs, (tuple, list)) and len(split_outputs(outputs)[1]):
            main_loss = float(loss_fn(logits.detach(), labels).item())
        optimizer.zero_grad()
        objective.backward()
        if parallel is not None:
            parallel.after_backward()
        if clip_grad_norm is not None:
            clip_grad_norm_(parameters, clip_grad_norm)
        optimizer.step()
        if scheduler is not None and scheduler_interval == "step":
            scheduler.step()
        return main_loss, objective_value, count_correct(logits, labels)
    return step


def _check_fit_arguments(epochs, scheduler_interval, resume):
    if int(epochs) < 0:
        raise ValueError(f"fit: epochs must be >= 0, got {epochs}")
    if scheduler_interval not in ("epoch", "step"):
        raise ValueError(f"fit: scheduler_interval must be 'epoch' or 'step', got {scheduler_interval!r}")
    if resume is not None and not os.path.isfile(os.fspath(resume)):
        raise FileNotFoundError(f"fit: resume checkpoint {resume} does not exist")


def _epoch_record(epoch, run, meter, val_metrics, lr):
    record = {"epoch": epoch + 1, "step": run.global_step, "lr": lr,
              "train_loss": meter.loss, "train_accuracy": meter.accuracy,
              "epoch_seconds": meter.seconds, "images_per_second": meter.images_per_second}
    if val_metrics is not None:
        record["val_loss"], record["val_accuracy"] = val_metrics["loss"], val_metrics["accuracy"]
    return record


def _print_epoch(record, epochs):
    from tqdm import tqdm
    line = (f"epoch {record['epoch']}/{epochs}: train loss {record['train_loss']:.4f} "
            f"acc {record['train_accuracy']:.4f}")
    if "val_accuracy" in record:
        line += f" | val loss {record['val_loss']:.4f} acc {record['val_accuracy']:.4f}"
    line += f" | {record['images_per_second']:.0f} img/s, {record['epoch_seconds']:.1f} s"
    tqdm.write(line, file=sys.stderr)


def fit(model, train_data, val_data, optimizer, epochs, scheduler=None, loss_fn=None, aux_weight=None,
        label_smoothing=0.0, out_dir=None, resume=None, device="cpu", progress=True, clip_grad_norm=None,
        scheduler_interval="epoch", config=None, on_step=None, world=None):
    """Train ``model`` for ``epochs`` epochs (in total, counting those of a resumed checkpoint).

    model: a ``ti.nn.Module`` returning logits (N, classes), or (logits, aux_logits...) in train mode.
    train_data, val_data: iterables of (images (B, C, H, W) float32, labels (B,) int64), e.g. DataLoaders;
        val_data may be None. A train_data with state_dict/load_state_dict (DataLoader) is saved and resumed.
    optimizer, scheduler: from ``ti.optim``; the scheduler steps once per epoch, or once per optimizer step
        with ``scheduler_interval="step"``.
    loss_fn: ``loss_fn(logits, labels) -> scalar Tensor``; default cross entropy with ``label_smoothing``.
    aux_weight: weight of each auxiliary classifier's loss; None picks the model's (GoogLeNet 0.3,
        Inception-v3 0.4, see ``tinyinception.train.losses``). 0 trains the main head alone.
    out_dir: where metrics.jsonl, curves.png, last.ckpt and best.ckpt go (None: nothing is written). Its lock is
        held while fit runs; RunFolderBusy if another live process holds it.
    resume: a checkpoint path to continue from; training goes on from the epoch after the saved one. What is
        kept and what this call's arguments change (more epochs re-plan the schedule; another optimizer class
        starts fresh): ``tinyinception.train.resume``; one line printed says which. ``result.extras["resumed"]``.
    device: "cpu" or "cuda"; the model is moved there and every batch is copied there.
    clip_grad_norm: if set, gradients are rescaled to this joint 2-norm before each step.
    config: a dict stored in the checkpoints (e.g. how to rebuild the model).
    on_step: ``on_step(global_step, loss_value)`` after every optimizer step.
    world: a ``ti.distributed.World`` of several MPI ranks for data-parallel training (each rank passes its shard
        of train_data and val_data; gradients and metrics are averaged over the ranks; only rank 0 writes files and
        prints). None, or a world of one process, trains alone. See tinyinception/distributed/training.py.

    Returns a FitResult. Raises TrainingDiverged (the weights and checkpoints untouched by the bad step) when the
    loss becomes nan or inf. Per-epoch records hold train_loss (main classifier only, comparable with val_loss),
    train_accuracy, val_loss, val_accuracy, lr (used during the epoch), images_per_second, epoch_seconds.
    """
    _check_fit_arguments(epochs, scheduler_interval, resume)
    loss_fn = loss_fn or cross_entropy_loss(label_smoothing)
    aux_weight = aux_weight_for(model) if aux_weight is None else float(aux_weight)
    model.to(device)
    if world is not None and world.size > 1 and world.rank != 0:
        out_dir, progress = None, False      # rank 0 alone writes files and shows progress
    lock = None if out_dir is None else RunLock(out_dir).acquire()
    try:
        return _fit(model, train_data, val_data, optimizer, epochs, scheduler, loss_fn, aux_weight, out_dir, resume,
                    device, progress, clip_grad_norm, scheduler_interval, config, on_step, world)
    finally:
        if lock is not None:
            lock.release()


def _fit(model, train_data, val_data, optimizer, epochs, scheduler, loss_fn, aux_weight, out_dir, resume, device,
         progress, clip_grad_norm, scheduler_interval, config, on_step, world):
    run = _Run(model, optimizer, scheduler, train_data, out_dir, config, plan_of(optimizer, epochs, train_data))
    resumed = parallel = None
    if resume is not None:
        resumed = run.resume_from(resume, scheduler_interval)
        print(resumed.summary, flush=True)
    elif run.out_dir is not None:
        run.metrics.rewrite([])          # a fresh run starts a fresh metrics.jsonl
    if world is not None and world.size > 1:
        from ..distributed.training import ParallelTraining
        parallel = ParallelTraining(world, model)      # after resume: rank 0's weights are broadcast
    step_fn = _make_step(model, optimizer, loss_fn, aux_weight, clip_grad_norm, scheduler, scheduler_interval,
                         device, parallel)
    for epoch in range(run.start_epoch, int(epochs)):
        lr = optimizer.param_groups[0]["lr"]
        try:
            meter = _train_epoch(run, epoch, epochs, step_fn, progress, on_step, device)
        except TrainingDiverged as diverged:
            if run.out_dir is not None:
                run.metrics.append({"event": "diverged", "epoch": diverged.epoch, "step": diverged.step,
                                    "loss": diverged.loss})
            raise
        if scheduler is not None and scheduler_interval == "epoch":
            scheduler.step()
        val_metrics = None if val_data is None else evaluate(model, val_data, loss_fn, device, progress)
        if parallel is not None:
            parallel.sum_meter(meter)
            val_metrics = None if val_metrics is None else parallel.sum_evaluation(val_metrics)
        record = _epoch_record(epoch, run, meter, val_metrics, lr)
        run.history.append(record)
        improved = val_metrics is not None and (run.best_val_accuracy is None
                                                or val_metrics["accuracy"] > run.best_val_accuracy)
        if improved:
            run.best_val_accuracy = val_metrics["accuracy"]
        if progress:
            _print_epoch(record, epochs)
        if run.out_dir is not None:
            run.save(epoch + 1, LAST_CHECKPOINT)
            if improved:
                run.save(epoch + 1, BEST_CHECKPOINT)
            run.metrics.append(record)
            viz.plot_curves(run.history, run.path(CURVES_FILE))
    result = _result(run)
    result.extras["resumed"] = resumed
    return result


def _result(run):
    def existing(name):
        path = run.path(name)
        return path if path is not None and os.path.exists(path) else None
    return FitResult(history=run.history, global_step=run.global_step, best_val_accuracy=run.best_val_accuracy,
                     out_dir=run.out_dir, last_checkpoint=existing(LAST_CHECKPOINT),
                     best_checkpoint=existing(BEST_CHECKPOINT), metrics_path=existing(METRICS_FILE),
                     curves_path=existing(CURVES_FILE))
