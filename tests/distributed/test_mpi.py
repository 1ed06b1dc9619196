"""Data parallelism under real MPI: ``mpiexec -n K`` subprocesses running tests/distributed/scripts/*.py.

Marked ``mpi``; skipped where mpi4py or mpiexec is missing (``pip install 'tinyinception[mpi]'`` brings both).
"""
import json
import time

import numpy as np
import pytest

import tinyinception as ti
from mpi_run import describe, requires_mpi, run_mpi

pytestmark = [pytest.mark.mpi, requires_mpi]


@pytest.mark.parametrize("ranks", [2, 3])
def test_data_parallel_equals_one_process(ranks):
    """Sharding covers every index once; averaged gradients are the mean of the per-rank ones (exactly for K=2);
    with SyncBatchNorm, K ranks at batch 12/K give one process's weights at batch 12 after 20 SGD steps."""
    result = run_mpi(ranks, "check_equivalence.py", timeout=180)
    assert result.returncode == 0, describe(result)
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["size"] == ranks
    assert report["sharding"] == "ok"
    assert report["gradient_mean_overlap_True"] == report["gradient_mean_overlap_False"] == "ok"
    assert report["sync_batchnorm_float64_max_difference"] <= 1e-10
    assert report["sync_batchnorm_float32_max_difference"] <= 2e-5


def _final_weights(path):
    return ti.train.load_checkpoint(path)["model"]


def test_fit_resumes_on_another_rank_count_and_matches_one_process(tmp_path):
    """One epoch on 2 ranks, resumed for a second on 3 ranks: the same weights, training sums and evaluation
    (correct counts summed over the ranks) as two epochs in one process; rank 0 alone wrote files."""
    first = run_mpi(2, "train_small.py", tmp_path / "two", 1, timeout=120)
    assert first.returncode == 0, describe(first)
    second = run_mpi(3, "train_small.py", tmp_path / "three", 2, "--resume", tmp_path / "two" / "last.ckpt",
                     timeout=120)
    assert second.returncode == 0, describe(second)
    alone = run_mpi(1, "train_small.py", tmp_path / "one", 2, timeout=120)
    assert alone.returncode == 0, describe(alone)
    resumed = _final_weights(tmp_path / "three" / "last.ckpt")
    reference = _final_weights(tmp_path / "one" / "last.ckpt")
    for key, value in reference.items():
        np.testing.assert_allclose(resumed[key], value, rtol=0, atol=1e-10, err_msg=key)
    history = ti.train.read_metrics(tmp_path / "three" / "metrics.jsonl")
    reference_history = ti.train.read_metrics(tmp_path / "one" / "metrics.jsonl")
    assert [r["epoch"] for r in history] == [1, 2]          # one writer: no line written twice
    for record, expected in zip(history, reference_history):
        assert record["val_accuracy"] == expected["val_accuracy"]
        assert record["train_accuracy"] == expected["train_accuracy"]
        assert abs(record["val_loss"] - expected["val_loss"]) < 1e-10
        assert abs(record["train_loss"] - expected["train_loss"]) < 1e-10


def test_killed_rank_stops_the_others_and_the_last_checkpoint_loads(tmp_path):
    """Rank 1 is killed (SIGKILL) in epoch 2: the job ends with an error well within the timeout, and last.ckpt
    (written after epoch 1) loads."""
    started = time.monotonic()
    result = run_mpi(2, "train_small.py", tmp_path / "run", 3, "--kill-at-step", 6, timeout=90,
                     env={"TINYINCEPTION_MPI_TIMEOUT": "20"})
    assert result.returncode != 0, describe(result)
    assert time.monotonic() - started < 60
    state = ti.train.load_checkpoint(tmp_path / "run" / "last.ckpt")
    assert state["epoch"] == 1 and state["global_step"] == 4


def test_hanging_rank_makes_the_others_stop_at_the_deadline(tmp_path):
    """Rank 1 stops answering (sleeps) in epoch 2: rank 0's collective reaches its 3 s deadline, says so on stderr,
    and MPI_Abort ends the job."""
    started = time.monotonic()
    result = run_mpi(2, "train_small.py", tmp_path / "run", 3, "--hang-at-step", 6, timeout=90,
                     env={"TINYINCEPTION_MPI_TIMEOUT": "3"})
    assert result.returncode != 0, describe(result)
    assert "got no answer from the other ranks within 3 s" in result.stderr, describe(result)
    assert time.monotonic() - started < 60
    assert ti.train.load_checkpoint(tmp_path / "run" / "last.ckpt")["epoch"] == 1


@pytest.mark.gpu
def test_cupy_gradients_are_averaged_on_the_gpu():
    """Two ranks sum CuPy arrays (NCCL where it works, the host otherwise) and agree on the averaged gradients."""
    result = run_mpi(2, "check_gpu.py", timeout=180)
    assert result.returncode == 0, describe(result)
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"size": 2, "gpu": "ok"}


def test_command_trains_on_two_ranks_and_rank_zero_alone_writes(tmp_path):
    """`mpiexec -n 2 python -m tinyinception train --quick --sync-batchnorm`: one plan printed, one metrics line,
    checkpoints that load; a global batch the ranks cannot split is refused in one line."""
    out = tmp_path / "run"
    result = run_mpi(2, "cli.py", "train", "--quick", "--train-size", 64, "--test-size", 30, "--batch-size", 16,
                     "--no-progress", "--sync-batchnorm", "--out", out, timeout=180)
    assert result.returncode == 0, describe(result)
    assert result.stdout.count("training googlenet") == 1, describe(result)
    assert "data parallel over 2 MPI ranks: 8 images per rank and step, SyncBatchNorm" in result.stdout
    assert [r["epoch"] for r in ti.train.read_metrics(out / "metrics.jsonl")] == [1]
    assert ti.train.load_checkpoint(out / "last.ckpt")["global_step"] == 4    # 64 images / 16 a step
    refused = run_mpi(2, "cli.py", "train", "--quick", "--batch-size", 15, "--out", tmp_path / "no", timeout=120)
    assert refused.returncode != 0
    assert "--batch-size 15 is the batch over all 2 ranks and must be a multiple of 2" in refused.stderr
    assert "Traceback" not in refused.stderr
