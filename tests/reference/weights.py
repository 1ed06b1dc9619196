"""Deterministic weights, inputs and array digests shared by the golden-file generator and the parity tests.

NumPy only: the generator (which needs the side environment with the PyTorch references) and the project's
tests (which must not) both import this file, so both sides build bit-identical weights from parameter names
alone and no weights need to be stored.

Weight rule (one seeded generator per parameter name, uniform draws only):

    rng = np.random.default_rng([seed, zlib.crc32(name)])
    conv weight (4-D)        U(-a, a), a = sqrt(3) * sqrt(2 / fan_in)    (He scale: std sqrt(2 / fan_in))
    linear weight (2-D)      U(-a, a), a = sqrt(3) * sqrt(1 / fan_in)    (std sqrt(1 / fan_in))
    conv / linear bias       U(-0.1, 0.1)
    BatchNorm weight (gamma) U(0.5, 1.5)
    BatchNorm bias (beta)    U(-0.25, 0.25)
    BatchNorm running_mean   U(-0.25, 0.25)
    BatchNorm running_var    U(0.5, 2.0)
    num_batches_tracked      int64 0-d array holding 0

fan_in = prod(shape[1:]) (= in_channels/groups * kH * kW for a conv, in_features for a linear).
A 1-D tensor belongs to a BatchNorm when the same prefix owns a `running_mean`; otherwise a 1-D `bias`
is a conv or linear bias. Values are drawn in float64 with `Generator.random` and rounded once to float32.
"""
import zlib

import numpy as np

BN_SUFFIXES = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def _rng(name, seed):
    """A generator that depends only on `seed` and the parameter (or input) name."""
    return np.random.default_rng([seed, zlib.crc32(name.encode("utf-8"))])


def _uniform(rng, shape, low, high):
    """U(low, high) of `shape`, drawn in float64 then rounded to float32."""
    return (low + (high - low) * rng.random(shape)).astype(np.float32)


def _is_batchnorm(name, shapes):
    """True when `name` is a tensor of a BatchNorm layer (its prefix owns a running_mean)."""
    prefix, _, suffix = name.rpartition(".")
    return suffix in BN_SUFFIXES and f"{prefix}.running_mean" in shapes


def _batchnorm_tensor(name, shape, rng):
    suffix = name.rpartition(".")[2]
    if suffix == "num_batches_tracked":
        return np.zeros((), dtype=np.int64)
    low, high = {"weight": (0.5, 1.5), "bias": (-0.25, 0.25),
                 "running_mean": (-0.25, 0.25), "running_var": (0.5, 2.0)}[suffix]
    return _uniform(rng, shape, low, high)


def _dense_tensor(name, shape, rng):
    suffix = name.rpartition(".")[2]
    if suffix == "bias" and len(shape) == 1:
        return _uniform(rng, shape, -0.1, 0.1)
    if suffix == "weight" and len(shape) in (2, 4):
        fan_in = int(np.prod(shape[1:]))
        gain = 2.0 if len(shape) == 4 else 1.0
        bound = np.sqrt(3.0 * gain / fan_in)
        return _uniform(rng, shape, -bound, bound)
    raise ValueError(f"deterministic_state_dict: no rule for tensor {name!r} of shape {tuple(shape)}; "
                     "expected a conv weight (4-D), linear weight (2-D), 1-D bias or a BatchNorm tensor")


def deterministic_state_dict(shapes, seed=0):
    """Weights for every tensor of a state_dict, from its name and shape alone.

    shapes: {name: shape tuple}, e.g. {"conv1.conv.weight": (64, 3, 7, 7), "conv1.bn.running_var": (64,), ...}
    returns {name: np.ndarray}, float32 except `num_batches_tracked` (int64, 0-d), in the order of `shapes`.
    """
    state = {}
    for name, shape in shapes.items():
        shape = tuple(int(s) for s in shape)
        rng = _rng(name, seed)
        if _is_batchnorm(name, shapes):
            state[name] = _batchnorm_tensor(name, shape, rng)
        else:
            state[name] = _dense_tensor(name, shape, rng)
    return state


def deterministic_input(shape, seed=0, name="input"):
    """A float32 array of `shape` drawn from U(-1, 1) (the (x - 0.5) / 0.5 range of the Inception nets)."""
    return _uniform(_rng(name, seed), tuple(int(s) for s in shape), -1.0, 1.0)


def deterministic_projection(shape, seed=0, name="projection"):
    """A float32 array of `shape` from U(-1, 1): the loss is sum(logits * projection)."""
    return _uniform(_rng(name, seed), tuple(int(s) for s in shape), -1.0, 1.0)


# ----------------------------------------------------------------------------------------------------------
# Digests: a large (N, C, H, W) array is stored as a few small views instead of in full.

FULL_LIMIT = 40000      # arrays with at most this many elements are stored whole
PART_BUDGET = 8192      # the most elements a crop or a pooled view may hold


def _block_mean(a, block):
    """Mean over block x block windows of a (N, C, H, W) array, partial windows at the bottom/right edges
    averaging only the elements they hold. Computed in float64. Returns (N, C, ceil(H/b), ceil(W/b))."""
    n, c, h, w = a.shape
    out_h, out_w = -(-h // block), -(-w // block)
    padded = np.zeros((n, c, out_h * block, out_w * block), dtype=np.float64)
    padded[:, :, :h, :w] = a
    counts = np.zeros((out_h * block, out_w * block), dtype=np.float64)
    counts[:h, :w] = 1.0
    sums = padded.reshape(n, c, out_h, block, out_w, block).sum(axis=(3, 5))
    totals = counts.reshape(out_h, block, out_w, block).sum(axis=(1, 3))
    return sums / totals


def digest(a):
    """Views of an array small enough to store; the parity tests apply the same function to their own result.

    a: any array. Returns {suffix: float32 array}:
      {"": a} when a.size <= FULL_LIMIT or a is not 4-D;
      otherwise, for a (N, C, H, W) array, with k = the largest crop side and b = the smallest block that fit
      PART_BUDGET: "tl" a[:, :, :k, :k], "br" a[:, :, -k:, -k:], "pool" the b x b block means (see
      _block_mean; b = H gives per-channel means) and "norm" the L2 norm of the whole array (0-d).
    """
    a = np.asarray(a)
    if a.size <= FULL_LIMIT or a.ndim != 4:
        return {"": a.astype(np.float32)}
    n, c, h, w = a.shape
    k = int(max(1, min(h, w, np.sqrt(PART_BUDGET / (n * c)))))
    block = 1
    while n * c * (-(-h // block)) * (-(-w // block)) > PART_BUDGET and block < max(h, w):
        block += 1
    wide = a.astype(np.float64)
    return {
        "tl": a[:, :, :k, :k].astype(np.float32),
        "br": a[:, :, h - k:, w - k:].astype(np.float32),
        f"pool{block}": _block_mean(wide, block).astype(np.float32),
        "norm": np.asarray(np.sqrt((wide * wide).sum()), dtype=np.float32),
    }


SKETCH_BUCKETS = 4096


def _mix(index):
    """splitmix64's finaliser of uint64 ``index``: a fixed pseudo-random uint64 per position (pure arithmetic, so
    the same on every machine and NumPy version)."""
    z = index + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def sketch(a, buckets=SKETCH_BUCKETS):
    """A CountSketch of the whole array: element i added, with a sign s_i = +-1, into bucket h_i (both fixed by its
    position). Linear, so sketch(a) - sketch(b) = sketch(a - b), and ||sketch(d)|| estimates ||d|| for any d, where
    ever its values lie (E ||sketch(d)||^2 = ||d||^2; spread about sqrt(2 / buckets) of it). A value moved to a
    neighbouring pixel moves to another bucket: the sketch sees what crops and block means miss. Float64."""
    flat = np.asarray(a, dtype=np.float64).ravel()
    mixed = _mix(np.arange(flat.size, dtype=np.uint64))
    bucket = (mixed % np.uint64(buckets)).astype(np.int64)
    sign = np.where(mixed >> np.uint64(63), -1.0, 1.0)
    return np.bincount(bucket, weights=sign * flat, minlength=buckets)
