"""Name table: our GoogLeNet -> torchvision ``googlenet`` state_dict keys.

Ours names each branch by what it computes; torchvision numbers them (and numbers the layers inside a branch,
the max pool taking index 0 of ``branch4``):

======================================  ==========================
ours                                    torchvision
======================================  ==========================
``inception3a.branch_1x1.conv.weight``  ``inception3a.branch1.conv.weight``
``inception3a.branch_3x3.reduce.*``     ``inception3a.branch2.0.*``
``inception3a.branch_3x3.conv.*``       ``inception3a.branch2.1.*``
``inception3a.branch_5x5.reduce.*``     ``inception3a.branch3.0.*``
``inception3a.branch_5x5.conv.*``       ``inception3a.branch3.1.*``
``inception3a.branch_pool.proj.*``      ``inception3a.branch4.1.*``
======================================  ==========================

Everything else (``conv1``-``conv3``, ``aux1.conv.conv``, ``aux1.fc1``, ``aux1.fc2``, ``fc``) has the same name.
The paper layout (``paper=True``) has no PyTorch reference, so it has no table.
"""
from .mapping import register_table

BRANCH_NAMES = {
    "branch_1x1.": "branch1.",
    "branch_3x3.reduce.": "branch2.0.",
    "branch_3x3.conv.": "branch2.1.",
    "branch_5x5.reduce.": "branch3.0.",
    "branch_5x5.conv.": "branch3.1.",
    "branch_pool.proj.": "branch4.1.",
}


def torchvision_key(key):
    """``inception4a.branch_3x3.conv.bn.weight`` -> ``inception4a.branch2.1.bn.weight``; other keys unchanged."""
    block, _, rest = key.partition(".")
    for ours, theirs in BRANCH_NAMES.items():
        if rest.startswith(ours):
            return f"{block}.{theirs}{rest[len(ours):]}"
    return key


@register_table("GoogLeNet")
def googlenet_table(model):
    """{our key: torchvision key} for every parameter and buffer of ``model``."""
    if model.paper:
        raise ValueError("ti.interop: GoogLeNet(paper=True) has no PyTorch reference to exchange weights with; "
                         "only torchvision's layout (paper=False) has a name table")
    return {key: torchvision_key(key) for key in model.state_dict()}
