"""``ti.optimize(model)``: the networks' fusions for any model built from ``ti.nn`` layers.

    model = ti.optimize(MyBlock())     # the same model, changed in place (returned for convenience)

What it changes, in place, keeping every parameter, buffer, state_dict key and hook (the printout names the fused
containers ``FusedSequential``):

* every plain ``Sequential`` holding a ``Conv2d`` directly followed by a ``BatchNorm2d`` (and a ``ReLU``) becomes a
  `FusedSequential`, which runs each such run as one unit (`tinyinception.nn.fold.conv_bn_relu`): in training,
  BatchNorm and ReLU in one pass; in inference (eval mode under ``ti.no_grad()``), BatchNorm and ReLU folded into
  the convolution's output pass;
* sibling branches: where one module's children are two or more such Sequentials (directly, or as the first child
  of a branch) that open with a 1x1, stride-1 Conv-BN-ReLU from the same number of channels, the first branch
  called on an input computes every sibling's 1x1 convolution in ONE matrix product
  (`tinyinception.nn.fused.stacked_parts`) and the siblings called on that same input tensor take their part of it.
  Siblings called on other inputs simply compute their own; a group whose siblings never share an input stops
  stacking after one call. The parts last until the parent module's forward returns.
* a pool branch, a Sequential that opens with a stride-1 ``AvgPool2d`` keeping the map's size followed by such a
  1x1 unit (Inception-v3's), joins its siblings' product with its pool moved after its 1x1, as the networks' blocks
  do (`tinyinception.nn.fused`: the two commute). One pool branch per group; with a bias on its convolution it
  joins only in inference, where the bias is added after the pool.

The result equals the unfused model's within float32 rounding. A forward hook on any layer still fires: a hooked
Conv2d, BatchNorm2d or ReLU is run through its ``__call__`` and drops out of the fusions. Layers called one after
the other inside a ``forward`` method (``self.relu(self.bn(self.conv(x)))``) are not rewritten: no code is traced,
so put such a unit in a ``Sequential`` to fuse it. ``ti.optimize`` may be called again after adding layers;
calling it twice changes nothing more.
"""
import threading

from .. import backend
from .containers import Sequential
from .conv import Conv2d
from .normalization import BatchNorm2d
from .simple import ReLU
from . import fold, fused


def optimize(model):
    """Fuse ``model``'s Conv-BN-ReLU runs and stack its sibling 1x1 units (see the module's docstring), in place.

    Returns ``model``."""
    for module in model.modules():
        if type(module) is Sequential and any(_conv_bn_run(list(module), i) for i in range(len(module))):
            module.__class__ = FusedSequential
    for parent in model.modules():
        _group_siblings(parent)
    return model


class FusedSequential(Sequential):
    """A ``Sequential`` whose Conv2d -> BatchNorm2d (-> ReLU) runs go through `fold.conv_bn_relu` (made by
    `optimize`; the same children, keys and printout as the Sequential it was)."""

    def forward(self, x):
        children = list(self._modules.values())
        group = self.__dict__.get("_siblings")
        index = 0
        if group is not None and group.pooled is self:  # a pool branch: pool, conv, BN and ReLU as one part
            part = group.take(self, x)
            if part is not None:
                x, index = part, 4
        while index < len(children):
            run = _conv_bn_run(children, index)
            if run is None:
                x = children[index](x)
                index += 1
                continue
            conv, bn, relu, length = run
            part = group.take(self, x) if group is not None and index == 0 else None
            x = part if part is not None else fold.conv_bn_relu(conv, bn, x, relu)
            index += length
        return x


def _conv_bn_run(children, index):
    """(conv, bn, relu, number of children) for a Conv2d -> BatchNorm2d (-> ReLU without hooks) at ``index``, else
    None."""
    if index + 1 >= len(children):
        return None
    conv, bn = children[index], children[index + 1]
    if type(conv) is not Conv2d or type(bn) is not BatchNorm2d:
        return None
    after = children[index + 2] if index + 2 < len(children) else None
    relu = type(after) is ReLU and not after._forward_hooks
    return conv, bn, relu, 3 if relu else 2


def _head(module):
    """The FusedSequential that opens ``module`` with a Conv-BN-ReLU run (following first children), or None."""
    while isinstance(module, Sequential) and len(module):
        run = _conv_bn_run(list(module), 0)
        if run is not None:
            return module if run[2] and isinstance(module, FusedSequential) else None
        module = list(module)[0]
    return None


def _pool_head(module):
    """``module`` when it is a FusedSequential opening with AvgPool2d -> Conv2d -> BatchNorm2d -> ReLU, the pool
    stride 1 and keeping the map's size (a pool branch), else None."""
    if not isinstance(module, FusedSequential) or len(module) < 4:
        return None
    children = list(module)
    pool, run = fused.pool_arguments(children[0]), _conv_bn_run(children, 1)
    if pool is None or run is None or not run[2] or not fused.pool_keeps_size(pool):
        return None
    return module


def _group_siblings(parent):
    """Group the 1x1 heads of ``parent``'s children by what they can be stacked on; a group per kind, 2+ heads, at
    most one of them a pool branch."""
    if any(isinstance(hook, _EndOfRound) for hook in parent._forward_hooks.values()):
        return  # grouped by an earlier call
    kinds, pooled = {}, {}
    for child in parent.children():
        head, pool_head = _head(child), _pool_head(child)
        conv = list(head)[0] if head is not None else list(pool_head)[1] if pool_head is not None else None
        if conv is None or not fused.is_pointwise(conv):
            continue
        kind = (conv.in_channels, conv.weight.dtype, conv.bias is None)
        if head is not None:
            kinds.setdefault(kind, []).append(head)
        else:
            pooled.setdefault(kind, pool_head)
    for kind, heads in kinds.items():
        if len(heads) + (kind in pooled) >= 2:
            group = SiblingGroup(heads, pooled.get(kind))
            parent.register_forward_hook(_EndOfRound(group))


class SiblingGroup:
    """Sibling FusedSequentials whose first units are stacked when called on the same input tensor; ``pooled``: a
    pool branch (`_pool_head`) whose 1x1 joins them, its pool after it, or None."""

    def __init__(self, members, pooled=None):
        self.members, self.pooled, self.enabled, self._round = members, pooled, True, threading.local()
        for member in members + ([pooled] if pooled is not None else []):
            member.__dict__["_siblings"] = self

    def __getstate__(self):  # copy.deepcopy and pickle: the current round (thread-local) is not part of the state
        return {"members": self.members, "pooled": self.pooled, "enabled": self.enabled}

    def __setstate__(self, state):
        self.__dict__.update({"pooled": None, **state})
        self._round = threading.local()

    def take(self, member, x):
        """``member``'s first unit on ``x``: its part of a stacked product (computed now for every member, or
        earlier in this round by a sibling), or None where stacking does not apply."""
        parts = self._parts(x)
        if parts is not None and id(member) in parts:
            return parts.pop(id(member))()
        self.end_round()
        members, pairs, pool = self._round_members(x)
        if member not in members:
            return None
        makes = fused.stacked_parts(x, pairs, pool)
        own = makes[members.index(member)]
        self._round.x, self._round.size = x, len(members)
        self._round.parts = {id(m): make for m, make in zip(members, makes) if m is not member}
        return own()

    def _round_members(self, x):
        """(the members whose units stack on x, the pool branch last; their (conv, bn) pairs; the pool's arguments
        or None), or ([], [], None) where stacking does not apply."""
        pairs = [(list(m)[0], list(m)[1]) for m in self.members]
        if not (self.enabled and self._stacks(x, pairs)):
            return [], [], None
        if self.pooled is not None:
            children = list(self.pooled)
            pool, pair = fused.pool_arguments(children[0]), (children[1], children[2])
            if (pool is not None and not children[3]._forward_hooks and self._stacks(x, [pair])
                    and fused.pool_moves(pool, pairs + [pair], x)):
                return self.members + [self.pooled], pairs + [pair], pool
        return (self.members, pairs, None) if len(self.members) >= 2 else ([], [], None)

    def _parts(self, x):
        return self._round.parts if getattr(self._round, "x", None) is x else None

    def _stacks(self, x, pairs):
        return (fused.stacking_enabled() and backend.kernels_for(x.data) == "numba"
                and all(fused.pair_stackable(conv, bn, x) for conv, bn in pairs))

    def end_round(self):
        """Forget the parts of the current round; a round where no sibling took its part ends stacking here."""
        parts = getattr(self._round, "parts", None)
        if parts is not None and len(parts) == getattr(self._round, "size", 0) - 1:
            self.enabled = False  # the siblings are not called on one input: stacking would only cost
        self._round.x = self._round.parts = None


class _EndOfRound:
    """The parent's forward hook that ends its sibling group's round (output unchanged)."""

    def __init__(self, group):
        self.group = group

    def __call__(self, module, inputs, output):
        self.group.end_round()
