"""Published weights on first use: download into the cache, verify, load (``googlenet(weights="IMAGENET1K_V1")``).

The cache folder is ``$TINYINCEPTION_HOME/weights`` (default ``~/.cache/tinyinception/weights``). A file is
downloaded by ``tinyinception.data.download_url`` (progress bar, length check, temporary file), verified (the full
SHA-256 where published, torchvision's hash prefix where that is all there is) and only then renamed into place:
a failed, interrupted or mismatching download leaves nothing in the cache. Where the publisher gives no checksum
the SHA-256 is printed and kept beside the file as ``<file>.sha256``.
"""
import os
import sys

from ..atomic_file import atomic_file
from ..data.download import ChecksumError, DownloadError, download_url, file_digest
from ..models import registry
from .weight_file import load_weight_file

ARCHITECTURE_DEFAULTS = {"width": 1.0, "small_input": False, "paper": False}


class WeightsDownloadError(DownloadError):
    """Published weights could not be fetched; the message says how to load a local copy instead."""


def weights_home():
    """The folder published weights are cached in: ``$TINYINCEPTION_HOME/weights``."""
    home = os.environ.get("TINYINCEPTION_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "tinyinception")
    return os.path.join(home, "weights")


def cached_path(record):
    """Where ``record``'s file lives in the cache (whether or not it is there yet)."""
    return os.path.join(weights_home(), record.filename)


def _local_copy_hint(record):
    return (f"download {record.url} with a browser or another machine and pass its path: "
            f"ti.models.{record.model}(weights='/path/to/{record.filename}') or "
            f"`tinyinception predict IMAGE --model {record.model} --weights /path/to/{record.filename}` "
            f"(or copy it to {cached_path(record)})")


def _verify(record, path):
    """SHA-256 of the downloaded file, checked against what the publisher gives; raises ChecksumError."""
    digest = file_digest(path, "sha256")
    if record.sha256 is not None and digest != record.sha256.lower():
        raise ChecksumError(f"SHA-256 {digest} is not the published {record.sha256}")
    if record.sha256_prefix is not None and not digest.startswith(record.sha256_prefix.lower()):
        raise ChecksumError(f"SHA-256 {digest} does not start with the published prefix {record.sha256_prefix}")
    return digest


def fetch(record, progress=True, timeout=60.0):
    """The path of ``record``'s file in the cache, downloading and verifying it first if it is not there."""
    path = cached_path(record)
    if os.path.isfile(path):
        return path
    staging = path + ".download"
    try:
        download_url(record.url, staging, sha256=record.sha256, timeout=timeout, progress=progress)
        digest = _verify(record, staging)
        if record.sha256 is None:
            with atomic_file(path + ".sha256") as handle:
                handle.write(f"{digest}  {record.filename}\n".encode())
        os.replace(staging, path)
    except ChecksumError as error:
        raise WeightsDownloadError(f"the file downloaded from {record.url} failed its checksum ({error}); it was "
                                   f"not kept. Try again, or {_local_copy_hint(record)}") from error
    except DownloadError as error:
        raise WeightsDownloadError(f"could not download the {record.model} weights {record.tag!r}: {error}. If "
                                   f"this machine is offline or cannot reach the host, "
                                   f"{_local_copy_hint(record)}") from error
    finally:
        if os.path.exists(staging):
            os.remove(staging)
    if record.sha256 is None:
        note = "verified against torchvision's prefix" if record.sha256_prefix else "the publisher gives none"
        print(f"{record.filename}: SHA-256 {digest} ({note}; kept in {path}.sha256)", file=sys.stderr)
    return path


def resolve(name, weights):
    """(record or None, local path or None) for a builder's ``weights=`` argument: a tag, a record or a path."""
    from .published import PublishedWeights
    if isinstance(weights, PublishedWeights):
        return weights, None
    weights = os.fspath(weights)
    tags = registry.list_weights(name)
    if weights in tags or weights == "DEFAULT":
        return registry.get_weights(name, weights), None
    if os.path.isfile(weights):
        return None, weights
    raise ValueError(f"{name}: weights={weights!r} is neither a published tag (available: "
                     f"{', '.join(tags) or 'none'}) nor an existing file")


def merge_kwargs(record, kwargs):
    """The builder's keyword arguments for ``record``'s file: the architecture must be the published one;
    num_classes/head come from the file; options left at None take the record's value."""
    kwargs = dict(kwargs)
    for key, default in ARCHITECTURE_DEFAULTS.items():
        published = record.model_kwargs.get(key, default)
        if key in kwargs and kwargs[key] not in (None, published):
            raise ValueError(f"{record.model}: weights {record.tag!r} are for {key}={published}, not "
                             f"{key}={kwargs[key]!r}")
    for key, value in record.model_kwargs.items():
        if key in ("num_classes", "head") or kwargs.get(key) is None:
            kwargs[key] = value
    kwargs["num_classes"] = record.num_classes
    return kwargs


def build_with_weights(name, construct, weights, kwargs, path=None, progress=True):
    """``construct(**kwargs)`` with ``weights`` (tag, record or file path) loaded; ``path`` overrides the download
    with a local copy of the tagged file."""
    record, local = resolve(name, weights)
    if record is not None:
        kwargs = merge_kwargs(record, kwargs)
    model = construct(**{key: value for key, value in kwargs.items() if value is not None})
    source = path or local or fetch(record, progress=progress)
    return load_weight_file(model, source)


registry.set_weights_loader(build_with_weights)
