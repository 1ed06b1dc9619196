"""Inception-v3 name table: our names are torchvision's (``Conv2d_1a_3x3``, ``Mixed_5b.branch5x5_1``,
``AuxLogits.conv0``, ``fc``), so the table is the identity. timm's ``inception_v3`` uses the same keys."""
from .mapping import identity, register_table

register_table("InceptionV3")(identity)
