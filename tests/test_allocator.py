"""tinyinception.allocator: glibc keeps freed memory for reuse (on by default on Linux, off by an env variable).

Checked by what glibc's malloc does, read back through ``mallinfo2``: with the thresholds raised, a 64 MiB array
comes from the process's heap (not a fresh ``mmap``) and stays there, free for reuse, after it is dropped."""
import ctypes.util
import os
import subprocess
import sys

import pytest

import tinyinception as ti

CHECK = """
import ctypes, ctypes.util
import numpy as np
import tinyinception as ti

class MallInfo2(ctypes.Structure):  # glibc >= 2.33
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                      "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.mallinfo2.restype = MallInfo2
block = np.ones(64 << 20, np.uint8)
mapped = libc.mallinfo2().hblkhd >= 64 << 20  # bytes in blocks malloc got by mmap, one each
del block
kept = libc.mallinfo2().fordblks >= 64 << 20  # free bytes the heap keeps
print(ti.allocator.is_keeping_freed_memory(), mapped, kept)
"""


def _has_mallinfo2():
    try:
        return hasattr(ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6"), "mallinfo2")
    except OSError:
        return False


def _run(env_value):
    env = dict(os.environ)
    env.pop("TINYINCEPTION_KEEP_FREED_MEMORY", None)
    if env_value is not None:
        env["TINYINCEPTION_KEEP_FREED_MEMORY"] = env_value
    result = subprocess.run([sys.executable, "-c", CHECK], env=env, capture_output=True, text=True, check=True)
    return result.stdout.split()


@pytest.mark.skipif(not (sys.platform.startswith("linux") and _has_mallinfo2()),
                    reason="glibc's mallopt and mallinfo2 (glibc >= 2.33): Linux only")
def test_on_by_default_and_off_by_environment_variable():
    kept_on, mapped_when_on, freed_kept_when_on = _run(None)
    assert (kept_on, mapped_when_on, freed_kept_when_on) == ("True", "False", "True"), \
        "on by default: a large block comes from the heap and stays there once freed"
    assert _run("0") == ["False", "True", "False"], "off: glibc's own behaviour, mmap per large block, unmapped on free"


def test_calling_it_again_is_harmless():
    applied = ti.allocator.keep_freed_memory()
    assert applied is ti.allocator.is_keeping_freed_memory()
    assert applied is (sys.platform.startswith("linux") and ti.allocator.is_keeping_freed_memory())
