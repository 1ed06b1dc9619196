"""Write a file so that it appears complete or not at all (checkpoints, downloads).

    with atomic_file(path) as handle:
        handle.write(...)

The bytes go to a temporary file in the same directory; when the block ends normally they are flushed and
fsync'ed and ``os.replace`` moves the file over ``path`` (an atomic rename on POSIX and Windows). If the block
raises, ``path`` is left as it was (the previous file, or none) and the temporary file is removed.
"""
import contextlib
import os
import tempfile


@contextlib.contextmanager
def atomic_file(path, suffix=".tmp"):
    """A binary file handle whose contents replace ``path`` only if the ``with`` block completes."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=suffix, dir=directory)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
