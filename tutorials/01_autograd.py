"""
Automatic differentiation, one step at a time
=============================================

How ``backward()`` finds gradients, shown on graphs small enough to check with pencil and paper.

**Run time:** a second or two (``python tutorials/01_autograd.py``; ``--quick`` is accepted and changes
nothing). What you will see:

1. a tiny graph built by hand, and the gradients ``backward()`` finds for it, checked with calculus;
2. a tensor used twice: its gradients add up;
3. gradients accumulate across ``backward()`` calls until you zero them (what every training loop relies on);
4. ``no_grad()``: computing without recording a graph;
5. the graph is freed after ``backward()``; ``retain_graph=True`` keeps it for a second pass;
6. checking gradients numerically, first by hand, then with ``ti.gradcheck``.
"""

# %%
import argparse

import numpy as np

import tinyinception as ti
from tinyinception.autograd import GraphFreedError

parser = argparse.ArgumentParser(description="Automatic differentiation, one step at a time")
parser.add_argument("--quick", action="store_true", help="accepted for uniformity; this tutorial is already quick")
args, _ = parser.parse_known_args()
ti.manual_seed(0)

# %% [markdown]
# 1. A small graph, built by hand
# -------------------------------
# Leaves are the tensors we want gradients for: ``requires_grad=True`` tells the engine to record what we do
# with them. Each operation creates a new tensor that remembers the ``Function`` which made it (its ``grad_fn``).

# %%
x = ti.tensor([1.0, 2.0, 3.0], requires_grad=True)
w = ti.tensor([0.5, -1.0, 2.0], requires_grad=True)
b = ti.tensor(0.25, requires_grad=True)

s = (w * x).sum() + b          # s = w . x + b      = 0.5 - 2 + 6 + 0.25 = 4.75
loss = s * s                   # loss = s^2         = 22.5625
print(f"s = {s.item()},  loss = {loss.item()}")


def show_graph(tensor, indent=0, seen=None):
    """Print the functions that produced ``tensor``, walking back to the leaves (shared parts printed once)."""
    seen = set() if seen is None else seen
    pad = "    " + "  " * indent
    if tensor.grad_fn is None:
        kind = "leaf, requires_grad" if tensor.requires_grad else "constant"
        print(pad + f"{kind}: {tensor.numpy()}")
        return
    if id(tensor) in seen:
        print(pad + f"{tensor.grad_fn.name} (the same tensor as above: used twice)")
        return
    seen.add(id(tensor))
    print(pad + f"{tensor.grad_fn.name} -> shape {tensor.shape}")
    for parent in tensor.grad_fn.inputs:
        if isinstance(parent, ti.Tensor):
            show_graph(parent, indent + 1, seen)


print("The graph behind `loss` (each line is a Function; leaves at the bottom):")
show_graph(loss)

# %% [markdown]
# ``backward()`` walks the graph from ``loss`` back to the leaves, applying the chain rule once per
# ``Function``. By hand: ``dloss/ds = 2s``, and ``ds/dw = x``, ``ds/dx = w``, ``ds/db = 1``.

# %%
loss.backward()
print(f"dloss/dw = {w.grad}")
print(f"dloss/dx = {x.grad}")
print(f"dloss/db = {b.grad}")

s_value = 4.75
by_hand_w = 2 * s_value * np.array([1.0, 2.0, 3.0])
by_hand_x = 2 * s_value * np.array([0.5, -1.0, 2.0])
print(f"by hand: 2*s*x = {by_hand_w},  2*s*w = {by_hand_x},  2*s = {2 * s_value}")
assert np.allclose(w.grad, by_hand_w) and np.allclose(x.grad, by_hand_x) and np.isclose(b.grad, 2 * s_value)
print("backward() agrees with the calculus.")
# Intermediate results (s) are not leaves: their .grad is not kept, to save memory.
print(f"s.grad = {s.grad}  (not a leaf: not kept)")

# %% [markdown]
# 2. A tensor used twice: the gradients from both uses add up
# ------------------------------------------------------------
# ``x`` appears in two branches of ``y = x*x + 4x``; ``dy/dx = 2x + 4 = 10`` at ``x = 3``.

# %%
x = ti.tensor([3.0], requires_grad=True)
y = x * x + x * 4.0
y.backward()
print(f"y = x*x + 4x at x=3: dy/dx = {x.grad} (2x + 4 = 10)")
assert x.grad[0] == 10.0

# %% [markdown]
# 3. Gradients accumulate until you zero them
# -------------------------------------------
# Each call below runs a fresh forward pass whose gradient is 3 for every element of ``w``.

# %%
w = ti.tensor([1.0, -2.0], requires_grad=True)
for call in (1, 2):
    loss = (w * 3.0).sum()
    loss.backward()
    print(f"after backward call {call}: w.grad = {w.grad}")
w.zero_grad()                   # in a training loop: optimizer.zero_grad() or model.zero_grad()
print(f"after w.zero_grad(): w.grad = {w.grad}")
(w * 3.0).sum().backward()
print(f"one more backward: w.grad = {w.grad}  (a clean start)")
assert w.grad.tolist() == [3.0, 3.0]

# %% [markdown]
# The second call *added* 3 to the 3 already there. PyTorch behaves the same way: it lets you sum gradients
# over several small batches before one optimizer step.
#
# 4. ``no_grad()``: compute without recording
# -------------------------------------------
# Evaluation and the optimizer's in-place update need no graph: nothing is recorded, so there is nothing to keep
# in memory and nothing to backpropagate through.

# %%
w = ti.tensor([1.0, 2.0], requires_grad=True)
with ti.no_grad():
    prediction = w * 10.0
print(f"inside no_grad: requires_grad = {prediction.requires_grad}, grad_fn = {prediction.grad_fn}")
try:
    prediction.sum().backward()
except RuntimeError as error:
    print(f"backward on it fails clearly:\n  {error}")

# %% [markdown]
# 5. The graph is freed after backward (unless ``retain_graph=True``)
# -------------------------------------------------------------------
# ``backward()`` frees the arrays each ``Function`` saved for its backward pass.

# %%
x = ti.tensor([1.0, 2.0], requires_grad=True)
loss = (x * x).sum()
loss.backward()
print(f"first backward: x.grad = {x.grad}")
try:
    loss.backward()
except GraphFreedError as error:
    print(f"second backward on the same graph:\n  GraphFreedError: {error}")

x.zero_grad()
loss = (x * x).sum()
loss.backward(retain_graph=True)  # keep the saved arrays ...
loss.backward()                   # ... so a second pass works (and, as in step 3, accumulates)
print(f"with retain_graph=True, two backward calls: x.grad = {x.grad}  (2 * 2x)")
assert x.grad.tolist() == [4.0, 8.0]

# %% [markdown]
# 6. Checking gradients numerically
# ---------------------------------
# The derivative is the limit of ``(f(x + eps) - f(x - eps)) / (2 eps)``. In float64 a small ``eps`` gets very
# close. Here ``f(x) = sum_i x_i tanh(x_i^2)``.

# %%
def f(x):
    return ((x * x).tanh() * x).sum()


x = ti.tensor(np.array([0.3, -0.7, 1.1]), requires_grad=True)   # a float64 array stays float64
f(x).backward()
eps, k = 1e-6, 1
plus, minus = x.numpy().copy(), x.numpy().copy()
plus[k] += eps
minus[k] -= eps
with ti.no_grad():
    numeric = (f(ti.tensor(plus)).item() - f(ti.tensor(minus)).item()) / (2 * eps)
print(f"element {k}: backward says {x.grad[k]:.10f}, finite differences say {numeric:.10f}")
assert abs(x.grad[k] - numeric) < 1e-6

# %% [markdown]
# ``ti.gradcheck`` does this for every element of every input (float64 only: float32 rounding is too coarse),
# and it catches a wrong backward, naming the input and the element.

# %%
w = ti.tensor(np.random.default_rng(0).standard_normal((3, 2)), requires_grad=True)
passed = ti.gradcheck(lambda a, b: (a.reshape(1, 3) @ b).tanh(), (x, w))
print(f"ti.gradcheck of tanh(x @ w) for both x and w: {passed}")


class DoubleWithBug(ti.Function):
    def forward(self, a):
        return a * 2.0

    def backward(self, grad_output):
        return grad_output * 3.0   # wrong on purpose: should be 2


try:
    ti.gradcheck(DoubleWithBug.apply, (x,))
except ti.GradcheckError as error:
    print(f"a deliberately wrong backward is caught:\n  {error}")
print("\nDone: every gradient above was checked.")
