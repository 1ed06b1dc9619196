"""The tinyinception command: models, summary, train --quick (and resume), eval --checkpoint."""
import subprocess
import sys

import pytest

import tinyinception as ti
from tinyinception.cli import main

TINY = ["--quick", "--train-size", "64", "--test-size", "32", "--batch-size", "32", "--no-progress"]


@pytest.fixture(autouse=True)
def _numpy_kernels():
    """Tiny shapes: the NumPy kernels are quicker than Numba's thread start-ups here (see tests/test_train.py)."""
    with ti.using_kernels("numpy"):
        yield


def test_models_lists_every_network(capsys):
    assert main(["models"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert listed == ti.models.list_models()
    assert "googlenet" in listed and "inception_v3" in listed


def test_python_dash_m_runs_the_same_command():
    completed = subprocess.run([sys.executable, "-m", "tinyinception", "models"], capture_output=True, text=True,
                               timeout=120)
    assert completed.returncode == 0, completed.stderr
    assert "googlenet" in completed.stdout


def test_summary_prints_a_table(capsys):
    pytest.importorskip("tinyinception.summary")
    assert main(["summary", "googlenet", "--width", "0.125", "--input-size", "3", "32", "32", "--depth", "1"]) == 0
    out = capsys.readouterr().out
    assert "inception3a" in out and "multiply-adds" in out
    assert out.count("multiply-adds per image") == 1          # printed once, not twice


def test_train_quick_then_resume_then_eval(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *TINY, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    for name in ("last.ckpt", "metrics.jsonl", "curves.png", "predictions.png"):
        assert (out / name).exists(), name
        assert name in printed
    assert "test accuracy" in printed
    first = ti.train.load_checkpoint(out / "last.ckpt")
    assert first["epoch"] == 1 and first["config"]["model"] == "googlenet"

    assert main(["train", *TINY, "--epochs", "2", "--out", str(out), "--resume", str(out / "last.ckpt")]) == 0
    capsys.readouterr()
    assert ti.train.load_checkpoint(out / "last.ckpt")["epoch"] == 2
    assert [r["epoch"] for r in ti.train.read_metrics(out / "metrics.jsonl")] == [1, 2]

    assert main(["eval", "--checkpoint", str(out / "last.ckpt"), "--no-progress"]) == 0
    evaluated = capsys.readouterr().out
    assert "accuracy" in evaluated and "32 images" in evaluated


def test_eval_rejects_a_checkpoint_without_config(tmp_path, capsys):
    path = ti.train.save_checkpoint(tmp_path / "bare.ckpt", model={}, epoch=0)
    assert main(["eval", "--checkpoint", str(path)]) == 2
    assert "does not say which model" in capsys.readouterr().err


def test_dataset_without_data_dir_is_a_clear_error(tmp_path, capsys):
    assert main(["train", *TINY, "--dataset", "cifar10", "--out", str(tmp_path)]) == 2
    assert "--data-dir" in capsys.readouterr().err
