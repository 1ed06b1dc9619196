"""One run per output folder: a lock held while a run writes there, and the files that make a folder "a run".

    with RunLock("runs/shapes-googlenet"):      # RunFolderBusy if a live process holds it
        ...

The lock is the file ``.lock`` in the folder, holding the owner's process id and host name. On POSIX it is also
``flock``-ed for as long as the run lives, so the operating system releases it when the process dies, even by
``kill -9``: a lock left by a dead process is taken over without a question. Where ``flock`` is missing the
process id decides (a lock whose process is gone on this host is stale). The same process may take the lock again
(``fit`` inside the command line's own lock): the inner one is a no-op.
"""
import os
import socket

try:
    import fcntl
except ImportError:     # Windows: the process id alone decides
    fcntl = None

from ..atomic_file import _process_alive

LOCK_FILE = ".lock"
RUN_FILES = ("last.ckpt", "best.ckpt", "metrics.jsonl", "curves.png", "predictions.png")


class RunFolderBusy(RuntimeError):
    """Another live process is writing a run into this folder."""


def run_files(folder):
    """The files of a previous run in ``folder`` (names from RUN_FILES that exist), sorted."""
    return sorted(name for name in RUN_FILES if os.path.exists(os.path.join(folder, name)))


def _read_owner(path):
    """(pid, host) written in a lock file, or (None, None) when it cannot be read."""
    try:
        with open(path, encoding="utf-8") as handle:
            pid, _, host = handle.read().strip().partition(" ")
        return int(pid), host
    except (OSError, ValueError):
        return None, None


class RunLock:
    """The lock of one output folder (a context manager; ``acquire()`` / ``release()`` by hand also work)."""

    _held = {}      # realpath of a lock file -> (descriptor, depth) of the locks this process holds

    def __init__(self, folder):
        self.folder = os.fspath(folder)
        self.path = os.path.join(self.folder, LOCK_FILE)

    def _busy(self):
        pid, host = _read_owner(self.path)
        who = f"process {pid}" + (f" on {host}" if host and host != socket.gethostname() else "")
        return RunFolderBusy(f"{self.folder} is in use by another run ({who if pid else 'unknown process'}); "
                             f"wait for it to finish or choose another --out folder (if no such run is alive, "
                             f"delete {self.path})")

    def acquire(self):
        os.makedirs(self.folder, exist_ok=True)
        key = os.path.realpath(self.path)
        if key in RunLock._held:
            descriptor, depth = RunLock._held[key]
            RunLock._held[key] = (descriptor, depth + 1)
            return self
        for _ in range(10):
            descriptor = self._try_lock()
            if descriptor is not None:
                RunLock._held[key] = (descriptor, 1)
                return self
        raise self._busy()

    def _try_lock(self):
        """A descriptor holding the lock, None to try again (the file changed under us); RunFolderBusy if held."""
        if fcntl is None:
            return self._try_lock_by_pid()
        descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(descriptor)
            raise self._busy() from None
        try:
            same_file = os.path.samestat(os.fstat(descriptor), os.stat(self.path))
        except FileNotFoundError:
            same_file = False
        if not same_file:           # its owner removed the file between our open and our lock
            os.close(descriptor)
            return None
        self._write_owner(descriptor)
        return descriptor

    def _try_lock_by_pid(self):
        try:
            descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            pid, host = _read_owner(self.path)
            if pid is not None and host == socket.gethostname() and not _process_alive(pid):
                try:
                    os.remove(self.path)        # stale: its process is gone
                except FileNotFoundError:
                    pass
                return None
            raise self._busy() from None
        self._write_owner(descriptor)
        return descriptor

    @staticmethod
    def _write_owner(descriptor):
        os.ftruncate(descriptor, 0)
        os.write(descriptor, f"{os.getpid()} {socket.gethostname()}\n".encode())

    def release(self):
        key = os.path.realpath(self.path)
        if key not in RunLock._held:
            return
        descriptor, depth = RunLock._held[key]
        if depth > 1:
            RunLock._held[key] = (descriptor, depth - 1)
            return
        del RunLock._held[key]
        try:
            os.remove(self.path)        # removed while still locked, so no other process locks a dead file
        except FileNotFoundError:
            pass
        os.close(descriptor)

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc_info):
        self.release()
