"""Learning-rate schedules: each sets ``group['lr']`` of an optimizer from a count of ``step()`` calls.

Same classes, arguments and values as ``torch.optim.lr_scheduler``. A scheduler counts in ``last_epoch``
(the number of ``step()`` calls so far; creating it counts as step 0 and already sets the first lr). Each
group's starting lr is remembered in ``group['initial_lr']`` and is the ``base_lr`` every schedule scales.
Every schedule here is written in closed form, ``lr = f(base_lr, last_epoch)``, so a scheduler's whole state
is ``last_epoch`` and its arguments, and ``state_dict()`` / ``load_state_dict()`` resume it exactly.

Call ``scheduler.step()`` after ``optimizer.step()``: once per epoch for epoch-based schedules (the papers'),
or once per batch if ``T_max`` / ``step_size`` count batches::

    opt = ti.optim.RMSprop(model.parameters(), lr=0.045, alpha=0.9, eps=1.0)
    sched = ti.optim.lr_scheduler.inception_schedule(opt)       # x0.94 every 2 epochs
    for epoch in range(epochs):
        for images, labels in loader:
            opt.zero_grad(); loss_fn(model(images), labels).backward(); opt.step()
        sched.step()
"""
import math
from bisect import bisect_right

from tinyinception.optim.optimizer import Optimizer


class LRScheduler:
    """Base class: subclasses define ``get_lr()``, the lr of every group at ``self.last_epoch``."""

    def __init__(self, optimizer, last_epoch=-1):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(self).__name__}: expected an Optimizer, got {type(optimizer).__name__}")
        self.optimizer = optimizer
        for number, group in enumerate(optimizer.param_groups):
            if last_epoch == -1:
                group.setdefault("initial_lr", group["lr"])
            elif "initial_lr" not in group:
                raise KeyError(
                    f"{type(self).__name__}: param_groups[{number}] has no 'initial_lr'; resuming with "
                    f"last_epoch={last_epoch} needs the optimizer's state loaded first"
                )
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self._initial_step()

    def _initial_step(self):
        self.step()

    def get_lr(self):
        """The lr of each parameter group at ``self.last_epoch``."""
        raise NotImplementedError(f"{type(self).__name__} must define get_lr()")

    def step(self):
        """Advance one epoch (or batch) and write the new lr into every parameter group."""
        self.last_epoch += 1
        self._set_lrs(self.get_lr())

    def _jump_to(self, epoch):
        """Set ``last_epoch = epoch`` and its lr (SequentialLR starts each later schedule at 0 this way)."""
        self.last_epoch = epoch
        self._set_lrs(self.get_lr())

    def _set_lrs(self, lrs):
        for group, lr in zip(self.optimizer.param_groups, lrs):
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def get_last_lr(self):
        """The lrs the last ``step()`` set, one per parameter group."""
        return list(self._last_lr)

    def state_dict(self):
        """Everything but the optimizer: ``last_epoch``, ``base_lrs`` and the schedule's arguments."""
        return {key: (list(value) if isinstance(value, list) else value)
                for key, value in self.__dict__.items() if key != "optimizer"}

    def load_state_dict(self, state_dict):
        """Restore a ``state_dict()``. The optimizer's lrs come back with the optimizer's own state_dict."""
        self.__dict__.update({key: (list(value) if isinstance(value, list) else value)
                              for key, value in state_dict.items()})

    def __repr__(self):
        arguments = ", ".join(f"{key}={value}" for key, value in self.state_dict().items()
                              if not key.startswith("_") and key not in ("base_lrs",))
        return f"{type(self).__name__}({arguments})"


def _check_positive_int(owner, name, value):
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{owner}: {name} must be a positive int, got {value!r}")


class StepLR(LRScheduler):
    """``lr = base_lr * gamma ** (last_epoch // step_size)``: multiply by gamma every step_size epochs."""

    def __init__(self, optimizer, step_size, gamma=0.1, last_epoch=-1):
        _check_positive_int("StepLR", "step_size", step_size)
        self.step_size = step_size
        self.gamma = float(gamma)
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        return [base_lr * self.gamma ** (self.last_epoch // self.step_size) for base_lr in self.base_lrs]


class ExponentialLR(LRScheduler):
    """``lr = base_lr * gamma ** last_epoch``: multiply by gamma every epoch."""

    def __init__(self, optimizer, gamma, last_epoch=-1):
        self.gamma = float(gamma)
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        return [base_lr * self.gamma ** self.last_epoch for base_lr in self.base_lrs]


class CosineAnnealingLR(LRScheduler):
    """``lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * last_epoch / T_max)) / 2``.

    Half a cosine from base_lr at epoch 0 down to eta_min at epoch T_max (SGDR without restarts); past
    T_max it rises again, as PyTorch's does.
    """

    def __init__(self, optimizer, T_max, eta_min=0.0, last_epoch=-1):
        _check_positive_int("CosineAnnealingLR", "T_max", T_max)
        self.T_max = T_max
        self.eta_min = float(eta_min)
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        cosine = (1.0 + math.cos(math.pi * self.last_epoch / self.T_max)) / 2.0
        return [self.eta_min + (base_lr - self.eta_min) * cosine for base_lr in self.base_lrs]


class LinearLR(LRScheduler):
    """Linear warm-up: ``lr = base_lr * factor``, factor going from start_factor to end_factor in total_iters steps.

    ``factor = start_factor + (end_factor - start_factor) * min(last_epoch, total_iters) / total_iters``.
    """

    def __init__(self, optimizer, start_factor=1.0 / 3, end_factor=1.0, total_iters=5, last_epoch=-1):
        if not 0.0 < start_factor <= 1.0:
            raise ValueError(f"LinearLR: start_factor must be in (0, 1], got {start_factor}")
        if not 0.0 <= end_factor <= 1.0:
            raise ValueError(f"LinearLR: end_factor must be in [0, 1], got {end_factor}")
        _check_positive_int("LinearLR", "total_iters", total_iters)
        self.start_factor = float(start_factor)
        self.end_factor = float(end_factor)
        self.total_iters = total_iters
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        progress = min(self.last_epoch, self.total_iters) / self.total_iters
        factor = self.start_factor + (self.end_factor - self.start_factor) * progress
        return [base_lr * factor for base_lr in self.base_lrs]


class SequentialLR(LRScheduler):
    """Run ``schedulers[0]`` until ``milestones[0]``, then ``schedulers[1]`` from its own epoch 0, and so on.

    Warm-up then cosine decay over 100 epochs::

        warmup = LinearLR(opt, start_factor=0.1, total_iters=5)
        decay = CosineAnnealingLR(opt, T_max=95)
        sched = SequentialLR(opt, [warmup, decay], milestones=[5])
    """

    def __init__(self, optimizer, schedulers, milestones, last_epoch=-1):
        schedulers, milestones = list(schedulers), list(milestones)
        if not schedulers:
            raise ValueError("SequentialLR: expected at least one scheduler")
        if len(milestones) != len(schedulers) - 1:
            raise ValueError(
                f"SequentialLR: {len(schedulers)} schedulers need {len(schedulers) - 1} milestones, "
                f"got {len(milestones)}"
            )
        for number, scheduler in enumerate(schedulers):
            if not isinstance(scheduler, LRScheduler) or scheduler.optimizer is not optimizer:
                raise ValueError(f"SequentialLR: schedulers[{number}] does not drive the given optimizer")
        self.optimizer = optimizer
        self._schedulers = schedulers
        self._milestones = milestones
        self.last_epoch = last_epoch + 1
        # Each scheduler already took its initial step when created: undo them, start over with the first.
        for group in optimizer.param_groups:
            group["lr"] = group["initial_lr"]
        for scheduler in schedulers:
            scheduler.last_epoch -= 1
        schedulers[0]._initial_step()
        self.base_lrs = list(schedulers[0].base_lrs)
        self._last_lr = schedulers[0].get_last_lr()

    def step(self):
        self.last_epoch += 1
        index = bisect_right(self._milestones, self.last_epoch)
        scheduler = self._schedulers[index]
        if index > 0 and self._milestones[index - 1] == self.last_epoch:
            scheduler._jump_to(0)
        else:
            scheduler.step()
        self._last_lr = scheduler.get_last_lr()

    def get_lr(self):
        return self.get_last_lr()

    def state_dict(self):
        state = {key: value for key, value in self.__dict__.items() if key not in ("optimizer", "_schedulers")}
        state["_schedulers"] = [scheduler.state_dict() for scheduler in self._schedulers]
        return state

    def load_state_dict(self, state_dict):
        state = dict(state_dict)
        scheduler_states = state.pop("_schedulers")
        self.__dict__.update(state)
        for scheduler, saved in zip(self._schedulers, scheduler_states):
            scheduler.load_state_dict(saved)


def inception_schedule(optimizer, epochs_per_decay=2, gamma=0.94, last_epoch=-1):
    """The Inception-v3 / v4 papers' schedule: multiply the lr by 0.94 every 2 epochs.

    "Rethinking the Inception Architecture for Computer Vision" (Szegedy et al., 2015, section 8) and
    "Inception-v4, Inception-ResNet and the Impact of Residual Connections on Learning" (Szegedy et al., 2016,
    section 4) both start at a learning rate of 0.045 and decay it every two epochs with an exponential rate
    of 0.94, training with RMSProp (decay 0.9, epsilon 1.0).

    Returns ``StepLR(optimizer, step_size=2, gamma=0.94)``; call its ``step()`` once per epoch.
    """
    return StepLR(optimizer, step_size=epochs_per_decay, gamma=gamma, last_epoch=last_epoch)
