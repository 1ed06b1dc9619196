"""The 1000 ImageNet-1K class names, in the order of the published classifiers' outputs.

``imagenet_classes.txt`` holds one name a line; the list is torchvision's ``_IMAGENET_CATEGORIES``
(``torchvision/models/_meta.py``), the names every torchvision and timm ImageNet classifier reports.
"""
import functools
import os

CLASSES_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "imagenet_classes.txt")


@functools.lru_cache(maxsize=1)
def _read_classes():
    with open(CLASSES_FILE, encoding="utf-8") as handle:
        names = [line.rstrip("\n") for line in handle if line.strip()]
    if len(names) != 1000:
        raise RuntimeError(f"{CLASSES_FILE} holds {len(names)} class names, expected 1000")
    return tuple(names)


def imagenet_classes():
    """The 1000 ImageNet class names (index i = output i of an ImageNet classifier), e.g. [652] "military uniform"."""
    return list(_read_classes())
