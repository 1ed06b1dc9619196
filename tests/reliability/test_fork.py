"""A process forked after the kernels started Numba's OpenMP threads is warned in the child, with the fix."""
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.usefixtures("numpy_kernels")

CHILD_SCRIPT = textwrap.dedent("""
    import os, sys, warnings
    import numpy as np
    import tinyinception as ti
    from tinyinception.kernels import threaded_blas
    rng = np.random.default_rng(0)
    x = ti.tensor(rng.standard_normal((2, 16, 28, 28), dtype=np.float32))
    w = ti.tensor(rng.standard_normal((16, 16, 3, 3), dtype=np.float32))
    ti.functional.conv2d(x, w, padding=1)            # runs the kernels: starts the thread pool
    print("openmp" if threaded_blas.enabled() else "no-openmp", flush=True)
    warnings.simplefilter("always")
    pid = os.fork()
    if pid == 0:                                     # the child only reports, it runs no kernel (that would hang)
        sys.stderr.flush()
        os._exit(0)
    os.waitpid(pid, 0)
""")


def _run(environment_extra):
    import os
    env = dict(os.environ, **environment_extra)
    return subprocess.run([sys.executable, "-c", CHILD_SCRIPT], capture_output=True, text=True, timeout=600, env=env)


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")
def test_child_forked_after_openmp_is_warned_with_the_fix():
    completed = _run({})
    assert completed.returncode == 0, completed.stderr
    if completed.stdout.strip() != "openmp":
        pytest.skip("Numba's OpenMP layer is not in use on this machine: forking is safe")
    assert "forked after its kernels started Numba's OpenMP threads" in completed.stderr
    assert "spawn" in completed.stderr and "TINYINCEPTION_ONE_POOL=0" in completed.stderr


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")
def test_no_warning_on_the_work_queue_threads():
    completed = _run({"TINYINCEPTION_ONE_POOL": "0"})
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "no-openmp"
    assert "forked after" not in completed.stderr
