"""``ti.interop.compare``: a correct block agrees to rounding; each classic bug is found at the module that has it;
near-ties are explained, not flagged; one-sided modules, shape mismatches and NaNs appear in the table."""
import numpy as np
import pytest

import tinyinception as ti
import tinyinception.functional as F
from tinyinception import nn
from tinyinception.interop.compare import Difference
from tinyinception.interop.discontinuities import PoolGeometry, argmax_flips, pool_windows, relu_flips
from tinyinception.interop.module_pairs import align_leftovers, pair_modules
from tinyinception.models.common import BasicConv2d

torch = pytest.importorskip("torch")
tnn = torch.nn
pytestmark = pytest.mark.torch


# --- one Inception block, in each framework, under the same names ---------------------------------------------
class Block(nn.Module):
    """1x1 | 1x1 -> 3x3 | 1x1 -> 5x5 | 3x3 average pool -> 1x1, concatenated (x: (N, cin, H, W))."""

    def __init__(self, cin=16, pad5=2, count_include_pad=False, eps5=1e-3):
        super().__init__()
        self.branch1 = BasicConv2d(cin, 8, 1)
        self.branch3 = nn.Sequential(BasicConv2d(cin, 8, 1), BasicConv2d(8, 12, 3, padding=1))
        self.branch5 = nn.Sequential(BasicConv2d(cin, 4, 1, eps=eps5), BasicConv2d(4, 6, 5, padding=pad5))
        self.branch_pool = nn.Sequential(nn.AvgPool2d(3, 1, 1, count_include_pad=count_include_pad),
                                         BasicConv2d(cin, 4, 1))

    def forward(self, x):
        return F.concat([self.branch1(x), self.branch3(x), self.branch5(x), self.branch_pool(x)], dim=1)


class TorchUnit(tnn.Module):
    def __init__(self, cin, cout, k, padding=0):
        super().__init__()
        self.conv = tnn.Conv2d(cin, cout, k, padding=padding, bias=False)
        self.bn = tnn.BatchNorm2d(cout, eps=1e-3)

    def forward(self, x):
        return torch.nn.functional.relu(self.bn(self.conv(x)), inplace=True)


class TorchBlock(tnn.Module):
    def __init__(self, cin=16):
        super().__init__()
        self.branch1 = TorchUnit(cin, 8, 1)
        self.branch3 = tnn.Sequential(TorchUnit(cin, 8, 1), TorchUnit(8, 12, 3, padding=1))
        self.branch5 = tnn.Sequential(TorchUnit(cin, 4, 1), TorchUnit(4, 6, 5, padding=2))
        self.branch_pool = tnn.Sequential(tnn.AvgPool2d(3, 1, 1, count_include_pad=False), TorchUnit(cin, 4, 1))

    def forward(self, x):
        return torch.cat([self.branch1(x), self.branch3(x), self.branch5(x), self.branch_pool(x)], 1)


def give_stats(model):
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, tnn.BatchNorm2d):  # statistics far from the defaults, so eps matters
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.001, 0.01)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
    return model


def torch_block(seed=0):
    torch.manual_seed(seed)
    return give_stats(TorchBlock()).eval()


def image(shape=(2, 16, 12, 12), seed=1):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


# --- a correct block ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_correct_block_has_no_divergence(dtype):
    ours = Block().eval()
    if dtype == np.float64:
        ours.double()
    result = ti.interop.compare(ours, torch_block(), image(), load_weights=True)
    assert result.first_divergence is None, result.table()
    assert result.dtype == dtype
    names = [row.name for row in result.rows]
    assert names.index("branch1.conv") < names.index("branch1.bn") < names.index("branch1") < names.index("")
    for row in result.rows:
        assert row.status in ("ok", "near-tie", "explained"), row
        assert row.output is not None and row.grad is not None
    # the yardstick is measured: float32 rounding shows in the convolution, float64's is ~2**-29 of it
    conv = result.row("branch3.1.conv")
    assert 0 < conv.output_yardstick < (1e-5 if dtype == np.float32 else 1e-13)


def test_training_mode_agrees_and_leaves_both_models_unchanged():
    ours, reference = Block(), torch_block().train()
    ours.load_state_dict({k: v.numpy() for k, v in reference.state_dict().items()})
    before_ours = {k: v.copy() for k, v in ours.state_dict().items()}
    before_ref = {k: v.clone() for k, v in reference.state_dict().items()}
    result = ti.interop.compare(ours, reference, image())
    assert result.first_divergence is None, result.table()
    for key, value in ours.state_dict().items():
        np.testing.assert_array_equal(value, before_ours[key], err_msg=key)
    for key, value in reference.state_dict().items():
        assert torch.equal(value, before_ref[key]), key
    assert all(p.grad is None for p in ours.parameters())


# --- the classic bugs, each found where it is ----------------------------------------------------------------------
def test_five_by_five_padded_one_is_found_at_that_convolution():
    result = ti.interop.compare(Block(pad5=1).eval(), torch_block(), image(), load_weights=True)
    assert result.first_divergence == "branch5.1.conv", result.table()
    row = result.row("branch5.1.conv")
    assert row.shape == (2, 6, 10, 10) and row.reference_shape == (2, 6, 12, 12)
    # our block cannot concatenate 12x12 with 10x10 maps: reported, not raised
    assert result.errors["ours"][0] == ""
    assert "ours raised" in result.table()


def test_count_include_pad_the_wrong_way_is_found_at_the_pool():
    result = ti.interop.compare(Block(count_include_pad=True).eval(), torch_block(), image(), load_weights=True)
    assert result.first_divergence == "branch_pool.0", result.table()
    assert result.row("branch_pool.0").status == "diverges"
    assert "errors" not in result.summary()


def test_batchnorm_eps_is_found_at_that_batchnorm():
    result = ti.interop.compare(Block(eps5=1e-5).eval(), torch_block(), image(), load_weights=True)
    assert result.first_divergence == "branch5.0.bn", result.table()
    conv = result.row("branch5.0.conv")  # its output agrees; its gradient comes back through the bad BatchNorm
    assert conv.status == "affected" and "branch5.0.bn" in conv.note
    row = result.first_divergent_row
    assert row.output.abs > 100 * row.output_yardstick


# --- near-ties ------------------------------------------------------------------------------------------------------
class SumThenPool(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv = nn.Conv2d(channels, 1, 1, bias=False)
        self.pool = nn.MaxPool2d(2, 2)

    def forward(self, x):
        return self.pool(self.conv(x))


class TorchSumThenPool(tnn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv = tnn.Conv2d(channels, 1, 1, bias=False)
        self.pool = tnn.MaxPool2d(2, 2)

    def forward(self, x):
        return self.pool(self.conv(x))


def near_tie_input(channels=64, windows=32):
    """Each 2x2 window: two pixels holding the same channel values in different orders (their sums over channels
    are equal, but rounded differently by each implementation) and two pixels far below them."""
    rng = np.random.default_rng(3)
    x = np.full((1, channels, 2 * windows, 2 * windows), -100.0, dtype=np.float32)
    values = rng.standard_normal((channels, windows, windows)).astype(np.float32)
    x[0, :, 0::2, 0::2] = values
    x[0, :, 0::2, 1::2] = values[rng.permutation(channels)]
    return x


def test_max_pool_near_tie_is_explained_not_a_divergence():
    channels = 64
    ours, reference = SumThenPool(channels), TorchSumThenPool(channels)
    with torch.no_grad():
        reference.conv.weight.fill_(1.0)
    result = ti.interop.compare(ours, reference, near_tie_input(channels), load_weights=True)
    pool = result.row("pool")
    assert pool.argmax is not None and pool.argmax.count > 0, result.table()
    assert pool.status == "near-tie"
    assert pool.argmax.widest_gap < 1e-4  # the flipped windows' two largest values are rounding apart
    # the gradient into the convolution goes to other pixels; PyTorch's own float64 run picks other pixels too
    # (these ties are exact in exact arithmetic), so its yardstick is as large: nothing diverges
    assert result.row("conv").status in ("ok", "explained")
    assert result.first_divergence is None


def _recording(outputs, grads, pool_inputs=None):
    from tinyinception.interop.recording import Record, Recording
    records = {}
    for name, output in outputs.items():
        records[name] = Record(name, "MaxPool2d" if name == "pool" else "Conv2d", output=output, grad=grads[name],
                               calls=1)
        if pool_inputs and name in pool_inputs:
            records[name].pool_input = pool_inputs[name]
            records[name].pool = tnn.MaxPool2d(2, 2)
    return Recording(records, list(outputs), [])


def test_a_gradient_difference_upstream_of_a_near_tie_is_explained_by_it():
    """A float32 difference that PyTorch's own float64 run does not share (its yardstick is small)."""
    from tinyinception.interop.compare import _build_rows
    conv_out = np.array([[[[1.0, 1.0 + 1e-7], [0.0, 0.0]]]])
    conv_out_ours = np.array([[[[1.0 + 2e-7, 1.0], [0.0, 0.0]]]])
    pool_out = np.array([[[[1.0 + 1e-7]]]])
    seed = np.ones((1, 1, 1, 1))
    grad_ref, grad_ours = np.array([[[[0.0, 1.0], [0.0, 0.0]]]]), np.array([[[[1.0, 0.0], [0.0, 0.0]]]])
    ours = _recording({"conv": conv_out_ours, "pool": pool_out + 1e-7}, {"conv": grad_ours, "pool": seed},
                      {"pool": conv_out_ours})
    same = _recording({"conv": conv_out, "pool": pool_out}, {"conv": grad_ref, "pool": seed}, {"pool": conv_out})
    other = _recording({"conv": conv_out + 1e-7, "pool": pool_out + 1e-7}, {"conv": grad_ref, "pool": seed},
                       {"pool": conv_out})
    rows = _build_rows(ours, same, other, {"conv": "conv", "pool": "pool"}, np.float32, 10.0)
    assert [row.status for row in rows] == ["explained", "near-tie"]
    assert "pool" in rows[0].note
    # without the near-tie, the same gradient difference is a divergence
    rows = _build_rows(ours, same, other, {"conv": "conv"}, np.float32, 10.0)
    assert rows[0].status == "diverges" and {row.status for row in rows[1:]} == {"ours only", "reference only"}


def test_relu_and_argmax_flip_counting():
    assert relu_flips(np.array([0.0, 1e-7, 2.0]), np.array([1e-8, 0.0, 2.0])).count == 2
    assert relu_flips(np.array([-1.0, 0.0]), np.array([0.0, 0.0])) is None  # not a ReLU output
    x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    y = x.copy()
    y[0, 0, 0, 0] = 5.5  # the top-left window's max moves from (1, 1) = 5 to (0, 0)
    geometry = PoolGeometry((2, 2), (2, 2), (0, 0), (1, 1))
    flips = argmax_flips(x, y, geometry, (2, 2))
    assert flips.count == 1 and flips.widest_gap == pytest.approx(0.5)
    # ceil-mode windows read -inf past the edge, as the pool does
    windows = pool_windows(np.ones((1, 1, 3, 3), np.float32), PoolGeometry((2, 2), (2, 2), (0, 0), (1, 1)), (2, 2))
    assert windows.shape == (1, 1, 2, 2, 4) and np.isneginf(windows[0, 0, 1, 1]).sum() == 3


# --- what only one side has, shapes, NaNs --------------------------------------------------------------------------
class WithExtra(Block):
    def __init__(self):
        super().__init__()
        self.extra = nn.Identity()

    def forward(self, x):
        return self.extra(super().forward(x))


class TorchWithOther(TorchBlock):
    def __init__(self):
        super().__init__()
        self.other = tnn.Dropout(0.0)  # another kind than ours: the two are not paired

    def forward(self, x):
        return self.other(super().forward(x))


def test_one_sided_modules_are_rows_not_errors():
    reference = TorchWithOther().eval()
    result = ti.interop.compare(WithExtra().eval(), reference, image(), load_weights=True)
    statuses = {row.label: row.status for row in result.rows}
    assert statuses["extra"] == "ours only"
    assert statuses["- -> other"] == "reference only"
    assert result.first_divergence is None
    table = result.table()
    assert "ours only" in table and "reference only" in table


def test_nan_input_agreeing_nans_are_not_divergences():
    x = image()
    x[0, 3, 5, 5] = np.nan
    result = ti.interop.compare(Block().eval(), torch_block(), x, load_weights=True, grads=False)
    assert result.first_divergence is None, result.table()
    assert np.isnan(result.row("branch1.conv").output.abs) == False  # noqa: E712  (finite part compared)


def test_difference_counts_nonfinite_mismatches():
    ours = np.array([1.0, np.nan, np.inf, -np.inf, 2.0])
    reference = np.array([1.5, np.nan, np.inf, np.inf, np.nan])
    diff = Difference.between(ours, reference)
    assert diff.nonfinite == 2 and diff.abs == 0.5 and diff.rel == pytest.approx(0.5 / 1.5)


def test_table_and_plot():
    result = ti.interop.compare(Block(count_include_pad=True).eval(), torch_block(), image(), load_weights=True)
    text = result.table()
    assert "DIVERGES" in text and "branch_pool.0" in text.splitlines()[0]
    figure = result.plot()
    assert figure.axes[0].get_yscale() == "log"
    assert any("first divergence" in t.get_text() for t in figure.axes[0].get_legend().get_texts())


# --- pairing by the interop name table ----------------------------------------------------------------------------
def test_modules_pair_through_a_name_table_and_leftover_children():
    ours = {"b.reduce.conv": "Conv2d", "b.reduce": "BasicConv2d", "b.pool": "MaxPool2d", "b.proj.conv": "Conv2d",
            "b.proj": "BasicConv2d", "b": "Branch", "": "Net"}
    theirs = {"b.0.conv": "Conv2d", "b.0": "BasicConv2d", "b.1": "MaxPool2d", "b.2.conv": "Conv2d",
              "b.2": "BasicConv2d", "b": "Seq", "": "Net"}
    table = {"b.reduce.conv.weight": "b.0.conv.weight", "b.proj.conv.weight": "b.2.conv.weight"}
    pairs = pair_modules(ours, theirs, table)
    assert pairs == {"b.reduce.conv": "b.0.conv", "b.reduce": "b.0", "b.proj.conv": "b.2.conv", "b.proj": "b.2",
                     "b": "b", "": "", "b.pool": "b.1"}
    assert pair_modules(ours, theirs, name_map={"b.pool": "b.1"}) == {"b.pool": "b.1"}


def test_a_flat_reference_pairs_by_table_without_climbing_to_its_root_and_the_rest_by_kind_and_shape():
    """Cadene's BN-Inception defines every layer in its root module: ``conv1.conv`` -> ``conv1_7x7_s2``, but our
    ``conv1`` is not the reference's root; the pools pair by kind and output shape, in the order they ran."""
    ours = {"": "Net", "conv1.conv": "Conv2d", "conv1": "Unit", "pool1": "MaxPool2d", "b.conv.conv": "Conv2d",
            "b.conv": "Unit", "b.pool": "AvgPool2d", "b": "Block"}
    theirs = {"": "Flat", "conv1_7x7": "Conv2d", "relu1": "ReLU", "pool1_s2": "MaxPool2d", "b_conv": "Conv2d",
              "b_relu": "ReLU", "b_pool": "AvgPool2d", "global_pool": "AvgPool2d"}
    table = {"conv1.conv.weight": "conv1_7x7.weight", "b.conv.conv.weight": "b_conv.weight"}
    pairs = pair_modules(ours, theirs, table)
    assert pairs == {"": "", "conv1.conv": "conv1_7x7", "b.conv.conv": "b_conv"}
    ran_ours = [("conv1.conv", "Conv2d", (1, 8, 8, 8)), ("conv1", "Unit", (1, 8, 8, 8)),
                ("pool1", "MaxPool2d", (1, 8, 4, 4)), ("b.pool", "AvgPool2d", (1, 8, 4, 4)), ("b", "Block", (1, 8))]
    ran_theirs = [("conv1_7x7", "Conv2d", (1, 8, 8, 8)), ("relu1", "ReLU", (1, 8, 8, 8)),
                  ("pool1_s2", "MaxPool2d", (1, 8, 4, 4)), ("b_pool", "AvgPool2d", (1, 8, 4, 4)),
                  ("global_pool", "AvgPool2d", (1, 8, 1, 1))]
    align_leftovers(pairs, ran_ours, ran_theirs)
    assert pairs["pool1"] == "pool1_s2" and pairs["b.pool"] == "b_pool"
    assert "conv1" not in pairs and "b" not in pairs and "global_pool" not in pairs.values()


def test_a_moved_flatten_is_compared_element_by_element():
    class Ours(nn.Module):
        def __init__(self):
            super().__init__()
            self.pool = nn.AvgPool2d(2, 2)
            self.head = nn.Flatten()

        def forward(self, x):
            return self.head(self.pool(x))

    class Theirs(tnn.Module):
        def __init__(self):
            super().__init__()
            self.pool = tnn.AvgPool2d(2, 2)
            self.head = tnn.Identity()

        def forward(self, x):
            return self.head(self.pool(x))

    result = ti.interop.compare(Ours(), Theirs(), image((2, 3, 4, 4)))
    head = result.row("head")
    assert head.shape == (2, 12) and head.reference_shape == (2, 3, 2, 2)
    assert head.status == "ok" and "element by element" in head.note
    assert result.row("").status == "ok" and result.first_divergence is None


class BatchNormAct2d(tnn.BatchNorm2d):
    """timm's way: the BatchNorm module applies the activation itself (``act``)."""

    def __init__(self, channels):
        super().__init__(channels, eps=1e-3)
        self.act = tnn.ReLU()

    def forward(self, x):
        return self.act(super().forward(x))


class TorchConvNormAct(tnn.Module):
    def __init__(self, cin, cout, k, padding=0):
        super().__init__()
        self.conv = tnn.Conv2d(cin, cout, k, padding=padding, bias=False)
        self.bn = BatchNormAct2d(cout)

    def forward(self, x):
        return self.bn(self.conv(x))


def test_a_batchnorm_that_applies_its_relu_is_compared_after_ours():
    class Ours(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = BasicConv2d(16, 8, 3, padding=1), BasicConv2d(8, 8, 1)

        def forward(self, x):
            return self.b(self.a(x))

    class Theirs(tnn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = TorchConvNormAct(16, 8, 3, padding=1), TorchConvNormAct(8, 8, 1)

        def forward(self, x):
            return self.b(self.a(x))

    result = ti.interop.compare(Ours().eval(), give_stats(Theirs()).eval(), image(), load_weights=True)
    assert result.first_divergence is None, result.table()
    bn = result.row("a.bn")
    assert bn.status == "ok" and bn.grad is not None
    # recorded after the ReLU, like the reference's module: no negative values
    assert result.row("a.bn").relu is not None
