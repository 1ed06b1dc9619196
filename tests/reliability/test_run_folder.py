"""One run per output folder: a second run is refused unless --resume or --overwrite; a live run's lock is
respected, a dead run's lock is not; the default folder is runs/<dataset>-<model>."""
import os
import signal
import subprocess

import pytest

import tinyinception as ti
from tinyinception.train import RunFolderBusy, RunLock

from conftest import PYTHON, TINY, child_environment

pytestmark = pytest.mark.usefixtures("numpy_kernels")


def _hold_lock(folder):
    """A child process that takes the folder's lock and waits; returns it once the lock is held."""
    child = subprocess.Popen([PYTHON, "-c", "import sys, time; from tinyinception.train import RunLock; "
                              "RunLock(sys.argv[1]).acquire(); print('held', flush=True); time.sleep(300)",
                              str(folder)], stdout=subprocess.PIPE, text=True, env=child_environment())
    assert child.stdout.readline().strip() == "held"
    return child


def test_second_run_into_the_same_folder_is_refused_then_overwrite_replaces_it(cli, tmp_path):
    out = tmp_path / "run"
    assert cli("train", *TINY, "--out", out)[0] == 0
    before = (out / "last.ckpt").read_bytes()
    status, _, err = cli("train", *TINY, "--out", out)
    assert status == 2 and "already holds a run" in err and "--resume" in err and "--overwrite" in err
    assert (out / "last.ckpt").read_bytes() == before            # nothing touched
    assert cli("train", *TINY, "--out", out, "--overwrite", "--seed", "1")[0] == 0
    assert ti.train.load_checkpoint(out / "last.ckpt")["config"]["seed"] == 1
    assert [r["epoch"] for r in ti.train.read_metrics(out / "metrics.jsonl")] == [1]
    assert not (out / ".lock").exists()                             # released at the end


def test_a_live_run_holds_the_folder_and_a_killed_one_does_not(cli, tmp_path):
    out = tmp_path / "run"
    child = _hold_lock(out)
    try:
        status, _, err = cli("train", *TINY, "--out", out, "--overwrite")
        assert status == 2 and f"in use by another run (process {child.pid})" in err
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert cli("train", *TINY, "--out", out)[0] == 0              # the dead run's lock is taken over


def test_stale_lock_file_from_a_dead_process_is_taken_over(tmp_path):
    dead = subprocess.Popen([PYTHON, "-c", "pass"])
    dead.wait()
    (tmp_path / ".lock").write_text(f"{dead.pid} {os.uname().nodename}\n")
    with RunLock(tmp_path):
        assert (tmp_path / ".lock").read_text().split()[0] == str(os.getpid())
    assert not (tmp_path / ".lock").exists()


def test_lock_is_reentrant_in_one_process_and_exclusive_across(tmp_path):
    with RunLock(tmp_path), RunLock(tmp_path):          # fit inside the command line's lock
        assert (tmp_path / ".lock").exists()
        probe = subprocess.run([PYTHON, "-c", "import sys; from tinyinception.train import RunLock, RunFolderBusy\n"
                                "try:\n    RunLock(sys.argv[1]).acquire()\nexcept RunFolderBusy as e:\n"
                                "    print('busy', e)\n", str(tmp_path)], capture_output=True, text=True,
                               env=child_environment(), timeout=120)
        assert probe.stdout.startswith("busy") and str(os.getpid()) in probe.stdout
    assert issubclass(RunFolderBusy, RuntimeError)


def test_default_folder_is_per_dataset_and_model(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    status, out, _ = cli("train", *TINY)
    assert status == 0 and os.path.join("runs", "shapes-googlenet") in out
    assert (tmp_path / "runs" / "shapes-googlenet" / "last.ckpt").exists()
