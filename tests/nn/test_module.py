"""`Module`: registration, names and order as torch.nn, state_dict, modes, zero_grad, repr, hooks."""
from collections import OrderedDict

import numpy as np
import pytest

import tinyinception as ti
from tinyinception import nn


# --------------------------------------------------------------------------------------------------------------
# The same nested structure in both libraries (built by one function taking the `nn` namespace)
# --------------------------------------------------------------------------------------------------------------
def build(lib, make_buffer):
    class Block(lib.Module):
        def __init__(self, width):
            super().__init__()
            self.fc = lib.Linear(width, width)
            self.act = lib.ReLU()
            self.register_buffer("running_mean", make_buffer(width))
            self.drop = lib.Dropout(0.3)

        def forward(self, x):
            return self.drop(self.act(self.fc(x))) + self.running_mean

    class Net(lib.Module):
        def __init__(self):
            super().__init__()
            self.stem = lib.Linear(3, 4, bias=False)
            self.blocks = lib.Sequential(Block(4), Block(4))
            self.heads = lib.ModuleList([lib.Linear(4, 2), lib.Sequential(OrderedDict(proj=lib.Linear(4, 2)))])
            self.scale = lib.Parameter(make_buffer(2) + 1.0)

        def forward(self, x):
            h = self.blocks(self.stem(x))
            return self.heads[0](h) * self.scale + self.heads[1](h)

    return Net()


def ti_net():
    return build(nn, lambda n: np.zeros(n, np.float32))


def torch_net(torch):
    return build(torch.nn, lambda n: torch.zeros(n))


@pytest.fixture
def torch():
    return pytest.importorskip("torch")


@pytest.mark.torch
def test_names_and_order_match_torch(torch):
    ours, theirs = ti_net(), torch_net(torch)
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert [n for n, _ in ours.named_buffers()] == [n for n, _ in theirs.named_buffers()]
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in theirs.named_modules()]
    assert [n for n, _ in ours.named_children()] == [n for n, _ in theirs.named_children()]
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert [p.shape for p in ours.parameters()] == [tuple(p.shape) for p in theirs.parameters()]
    assert ours.num_parameters() == sum(p.numel() for p in theirs.parameters())


@pytest.mark.torch
def test_loading_torch_weights_gives_the_same_output(torch):
    ours, theirs = ti_net(), torch_net(torch)
    ours.load_state_dict(theirs.state_dict())
    ours.eval(), theirs.eval()
    x = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    expected = theirs(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(ours(ti.tensor(x)).numpy(), expected, rtol=1e-5, atol=1e-6)


def test_registration_by_attribute():
    net = ti_net()
    assert isinstance(net.stem.weight, nn.Parameter) and net.stem.bias is None
    assert "stem" in net._modules and "scale" in net._parameters
    net.extra = nn.Linear(2, 2)
    assert [n for n, _ in net.named_children()][-1] == "extra"
    net.extra = None  # replacing a submodule by None unregisters it
    assert "extra" not in net._modules and net.extra is None
    net.note = "plain attributes are not registered"
    assert "note" not in net.state_dict()
    del net.scale
    assert "scale" not in dict(net.named_parameters())


def test_parameter_slot_refuses_non_parameters():
    layer = nn.Linear(2, 2)
    with pytest.raises(TypeError, match="cannot assign ndarray as parameter 'weight'"):
        layer.weight = np.zeros((2, 2), np.float32)


def test_assignment_before_super_init_is_explained():
    class Forgetful(nn.Module):
        def __init__(self):
            self.fc = nn.Linear(2, 2)

    with pytest.raises(AttributeError, match=r"call super\(\).__init__\(\) before assigning"):
        Forgetful()


def test_shared_parameters_are_listed_once():
    shared = nn.Linear(2, 2)
    net = nn.Sequential(shared, shared)
    assert [n for n, _ in net.named_parameters()] == ["0.weight", "0.bias"]


def test_children_and_modules():
    net = ti_net()
    assert [type(m).__name__ for m in net.children()] == ["Linear", "Sequential", "ModuleList"]
    assert sum(1 for _ in net.modules()) == 1 + 1 + 1 + 2 * 4 + 1 + 1 + 1 + 1


def test_buffers_are_saved_but_not_learned():
    net = ti_net()
    names = [n for n, _ in net.named_parameters()]
    assert "blocks.0.running_mean" not in names
    assert "blocks.0.running_mean" in net.state_dict()
    assert not net.blocks[0].running_mean.requires_grad
    net.blocks[0].running_mean = np.ones(4, np.float32)  # assigning to a buffer keeps it a buffer
    assert net.state_dict()["blocks.0.running_mean"].tolist() == [1.0] * 4


# --------------------------------------------------------------------------------------------------------------
# state_dict / load_state_dict
# --------------------------------------------------------------------------------------------------------------
def test_state_dict_roundtrip_copies_in_place():
    source, target = ti_net(), ti_net()
    weight_before = target.stem.weight
    state = {k: v.copy() for k, v in source.state_dict().items()}
    assert target.load_state_dict(state) == ([], [])
    assert target.stem.weight is weight_before  # same Parameter object, new values
    for key, value in target.state_dict().items():
        np.testing.assert_array_equal(value, state[key])
        assert value.dtype == np.float32


def test_state_dict_holds_the_modules_own_arrays():
    net = nn.Linear(2, 3)
    assert net.state_dict()["weight"] is net.weight.data


def test_strict_load_lists_missing_unexpected_and_misshaped_keys():
    net = ti_net()
    state = OrderedDict((k, v.copy()) for k, v in net.state_dict().items())
    del state["stem.weight"]
    state["bogus.weight"] = np.zeros(3, np.float32)
    state["heads.0.bias"] = np.zeros(5, np.float32)
    with pytest.raises(KeyError) as info:
        net.load_state_dict(state)
    message = str(info.value)
    assert "missing keys (1): stem.weight" in message
    assert "unexpected keys (1): bogus.weight" in message
    assert "heads.0.bias: checkpoint (5,), model (2,)" in message
    assert message.startswith("load_state_dict for Net failed:\n")  # printed as written, not as a quoted repr
    assert isinstance(info.value, RuntimeError)  # what torch raises, for code written against torch


def test_non_strict_load_returns_missing_and_unexpected():
    net = ti_net()
    state = {k: np.full(v.shape, 2.0, v.dtype) for k, v in net.state_dict().items() if k != "scale"}
    state["bogus"] = np.zeros(1, np.float32)
    missing, unexpected = net.load_state_dict(state, strict=False)
    assert missing == ["scale"] and unexpected == ["bogus"]
    assert (net.stem.weight.numpy() == 2.0).all()


def test_non_strict_load_still_refuses_wrong_shapes():
    net = nn.Linear(2, 3)
    with pytest.raises(KeyError, match=r"weight: checkpoint \(3, 3\), model \(3, 2\)"):
        net.load_state_dict({"weight": np.zeros((3, 3), np.float32)}, strict=False)


def test_load_keeps_the_model_dtype():
    net = nn.Linear(2, 3)
    net.load_state_dict({k: v.astype(np.float64) for k, v in net.state_dict().items()})
    assert net.weight.dtype == np.float32


# --------------------------------------------------------------------------------------------------------------
# Modes, gradients, dtype, repr, hooks
# --------------------------------------------------------------------------------------------------------------
def test_train_and_eval_propagate_to_every_submodule():
    net = ti_net()
    assert all(m.training for m in net.modules())
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())
    net.blocks.eval()
    assert net.training and not net.blocks[1].drop.training


def test_eval_mode_makes_dropout_deterministic():
    net = ti_net().eval()
    x = ti.tensor(np.ones((2, 3), np.float32))
    np.testing.assert_array_equal(net(x).numpy(), net(x).numpy())


@pytest.mark.parametrize("set_to_none", [True, False])
def test_zero_grad(set_to_none):
    net = ti_net()
    net(ti.tensor(np.ones((2, 3), np.float32))).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad(set_to_none=set_to_none)
    for p in net.parameters():
        assert p.grad is None if set_to_none else not p.grad.any()


def test_requires_grad_false_freezes_parameters():
    net = nn.Linear(2, 2).requires_grad_(False)
    out = net(ti.tensor(np.ones((1, 2), np.float32)))
    assert not out.requires_grad


def test_double_then_float():
    net = ti_net().double()
    assert all(v.dtype == np.float64 for v in net.state_dict().values())
    out = net(ti.tensor(np.ones((1, 3))))
    assert out.dtype == np.float64
    net.float()
    assert all(v.dtype == np.float32 for v in net.state_dict().values())


def test_apply_visits_children_first():
    visited = []
    ti_net().apply(lambda m: visited.append(type(m).__name__))
    assert visited[-1] == "Net" and visited.count("Linear") == 5


@pytest.mark.torch
def test_repr_is_readable_and_like_torch(torch):
    ours = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Sequential(nn.Linear(4, 2, bias=False)))
    theirs = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(),
                                 torch.nn.Sequential(torch.nn.Linear(4, 2, bias=False)))
    assert repr(ours) == repr(theirs)
    assert "(1): Dropout(p=0.3" in repr(ti_net().blocks[0]).replace("(drop)", "(1)")


def test_forward_hooks_see_inputs_and_outputs_and_can_be_removed():
    layer = nn.Linear(3, 2)
    seen = []
    handle = layer.register_forward_hook(lambda module, inputs, output: seen.append((module, inputs, output.shape)))
    x = ti.tensor(np.ones((4, 3), np.float32))
    layer(x)
    assert seen == [(layer, (x,), (4, 2))]
    handle.remove()
    layer(x)
    assert len(seen) == 1


def test_forward_hook_can_replace_the_output_and_hooks_run_in_order():
    layer = nn.Identity()
    layer.register_forward_hook(lambda m, i, out: out * 2.0)
    layer.register_forward_hook(lambda m, i, out: out + 1.0)
    assert layer(ti.tensor([1.0])).tolist() == [3.0]


def test_hook_keys_stay_unique_after_removal():
    layer = nn.Identity()
    calls = []
    first = layer.register_forward_hook(lambda m, i, o: calls.append("first"))
    layer.register_forward_hook(lambda m, i, o: calls.append("second"))
    first.remove()
    layer.register_forward_hook(lambda m, i, o: calls.append("third"))
    layer(ti.tensor([1.0]))
    assert calls == ["second", "third"]


def test_missing_attribute_error_names_the_module():
    with pytest.raises(AttributeError, match="'Linear' object has no attribute 'nonexistent'"):
        _ = nn.Linear(2, 2).nonexistent


def test_module_without_forward():
    with pytest.raises(NotImplementedError, match="Module must define forward"):
        nn.Module()(1)
