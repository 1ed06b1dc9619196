"""Numba's on-disk cache follows every kernel file of the package (kernels/_cache.py): editing a called function in
one file recompiles the cached kernels of other files that have it compiled in."""
import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

pytest.importorskip("numba")

from tinyinception.kernels import _cache, strided_conv  # noqa: E402

PROBE = """
import numpy as np
from tinyinception.kernels import strided_conv, winograd
x = np.random.default_rng(0).standard_normal((4, 8, 6, 6)).astype(np.float32)
grid = winograd.tile_grids(x.shape)[0]
rows = strided_conv.to_phase_grid(x, grid, "probe")
reference = strided_conv.to_phase_grid_numpy(x, grid)
print(np.array_equal(rows[:, :reference.shape[1]], reference))
"""
PACK = "return low | (high << _HIGH)"  # pairs.pack: the first value in the low half
SWAPPED = "return high | (low << _HIGH)"


def _probe(root):
    """Runs PROBE on the package copy under ``root``, in a process of its own, with the in-tree cache."""
    env = {key: value for key, value in os.environ.items() if key != "NUMBA_CACHE_DIR"}
    env["PYTHONPATH"] = str(root)
    result = subprocess.run([sys.executable, "-c", PROBE], cwd=root, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_editing_a_called_file_recompiles_the_kernels_of_other_files(tmp_path):
    """`strided_conv._to_phase_grid` calls `pairs.copy_row`, which calls `pairs.pack`. With Numba's own stamps
    (a hash of the kernel's own file), breaking pack in pairs.py left the cached grid copy right: stale code."""
    package = tmp_path / "tinyinception"
    shutil.copytree(pathlib.Path(_cache.PACKAGE), package, ignore=shutil.ignore_patterns("__pycache__"))
    assert _probe(tmp_path) == "True"  # compiled and cached
    pairs_file = package / "kernels" / "pairs.py"
    source = pairs_file.read_text()
    assert PACK in source
    pairs_file.write_text(source.replace(PACK, SWAPPED))
    assert _probe(tmp_path) == "False"  # the broken pack is in the recompiled copy: the edit took effect
    pairs_file.write_text(source)
    assert _probe(tmp_path) == "True"


def test_digest_covers_kernels_and_files_with_kernels_only(tmp_path):
    """Every file of kernels/ (constants such as blas.TRANS are compiled into the kernels), and every other file
    with a kernel; an edit elsewhere (a model) leaves the cache alone."""
    (tmp_path / "kernels").mkdir()
    (tmp_path / "optim").mkdir()
    files = {"constants": tmp_path / "kernels" / "blas.py", "kernel elsewhere": tmp_path / "optim" / "_kernel.py",
             "plain": tmp_path / "model.py"}
    for path in files.values():
        path.write_text("x = 1\n")
    files["kernel elsewhere"].write_text("from numba import njit\n")
    digest = _cache.sources_digest.__wrapped__
    for name, path in files.items():
        before = digest(tmp_path)
        path.write_text(path.read_text() + "# edited\n")
        assert (digest(tmp_path) != before) is (name != "plain"), name


def test_the_package_locators_come_first_and_apply_to_package_files_only():
    from numba.core import caching

    assert caching.CacheImpl._locator_classes[:len(_cache.LOCATORS)] == list(_cache.LOCATORS)
    in_tree = _cache.LOCATORS[1]
    kernel = strided_conv._to_phase_grid.parallel.py_func
    locator = in_tree.from_function(kernel, strided_conv.__file__)
    assert locator is not None and locator.get_source_stamp()[1] == _cache.sources_digest()
    assert in_tree.from_function(json.dumps, json.__file__) is None  # outside: Numba's own locators
