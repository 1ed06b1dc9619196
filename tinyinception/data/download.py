"""Fetch a file over HTTP(S) with urllib, verify its checksum, and only then put it in place.

The bytes go to a temporary file in the destination's own directory; it is renamed onto the final name (an atomic
``os.replace`` on one file system) only after the length and checksum are right. Any failure (network error,
truncated transfer, wrong checksum, Ctrl-C) deletes the temporary file: no half-written file is ever left behind.
"""
import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request

from ..atomic_file import atomic_file


class DownloadError(RuntimeError):
    """A download failed; nothing was written at the destination."""


class ChecksumError(DownloadError):
    """The downloaded bytes do not have the published checksum; the file was not kept."""


def file_digest(path, algorithm="md5", chunk_size=1 << 20):
    """Hex digest of a file's contents with a hashlib algorithm ("md5", "sha256", ...)."""
    hasher = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_size), b""):
            hasher.update(chunk)
    return hasher.hexdigest()


def _expected_digest(md5, sha256):
    if sha256 is not None:
        return "sha256", sha256.lower()
    if md5 is not None:
        return "md5", md5.lower()
    return None, None


def _stream_to(response, handle, hasher, url, progress):
    """Copy the response body into handle, feeding hasher. Returns the byte count; checks Content-Length."""
    declared = response.headers.get("Content-Length")
    total = int(declared) if declared is not None else None
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=total, unit="B", unit_scale=True, desc=os.path.basename(url), leave=False)
    written = 0
    try:
        for chunk in iter(lambda: response.read(1 << 16), b""):
            handle.write(chunk)
            hasher.update(chunk)
            written += len(chunk)
            if bar is not None:
                bar.update(len(chunk))
    finally:
        if bar is not None:
            bar.close()
    if total is not None and written != total:
        raise DownloadError(f"download of {url} was cut short: received {written} of {total} bytes; "
                            f"nothing was kept")
    return written


def download_url(url, path, md5=None, sha256=None, timeout=60.0, progress=True):
    """Download ``url`` to ``path``, verifying the md5 or sha256 hex digest when given. Returns ``path``.

    Raises DownloadError (network failure, truncated transfer) or ChecksumError; in every failure case ``path`` is
    untouched and no temporary file remains.
    """
    algorithm, expected = _expected_digest(md5, sha256)
    hasher = hashlib.new(algorithm or "md5")
    with atomic_file(path, suffix=".part") as handle:  # kept only if the block completes
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                _stream_to(response, handle, hasher, url, progress)
        except (urllib.error.URLError, OSError, EOFError) as error:
            raise DownloadError(f"could not download {url}: {error}; nothing was kept") from error
        if expected is not None and hasher.hexdigest() != expected:
            raise ChecksumError(f"checksum mismatch for {url}: expected {algorithm} {expected}, got "
                                f"{hasher.hexdigest()}; the file was not kept")
    return path


def download_from_mirrors(mirrors, filename, path, md5=None, sha256=None, progress=True):
    """Try ``mirror + filename`` for each mirror in turn until one downloads and verifies. Returns ``path``.

    When every mirror fails, re-raises the last error (its message lists every mirror's failure).
    """
    if isinstance(mirrors, str):
        mirrors = [mirrors]
    failures, last_error = [], None
    for mirror in mirrors:
        url = mirror.rstrip("/") + "/" + filename
        try:
            return download_url(url, path, md5=md5, sha256=sha256, progress=progress)
        except DownloadError as error:
            failures.append(str(error))
            last_error = error
    if last_error is None:
        raise DownloadError(f"no mirror given to download {filename}")
    if len(failures) == 1:
        raise last_error
    raise type(last_error)("every mirror failed:\n  " + "\n  ".join(failures)) from last_error


def _safe_extractall(tar, directory):
    """Extract every member into directory, refusing links and paths that leave it."""
    if hasattr(tarfile, "data_filter"):                   # Python >= 3.11.4 / 3.10.12 has the safe filter
        tar.extractall(directory, filter="data")
        return
    root = os.path.realpath(directory)
    for member in tar.getmembers():
        target = os.path.realpath(os.path.join(directory, member.name))
        if member.issym() or member.islnk() or os.path.commonpath([root, target]) != root:
            raise DownloadError(f"refusing to extract {member.name!r}: a link or a path outside {directory}")
    tar.extractall(directory)


def extract_tar(archive, destination, member_root):
    """Extract a .tar.gz whose files sit under ``member_root`` into ``destination/member_root``, atomically.

    The archive is unpacked into a temporary directory beside the target and moved into place only when complete;
    members that would escape the directory (absolute paths, "..", links out) are refused.
    """
    target = os.path.join(destination, member_root)
    staging = tempfile.mkdtemp(prefix=".extract-", dir=destination)
    try:
        with tarfile.open(archive, "r:*") as tar:
            _safe_extractall(tar, staging)
        unpacked = os.path.join(staging, member_root)
        if not os.path.isdir(unpacked):
            raise DownloadError(f"archive {archive} has no folder {member_root!r}")
        if os.path.isdir(target):
            shutil.rmtree(target)
        os.replace(unpacked, target)
    except tarfile.TarError as error:
        raise DownloadError(f"could not extract {archive}: {error}") from error
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
