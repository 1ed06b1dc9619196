"""concat (the filter concatenation of every Inception block) and the scaled residual add of Inception-ResNet."""
import numpy as np
import pytest

import tinyinception as ti
import tinyinception.functional as F
from helpers import check_gradcheck, check_parity


def test_concat_gradcheck():
    assert check_gradcheck(lambda a, b, c: F.concat([a, b, c], dim=1), [(2, 1, 3, 3), (2, 4, 3, 3), (2, 2, 3, 3)])


@pytest.mark.torch
@pytest.mark.parametrize("dim", [0, 1, 3, -1])
def test_concat_matches_torch(dim):
    torch = pytest.importorskip("torch")
    shapes = [tuple(n + (i if d == dim % 4 else 0) for d, n in enumerate((2, 3, 4, 5))) for i in range(3)]
    check_parity(lambda *xs: ti.cat(xs, dim=dim), lambda *xs: torch.cat(xs, dim=dim), shapes)


def test_concat_names_the_dimension_that_differs():
    a = ti.tensor(np.zeros((2, 3, 4, 4), np.float32))
    b = ti.tensor(np.zeros((2, 5, 4, 3), np.float32))
    with pytest.raises(ValueError, match=r"dimension 3 differs \(4 vs 3\)"):
        F.concat([a, b], dim=1)


def test_concat_gradient_only_for_inputs_that_need_it():
    a = ti.tensor(np.ones((1, 2, 2, 2), np.float32), requires_grad=True)
    b = ti.tensor(np.ones((1, 3, 2, 2), np.float32))
    F.concat([a, b]).sum().backward()
    assert a.grad.shape == (1, 2, 2, 2) and b.grad is None


@pytest.mark.parametrize("scale", [0.17, 0.1, 1.0])
def test_residual_add_gradcheck(scale):
    assert check_gradcheck(lambda x, branch: F.residual_add(x, branch, scale), [(2, 3, 4, 4), (2, 3, 4, 4)])


@pytest.mark.torch
def test_residual_add_matches_torch():
    pytest.importorskip("torch")
    check_parity(lambda x, b: F.residual_add(x, b, 0.2), lambda x, b: b * 0.2 + x, [(2, 3, 4, 4), (2, 3, 4, 4)])


def test_residual_add_rejects_different_shapes():
    with pytest.raises(ValueError, match="residual_add"):
        F.residual_add(ti.tensor(np.zeros((1, 2, 3, 3), np.float32)), ti.tensor(np.zeros((1, 3, 3, 3), np.float32)))
