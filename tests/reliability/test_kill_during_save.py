"""kill -9 at random points during checkpoint saves: the previous checkpoint always loads, the next run removes the
dead writer's temporary file, and the resumed run ends with the same weights, bit for bit, as an unbroken one."""
import glob
import os
import signal
import subprocess
import time

import numpy as np
import pytest

import tinyinception as ti

from conftest import PYTHON, child_environment
from killable_run import run

pytestmark = pytest.mark.usefixtures("numpy_kernels")

EPOCHS = 4
HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture(scope="module")
def unbroken(tmp_path_factory):
    with ti.using_kernels("numpy"):
        return run(str(tmp_path_factory.mktemp("unbroken")), EPOCHS)


def _kill_during_save(out, save_number, delay):
    """Start the run, wait for its ``save_number``-th save to begin, SIGKILL it ``delay`` seconds later."""
    child = subprocess.Popen([PYTHON, os.path.join(HERE, "killable_run.py"), str(out), str(EPOCHS)],
                             stdout=subprocess.PIPE, text=True, env=child_environment())
    try:
        for _ in range(save_number):
            assert child.stdout.readline().strip() == "save"
        time.sleep(delay)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_killed_save_keeps_the_previous_checkpoint_and_resume_is_exact(tmp_path, unbroken, seed):
    rng = np.random.default_rng(seed)
    save_number = int(rng.integers(2, EPOCHS + 1))         # every epoch saves last.ckpt (and best.ckpt if better)
    _kill_during_save(tmp_path, save_number, float(rng.uniform(0.0, 0.05)))
    last = tmp_path / "last.ckpt"
    assert last.exists()                                    # the first save (epoch 1) completed before
    state = ti.train.load_checkpoint(last)                  # never half-written
    assert 1 <= state["epoch"] <= EPOCHS
    if (tmp_path / "best.ckpt").exists():
        assert ti.train.load_checkpoint(tmp_path / "best.ckpt")["epoch"] <= state["epoch"]
    leftovers = glob.glob(str(tmp_path / ".*.tmp"))
    with ti.using_kernels("numpy"):
        resumed = run(str(tmp_path), EPOCHS) if state["epoch"] < EPOCHS else None
    if resumed is not None:
        for key, value in unbroken.items():
            np.testing.assert_array_equal(resumed[key], value, err_msg=key)
        assert not glob.glob(str(tmp_path / ".last.ckpt.*.tmp")), leftovers     # the dead writer's file is gone


def test_next_save_removes_only_dead_writers_temporary_files(tmp_path):
    dead = subprocess.Popen([PYTHON, "-c", "pass"])
    dead.wait()
    live = subprocess.Popen([PYTHON, "-c", "import time; time.sleep(60)"])
    try:
        stale = tmp_path / f".last.ckpt.{dead.pid}.k2j3h4x1.tmp"
        busy = tmp_path / f".last.ckpt.{live.pid}.a8b7c6d5.tmp"
        old_style = tmp_path / ".last.ckpt.q9w8e7r6.tmp"           # no process id: removed once untouched long
        other = tmp_path / f".best.ckpt.{dead.pid}.zzzz0000.tmp"    # another file's: left to that file's next save
        for path in (stale, busy, old_style, other):
            path.write_bytes(b"half a checkpoint")
        os.utime(old_style, (time.time() - 3600, time.time() - 3600))
        ti.train.save_checkpoint(tmp_path / "last.ckpt", epoch=1, model={})
        assert not stale.exists() and not old_style.exists()
        assert busy.exists() and other.exists()
        assert ti.train.load_checkpoint(tmp_path / "last.ckpt")["epoch"] == 1
    finally:
        live.kill()
        live.wait()
