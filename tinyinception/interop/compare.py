"""``ti.interop.compare``: run one of our models and a PyTorch model side by side and say, module by module, where
they differ, by how much, and whether that is rounding, a near-tie at a discontinuity, or a real divergence.

    cmp = ti.interop.compare(model, reference, x)      # model: ours; reference: a torch.nn.Module
    print(cmp.table())                                 # one row per module, in the order they ran
    cmp.first_divergence                               # the first module that rounding does not explain, or None

**The yardstick.** Two correct float32 implementations differ, because they add the same numbers in different
orders. How much is "rounding" depends on the module and on everything before it, so it is measured rather than
guessed: the reference runs a second time in float64 on the same inputs and weights (exactly upcast), and the
yardstick of each module is how far PyTorch's own float32 result lies from its float64 result there,
``max |ref32 - ref64|``. A float32 difference between us and PyTorch of a few yardsticks is rounding; one of many
yardsticks is not. For a float64 comparison the yardstick is the float32 one scaled by the ratio of the two
precisions (2**-29), the size rounding would have in float64. A row *diverges* when its difference exceeds
``tolerance`` times its yardstick (and a floor of a few units in the last place of the row's largest value).

**Discontinuities.** A ReLU whose input lies 1e-7 from zero, or a max-pool window whose two largest values are
2.5e-7 apart, can fall either way under rounding: the forward outputs still agree to rounding, but the whole
gradient takes another path. Each row counts them (ReLU outputs zero on one side only; max-pool windows whose
argmax differs, with the gap between the window's two largest values), and a gradient difference upstream of such
a place is reported as explained by it rather than as a divergence.

What is compared: the first tensor each module outputs (its first call, when it runs several times) and, with
``grads=True``, the gradient flowing into that output for the scalar ``sum_i (output_i * seed_i).sum()`` (fixed
random seeds ``seed_i``, the same on both sides). Our model runs unfused (every module through its own call,
BatchNorm and ReLU as two passes) so that each module's own output exists. A discontinuity inside a module's
``forward`` that is not itself a module (a functional max pool) is seen only through its effect on gradients.
"""
from dataclasses import dataclass, field

import numpy as np

from .discontinuities import PoolGeometry, argmax_flips, relu_flips
from .module_pairs import align_leftovers, pair_modules
from .recording import record_ours, record_torch

FLOAT64_PER_FLOAT32 = float(np.finfo(np.float64).eps / np.finfo(np.float32).eps)  # 2**-29
FLOOR_ULPS = 4  # differences below this many units in the last place of a row's largest value are never flagged


@dataclass
class Difference:
    """How far two arrays of one shape are apart: largest absolute difference over the elements finite on both
    sides, that divided by the reference's largest finite magnitude, and the count of elements where one side is
    NaN or infinite and the other is not the same value."""
    abs: float
    rel: float
    nonfinite: int

    @classmethod
    def between(cls, ours, reference):
        finite = np.isfinite(ours) & np.isfinite(reference)
        same_special = (np.isnan(ours) & np.isnan(reference)) | (~finite & (ours == reference))
        nonfinite = int((~finite & ~same_special).sum())
        if not finite.any():
            return cls(0.0, 0.0, nonfinite)
        delta = float(np.abs(ours[finite].astype(np.float64) - reference[finite]).max())
        scale = float(np.abs(reference[finite]).max())
        return cls(delta, delta / scale if scale > 0 else delta, nonfinite)


def _yardstick(ref32, ref64, dtype):
    """max |ref32 - ref64| at one module, in the size rounding has in ``dtype`` (None when not measurable)."""
    if ref32 is None or ref64 is None or ref32.shape != ref64.shape:
        return None
    measured = Difference.between(ref32, ref64).abs
    return measured * (FLOAT64_PER_FLOAT32 if np.dtype(dtype) == np.float64 else 1.0)


def _floor(reference, dtype):
    finite = reference[np.isfinite(reference)]
    return FLOOR_ULPS * float(np.finfo(dtype).eps) * (float(np.abs(finite).max()) if finite.size else 0.0)


@dataclass
class Row:
    """One module of the comparison.

    name / reference_name: the module on each side (None where it has no counterpart); kind: our class name
    (the reference's for a reference-only row); shape / reference_shape: of the outputs; output / grad:
    `Difference` of the outputs and of the gradients flowing into them, with output_yardstick / grad_yardstick;
    relu / argmax: `ReluFlips` / `ArgmaxFlips` or None; status: "ok", "near-tie" (the outputs agree to rounding
    and differ at a discontinuity), "explained" (the gradient differs beyond rounding because of a near-tie
    further on, named in ``note``), "affected" (the output agrees but its gradient comes back through a module
    that diverges further on), "diverges", "ours only", "reference only".
    """
    name: str
    reference_name: str
    kind: str
    shape: tuple = None
    reference_shape: tuple = None
    output: Difference = None
    output_yardstick: float = None
    grad: Difference = None
    grad_yardstick: float = None
    relu: object = None
    argmax: object = None
    status: str = "ok"
    note: str = ""
    _limits: dict = field(default_factory=dict, repr=False)

    @property
    def label(self):
        if self.name is None:
            return f"- -> {self.reference_name}"
        if self.reference_name is None or self.reference_name == self.name:
            return self.name or "(model)"
        return f"{self.name or '(model)'} -> {self.reference_name or '(model)'}"

    @property
    def has_discontinuity(self):
        return bool((self.relu and self.relu.count) or (self.argmax and self.argmax.count))


class Comparison:
    """The result of `compare`: ``rows`` in the order the modules ran, ``first_divergence`` (a module name or
    None), ``table()`` and ``plot()``. ``dtype`` is the precision compared; ``tolerance`` the multiple of the
    yardstick a difference may reach."""

    def __init__(self, rows, dtype, tolerance, grads, errors=None):
        self.rows, self.dtype, self.tolerance, self.grads = rows, np.dtype(dtype), tolerance, grads
        self.errors = errors or {}  # {"ours" or "reference": (module name, message)} when a forward pass raised

    @property
    def first_divergence(self):
        """The first module whose difference rounding and near-ties do not explain, or None.

        A forward difference is looked for in the order the modules ran; if the outputs all agree, a gradient
        difference is looked for from the output back (the gradient into a module's output is wrong when a module
        that runs after it computes its backward wrongly)."""
        row = self.first_divergent_row
        if row is not None:
            return row.name if row.name is not None else row.reference_name
        for side in ("ours", "reference"):
            if side in self.errors:
                return self.errors[side][0]
        return None

    @property
    def first_divergent_row(self):
        forward = [r for r in self.rows if r.status == "diverges" and r._limits.get("forward")]
        if forward:
            return forward[0]
        backward = [r for r in self.rows if r.status == "diverges"]
        return backward[-1] if backward else None

    def row(self, name):
        """The row of our module ``name`` (or of the reference's, for a reference-only row)."""
        for row in self.rows:
            if name in (row.name, row.reference_name):
                return row
        raise KeyError(f"compare: no module named {name!r} in this comparison")

    def near_ties(self):
        """Rows with a ReLU or max-pool disagreement whose outputs still agree to rounding."""
        return [row for row in self.rows if row.status == "near-tie"]

    def summary(self):
        """One line: the verdict (and a line per forward pass that raised)."""
        raised = "".join(f"\n  {side} raised in {name or '(model)'}: {message}"
                         for side, (name, message) in self.errors.items())
        row = self.first_divergent_row
        if row is not None:
            return f"first divergence at {row.label} ({row.kind}): {row.note}{raised}"
        if raised:
            return f"the forward pass stopped{raised}"
        ties = self.near_ties()
        tie_text = f"; {len(ties)} module(s) with near-ties at a discontinuity" if ties else ""
        return (f"no divergence: every difference within {self.tolerance:g}x the {self.dtype.name} rounding "
                f"yardstick{tie_text}")

    def table(self, max_rows=None):
        """Plain text, one line per module: output and gradient difference against their yardsticks."""
        rows = self.rows if max_rows is None else self.rows[:max_rows]
        width = min(max([len(row.label) for row in rows] + [6]), 72)
        header = (f"{'#':>4}  {'module':{width}}  {'shape':16}  {'out diff':>9}  {'yardstick':>9}"
                  + (f"  {'grad diff':>9}  {'yardstick':>9}" if self.grads else "") + "  status / note")
        lines = [f"compare ({self.dtype.name}): {self.summary()}", header, "-" * len(header)]
        for index, row in enumerate(rows):
            shape = "x".join(str(s) for s in (row.shape or row.reference_shape or ()))
            line = (f"{index:>4}  {row.label:{width}.{width}}  {shape:16.16}  "
                    f"{_fmt(row.output and row.output.abs):>9}  {_fmt(row.output_yardstick):>9}")
            if self.grads:
                line += f"  {_fmt(row.grad and row.grad.abs):>9}  {_fmt(row.grad_yardstick):>9}"
            status = row.status.upper() if row.status == "diverges" else row.status
            lines.append(line + f"  {status}" + (f": {row.note}" if row.note else ""))
        if max_rows is not None and len(self.rows) > max_rows:
            lines.append(f"      ... {len(self.rows) - max_rows} more rows")
        return "\n".join(lines)

    def __repr__(self):
        return self.table()

    def plot(self, ax=None):
        """The output (and gradient) difference of every module against its yardstick, along the network's depth,
        on a log scale; the first divergence marked. Returns the matplotlib Figure."""
        import matplotlib.pyplot as plt
        fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(10, 4))
        index = np.arange(len(self.rows))
        series = [("output difference", lambda r: r.output and r.output.abs, "C0", "-"),
                  ("output yardstick", lambda r: r.output_yardstick, "C0", ":")]
        if self.grads:
            series += [("gradient difference", lambda r: r.grad and r.grad.abs, "C1", "-"),
                       ("gradient yardstick", lambda r: r.grad_yardstick, "C1", ":")]
        for label, value, color, style in series:
            ys = np.array([_positive(value(row)) for row in self.rows], dtype=float)
            ax.plot(index, ys, style, color=color, label=label, marker="." if style == "-" else None)
        ties = [i for i, row in enumerate(self.rows) if row.has_discontinuity]
        if ties:
            ax.plot(ties, [ax.get_ylim()[0]] * len(ties), "|", color="C2", markersize=12, label="near-tie here")
        row = self.first_divergent_row
        if row is not None:
            ax.axvline(self.rows.index(row), color="C3", label=f"first divergence: {row.label}")
        ax.set_yscale("log")
        ax.set_xlabel("module, in the order they ran")
        ax.set_ylabel("largest absolute difference")
        ax.set_title(f"ours vs PyTorch, {self.dtype.name}")
        ax.legend(fontsize=8)
        return fig


def _fmt(value):
    return "-" if value is None else f"{value:.2e}"


def _positive(value):
    return np.nan if value is None or value <= 0 else value


# --- building the rows -----------------------------------------------------------------------------------------
def _judge_output(row, ours, same, other_dtype_record, dtype, tolerance):
    """Fill the output columns of a paired row; returns True when the output diverges."""
    row.shape, row.reference_shape = ours.output.shape, same.output.shape
    if ours.output.size != same.output.size:
        row.status, row.note = "diverges", f"output shape {row.shape} here, {row.reference_shape} in the reference"
        row._limits["forward"] = True
        return True
    reshaped = row.shape != row.reference_shape  # the same values under another shape (a flatten moved)
    row.output = Difference.between(ours.output.reshape(same.output.shape), same.output)
    ref32, ref64 = (same, other_dtype_record) if dtype == np.float32 else (other_dtype_record, same)
    row.output_yardstick = _yardstick(ref32 and ref32.output, ref64 and ref64.output, dtype)
    limit = tolerance * max(row.output_yardstick or 0.0, _floor(same.output, dtype))
    row.relu = relu_flips(ours.output.reshape(same.output.shape), same.output)
    if ours.pool_input is not None and same.pool_input is not None:
        row.argmax = argmax_flips(ours.pool_input, same.pool_input, PoolGeometry.of(same.pool),
                                  same.output.shape[-2:])
    if row.output.nonfinite:
        row.status, row.note = "diverges", f"{row.output.nonfinite} element(s) NaN or infinite on one side only"
    elif row.output.abs > limit:
        row.status = "diverges"
        row.note = (f"output differs by {row.output.abs:.2e} (relative {row.output.rel:.1e}), "
                    f"{_times(row.output.abs, row.output_yardstick)}")
    elif row.has_discontinuity:
        row.status, row.note = "near-tie", _tie_note(row)
    if reshaped:
        row.note = (row.note + "; " if row.note else "") + (
            f"shape {row.shape} here, {row.reference_shape} in the reference: compared element by element")
    row._limits["forward"] = row.status == "diverges"
    return row.status == "diverges"


def _times(difference, yardstick):
    if not yardstick:
        return "where the reference's float32 and float64 results agree exactly"
    return f"{difference / yardstick:.0f}x the yardstick"


def _tie_note(row):
    parts = []
    if row.relu and row.relu.count:
        parts.append(f"{row.relu.count} ReLU output(s) zero on one side only (largest {row.relu.largest:.1e})")
    if row.argmax and row.argmax.count:
        parts.append(f"{row.argmax.count} max-pool window(s) with another argmax (gap <= {row.argmax.widest_gap:.1e})")
    return "; ".join(parts)


def _judge_grad(row, ours, same, other, dtype, tolerance, later_tie, later_divergence):
    """Fill the gradient columns of a paired row whose outputs agree."""
    if ours.grad is None or same.grad is None:
        if (ours.grad is None) != (same.grad is None):
            side = "ours" if ours.grad is None else "the reference"
            row.status, row.note = "diverges", f"no gradient reached this output on {side}'s side"
        return
    if ours.grad.size != same.grad.size:
        return
    row.grad = Difference.between(ours.grad.reshape(same.grad.shape), same.grad)
    ref32, ref64 = (same, other) if dtype == np.float32 else (other, same)
    row.grad_yardstick = _yardstick(ref32 and ref32.grad, ref64 and ref64.grad, dtype)
    limit = tolerance * max(row.grad_yardstick or 0.0, _floor(same.grad, dtype))
    if not row.grad.nonfinite and row.grad.abs <= limit:
        return
    here = f"; here: {_tie_note(row)}" if row.has_discontinuity else ""
    if later_divergence is not None:
        row.status = "affected"
        row.note = f"gradient differs by {row.grad.abs:.2e}: it comes back through {later_divergence.label}"
    elif later_tie is not None:
        row.status = "explained"
        row.note = f"gradient differs by {row.grad.abs:.2e}: near-tie at {later_tie.label} further on{here}"
    else:
        row.status = "diverges"
        what = (f"{row.grad.nonfinite} gradient element(s) NaN or infinite on one side only" if row.grad.nonfinite
                else f"{_times(row.grad.abs, row.grad_yardstick)}")
        row.note = f"gradient into this output differs: {what}"


def _build_rows(ours, same, other, pairs, dtype, tolerance):
    """Rows in our run order, with reference-only rows placed after the paired row that ran before them there."""
    rows, row_of_reference = [], {}
    for name in ours.order:
        reference_name = pairs.get(name)
        record = ours.records[name]
        if reference_name is None or reference_name not in same.records or same.records[reference_name].output is None:
            rows.append(Row(name, None, record.kind, shape=getattr(record.output, "shape", None),
                            status="ours only", note="no counterpart ran in the reference"))
            continue
        row = Row(name, reference_name, record.kind)
        if record.output is not None:
            _judge_output(row, record, same.records[reference_name],
                          other.records.get(reference_name) if other else None, dtype, tolerance)
        rows.append(row)
        row_of_reference[reference_name] = row
    later_tie = later_divergence = None  # gradients: from the output back, remembering what lies further on
    for row in reversed(rows):
        if row.reference_name is not None and row.status != "diverges" and row.output is not None:
            _judge_grad(row, ours.records[row.name], same.records[row.reference_name],
                        other.records.get(row.reference_name) if other else None, dtype, tolerance, later_tie,
                        later_divergence)
        if row.has_discontinuity:
            later_tie = row
        if row.status == "diverges" and row._limits.get("forward"):
            later_divergence = row
    _insert_reference_only(rows, same, row_of_reference)
    return rows


def _insert_reference_only(rows, same, row_of_reference):
    previous = None
    for reference_name in same.order:
        if reference_name in row_of_reference:
            previous = row_of_reference[reference_name]
            continue
        record = same.records[reference_name]
        row = Row(None, reference_name, record.kind, reference_shape=getattr(record.output, "shape", None),
                  status="reference only", note="no counterpart ran in our model")
        rows.insert(rows.index(previous) + 1 if previous is not None else 0, row)
        previous = row


# --- the entry point -------------------------------------------------------------------------------------------
def compare(model, reference, inputs, grads=True, load_weights=False, name_map=None, tolerance=10.0, seed=0):
    """Compare our ``model`` with the PyTorch module ``reference``, module by module; returns a `Comparison`.

    model: a tinyinception ``nn.Module`` (float32 or float64); reference: a ``torch.nn.Module``. inputs: one array
    (or a tuple of arrays: NumPy, ti.Tensor or torch.Tensor) given to both; cast to our model's dtype. Both run in
    our model's mode (``model.training``); use eval mode for models with dropout. grads: also compare the gradient
    flowing into every module's output. load_weights: first copy the reference's weights into ours (through our
    network's interop name table, or by equal names). name_map: our module name -> the reference's (a dict or a
    function), where names differ and no name table applies. tolerance: how many yardsticks a difference may
    reach before it counts as a divergence. seed: of the directions that make the backpropagated scalar.

    Nothing is changed on either side: the reference runs as copies; our model's buffers (BatchNorm's running
    statistics in training mode) and parameter gradients are restored afterwards. Needs PyTorch (imported here).
    """
    try:
        import torch  # noqa: F401  (only this function needs it)
    except ImportError as error:
        raise ImportError("ti.interop.compare needs PyTorch: pip install torch") from error
    dtype = _dtype_of(model)
    arrays = [np.asarray(_to_numpy(x), dtype=dtype) for x in (inputs if isinstance(inputs, (tuple, list))
                                                                else (inputs,))]
    table = _key_table(model)
    if load_weights:
        _copy_weights(model, reference, table is not None)
    pairs = pair_modules(_kinds(model.named_modules()), _kinds(reference.named_modules()), table, name_map)
    activated = {name for name, ref in pairs.items() if _reference_fuses_activation(reference, ref)}
    other_dtype = np.float64 if dtype == np.float32 else np.float32
    with _restored(model):
        ours = record_ours(model, arrays, seed if grads else None, activated)
    same = record_torch(reference, arrays, dtype, model.training, seed if grads else None)
    other = record_torch(reference, arrays, other_dtype, model.training, seed if grads else None)
    align_leftovers(pairs, _run_order(ours), _run_order(same))
    errors = {side: record.error for side, record in (("ours", ours), ("reference", same)) if record.error}
    return Comparison(_build_rows(ours, same, other, pairs, dtype, tolerance), dtype, tolerance, grads, errors)


def _dtype_of(model):
    for parameter in model.parameters():
        if parameter.dtype.kind == "f":
            return np.dtype(parameter.dtype)
    return np.dtype(np.float32)


def _to_numpy(x):
    if hasattr(x, "detach") and hasattr(x, "cpu"):
        return x.detach().cpu().numpy()
    from .. import backend
    return backend.to_device(getattr(x, "data", x), "cpu")


def _run_order(recording):
    """[(name, kind, output shape)] of the modules that ran, in run order."""
    return [(name, recording.records[name].kind, getattr(recording.records[name].output, "shape", None))
            for name in recording.order]


def _kinds(named_modules):
    return {name: type(module).__name__ for name, module in named_modules}


def _key_table(model):
    from .mapping import _TABLES
    table = _TABLES.get(type(model).__name__)
    try:
        return table(model) if table is not None else None
    except ValueError:  # a layout with no reference (GoogLeNet(paper=True))
        return None


def _copy_weights(model, reference, has_table):
    from .mapping import load_torch_state_dict
    state = reference.state_dict()
    if has_table:
        load_torch_state_dict(model, state)
    else:
        model.load_state_dict({key: _to_numpy(value) for key, value in state.items()})


def _reference_fuses_activation(reference, name):
    """True when the reference module is a BatchNorm that applies a ReLU itself (timm's BatchNormAct2d)."""
    try:
        module = reference.get_submodule(name)
    except AttributeError:
        return False
    return "BatchNorm" in type(module).__name__ and type(getattr(module, "act", None)).__name__ == "ReLU"


class _restored:
    """Context manager: our model's buffers and parameter gradients as they were before."""

    def __init__(self, model):
        self.model = model

    def __enter__(self):
        self.state = {key: value.copy() for key, value in self.model.state_dict().items()}
        self.grads = [(p, p.grad) for p in self.model.parameters()]
        for parameter, _ in self.grads:
            parameter.grad = None
        return self

    def __exit__(self, *exc):
        self.model.load_state_dict(self.state)
        for parameter, grad in self.grads:
            parameter.grad = grad
        return False
