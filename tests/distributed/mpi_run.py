"""Running a script under ``mpiexec -n K`` from a test, and skipping cleanly where MPI is missing."""
import importlib.util
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPTS = pathlib.Path(__file__).resolve().parent / "scripts"


def find_mpiexec():
    """The launcher that belongs to this Python's mpi4py (the pip wheel puts it next to python), else PATH's."""
    beside = pathlib.Path(sys.executable).parent / "mpiexec"
    return str(beside) if beside.exists() else shutil.which("mpiexec") or shutil.which("mpirun")


def mpi_missing_reason():
    if importlib.util.find_spec("mpi4py") is None:
        return "needs mpi4py (pip install 'tinyinception[mpi]')"
    if find_mpiexec() is None:
        return "needs an mpiexec launcher (pip install mpich, or Debian's openmpi-bin)"
    return None


requires_mpi = pytest.mark.skipif(mpi_missing_reason() is not None, reason=str(mpi_missing_reason()))


def mpi_environment(extra=None):
    """PYTHONPATH at this checkout; Open MPI allowed to run as root and to start more ranks than cores."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               MPLBACKEND="Agg", OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_rmaps_base_oversubscribe="1", PRTE_MCA_rmaps_default_mapping_policy=":oversubscribe",
               NUMBA_NUM_THREADS="1", OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    env.update(extra or {})
    return env


def run_mpi(ranks, script, *arguments, timeout=120, env=None, cwd=None):
    """``mpiexec -n ranks python scripts/script arguments...``; returns the CompletedProcess (never raises on a
    non-zero exit; a run past ``timeout`` seconds fails the test)."""
    command = [find_mpiexec(), "-n", str(ranks), sys.executable, str(SCRIPTS / script), *map(str, arguments)]
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=mpi_environment(env),
                              cwd=cwd or ROOT)
    except subprocess.TimeoutExpired as expired:
        pytest.fail(f"{' '.join(command)} ran past {timeout} s (a hang): {expired.stderr}")


def describe(result):
    return f"exit {result.returncode}\n--- stdout ---\n{result.stdout[-3000:]}\n--- stderr ---\n{result.stderr[-3000:]}"
