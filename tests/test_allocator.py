"""tinyinception.allocator: glibc keeps freed memory for reuse (on by default on Linux, off by an env variable)."""
import os
import subprocess
import sys

import pytest

import tinyinception as ti

CHECK = "import tinyinception as ti; print(ti.allocator.is_keeping_freed_memory())"


def _run(env_value):
    env = dict(os.environ)
    env.pop("TINYINCEPTION_KEEP_FREED_MEMORY", None)
    if env_value is not None:
        env["TINYINCEPTION_KEEP_FREED_MEMORY"] = env_value
    result = subprocess.run([sys.executable, "-c", CHECK], env=env, capture_output=True, text=True, check=True)
    return result.stdout.strip()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")
def test_on_by_default_and_off_by_environment_variable():
    assert _run(None) == "True"
    assert _run("0") == "False"


def test_calling_it_again_is_harmless():
    applied = ti.allocator.keep_freed_memory()
    assert applied is ti.allocator.is_keeping_freed_memory()
    assert applied is (sys.platform.startswith("linux") and ti.allocator.is_keeping_freed_memory())
