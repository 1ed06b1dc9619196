"""Numba's on-disk cache, kept in step with every kernel source file of this package.

Numba stamps a cached kernel with a hash of the one file the kernel is written in. But a kernel has the functions it
calls compiled into it, and many of ours call functions of other files (`winograd._winograd` calls `pairs.pack` and
`threaded_blas._gemm`; `strided_conv._to_phase_grid` calls `pairs.copy_row`). Edit only `pairs.py`, and the next
process would load the old machine code of `strided_conv`'s kernels from the cache: an edited kernel that silently
keeps giving its old numbers (checked with Numba 0.68: the grid copy stayed right after `pairs.pack` was broken, until
the cache was cleared). The same happens after an upgrade that changes only the called file.

Constants are compiled in too: the kernels that call BLAS read `blas.NO_TRANS` and `blas.TRANS`, from a file with no
kernel in it. So, for the files of this package only, the stamp also holds a hash of every file of `kernels/` and
every other file of the package that contains Numba kernels: a change to any of them recompiles every kernel once,
in the next process that calls it. (An edit elsewhere, a model or the training loop, recompiles nothing.)

Each locator below is Numba's own, with that stamp; files outside the package keep Numba's behaviour. Numba keeps
the list of locators in a class attribute, `CacheImpl._locator_classes`: where a Numba version has no such list the
cache works as Numba's, and clearing ``__pycache__`` after editing a kernel is what helps.
"""
import functools
import hashlib
import pathlib

try:
    from numba.core import caching
except ImportError:  # a Numba without this module: its own cache behaviour (see above)
    caching = None

PACKAGE = pathlib.Path(__file__).resolve().parents[1]


@functools.lru_cache(maxsize=None)
def sources_digest(package=PACKAGE):
    """SHA-256 over the names and contents of the package's ``.py`` files in ``kernels/`` or mentioning ``njit``, in
    name order."""
    digest = hashlib.sha256()
    kernels = pathlib.Path(package) / "kernels"
    for path in sorted(pathlib.Path(package).rglob("*.py")):
        text = path.read_bytes()
        if path.parent == kernels or b"njit" in text:
            digest.update(path.relative_to(package).as_posix().encode() + b"\0" + text + b"\0")
    return digest.hexdigest()


def _in_package(py_file):
    try:
        return pathlib.Path(py_file).resolve().is_relative_to(PACKAGE)
    except (OSError, ValueError):
        return False


class _PackageStamp:
    """Mixin for a Numba cache locator: applies to this package's files only, and stamps them with the file's own
    hash and `sources_digest`."""

    @classmethod
    def from_function(cls, py_func, py_file):
        if not _in_package(py_file):
            return None
        return super().from_function(py_func, py_file)

    def get_source_stamp(self):
        return super().get_source_stamp(), sources_digest()


LOCATORS = ()
if caching is not None:
    class UserProvidedForPackage(_PackageStamp, caching.UserProvidedCacheLocator):
        """In ``NUMBA_CACHE_DIR``, where it is set."""

    class InTreeForPackage(_PackageStamp, caching.InTreeCacheLocator):
        """In the ``__pycache__`` beside the source file, where it is writable."""

    class UserWideForPackage(_PackageStamp, caching.UserWideCacheLocator):
        """In the user's cache directory (~/.cache/numba) otherwise."""

    LOCATORS = (UserProvidedForPackage, InTreeForPackage, UserWideForPackage)  # Numba's order


def install():
    """Put `LOCATORS` first in Numba's list (once), so that every kernel decorated afterwards uses them; False where
    this Numba keeps no such list."""
    cache_impl = getattr(caching, "CacheImpl", None) or getattr(caching, "_CacheImpl", None)
    classes = getattr(cache_impl, "_locator_classes", None)
    if not LOCATORS or not isinstance(classes, list):
        return False
    if classes[:len(LOCATORS)] != list(LOCATORS):
        classes[:0] = LOCATORS
    return True
