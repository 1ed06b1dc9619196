"""Learning-rate schedules: the lr sequence equals torch's, SequentialLR chains, state_dict resumes.

Tolerance: ours are closed forms, some of torch's are recursive (each lr derived from the previous one), so
the two differ by float64 rounding only: rtol=1e-12, atol=1e-15.
"""
import pickle

import numpy as np
import pytest

import tinyinception as ti
from tinyinception import optim
from tinyinception.optim import lr_scheduler

BASE_LRS = (0.1, 0.01)
STEPS = 25

# Each case builds the same schedule on ours (mod = tinyinception's lr_scheduler) or torch's module.
CASES = {
    "StepLR": lambda mod, opt: mod.StepLR(opt, step_size=3, gamma=0.5),
    "ExponentialLR": lambda mod, opt: mod.ExponentialLR(opt, gamma=0.9),
    "CosineAnnealingLR": lambda mod, opt: mod.CosineAnnealingLR(opt, T_max=20),
    "CosineAnnealingLR-past-T_max": lambda mod, opt: mod.CosineAnnealingLR(opt, T_max=10, eta_min=0.001),
    "LinearLR-default": lambda mod, opt: mod.LinearLR(opt),
    "LinearLR": lambda mod, opt: mod.LinearLR(opt, start_factor=0.1, end_factor=0.5, total_iters=8),
    "SequentialLR-warmup-cosine": lambda mod, opt: mod.SequentialLR(
        opt, [mod.LinearLR(opt, start_factor=0.1, total_iters=5), mod.CosineAnnealingLR(opt, T_max=15)],
        milestones=[5]),
    "SequentialLR-three": lambda mod, opt: mod.SequentialLR(
        opt, [mod.LinearLR(opt, start_factor=0.25, total_iters=3), mod.StepLR(opt, step_size=2, gamma=0.5),
              mod.ExponentialLR(opt, gamma=0.8)], milestones=[3, 10]),
}


def our_optimizer():
    params = [ti.nn.Parameter(np.zeros(2, np.float32)) for _ in BASE_LRS]
    return optim.SGD([{"params": [p], "lr": lr} for p, lr in zip(params, BASE_LRS)], lr=1.0)


def lr_sequence(scheduler, opt, steps=STEPS):
    lrs = [scheduler.get_last_lr()]
    for _ in range(steps):
        opt.step()
        scheduler.step()
        lrs.append(scheduler.get_last_lr())
        assert [group["lr"] for group in opt.param_groups] == lrs[-1]
    return np.array(lrs)


@pytest.mark.torch
@pytest.mark.parametrize("name", list(CASES))
def test_lr_sequence_matches_torch(name):
    torch = pytest.importorskip("torch")
    opt = our_optimizer()
    ours = lr_sequence(CASES[name](lr_scheduler, opt), opt)
    params = [torch.zeros(2, requires_grad=True) for _ in BASE_LRS]
    torch_opt = torch.optim.SGD([{"params": [p], "lr": lr} for p, lr in zip(params, BASE_LRS)], lr=1.0)
    theirs = lr_sequence(CASES[name](torch.optim.lr_scheduler, torch_opt), torch_opt)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-15)


def test_warmup_then_cosine_shape():
    opt = our_optimizer()
    warmup = lr_scheduler.LinearLR(opt, start_factor=0.1, total_iters=5)
    sched = lr_scheduler.SequentialLR(opt, [warmup, lr_scheduler.CosineAnnealingLR(opt, T_max=15)], [5])
    lrs = lr_sequence(sched, opt, steps=20)[:, 0]
    np.testing.assert_allclose(lrs[:6], 0.1 * np.array([0.1, 0.28, 0.46, 0.64, 0.82, 1.0]), rtol=1e-12)
    assert np.all(np.diff(lrs[:6]) > 0) and np.all(np.diff(lrs[5:]) < 0)
    assert lrs[-1] == pytest.approx(0.0, abs=1e-15)


def test_inception_schedule_is_x094_every_two_epochs():
    opt = our_optimizer()
    opt.param_groups[0]["lr"] = 0.045
    sched = lr_scheduler.inception_schedule(opt)
    assert isinstance(sched, lr_scheduler.StepLR) and (sched.step_size, sched.gamma) == (2, 0.94)
    lrs = lr_sequence(sched, opt, steps=9)[:, 0]
    np.testing.assert_allclose(lrs, [0.045 * 0.94 ** (epoch // 2) for epoch in range(10)], rtol=1e-14)


@pytest.mark.parametrize("name", list(CASES))
def test_state_dict_round_trip_resumes_identically(name):
    """Run 10 steps, save optimizer and scheduler, restore both into fresh objects, run 10 more == run 20."""
    opt = our_optimizer()
    straight = lr_sequence(CASES[name](lr_scheduler, opt), opt, steps=20)

    opt = our_optimizer()
    sched = CASES[name](lr_scheduler, opt)
    lr_sequence(sched, opt, steps=10)
    checkpoint = pickle.loads(pickle.dumps({"optimizer": opt.state_dict(), "scheduler": sched.state_dict()}))

    fresh_opt = our_optimizer()
    fresh_sched = CASES[name](lr_scheduler, fresh_opt)
    fresh_opt.load_state_dict(checkpoint["optimizer"])
    fresh_sched.load_state_dict(checkpoint["scheduler"])
    assert fresh_sched.last_epoch == 10
    resumed = lr_sequence(fresh_sched, fresh_opt, steps=10)
    np.testing.assert_array_equal(resumed, straight[10:])


def test_resuming_with_last_epoch_needs_initial_lr():
    with pytest.raises(KeyError, match="initial_lr"):
        lr_scheduler.StepLR(our_optimizer(), step_size=2, last_epoch=4)


@pytest.mark.parametrize("make, pattern", [
    (lambda opt: lr_scheduler.StepLR(opt, step_size=0), "step_size must be a positive int"),
    (lambda opt: lr_scheduler.CosineAnnealingLR(opt, T_max=2.5), "T_max must be a positive int"),
    (lambda opt: lr_scheduler.LinearLR(opt, start_factor=0.0), "start_factor"),
    (lambda opt: lr_scheduler.SequentialLR(opt, [lr_scheduler.StepLR(opt, 2)], milestones=[3]), "milestones"),
    (lambda opt: lr_scheduler.SequentialLR(opt, [lr_scheduler.StepLR(our_optimizer(), 2),
                                                 lr_scheduler.StepLR(opt, 2)], milestones=[3]),
     r"schedulers\[0\] does not drive"),
])
def test_bad_arguments_are_named(make, pattern):
    with pytest.raises((ValueError, TypeError), match=pattern):
        make(our_optimizer())
