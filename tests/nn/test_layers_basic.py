"""The basic layers: Linear (init, forward and gradients vs torch), ReLU, Dropout, Flatten, Identity, Softmax,
and the containers Sequential and ModuleList."""
import math
from collections import OrderedDict

import numpy as np
import pytest
from helpers import assert_close, check_gradcheck

import tinyinception as ti
from tinyinception import nn


@pytest.fixture
def torch():
    return pytest.importorskip("torch")


# --------------------------------------------------------------------------------------------------------------
# Linear
# --------------------------------------------------------------------------------------------------------------
def test_linear_shapes_and_dtype():
    layer = nn.Linear(5, 3)
    assert layer.weight.shape == (3, 5) and layer.bias.shape == (3,)
    assert layer.weight.dtype == np.float32 and layer.weight.requires_grad
    out = layer(ti.tensor(np.ones((2, 4, 5), np.float32)))
    assert out.shape == (2, 4, 3) and out.dtype == np.float32
    assert nn.Linear(5, 3, dtype=np.float64).weight.dtype == np.float64


def test_linear_init_stays_inside_pytorch_bounds():
    """PyTorch: weight and bias ~ U(-1/sqrt(in_features), 1/sqrt(in_features))."""
    in_features, out_features = 64, 256
    layer = nn.Linear(in_features, out_features)
    bound = 1 / math.sqrt(in_features)
    weight, bias = layer.weight.numpy(), layer.bias.numpy()
    assert np.abs(weight).max() <= bound and np.abs(bias).max() <= bound
    assert np.abs(weight).max() > 0.95 * bound  # the whole range is used
    uniform_std = bound / math.sqrt(3)
    assert abs(weight.std() - uniform_std) < 0.03 * uniform_std
    assert abs(weight.mean()) < 0.05 * uniform_std


@pytest.mark.torch
def test_linear_init_statistics_match_torch(torch):
    ours = nn.Linear(128, 200).weight.numpy()
    theirs = torch.nn.Linear(128, 200).weight.detach().numpy()
    assert abs(ours.std() - theirs.std()) < 0.03 * theirs.std()
    assert abs(np.abs(ours).max() - np.abs(theirs).max()) < 0.01 * np.abs(theirs).max()


def test_linear_init_is_repeatable_with_manual_seed():
    ti.manual_seed(42)
    first = nn.Linear(4, 3).weight.numpy().copy()
    ti.manual_seed(42)
    np.testing.assert_array_equal(nn.Linear(4, 3).weight.numpy(), first)


@pytest.mark.torch
@pytest.mark.parametrize("bias", [True, False])
def test_linear_module_matches_torch_forward_and_gradients(torch, bias):
    ours, theirs = nn.Linear(6, 4, bias=bias), torch.nn.Linear(6, 4, bias=bias)
    ours.load_state_dict(theirs.state_dict())
    x = np.random.default_rng(0).standard_normal((3, 6)).astype(np.float32)
    upstream = np.random.default_rng(1).standard_normal((3, 4)).astype(np.float32)
    x_ours, x_theirs = ti.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    out_ours, out_theirs = ours(x_ours), theirs(x_theirs)
    assert_close(out_ours.numpy(), out_theirs.detach().numpy(), 1e-5, 1e-5, "Linear output")
    out_ours.backward(upstream)
    out_theirs.backward(torch.from_numpy(upstream))
    assert_close(x_ours.grad, x_theirs.grad.numpy(), 1e-5, 1e-5, "input gradient")
    assert_close(ours.weight.grad, theirs.weight.grad.numpy(), 1e-5, 1e-5, "weight gradient")
    if bias:
        assert_close(ours.bias.grad, theirs.bias.grad.numpy(), 1e-5, 1e-5, "bias gradient")


def test_linear_module_gradcheck_in_float64():
    """Gradients for the input, the weight and the bias of a float64 Linear layer, against finite differences."""
    layer = nn.Linear(3, 2, dtype=np.float64)
    x = ti.tensor(np.random.default_rng(0).standard_normal((4, 3)), requires_grad=True)
    assert ti.gradcheck(lambda inp, weight, bias: layer(inp), (x, layer.weight, layer.bias))


def test_linear_rejects_wrong_feature_count():
    with pytest.raises(ValueError, match=r"Linear\(in_features=4\) got input of shape \(2, 3\) with 3 features"):
        nn.Linear(4, 2)(ti.tensor(np.ones((2, 3), np.float32)))


def test_linear_rejects_float64_input_for_float32_weights():
    with pytest.raises(TypeError, match="linear: input has dtype float64 but weight has dtype float32"):
        nn.Linear(3, 2)(ti.tensor(np.ones((2, 3))))


def test_linear_repr():
    assert repr(nn.Linear(3, 2, bias=False)) == "Linear(in_features=3, out_features=2, bias=False)"


# --------------------------------------------------------------------------------------------------------------
# Layers without parameters
# --------------------------------------------------------------------------------------------------------------
def test_relu_module():
    x = ti.tensor([-1.0, 0.5, 2.0], requires_grad=True)
    out = nn.ReLU(inplace=True)(x)
    assert out.tolist() == [0.0, 0.5, 2.0] and x.tolist() == [-1.0, 0.5, 2.0]  # never overwrites its input
    out.sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 1.0]


def test_dropout_module_follows_train_and_eval():
    layer = nn.Dropout(0.5)
    x = ti.tensor(np.ones((50, 50), np.float32))
    dropped = layer(x).numpy()
    assert set(np.unique(dropped)) == {0.0, 2.0}
    layer.eval()
    assert layer(x) is x
    assert repr(layer) == "Dropout(p=0.5)"
    with pytest.raises(ValueError, match=r"Dropout: probability must be in \[0, 1\], got -0.1"):
        nn.Dropout(-0.1)


@pytest.mark.torch
def test_flatten_identity_softmax_match_torch(torch):
    x = np.random.default_rng(0).standard_normal((2, 3, 2, 2)).astype(np.float32)
    pairs = [(nn.Flatten(), torch.nn.Flatten()), (nn.Flatten(0, 2), torch.nn.Flatten(0, 2)),
             (nn.Identity(7, key=1), torch.nn.Identity(7, key=1)), (nn.Softmax(dim=1), torch.nn.Softmax(dim=1))]
    for ours, theirs in pairs:
        assert_close(ours(ti.tensor(x)).numpy(), theirs(torch.from_numpy(x)).numpy(), 1e-6, 1e-6, repr(ours))


def test_flatten_gradcheck():
    assert check_gradcheck(lambda x: nn.Flatten()(x), [(2, 3, 2)])


def test_no_parameter_layers_have_no_parameters():
    for layer in (nn.ReLU(), nn.Dropout(), nn.Flatten(), nn.Identity(), nn.Softmax(1)):
        assert list(layer.parameters()) == [] and layer.state_dict() == OrderedDict()


# --------------------------------------------------------------------------------------------------------------
# Containers
# --------------------------------------------------------------------------------------------------------------
def test_sequential_runs_in_order_and_indexes_like_a_list():
    first, relu, last = nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)
    seq = nn.Sequential(first, relu, last)
    assert seq[0] is first and seq[-1] is last and len(seq) == 3 and list(seq) == [first, relu, last]
    head = seq[:2]
    assert isinstance(head, nn.Sequential) and list(head) == [first, relu]
    x = ti.tensor(np.ones((5, 3), np.float32))
    np.testing.assert_array_equal(seq(x).numpy(), last(relu(first(x))).numpy())
    assert [n for n, _ in seq.named_parameters()] == ["0.weight", "0.bias", "2.weight", "2.bias"]


def test_sequential_with_names_and_append():
    seq = nn.Sequential(OrderedDict(fc=nn.Linear(2, 2), act=nn.ReLU()))
    assert [n for n, _ in seq.named_children()] == ["fc", "act"]
    assert seq.fc is seq[0]
    seq.append(nn.Identity())
    assert len(seq) == 3 and [n for n, _ in seq.named_children()][-1] == "2"


def test_module_list_holds_modules():
    layers = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
    layers.append(nn.ReLU())
    assert len(layers) == 4 and isinstance(layers[3], nn.ReLU) and isinstance(layers[-2], nn.Linear)
    assert [n for n, _ in layers.named_parameters()][:2] == ["0.weight", "0.bias"]
    assert sum(1 for _ in layers) == 4
