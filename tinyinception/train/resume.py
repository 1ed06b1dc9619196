"""Resuming a run: what a checkpoint brings back, what the new call changes, and the one line that says so.

The rule (the same for ``ti.train.fit(resume=...)`` and ``tinyinception train --resume``):

* Always kept: the weights, the epoch and step reached, the training data's position, the random state, the
  history and the best accuracy so far.
* The optimizer's running state (momentum, Adam's moments) is kept when the optimizer is of the same class; a
  different class starts fresh (its state cannot be carried over), and the line says so.
* Hyperparameters come from the call: the optimizer's settings as built (lr, weight decay...) and the schedule as
  planned for the ``epochs`` given. When the plan is the saved one (same epochs, steps per epoch, optimizer and
  settings) the scheduler's saved state is restored as it was, so the run continues bit for bit as if it had never
  stopped. When it differs -- more epochs, another peak lr -- the schedule is re-planned: the new scheduler is
  advanced to the step reached, so the learning rate follows the schedule planned for the new total from there on
  (continuing a 2-epoch cosine to 4 epochs picks the 4-epoch cosine up at its halfway point, rather than
  restarting the finished 2-epoch one).
"""
import math

_NOT_SETTINGS = ("params", "initial_lr")


def _settings(group):
    """A parameter group's hyperparameters, with ``lr`` the peak (the scheduler's base) rather than the current."""
    settings = {key: value for key, value in group.items() if key not in _NOT_SETTINGS}
    settings["lr"] = group.get("initial_lr", group["lr"])
    return {key: (list(value) if isinstance(value, tuple) else value) for key, value in settings.items()}


def plan_of(optimizer, epochs, train_data):
    """What a run is planned as; stored in every checkpoint as ``plan`` and compared when resuming."""
    steps = len(train_data) if hasattr(train_data, "__len__") else None
    return {"epochs": int(epochs), "steps_per_epoch": steps, "optimizer": type(optimizer).__name__,
            "settings": [_settings(group) for group in optimizer.param_groups]}


def _same(a, b):
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def _setting_changes(saved, planned, common_only=False):
    """'lr 0.001 -> 0.002'-style texts for every setting of the first group that differs (with ``common_only``,
    of the settings both groups have: another optimizer's own settings are new, not changed)."""
    if not saved or not planned:
        return []
    old, new = saved[0], planned[0]
    keys = set(old) & set(new) if common_only else set(old) | set(new)
    return [f"{key} {old.get(key)} -> {new.get(key)}" for key in sorted(keys)
            if not _same(old.get(key), new.get(key))]


class Resumed:
    """How a resume went: ``kept`` and ``changed`` (lists of short texts) and the one-line ``summary``."""

    def __init__(self, path, epoch, step, kept, changed):
        self.path, self.epoch, self.step, self.kept, self.changed = path, epoch, step, kept, changed

    @property
    def summary(self):
        changed = "; changed: " + ", ".join(self.changed) if self.changed else "; nothing changed"
        return (f"resuming {self.path} after epoch {self.epoch} (step {self.step}): kept "
                f"{', '.join(self.kept)}{changed}")


def restore_optimizer_and_schedule(state, optimizer, scheduler, planned, scheduler_interval):
    """Load the optimizer's and scheduler's parts of ``state`` following the rule above.

    Returns (kept, changed): short texts for the resume line.
    """
    saved = state.get("plan")
    kept, changed = [], []
    same_class = saved is None or saved.get("optimizer") == planned["optimizer"]
    if same_class:
        own_groups = [{k: v for k, v in group.items() if k != "params"} for group in optimizer.param_groups]
        optimizer.load_state_dict(state["optimizer"])
        kept.append(f"{planned['optimizer']} state")
    else:
        changed.append(f"optimizer {saved.get('optimizer')} -> {planned['optimizer']} (started fresh: its state "
                       f"cannot carry over)")
        changed.extend(_setting_changes(saved.get("settings"), planned["settings"], common_only=True))
    if saved is None or (same_class and saved == planned):
        if scheduler is not None and state.get("scheduler") is not None:
            scheduler.load_state_dict(state["scheduler"])
        return kept + ["schedule"], changed
    if same_class:      # the settings as built for this call win over the saved ones
        for group, own in zip(optimizer.param_groups, own_groups):
            group.update(own)
        changed.extend(_setting_changes(saved.get("settings"), planned["settings"]))
    if saved.get("epochs") != planned["epochs"]:
        changed.append(f"epochs {saved.get('epochs')} -> {planned['epochs']}")
    if saved.get("steps_per_epoch") != planned["steps_per_epoch"]:
        changed.append(f"steps per epoch {saved.get('steps_per_epoch')} -> {planned['steps_per_epoch']}")
    if scheduler is not None:
        position = int(state["global_step"] if scheduler_interval == "step" else state["epoch"])
        for _ in range(position):
            scheduler.step()
        changed.append(f"schedule re-planned for {planned['epochs']} epochs, continuing at "
                       f"{'step' if scheduler_interval == 'step' else 'epoch'} {position} (lr "
                       f"{optimizer.param_groups[0]['lr']:.3g})")
    return kept, changed
