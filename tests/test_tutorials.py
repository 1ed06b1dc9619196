"""Every numbered tutorial (``tutorials/NN_*.py``) runs to the end with ``--quick`` and exits 0.

Tutorials are collected from the folder, so a new one is tested as soon as it exists.
"""
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
TUTORIALS = sorted(p for p in (ROOT / "tutorials").glob("[0-9][0-9]_*.py"))


@pytest.mark.slow
@pytest.mark.parametrize("script", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_tutorial_runs_quick(script, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               MPLBACKEND="Agg")
    result = subprocess.run([sys.executable, str(script), "--quick"], check=False, cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, (
        f"{script.name} --quick exited with {result.returncode}\n"
        f"--- stdout (last 3000 chars) ---\n{result.stdout[-3000:]}\n"
        f"--- stderr (last 3000 chars) ---\n{result.stderr[-3000:]}"
    )
    assert result.stdout.strip(), f"{script.name} printed nothing"
