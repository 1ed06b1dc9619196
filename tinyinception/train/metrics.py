"""Running averages of loss and accuracy over an epoch, and the ``metrics.jsonl`` log (one JSON object a line)."""
import json
import math
import os
import time

import numpy as np

from .. import backend


def count_correct(logits, labels):
    """Number of rows of ``logits`` (N, C) whose argmax equals ``labels`` (N,), as a Python int."""
    predictions = logits.data.argmax(axis=1)
    xp = backend.get_array_module(predictions)
    return int((predictions == xp.asarray(labels)).sum())


class EpochMeter:
    """Sums of loss, correct predictions, examples and seconds over one pass; their averages.

    ``update(loss_value, correct, count)`` once per batch, with the batch's mean loss as a float.
    ``exclude(seconds, count)`` leaves a batch's time and images out of ``images_per_second`` (a batch that
    compiled the kernels measures the compiler, not the training).
    """

    def __init__(self):
        self.loss_sum, self.correct, self.count = 0.0, 0, 0
        self.excluded_seconds, self.excluded_count = 0.0, 0
        self.start = time.perf_counter()

    def exclude(self, seconds, count):
        self.excluded_seconds += float(seconds)
        self.excluded_count += int(count)

    def update(self, loss_value, correct, count):
        self.loss_sum += float(loss_value) * count
        self.correct += int(correct)
        self.count += int(count)

    @property
    def loss(self):
        return self.loss_sum / self.count if self.count else math.nan

    @property
    def accuracy(self):
        return self.correct / self.count if self.count else math.nan

    @property
    def seconds(self):
        return time.perf_counter() - self.start

    @property
    def images_per_second(self):
        seconds = self.seconds - self.excluded_seconds
        count = self.count - self.excluded_count
        return count / seconds if seconds > 0 and count > 0 else math.nan


def _json_number(value):
    """Floats for JSON: nan/inf become None (JSON has no NaN), NumPy scalars become Python numbers."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class MetricsLog:
    """``metrics.jsonl`` in ``out_dir``: one line per record (an epoch's metrics, or an event)."""

    def __init__(self, path):
        self.path = os.fspath(path)

    def rewrite(self, records):
        """Replace the file with ``records`` (a resumed run starts from the checkpoint's history)."""
        with open(self.path, "w", encoding="utf-8") as handle:
            for record in records:
                handle.write(json.dumps({k: _json_number(v) for k, v in record.items()}) + "\n")

    def append(self, record):
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({k: _json_number(v) for k, v in record.items()}) + "\n")


def read_metrics(path):
    """The records of a ``metrics.jsonl`` file, as a list of dicts."""
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]
