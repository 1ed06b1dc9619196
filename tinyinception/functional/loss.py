"""Losses: cross_entropy with integer class targets and optional label smoothing (PyTorch semantics)."""
from ..autograd import Function, Tensor
from .. import backend


class CrossEntropy(Function):
    """logits: (N, C), target: (N,) ints in [0, C) -> loss per sample (N,) or reduced.

    With smoothing s the target distribution is (1 - s) on the true class plus s/C on every class, so
    loss_i = -(1 - s) * log p[i, t_i] - (s / C) * sum_c log p[i, c]. Computed from log_softmax (stable).
    """

    def forward(self, logits, target, label_smoothing, reduction):
        xp = backend.get_array_module(logits)
        n, num_classes = logits.shape
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_probs = shifted - xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))
        rows = xp.arange(n)
        smooth = logits.dtype.type(label_smoothing)
        per_sample = -(1 - smooth) * log_probs[rows, target]
        if smooth:  # (without smoothing, 0 * an infinite sum of log-probabilities would be NaN)
            per_sample = per_sample - (smooth / num_classes) * log_probs.sum(axis=1)
        self.log_probs, self.target, self.smooth, self.reduction = log_probs, target, smooth, reduction
        if reduction == "mean":
            return per_sample.mean()
        if reduction == "sum":
            return per_sample.sum()
        return per_sample

    def backward(self, grad_output):
        xp = backend.get_array_module(grad_output)
        n, num_classes = self.log_probs.shape
        # d loss_i / d logits_i = softmax_i - target distribution_i
        grad = xp.exp(self.log_probs)
        grad -= self.smooth / num_classes
        grad[xp.arange(n), self.target] -= 1 - self.smooth
        if self.reduction == "mean":
            grad *= grad_output / n
        elif self.reduction == "sum":
            grad *= grad_output
        else:
            grad *= grad_output[:, None]
        return grad, None, None, None


def cross_entropy(input, target, label_smoothing=0.0, reduction="mean"):
    """``torch.nn.functional.cross_entropy`` for input (N, C) logits and target (N,) integer class indices.

    reduction: 'mean' (default), 'sum' or 'none'. label_smoothing in [0, 1] (Inception-v3 used 0.1).
    """
    target_array = target.data if isinstance(target, Tensor) else target
    xp = backend.get_array_module(input.data)
    target_array = xp.asarray(target_array)
    if input.ndim != 2:
        raise ValueError(f"cross_entropy: expected logits of shape (N, C), got {input.shape}")
    if target_array.ndim != 1 or target_array.shape[0] != input.shape[0]:
        raise ValueError(f"cross_entropy: logits {input.shape} need a target of shape ({input.shape[0]},), "
                         f"got {tuple(target_array.shape)}")
    if target_array.dtype.kind not in "iu":
        raise TypeError(f"cross_entropy: target must hold integer class indices, got dtype {target_array.dtype}")
    if target_array.size and (int(target_array.min()) < 0 or int(target_array.max()) >= input.shape[1]):
        raise ValueError(f"cross_entropy: target values must be in [0, {input.shape[1]}), got "
                         f"min {int(target_array.min())}, max {int(target_array.max())}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"cross_entropy: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    return CrossEntropy.apply(input, target_array, float(label_smoothing), reduction)
