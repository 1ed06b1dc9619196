"""Every numbered tutorial (``tutorials/NN_*.py``) runs to the end with ``--quick`` and exits 0, from another
current folder, and writes its figures only under ``runs/tutorials/<its own name>/``.

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
    written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    own_folder = f"runs/tutorials/{script.stem}/"
    strays = [path for path in written if not path.startswith(own_folder)]
    assert not strays, f"{script.name} wrote outside {own_folder}: {strays[:5]}"
    if "matplotlib" in script.read_text():
        assert any(path.endswith(".png") for path in written), f"{script.name} saved no figure in {own_folder}"
