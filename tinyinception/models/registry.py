"""A small registry: every network builder registers itself by name, ``ti.models.create(name)`` builds it."""
_BUILDERS = {}


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
