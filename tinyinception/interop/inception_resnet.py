"""Name tables for Inception-ResNet-v2 (timm ``inception_resnet_v2``) and Inception-ResNet-v1 (facenet-pytorch
``InceptionResnetV1``).

Our names say what a layer is; the references number their branches. A key is translated one dotted part at a
time: each part is renamed by the table of the module class it belongs to (a part renamed to None disappears), so
``blocks_b.3.branch_7x7.1.conv.weight`` becomes timm's ``repeat_1.3.branch1.1.conv.weight``.

| ours (both networks)     | timm IR-v2            | facenet IR-v1                       |
| ------------------------ | --------------------- | ----------------------------------- |
| stem.conv2d_1a, ...      | conv2d_1a, ...        | conv2d_1a, ...                      |
| blocks_a / reduction_a   | repeat / mixed_6a     | repeat_1 / mixed_6a                 |
| blocks_b / reduction_b   | repeat_1 / mixed_7a   | repeat_2 / mixed_7a                 |
| blocks_c / last_block_c  | repeat_2 / block8     | repeat_3 / block8                   |
| embedding / embedding_bn | -                     | last_linear / last_bn               |
| fc                       | classif               | logits (head="facenet")             |

The plain IR-v1 head's ``fc`` has no counterpart in any reference and keeps its name; everything else maps as for
facenet, so facenet trunk weights carry over by name.
"""
from ..models.inception_resnet import (InceptionResNetA, InceptionResNetB, InceptionResNetC, Mixed5b, ReductionA,
                                       ReductionB)
from .mapping import register_table

# Inside the blocks: branch names -> the references' positional names (same in timm, Cadene and facenet).
BLOCK_RENAMES = {
    Mixed5b: {"branch_1x1": "branch0", "branch_5x5": "branch1", "branch_3x3dbl": "branch2", "branch_pool": "branch3"},
    InceptionResNetA: {"branch_1x1": "branch0", "branch_3x3": "branch1", "branch_3x3dbl": "branch2",
                       "expand_1x1": "conv2d"},
    InceptionResNetB: {"branch_1x1": "branch0", "branch_7x7": "branch1", "expand_1x1": "conv2d"},
    InceptionResNetC: {"branch_1x1": "branch0", "branch_3x3": "branch1", "expand_1x1": "conv2d"},
    ReductionA: {"branch_3x3": "branch0", "branch_3x3dbl": "branch1", "branch_pool": "branch2"},
    ReductionB: {"branch_3x3a": "branch0", "branch_3x3b": "branch1", "branch_3x3dbl": "branch2",
                 "branch_pool": "branch3"},
}

IRV2_TOP = {"stem": None, "blocks_a": "repeat", "reduction_a": "mixed_6a", "blocks_b": "repeat_1",
            "reduction_b": "mixed_7a", "blocks_c": "repeat_2", "last_block_c": "block8", "fc": "classif"}
IRV1_TOP = {"stem": None, "blocks_a": "repeat_1", "reduction_a": "mixed_6a", "blocks_b": "repeat_2",
            "reduction_b": "mixed_7a", "blocks_c": "repeat_3", "last_block_c": "block8",
            "embedding": "last_linear", "embedding_bn": "last_bn"}


def _translate(model, key, top_renames):
    """One state_dict key of ``model`` in the reference's naming."""
    *path, tensor_name = key.split(".")
    module, renamed = model, []
    for part in path:
        renames = top_renames if module is model else BLOCK_RENAMES.get(type(module), {})
        new = renames.get(part, part)
        if new is not None:
            renamed.append(new)
        module = module._modules[part]
    return ".".join(renamed + [tensor_name])


def _table(model, top_renames):
    return {key: _translate(model, key, top_renames) for key in model.state_dict()}


@register_table("InceptionResNetV2")
def inception_resnet_v2_table(model):
    """Our InceptionResNetV2 keys -> timm ``inception_resnet_v2`` keys."""
    return _table(model, IRV2_TOP)


@register_table("InceptionResNetV1")
def inception_resnet_v1_table(model):
    """Our InceptionResNetV1 keys -> facenet-pytorch ``InceptionResnetV1(classify=True)`` keys (head="facenet").
    The plain head's ``fc`` has no reference counterpart and keeps its name; the trunk maps as for facenet."""
    renames = dict(IRV1_TOP, fc="logits") if model.head == "facenet" else IRV1_TOP
    return _table(model, renames)
