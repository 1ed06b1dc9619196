"""The Inception family, one file per network (``ti.models.googlenet()``, ``ti.models.create("inception_v3")``)."""
from .registry import create, list_models, register
