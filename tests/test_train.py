"""ti.train: checkpoints (round trip, atomic save), exact resume, divergence, reproducibility, flat memory."""
import math
import os
from collections import namedtuple

import numpy as np
import pytest

import tinyinception as ti
from tinyinception import nn
from tinyinception.data import ArrayDataset, DataLoader, RandomHorizontalFlip
from tinyinception.train import checkpoint as checkpoint_module
from tinyinception.train import read_metrics

CLASSES = 3


@pytest.fixture(autouse=True)
def _numpy_kernels():
    """The trainer is under test, not the kernels: the NumPy ones cost ~1 ms a step on these tiny shapes, while
    Numba's parallel kernels pay a thread start-up per call that dominates tiny inputs on a busy machine."""
    with ti.using_kernels("numpy"):
        yield


class TinyNet(nn.Module):
    """Conv-BN-ReLU, global average pool, dropout, linear: a real CNN in a few hundred parameters."""

    def __init__(self, channels=4, dropout=0.2):
        super().__init__()
        self.conv = nn.Conv2d(3, channels, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(channels, CLASSES)

    def forward(self, x):
        return self.fc(self.dropout(self.flatten(self.pool(self.relu(self.bn(self.conv(x)))))))


AuxOutputs = namedtuple("AuxOutputs", ["logits", "aux_logits2", "aux_logits1"])


class GoogLeNet(TinyNet):
    """Named like the real one, so the trainer picks GoogLeNet's auxiliary weight; two side heads."""

    def __init__(self):
        super().__init__()
        self.aux1 = nn.Linear(4, CLASSES)
        self.aux2 = nn.Linear(4, CLASSES)

    def forward(self, x):
        features = self.flatten(self.pool(self.relu(self.bn(self.conv(x)))))
        logits = self.fc(features)
        if self.training:
            return AuxOutputs(logits, self.aux2(features), self.aux1(features))
        return logits


def make_data(count=48, size=8, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % CLASSES
    images = rng.random((count, 3, size, size), dtype=np.float32) * 0.3
    images[labels == 1, 0] += 0.6          # learnable: class 1 is red-ish, class 2 green-ish
    images[labels == 2, 1] += 0.6
    return ArrayDataset(images, labels, [f"class{i}" for i in range(CLASSES)])


def make_run(seed=0, lr=0.1, batch_size=8, count=48):
    """A fresh model, optimizer, scheduler and loaders, every random choice fixed by ``seed``."""
    ti.manual_seed(seed)
    model = TinyNet()
    optimizer = ti.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=1e-4)
    scheduler = ti.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.7)
    train = DataLoader(make_data(count), batch_size, shuffle=True, seed=seed, transform=RandomHorizontalFlip())
    val = DataLoader(make_data(24, seed=1), 12)
    return model, optimizer, scheduler, train, val


def weights(model):
    return {key: np.array(value) for key, value in model.state_dict().items()}


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert a[key].dtype == b[key].dtype, key
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def fit(model, optimizer, scheduler, train, val, epochs, **kwargs):
    kwargs.setdefault("progress", False)
    return ti.train.fit(model, train, val, optimizer, epochs, scheduler=scheduler, **kwargs)


# --- checkpoints ------------------------------------------------------------------------------------------------
def test_checkpoint_round_trip(tmp_path):
    model, optimizer, scheduler, train, val = make_run()
    fit(model, optimizer, scheduler, train, val, 1)
    path = ti.train.save_checkpoint(tmp_path / "a.ckpt", model=model.state_dict(), optimizer=optimizer.state_dict(),
                                    epoch=1, rng_state=ti.get_rng_state(), config={"model": "tiny"})
    loaded = ti.train.load_checkpoint(path)
    assert loaded["epoch"] == 1 and loaded["config"] == {"model": "tiny"}
    assert loaded["rng_state"] == ti.get_rng_state()
    assert_same_weights(loaded["model"], weights(model))
    momentum = optimizer.state_dict()["state"]
    for index, buffers in loaded["optimizer"]["state"].items():
        np.testing.assert_array_equal(buffers["momentum_buffer"], momentum[index]["momentum_buffer"])
    fresh = TinyNet()
    fresh.load_state_dict(loaded["model"])
    assert_same_weights(weights(fresh), weights(model))


def test_checkpoint_keeps_float64(tmp_path):
    model = TinyNet().double()
    loaded = ti.train.load_checkpoint(ti.train.save_checkpoint(tmp_path / "d.ckpt", model=model.state_dict()))
    assert loaded["model"]["conv.weight"].dtype == np.float64


def test_load_checkpoint_refuses_foreign_pickles(tmp_path):
    import pickle
    path = tmp_path / "evil.ckpt"
    path.write_bytes(pickle.dumps({"format": "tinyinception-checkpoint", "version": 1, "x": os.getcwd},
                                  protocol=4))
    with pytest.raises(ti.train.CheckpointError, match="refusing"):
        ti.train.load_checkpoint(path)
    with pytest.raises(FileNotFoundError):
        ti.train.load_checkpoint(tmp_path / "missing.ckpt")


def test_interrupted_save_leaves_previous_checkpoint_and_no_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "last.ckpt"
    ti.train.save_checkpoint(path, epoch=1, model={"w": np.ones(1000, np.float32)})
    before = path.read_bytes()

    def crash_midway(handle, payload):
        handle.write(b"half a checkpoint" * 100)
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(checkpoint_module, "_write_payload", crash_midway)
    with pytest.raises(OSError, match="simulated"):
        ti.train.save_checkpoint(path, epoch=2, model={"w": np.zeros(1000, np.float32)})
    assert path.read_bytes() == before
    assert ti.train.load_checkpoint(path)["epoch"] == 1
    assert sorted(os.listdir(tmp_path)) == ["last.ckpt"]


# --- fit --------------------------------------------------------------------------------------------------------
def test_fit_writes_metrics_plots_and_checkpoints(tmp_path):
    model, optimizer, scheduler, train, val = make_run()
    result = fit(model, optimizer, scheduler, train, val, 2, out_dir=tmp_path, config={"model": "tiny"})
    assert [r["epoch"] for r in result.history] == [1, 2]
    assert result.global_step == 2 * len(train)
    records = read_metrics(result.metrics_path)
    assert [r["epoch"] for r in records] == [1, 2]
    assert records[0]["lr"] == pytest.approx(0.1) and records[1]["lr"] == pytest.approx(0.07)
    for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "images_per_second"):
        assert math.isfinite(records[-1][key]), key
    assert open(result.curves_path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    last = ti.train.load_checkpoint(result.last_checkpoint)
    assert last["epoch"] == 2 and last["global_step"] == result.global_step
    assert last["train_loader"] == train.state_dict() and last["config"] == {"model": "tiny"}
    best = ti.train.load_checkpoint(result.best_checkpoint)
    assert best["best_val_accuracy"] == max(r["val_accuracy"] for r in records)


def test_fit_learns_separable_data():
    model, optimizer, scheduler, train, val = make_run(lr=0.2)
    result = fit(model, optimizer, None, train, val, 8)
    assert result.history[-1]["val_accuracy"] >= 0.9
    held_out = make_data(24, seed=1)
    predictions = ti.train.predict(model, held_out.images, batch_size=5)
    assert np.mean(predictions == held_out.labels) == result.history[-1]["val_accuracy"]


def test_resume_ends_with_bitwise_identical_weights(tmp_path):
    model, optimizer, scheduler, train, val = make_run()
    straight = fit(model, optimizer, scheduler, train, val, 4, out_dir=tmp_path / "straight")
    expected = weights(model)

    model, optimizer, scheduler, train, val = make_run()
    fit(model, optimizer, scheduler, train, val, 2, out_dir=tmp_path / "stopped")
    model, optimizer, scheduler, train, val = make_run(seed=99)   # fresh objects, other init and loader seed
    resumed = fit(model, optimizer, scheduler, train, val, 4, out_dir=tmp_path / "stopped",
                  resume=tmp_path / "stopped" / "last.ckpt")
    assert_same_weights(weights(model), expected)
    assert resumed.global_step == straight.global_step
    assert [r["val_accuracy"] for r in resumed.history] == [r["val_accuracy"] for r in straight.history]
    assert [r["epoch"] for r in read_metrics(resumed.metrics_path)] == [1, 2, 3, 4]


def test_same_seed_same_weights():
    runs = []
    for _ in range(2):
        model, optimizer, scheduler, train, val = make_run(seed=3)
        fit(model, optimizer, scheduler, train, val, 2)
        runs.append(weights(model))
    assert_same_weights(*runs)
    model, optimizer, scheduler, train, val = make_run(seed=4)
    fit(model, optimizer, scheduler, train, val, 2)
    assert not np.array_equal(weights(model)["fc.weight"], runs[0]["fc.weight"])


# --- divergence -------------------------------------------------------------------------------------------------
def test_nan_loss_stops_with_training_diverged_and_keeps_last_checkpoint(tmp_path):
    model, optimizer, scheduler, train, val = make_run()
    steps_per_epoch = len(train)
    calls = {"count": 0}

    def loss_with_injected_nan(logits, labels):
        calls["count"] += 1
        loss = ti.functional.cross_entropy(logits, labels)
        if calls["count"] == steps_per_epoch + 3:     # the third step of epoch 2 (training calls only)
            return loss * float("nan")
        return loss

    def eval_loss(logits, labels):
        return ti.functional.cross_entropy(logits, labels)

    fit(model, optimizer, scheduler, train, val, 1, out_dir=tmp_path, loss_fn=loss_with_injected_nan)
    checkpoint_bytes = (tmp_path / "last.ckpt").read_bytes()
    # Evaluation also calls loss_fn: count only what training sees from here on.
    calls["count"] = steps_per_epoch
    original_evaluate = ti.train.loop.evaluate
    ti.train.loop.evaluate = lambda m, d, loss_fn, device, progress: original_evaluate(m, d, eval_loss, device)
    try:
        with pytest.raises(ti.train.TrainingDiverged) as caught:
            fit(model, optimizer, scheduler, train, val, 3, out_dir=tmp_path, loss_fn=loss_with_injected_nan,
                resume=tmp_path / "last.ckpt")
    finally:
        ti.train.loop.evaluate = original_evaluate
    error = caught.value
    assert (error.epoch, error.step) == (2, steps_per_epoch + 3) and math.isnan(error.loss)
    assert "epoch 2, step" in str(error) and str(tmp_path / "last.ckpt") in str(error)
    assert (tmp_path / "last.ckpt").read_bytes() == checkpoint_bytes
    assert all(np.isfinite(value).all() for value in weights(model).values())
    assert read_metrics(tmp_path / "metrics.jsonl")[-1]["event"] == "diverged"


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_huge_learning_rate_diverges():
    model, optimizer, scheduler, train, val = make_run(lr=1e30)
    with pytest.raises(ti.train.TrainingDiverged, match="training diverged"):
        fit(model, optimizer, None, train, None, 5)


# --- auxiliary classifiers --------------------------------------------------------------------------------------
def test_aux_weights_follow_the_papers():
    assert ti.train.aux_weight_for(GoogLeNet()) == 0.3
    Inception3 = type("Inception3", (TinyNet,), {})
    assert ti.train.aux_weight_for(Inception3()) == 0.4
    model = TinyNet()
    model.aux_weight = 0.25
    assert ti.train.aux_weight_for(model) == 0.25


def test_training_loss_adds_weighted_aux_losses():
    model = GoogLeNet()
    images, labels = make_data(8).get_batch(np.arange(8))
    outputs = model(ti.tensor(images))
    loss_fn = ti.train.cross_entropy_loss(label_smoothing=0.1)
    total, logits = ti.train.training_loss(outputs, labels, loss_fn, 0.3)
    parts = [loss_fn(o, labels).item() for o in outputs]
    assert logits is outputs.logits
    assert total.dtype == np.float32
    assert total.item() == pytest.approx(parts[0] + 0.3 * (parts[1] + parts[2]), rel=1e-6)


def test_fit_trains_aux_heads_and_evaluates_main_head():
    ti.manual_seed(0)
    model = GoogLeNet()
    optimizer = ti.optim.SGD(model.parameters(), lr=0.1)
    before = np.array(model.aux1.weight.data)
    train, val = DataLoader(make_data(), 8, shuffle=True, seed=0), DataLoader(make_data(24, seed=1), 12)
    result = ti.train.fit(model, train, val, optimizer, 1, progress=False)
    assert not np.array_equal(model.aux1.weight.data, before)
    assert model.training
    assert result.history[0]["val_accuracy"] == ti.train.evaluate(model, val)["accuracy"]     # the main head
    unchanged = ti.train.fit(GoogLeNet(), train, val, ti.optim.SGD(GoogLeNet().parameters(), lr=0.1), 0,
                             progress=False)
    assert unchanged.history == []


def test_evaluate_and_predict_restore_mode():
    model, _, _, _, val = make_run()
    metrics = ti.train.evaluate(model, val)
    assert metrics["count"] == 24 and 0.0 <= metrics["accuracy"] <= 1.0 and model.training
    images = make_data(10).images
    predictions = ti.train.predict(model, images, batch_size=4)
    assert predictions.shape == (10,) and predictions.dtype == np.int64 and model.training
    model.eval()
    with ti.no_grad():
        logits = model(ti.tensor(images)).data
    model.train()
    np.testing.assert_array_equal(predictions, logits.argmax(axis=1))       # the most likely class of each image


# --- memory -----------------------------------------------------------------------------------------------------
def _resident_bytes():
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc (Linux)")
def test_memory_stays_flat_over_1000_steps():
    """A graph leaked per step (activations + im2col columns + gradients, ~70 KB here) would add ~70 MB."""
    ti.manual_seed(0)
    model = TinyNet(channels=8)
    optimizer = ti.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    train = DataLoader(make_data(count=8 * 1100), 8, shuffle=True, seed=0)
    samples = {}

    def measure(step, loss):
        if step in (100, 1100):
            samples[step] = _resident_bytes()

    ti.train.fit(model, train, None, optimizer, 1, progress=False, on_step=measure)
    growth = samples[1100] - samples[100]
    assert growth < 8 * 2 ** 20, f"resident memory grew by {growth / 2 ** 20:.1f} MiB over 1000 steps"


# --- plots ------------------------------------------------------------------------------------------------------
def test_plots_write_png(tmp_path):
    history = [{"epoch": 1, "train_loss": 2.0, "val_loss": 1.9, "train_accuracy": 0.3, "val_accuracy": 0.35},
               {"epoch": 2, "train_loss": 1.0, "val_loss": None, "train_accuracy": 0.6, "val_accuracy": 0.7}]
    curves = ti.viz.plot_curves(history, tmp_path / "curves.png")
    data = make_data(6)
    grid = ti.viz.plot_predictions(data.images, data.labels, np.array([0, 1, 1, 0, 1, 2]), data.classes,
                                   tmp_path / "grid.png", columns=3)
    for path in (curves, grid):
        assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="plot_predictions"):
        ti.viz.plot_predictions(data.images, data.labels, [0], data.classes, tmp_path / "bad.png")


def test_first_batch_compiling_note_and_its_time_left_out_of_images_per_second(monkeypatch):
    from tinyinception.train import loop
    monkeypatch.setattr(loop, "_FIRST_STEP_DONE", [])
    monkeypatch.setattr(loop, "_kernels_cached", lambda: False)
    with ti.using_kernels("numba"):
        assert "compiling the kernels (first run" in loop._first_step_note("cpu")
    assert loop._first_step_note("cpu") is None             # the NumPy kernels compile nothing
    monkeypatch.setattr(loop, "_first_step_note", lambda device: None if loop._FIRST_STEP_DONE else "compiling")
    model, optimizer, scheduler, train, val = make_run()
    forward = model.forward

    def slow_first_forward(x):                              # stands in for the compilation
        if not loop._FIRST_STEP_DONE:
            import time
            time.sleep(0.5)
        return forward(x)
    monkeypatch.setattr(model, "forward", slow_first_forward)
    record = fit(model, optimizer, scheduler, train, val, 1).history[0]
    images = 48
    assert record["images_per_second"] > (images - 8) / (record["epoch_seconds"] - 0.5) * 0.9
    assert record["images_per_second"] > 2 * images / record["epoch_seconds"]
