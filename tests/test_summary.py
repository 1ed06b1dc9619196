"""``ti.summary``: shapes, parameters and multiply-adds of every module, checked by hand on a small network and
against the published totals (GoogLeNet 1.498 G multiply-adds at 224, torchvision's figure; the golden files'
counts, made by the reference implementations, for GoogLeNet and BN-Inception)."""
import json
import os

import numpy as np
import pytest

import tinyinception as ti
from tinyinception import nn
from tinyinception.summary import Summary, layer_macs

REFERENCE = os.environ.get("TI_REFERENCE_DIR", os.path.join(os.path.dirname(__file__), "reference"))


class Small(nn.Module):
    """conv 3->8 3x3 pad 1 on 8x8, a block (grouped conv 8->8 3x3 stride 2 groups 2, ReLU), linear 128->5,
    and a head that forward never calls."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.block = nn.Sequential(nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=2, bias=False), nn.ReLU())
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(8 * 4 * 4, 5)
        self.unused = nn.Linear(5, 2)

    def forward(self, x):
        return self.fc(self.flatten(self.block(self.conv(x))))


def test_rows_shapes_params_and_macs_by_hand():
    result = ti.summary(Small(), (3, 8, 8), show=False)
    assert isinstance(result, Summary)
    assert [r.name for r in result.rows] == ["conv", "block", "block.0", "block.1", "flatten", "fc", "unused"]
    conv, block, grouped, relu, flatten, fc, unused = result.rows
    assert conv.output_shape == (1, 8, 8, 8) and conv.params == 8 * 3 * 9 + 8 and conv.macs == 8 * 8 * 8 * 3 * 9
    assert grouped.output_shape == (1, 8, 4, 4) and grouped.macs == 8 * 4 * 4 * (8 // 2) * 9
    assert grouped.depth == 2 and block.depth == 1
    assert block.macs == grouped.macs and block.params == grouped.params == 8 * 4 * 9 and relu.macs == 0
    assert flatten.output_shape == (1, 128) and fc.macs == 128 * 5 and fc.params == 128 * 5 + 5
    assert unused.ran is False and unused.output_shape is None and unused.macs == 0
    assert result.total_macs == conv.macs + grouped.macs + fc.macs
    assert result.total_params == conv.params + block.params + fc.params + unused.params
    assert result.used_params == result.total_params - unused.params
    assert result.input_shape == (1, 3, 8, 8) and result.output_shape == (1, 5)


def test_macs_are_per_image_and_modes_restored():
    model = Small().train()
    model.block.eval()
    one = ti.summary(model, (3, 8, 8), show=False)
    three = ti.summary(model, (3, 8, 8), batch_size=3, show=False)
    assert three.total_macs == one.total_macs and three.rows[0].output_shape == (3, 8, 8, 8)
    assert model.training and model.conv.training and not model.block.training and not model.block[0].training


def test_linear_on_extra_dims_counts_every_row():
    assert layer_macs(nn.Linear(4, 3), (2, 7, 3)) == 7 * 4 * 3
    assert layer_macs(nn.ReLU(), (2, 7, 3)) == 0


def test_table_text_and_depth(capsys):
    result = ti.summary(Small(), (3, 8, 8), max_depth=1)
    printed = capsys.readouterr().out
    assert "block" in printed and "block.0" not in printed and "(not run)" in printed
    assert f"multiply-adds per image: {result.total_macs:,}" in printed
    assert "Conv2d" in result.table() and "8x4x4" in result.table()
    assert result.row("fc").params == 645
    with pytest.raises(KeyError, match="nothing"):
        result.row("nothing")


def test_float64_model_runs_in_float64():
    result = ti.summary(Small().double(), (3, 8, 8), show=False)
    assert result.rows[0].output_shape == (1, 8, 8, 8)


def test_bad_input_size_is_refused():
    with pytest.raises(ValueError, match="summary: input_size"):
        ti.summary(Small(), (3, 0, 8), show=False)


def test_fused_batchnorm_counts_as_run():
    """BasicConv2d calls its BatchNorm through forward_relu (no hook): it still counts among the used params."""
    from tinyinception.models.common import BasicConv2d
    result = ti.summary(BasicConv2d(3, 4, 3), (3, 5, 5), show=False)
    assert result.row("bn").ran and result.used_params == result.total_params == 4 * 27 + 8


def golden_macs(network):
    path = os.path.join(REFERENCE, "golden", f"{network}.npz")
    return json.loads(str(np.load(path)["meta"]))["macs_conv_linear_per_image"]


@pytest.mark.slow
def test_googlenet_total_equals_torchvision_figure():
    result = ti.summary(ti.models.googlenet(), (3, 224, 224), show=False)
    assert round(result.total_macs / 1e9, 3) == 1.498                      # torchvision's published GFLOPS
    assert result.total_macs == golden_macs("googlenet")["eval@224"]        # counted on the reference itself
    assert result.used_params == 6_624_904 and result.total_params == 13_004_888  # aux heads idle in eval
    assert not result.row("aux1").ran and result.row("inception5b").output_shape == (1, 1024, 7, 7)


@pytest.mark.slow
def test_bn_inception_total_equals_reference_count():
    result = ti.summary(ti.models.bn_inception(), (3, 224, 224), show=False)
    assert result.total_macs == golden_macs("bninception")["eval@224"] == 2_032_600_064
