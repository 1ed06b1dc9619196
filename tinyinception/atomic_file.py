"""Write a file so that it appears complete or not at all (checkpoints, downloads).

    with atomic_file(path) as handle:
        handle.write(...)

The bytes go to a temporary file in the same directory, ``.<name>.<pid>.<random>.tmp``; when the block ends
normally they are flushed and fsync'ed and ``os.replace`` moves the file over ``path`` (an atomic rename on POSIX
and Windows). If the block raises, ``path`` is left as it was (the previous file, or none) and the temporary file
is removed.

A process killed during the write (``kill -9``, a power cut) cannot remove its temporary file. The next write of
the same ``path`` removes such leftovers first: a temporary file whose process id names no live process, or one
without a process id (older versions) untouched for ``STALE_SECONDS``. A file another live process is writing is
left alone.
"""
import contextlib
import glob
import os
import tempfile
import time

STALE_SECONDS = 300     # a temporary file without a process id in its name is stale after this long untouched


def _process_alive(pid):
    """True when a process with this id exists (it may belong to another user)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def _writer_pid(temporary, prefix, suffix):
    """The process id in a temporary file's name, or None when the name holds none."""
    middle = os.path.basename(temporary)[len(prefix):-len(suffix) or None]
    pid = middle.split(".", 1)[0]
    return int(pid) if "." in middle and pid.isdigit() else None


def remove_stale_temporaries(path, suffix=".tmp"):
    """Remove the temporary files that killed writers of ``path`` left behind; returns the paths removed."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    prefix = "." + os.path.basename(path) + "."
    removed = []
    for temporary in glob.glob(os.path.join(glob.escape(directory), glob.escape(prefix) + "*" + suffix)):
        pid = _writer_pid(temporary, prefix, suffix)
        try:
            if pid is None:
                stale = time.time() - os.path.getmtime(temporary) > STALE_SECONDS
            else:
                stale = pid != os.getpid() and not _process_alive(pid)
            if stale:
                os.remove(temporary)
                removed.append(temporary)
        except FileNotFoundError:       # its writer finished (or another cleaner got there) meanwhile
            continue
    return removed


@contextlib.contextmanager
def atomic_file(path, suffix=".tmp"):
    """A binary file handle whose contents replace ``path`` only if the ``with`` block completes."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    remove_stale_temporaries(path, suffix)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.{os.getpid()}.", suffix=suffix,
                                             dir=directory)
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
