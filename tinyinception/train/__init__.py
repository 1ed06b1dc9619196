"""Training: ``ti.train.fit`` (the loop, metrics, plots, checkpoints), ``evaluate``, ``predict`` and checkpoints.

    result = ti.train.fit(model, train_loader, test_loader, optimizer, epochs=5, out_dir="runs/shapes-tiny")
    result.history[-1]["val_accuracy"], result.last_checkpoint, result.curves_path

Files ``fit`` writes to ``out_dir``: metrics.jsonl (one JSON object per epoch), curves.png, last.ckpt and
best.ckpt (see ``tinyinception.train.checkpoint`` for the format), and ``.lock`` while it runs
(``tinyinception.train.run_folder``). Resuming rules: ``tinyinception.train.resume``.
"""
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .losses import AUX_WEIGHTS, aux_weight_for, cross_entropy_loss, split_outputs, training_loss
from .loop import (BEST_CHECKPOINT, CURVES_FILE, LAST_CHECKPOINT, METRICS_FILE, FitResult, TrainingDiverged,
                   evaluate, fit, predict)
from .metrics import read_metrics
from .run_folder import RunFolderBusy, RunLock

__all__ = ["fit", "evaluate", "predict", "FitResult", "TrainingDiverged", "save_checkpoint", "load_checkpoint",
           "CheckpointError", "aux_weight_for", "AUX_WEIGHTS", "cross_entropy_loss", "split_outputs",
           "training_loss", "read_metrics", "LAST_CHECKPOINT", "BEST_CHECKPOINT", "METRICS_FILE", "CURVES_FILE",
           "RunLock", "RunFolderBusy"]
