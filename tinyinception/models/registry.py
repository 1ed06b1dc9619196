"""A small registry: every network builder registers itself by name, ``ti.models.create(name)`` builds it.

Published weights register here too (``ti.models.list_weights("googlenet")``): their records and the loader that
downloads and reads the files live in ``ti.interop`` (the floor that reads files), which hands its loader in with
``set_weights_loader`` when it is imported; a builder's ``weights=`` goes through ``build``.
"""
_BUILDERS = {}
_WEIGHTS = {}               # model name -> {tag: PublishedWeights}, in registration order
_WEIGHTS_LOADER = []        # the one loader ti.interop registers


def register(name):
    """Decorator: ``@register("googlenet")`` above a builder function."""
    def decorate(builder):
        _BUILDERS[name] = builder
        return builder
    return decorate


def list_models():
    """Names of every network ``create`` can build, sorted."""
    return sorted(_BUILDERS)


def create(name, **kwargs):
    """Build the network ``name`` (see ``list_models()``) with the builder's keyword arguments."""
    if name not in _BUILDERS:
        raise ValueError(f"create: unknown model {name!r}; available: {', '.join(list_models())}")
    return _BUILDERS[name](**kwargs)


def register_weights(record):
    """Add a published-weights record (``record.model``, ``record.tag``) to the registry."""
    _WEIGHTS.setdefault(record.model, {})[record.tag] = record
    return record


def list_weights(name):
    """The published weight tags of network ``name`` (the first is the default), e.g. ["IMAGENET1K_V1"]."""
    if name not in _BUILDERS:
        raise ValueError(f"list_weights: unknown model {name!r}; available: {', '.join(list_models())}")
    return list(_WEIGHTS.get(name, {}))


def get_weights(name, tag="DEFAULT"):
    """The record of published weights ``tag`` of network ``name`` (URL, checksum, preprocessing:
    ``.transforms()``, class names: ``.class_names()``). "DEFAULT" is the first tag."""
    tags = list_weights(name)
    if tag == "DEFAULT" and tags:
        tag = tags[0]
    if tag not in tags:
        raise ValueError(f"{name}: no published weights {tag!r}; available: {', '.join(tags) or 'none'}")
    return _WEIGHTS[name][tag]


def set_weights_loader(loader):
    """Called by ti.interop: ``loader(name, construct, weights, kwargs) -> model`` serves builders' ``weights=``."""
    _WEIGHTS_LOADER[:] = [loader]


def build(name, construct, weights, kwargs):
    """``construct(**kwargs)`` (None values left to the class defaults), with ``weights`` loaded when given: a tag of
    ``list_weights(name)``, a record, or the path of a .pth/.pt/.safetensors file with the reference's keys."""
    if weights is None:
        return construct(**{key: value for key, value in kwargs.items() if value is not None})
    if not _WEIGHTS_LOADER:
        raise RuntimeError("weights= needs tinyinception.interop (import tinyinception first)")
    return _WEIGHTS_LOADER[0](name, construct, weights, kwargs)
