"""The define-by-run autograd engine: `Tensor`, `Function`, and backpropagation.

How it works, in four sentences:

1. A `Tensor` wraps an array (``numpy.ndarray`` or ``cupy.ndarray``) and remembers the `Function` that made it
   (``tensor.grad_fn``) when gradients are being recorded.
2. A `Function` subclass computes on raw arrays: ``forward(*arrays)`` returns the output array and keeps what its
   ``backward(grad_output)`` will need; ``backward`` returns one gradient per positional input.
3. ``loss.backward()`` sorts the functions of the graph topologically (iteratively: deep graphs are fine), then
   calls each ``backward`` once, from the loss back to the leaves, adding up gradients where a tensor was used
   more than once.
4. Leaf tensors created with ``requires_grad=True`` (parameters) accumulate into ``.grad`` across calls, like
   PyTorch, until ``zero_grad``; the graph's saved arrays are freed after backward unless ``retain_graph=True``.

The engine knows nothing about convolution: every operation lives in `tinyinception.functional`.
"""
import contextlib
import contextvars
import weakref

import numpy as np

from . import backend, profiler

# Whether operations record the graph: a context variable, so per thread like PyTorch's grad mode (a new thread
# starts recording, whatever the thread that started it does) and per asyncio task; as cheap to read as a dict.
_grad_enabled = contextvars.ContextVar("tinyinception_grad_enabled", default=True)


# --------------------------------------------------------------------------------------------------------------
# Recording on/off
# --------------------------------------------------------------------------------------------------------------
def is_grad_enabled():
    """True when operations of the calling thread record the graph."""
    return _grad_enabled.get()


@contextlib.contextmanager
def _grad_mode(enabled):
    previous = _grad_enabled.get()
    _grad_enabled.set(enabled)
    try:
        yield
    finally:
        _grad_enabled.set(previous)


def no_grad():
    """Context manager: operations inside record no graph (inference, optimizer updates). Per thread, like
    PyTorch's: it does not change what other threads record, and a thread started inside it records."""
    return _grad_mode(False)


def enable_grad():
    """Context manager: record the graph again inside a ``no_grad`` block."""
    return _grad_mode(True)


# --------------------------------------------------------------------------------------------------------------
# Tensor
# --------------------------------------------------------------------------------------------------------------
def _as_array(data, dtype=None):
    """An ndarray from ``data``: Python floats become float32 (the default dtype), ints int64, arrays keep theirs."""
    if isinstance(data, Tensor):
        data = data.data
    xp = backend.get_array_module(data)
    if dtype is not None:
        return xp.asarray(data, dtype=dtype)
    if hasattr(data, "dtype"):  # numpy/cupy arrays and scalars keep their dtype
        return xp.asarray(data)
    array = np.asarray(data)
    if array.dtype == np.float64:
        array = array.astype(np.float32)
    return array


class Tensor:
    """An array plus what autograd needs: ``requires_grad``, ``grad`` and the ``grad_fn`` that made it.

    data: numpy.ndarray or cupy.ndarray (any shape); grad: an array of the same shape, module and dtype, or None.
    """

    __array_priority__ = 1000  # so `ndarray + Tensor` calls Tensor.__radd__

    def __init__(self, data, requires_grad=False, dtype=None):
        self.data = _as_array(data, dtype)
        if requires_grad and self.data.dtype.kind != "f":
            raise TypeError(f"only floating point tensors can require gradients, got dtype {self.data.dtype}")
        self.requires_grad = bool(requires_grad)
        self.grad = None
        self.grad_fn = None  # the Function that produced this tensor (None for leaves)
        self._retains_grad = False

    # --- what it holds --------------------------------------------------------------------------------------
    @property
    def shape(self):
        return tuple(self.data.shape)

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def device(self):
        return backend.device_of(self.data)

    @property
    def is_leaf(self):
        return self.grad_fn is None

    def size(self, dim=None):
        return self.shape if dim is None else self.shape[dim]

    def numel(self):
        return int(self.data.size)

    def dim(self):
        return self.data.ndim

    def __len__(self):
        return len(self.data)

    def numpy(self):
        """The data as a NumPy array (copied from the GPU if needed). Refuses tensors that require grad? No:
        unlike PyTorch we allow it, since ``.numpy()`` never lets you write into the graph's saved arrays."""
        return backend.to_device(self.data, "cpu")

    def item(self):
        if self.data.size != 1:
            raise ValueError(f"item(): only one-element tensors can be converted to a Python scalar, "
                             f"got shape {self.shape}")
        return self.data.reshape(()).item()

    def tolist(self):
        return self.numpy().tolist()

    def __repr__(self):
        body = np.array2string(self.numpy(), separator=", ", precision=4, prefix="tensor(")
        extras = []
        if self.dtype != np.float32 and self.dtype != np.int64:
            extras.append(f"dtype={self.dtype}")
        if self.device != "cpu":
            extras.append(f"device='{self.device}'")
        if self.grad_fn is not None:
            extras.append(f"grad_fn=<{type(self.grad_fn).__name__}Backward>")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return "tensor(" + body + "".join(", " + e for e in extras) + ")"

    # --- graph control ----------------------------------------------------------------------------------------
    def detach(self):
        """A new leaf tensor sharing this data, cut from the graph."""
        return Tensor(self.data)

    def requires_grad_(self, requires_grad=True):
        if not self.is_leaf:
            raise RuntimeError("requires_grad_: can only change requires_grad of leaf tensors; use .detach() first")
        if requires_grad and self.dtype.kind != "f":
            raise TypeError(f"only floating point tensors can require gradients, got dtype {self.dtype}")
        self.requires_grad = bool(requires_grad)
        return self

    def retain_grad(self):
        """Keep ``.grad`` for this non-leaf tensor after backward (leaves always keep theirs)."""
        if not self.requires_grad:
            raise RuntimeError("retain_grad: this tensor does not require grad")
        self._retains_grad = True
        return self

    def zero_grad(self):
        self.grad = None

    def register_post_accumulate_grad_hook(self, hook):
        """Call ``hook(tensor)`` during backward, once this leaf's ``.grad`` holds all of that backward's gradient
        (PyTorch's hook of the same name). Data parallelism starts all-reducing a bucket of parameters the moment
        their hooks have fired, while backward goes on. Returns a handle whose ``remove()`` unregisters the hook.
        """
        if not self.is_leaf:
            raise RuntimeError("register_post_accumulate_grad_hook: only leaf tensors (parameters) accumulate .grad")
        if not callable(hook):
            raise TypeError(f"register_post_accumulate_grad_hook: the hook must be callable, got {type(hook).__name__}")
        hooks = self.__dict__.setdefault("_post_accumulate_grad_hooks", {})
        key = max(hooks, default=-1) + 1
        hooks[key] = hook
        return _RemovableHook(hooks, key)

    def backward(self, grad=None, retain_graph=False):
        """Backpropagate from this tensor: fills ``.grad`` of every leaf that requires grad.

        grad: the gradient of some scalar with respect to this tensor (same shape); may be omitted only when this
        tensor has one element. retain_graph: keep the saved arrays so backward can run through the graph again.
        """
        backward(self, grad, retain_graph)


class _RemovableHook:
    def __init__(self, hooks, key):
        self._hooks, self._key = hooks, key

    def remove(self):
        self._hooks.pop(self._key, None)


def tensor(data, requires_grad=False, dtype=None):
    """A new leaf tensor from a list, scalar or array (``ti.tensor([1.0, 2.0], requires_grad=True)``).

    Python floats give float32 (the default dtype), Python ints int64; NumPy/CuPy arrays keep their dtype.
    """
    if isinstance(data, Tensor):
        data = data.data
    return Tensor(backend.get_array_module(data).array(_as_array(data, dtype), copy=True), requires_grad)


# --------------------------------------------------------------------------------------------------------------
# Function
# --------------------------------------------------------------------------------------------------------------
class Function:
    """One differentiable operation. Subclasses define, next to each other:

    ``forward(self, *inputs, **options) -> array``: computes on raw arrays (inputs that were Tensors arrive as their
    ``.data``; other positional arguments as they are) and stores on ``self`` what backward needs.

    ``backward(self, grad_output) -> gradient or tuple of gradients``: one per positional input, in order (None for
    inputs that need none). ``self.needs_input_grad[i]`` says whether input i wants a gradient, so expensive ones can
    be skipped.

    Use an operation with ``MyFunction.apply(*inputs, **options)``; it returns a Tensor.

    ``fresh_gradients = True`` (a class attribute) promises that every array backward returns is newly allocated and
    shared with nothing (not a view of grad_output or of another gradient). A leaf (a parameter) then keeps that
    array as its ``.grad`` instead of copying it, as PyTorch's AccumulateGrad steals an unshared gradient. Conv2d,
    BatchNorm and Linear, which produce almost every parameter gradient, make this promise.
    """

    fresh_gradients = False

    def forward(self, *inputs, **options):
        raise NotImplementedError(f"{type(self).__name__}.forward")

    def backward(self, grad_output):
        raise NotImplementedError(f"{type(self).__name__} has no backward")

    @classmethod
    def apply(cls, *inputs, **options):
        fn = cls()
        arrays = [x.data if isinstance(x, Tensor) else x for x in inputs]
        fn.needs_input_grad = tuple(isinstance(x, Tensor) and x.requires_grad for x in inputs)
        recording = is_grad_enabled() and any(fn.needs_input_grad)
        if not recording:
            fn.needs_input_grad = (False,) * len(inputs)
        with profiler.section(cls.__name__ + ".forward"):
            output = Tensor(fn.forward(*arrays, **options))
        if recording:
            output.requires_grad = True
            output.grad_fn = fn
            fn.inputs = tuple(inputs)
            fn._output = weakref.ref(output)
        return output

    @property
    def name(self):
        return type(self).__name__

    def _release(self):
        """Drop every array saved for backward (PyTorch frees its graph the same way)."""
        self.__dict__.clear()
        self._released = True


class GraphFreedError(RuntimeError):
    pass


def _topological_order(root_fn):
    """Functions of the graph ending at ``root_fn``, each after every function that consumes its output.

    Iterative depth-first search (an explicit stack instead of recursion), so a chain of 100,000 operations works.
    A function is marked visited when it is expanded, not when it is pushed: marking on push lets a function
    that is reached again through a longer path be finished before its consumers (wrong order in diamonds).
    """
    order, visited = [], set()
    stack = [(root_fn, False)]
    while stack:
        fn, children_done = stack.pop()
        if children_done:
            order.append(fn)
            continue
        if id(fn) in visited:
            continue
        visited.add(id(fn))
        stack.append((fn, True))
        for x in _inputs_of(fn):
            child = x.grad_fn if isinstance(x, Tensor) else None
            if child is not None and id(child) not in visited:
                stack.append((child, False))
    order.reverse()  # post-order reversed: consumers before producers
    return order


def _inputs_of(fn):
    if getattr(fn, "_released", False):
        raise GraphFreedError(
            f"backward: trying to backpropagate through the graph a second time, but {fn.name}'s saved arrays were "
            "freed after the first backward. Pass retain_graph=True to the first .backward() call if you need to "
            "backpropagate twice, or run the forward pass again."
        )
    return fn.inputs


def _accumulate_leaf(tensor, grad, fresh=False):
    """Leaves add up gradients across backward calls. The first gradient is copied (so that no two .grad arrays
    alias) unless it is ``fresh``: a new array shared with nothing (see `Function.fresh_gradients`)."""
    if tensor.grad is None:
        tensor.grad = grad if fresh else grad.copy(order="K")  # the copy keeps the memory layout
    else:
        tensor.grad += grad


def _hooked_leaf_uses(order):
    """{id(leaf): [leaf, uses]} for the leaves with post-accumulate hooks: how many gradient contributions each
    still awaits from the functions in ``order``, so its hooks run once, after the last one."""
    pending = {}
    for fn in order:
        for x in fn.inputs:
            if isinstance(x, Tensor) and x.grad_fn is None and getattr(x, "_post_accumulate_grad_hooks", None):
                pending.setdefault(id(x), [x, 0])[1] += 1
    return pending


def _leaf_use_done(pending, x):
    """One contribution to hooked leaf ``x`` has been handled; after its last one, run its hooks."""
    entry = pending.get(id(x))
    if entry is None:
        return
    entry[1] -= 1
    if entry[1] == 0 and x.grad is not None:
        for hook in list(x._post_accumulate_grad_hooks.values()):
            hook(x)


def backward(output, grad=None, retain_graph=False):
    """Backpropagate from ``output`` (see `Tensor.backward`)."""
    if not output.requires_grad:
        raise RuntimeError(
            "backward: this tensor does not require grad and has no grad_fn. Create the leaves with "
            "requires_grad=True (parameters do this) and do not compute it inside ti.no_grad()."
        )
    if grad is None:
        if output.data.size != 1:
            raise RuntimeError(
                f"backward: grad can be implicitly created only for scalar outputs, but the output has shape "
                f"{output.shape}. Reduce it first (e.g. .sum() or .mean()) or pass grad= of that shape."
            )
        grad = backend.get_array_module(output.data).ones_like(output.data)
    else:
        grad = _as_array(grad, dtype=output.dtype)
        if grad.shape != output.data.shape:
            raise ValueError(f"backward: grad has shape {tuple(grad.shape)} but the output has shape {output.shape}")
    if output.grad_fn is None:  # a leaf: its gradient is the given one
        _accumulate_leaf(output, grad)
        return

    grads = {id(output.grad_fn): grad}  # gradient w.r.t. each function's output, keyed by the function
    order = _topological_order(output.grad_fn)
    pending = _hooked_leaf_uses(order)
    for fn in order:
        grad_output = grads.pop(id(fn))
        out_tensor = fn._output()
        if out_tensor is not None and out_tensor._retains_grad:
            _accumulate_leaf(out_tensor, grad_output)
        with profiler.section(fn.name + ".backward"):
            input_grads = fn.backward(grad_output)
        if not isinstance(input_grads, tuple):
            input_grads = (input_grads,)
        if len(input_grads) != len(fn.inputs):
            raise RuntimeError(f"{fn.name}.backward returned {len(input_grads)} gradients for {len(fn.inputs)} inputs")
        for x, g in zip(fn.inputs, input_grads):
            if g is None or not isinstance(x, Tensor) or not x.requires_grad:
                if pending:
                    _leaf_use_done(pending, x)
                continue
            if g.shape != x.data.shape or g.dtype != x.data.dtype:
                raise RuntimeError(
                    f"{fn.name}.backward returned a gradient of shape {tuple(g.shape)} and dtype {g.dtype} for an "
                    f"input of shape {x.shape} and dtype {x.dtype}"
                )
            if x.grad_fn is None:
                _accumulate_leaf(x, g, fresh=fn.fresh_gradients)
                if pending:
                    _leaf_use_done(pending, x)
            else:
                key = id(x.grad_fn)
                grads[key] = g if key not in grads else grads[key] + g
        if not retain_graph:
            fn._release()
