"""Shared pieces of the reliability tests: run the command line in-process, a tiny training run."""
import os
import sys

import pytest

import tinyinception as ti
from tinyinception.cli import main

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# The smallest real run of `tinyinception train`: seconds on the NumPy kernels.
TINY = ["--quick", "--train-size", "64", "--test-size", "32", "--batch-size", "32", "--no-progress"]


@pytest.fixture
def numpy_kernels():
    """Tiny shapes: the NumPy kernels start faster than Numba's threads (for the tests of the command line, runs
    and files; ``pytestmark = pytest.mark.usefixtures("numpy_kernels")`` in their modules). Not for the tests of
    kernels, threads and numerics, which choose their kernels themselves."""
    with ti.using_kernels("numpy"):
        yield


@pytest.fixture
def cli(capsys):
    """``cli(*argv) -> (exit status, stdout, stderr)``: the command run in this process, argparse's exits too."""
    def run(*argv):
        try:
            status = main([str(a) for a in argv])
        except SystemExit as stop:
            status = stop.code
        captured = capsys.readouterr()
        return status, captured.out, captured.err
    return run


def child_environment(**extra):
    """Environment of a child Python process that imports this checkout, on the NumPy kernels."""
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""),
               TINYINCEPTION_KERNELS="numpy")
    env.update(extra)
    return env


PYTHON = sys.executable
