"""Inception-v4 name table: our readable names -> timm's / Cadene's ``features.N`` keys.

The reference keeps the whole body in one ``nn.Sequential`` called ``features`` (0-2 stem convolutions, 3-5
Mixed3a/4a/5a, 6-9 InceptionA, 10 ReductionA, 11-17 InceptionB, 18 ReductionB, 19-21 InceptionC) and its branches
in Sequentials numbered from 0, where a pool (no parameters) takes index 0 of the pool branch, so the 1x1 after it
is ``branch3.1``. Example: our ``inception_b3.branch7x7dbl_2.bn.running_var`` is the reference's
``features.13.branch2.1.bn.running_var``; our ``fc`` is ``last_linear``.
"""
from ..models.inception_v4 import block_names
from .mapping import register_table

# Our sub-module -> the reference's, per block kind (everything below these, ".conv.weight", ".bn.bias", ...,
# is named alike).
STEM = {
    "conv2d_1a_3x3": "features.0", "conv2d_2a_3x3": "features.1", "conv2d_2b_3x3": "features.2",
    "mixed_3a.branch3x3": "features.3.conv",
    "mixed_4a.branch3x3_1": "features.4.branch0.0", "mixed_4a.branch3x3_2": "features.4.branch0.1",
    "mixed_4a.branch7x7x3_1": "features.4.branch1.0", "mixed_4a.branch7x7x3_2": "features.4.branch1.1",
    "mixed_4a.branch7x7x3_3": "features.4.branch1.2", "mixed_4a.branch7x7x3_4": "features.4.branch1.3",
    "mixed_5a.branch3x3": "features.5.conv",
}
INCEPTION_A = {
    "branch1x1": "branch0", "branch3x3_1": "branch1.0", "branch3x3_2": "branch1.1",
    "branch3x3dbl_1": "branch2.0", "branch3x3dbl_2": "branch2.1", "branch3x3dbl_3": "branch2.2",
    "branch_pool": "branch3.1",
}
REDUCTION_A = {
    "branch3x3": "branch0",
    "branch3x3dbl_1": "branch1.0", "branch3x3dbl_2": "branch1.1", "branch3x3dbl_3": "branch1.2",
}
INCEPTION_B = {
    "branch1x1": "branch0", "branch7x7_1": "branch1.0", "branch7x7_2": "branch1.1", "branch7x7_3": "branch1.2",
    **{f"branch7x7dbl_{i + 1}": f"branch2.{i}" for i in range(5)},
    "branch_pool": "branch3.1",
}
REDUCTION_B = {
    "branch3x3_1": "branch0.0", "branch3x3_2": "branch0.1",
    **{f"branch7x7x3_{i + 1}": f"branch1.{i}" for i in range(4)},
}
INCEPTION_C = {
    "branch1x1": "branch0", "branch3x3_1": "branch1_0", "branch3x3_2a": "branch1_1a", "branch3x3_2b": "branch1_1b",
    "branch3x3dbl_1": "branch2_0", "branch3x3dbl_2": "branch2_1", "branch3x3dbl_3": "branch2_2",
    "branch3x3dbl_4a": "branch2_3a", "branch3x3dbl_4b": "branch2_3b", "branch_pool": "branch3.1",
}
BRANCHES = {"inception_a": INCEPTION_A, "reduction_a": REDUCTION_A, "inception_b": INCEPTION_B,
            "reduction_b": REDUCTION_B, "inception_c": INCEPTION_C}
FIRST_BLOCK_INDEX = 6  # features.6 is inception_a1


def module_table():
    """Our module paths -> the reference's, for every module that holds parameters."""
    table = {f"stem.{ours}": ref for ours, ref in STEM.items()}
    for index, name in enumerate(block_names(), start=FIRST_BLOCK_INDEX):
        kind = name.rstrip("0123456789")
        table.update({f"{name}.{ours}": f"features.{index}.{ref}" for ours, ref in BRANCHES[kind].items()})
    table["fc"] = "last_linear"
    return table


@register_table("InceptionV4")
def inception_v4_table(model):
    """Our state_dict key -> the reference's: the module path is looked up, the tensor name kept."""
    modules = module_table()
    keys = {}
    for key in model.state_dict():
        module_path, _, tensor_name = key.rpartition(".")
        if module_path.endswith((".conv", ".bn")):  # a BasicConv2d's conv or bn
            module_path, _, unit_part = module_path.rpartition(".")
            tensor_name = f"{unit_part}.{tensor_name}"
        if module_path not in modules:
            raise KeyError(f"inception_v4 name table: no reference name for {key!r} (module {module_path!r})")
        keys[key] = f"{modules[module_path]}.{tensor_name}"
    return keys
