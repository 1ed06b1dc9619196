"""Name table: our BN-Inception -> Cadene ``pretrainedmodels.bninception`` state_dict keys.

The reference is a flat Caffe translation: each convolution is a top-level attribute named after the Caffe layer
and its BatchNorm is the same name + ``_bn``. Ours nests units in blocks and branches:

=========================================  ======================================
ours                                       Cadene
=========================================  ======================================
``conv1.conv.weight`` / ``conv1.bn.*``     ``conv1_7x7_s2.weight`` / ``conv1_7x7_s2_bn.*``
``conv2_reduce.*``, ``conv2.*``            ``conv2_3x3_reduce*``, ``conv2_3x3*``
``inception3a.branch_1x1.*``               ``inception_3a_1x1*``
``inception3a.branch_3x3.reduce.*``        ``inception_3a_3x3_reduce*``
``inception3a.branch_3x3.conv.*``          ``inception_3a_3x3*``
``inception3a.branch_3x3dbl.reduce.*``     ``inception_3a_double_3x3_reduce*``
``inception3a.branch_3x3dbl.conv1.*``      ``inception_3a_double_3x3_1*``
``inception3a.branch_3x3dbl.conv2.*``      ``inception_3a_double_3x3_2*``
``inception3a.branch_pool.proj.*``         ``inception_3a_pool_proj*``
``fc.*``                                   ``last_linear.*``
=========================================  ======================================
"""
from .mapping import register_table

STEM_NAMES = {"conv1": "conv1_7x7_s2", "conv2_reduce": "conv2_3x3_reduce", "conv2": "conv2_3x3"}
BRANCH_NAMES = {
    "branch_1x1": "1x1",
    "branch_3x3.reduce": "3x3_reduce",
    "branch_3x3.conv": "3x3",
    "branch_3x3dbl.reduce": "double_3x3_reduce",
    "branch_3x3dbl.conv1": "double_3x3_1",
    "branch_3x3dbl.conv2": "double_3x3_2",
    "branch_pool.proj": "pool_proj",
}


def _unit_key(caffe_name, layer, tensor):
    """A ConvBNReLU's ``conv``/``bn`` tensor under the Caffe name: ``name.weight`` or ``name_bn.weight``."""
    return f"{caffe_name}.{tensor}" if layer == "conv" else f"{caffe_name}_bn.{tensor}"


def cadene_key(key):
    """``inception4c.branch_3x3dbl.conv1.bn.running_mean`` -> ``inception_4c_double_3x3_1_bn.running_mean``."""
    parts = key.split(".")
    if parts[0] == "fc":
        return "last_linear." + parts[1]
    if parts[0] in STEM_NAMES:
        return _unit_key(STEM_NAMES[parts[0]], parts[1], parts[2])
    block, *path, layer, tensor = parts
    branch = ".".join(path)
    if not block.startswith("inception") or branch not in BRANCH_NAMES:
        raise KeyError(f"ti.interop: no Cadene name for BNInception key {key!r}")
    return _unit_key(f"inception_{block[len('inception'):]}_{BRANCH_NAMES[branch]}", layer, tensor)


@register_table("BNInception")
def bn_inception_table(model):
    """{our key: Cadene key} for every parameter and buffer of ``model``."""
    return {key: cadene_key(key) for key in model.state_dict()}
