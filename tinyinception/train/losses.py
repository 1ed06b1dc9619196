"""The training loss of an Inception network: the main classifier's loss plus its auxiliary classifiers'.

GoogLeNet and Inception-v3 grow side heads ("auxiliary classifiers") on intermediate layers. In train mode they
return a namedtuple ``(logits, aux_logits...)``; in eval mode only ``logits``. The training loss is

    loss = loss_fn(logits, labels) + aux_weight * sum_i loss_fn(aux_logits_i, labels)

Weights used here, and where they come from:

* GoogLeNet: 0.3 for each of its two side heads -- "Going Deeper with Convolutions" (Szegedy et al., 2014),
  section 5: "their loss gets added to the total loss of the network with a discount weight (the losses of the
  auxiliary classifiers were weighted by 0.3)".
* Inception-v3: 0.4 for its one side head. The paper ("Rethinking the Inception Architecture", 2015) gives no
  number; 0.4 is the weight of PyTorch's "Finetuning Torchvision Models" tutorial (``loss1 + 0.4 * loss2``) that
  most PyTorch training code copies. torchvision's own reference script (references/classification/train.py)
  adds no auxiliary loss at all: it passes the model's output straight to the criterion.
"""
from .. import functional as F

# Auxiliary-loss weight by network class name (lower case); see the module docstring for the sources.
AUX_WEIGHTS = {"googlenet": 0.3, "inception3": 0.4, "inceptionv3": 0.4, "inception_v3": 0.4}
DEFAULT_AUX_WEIGHT = 0.3


def aux_weight_for(model):
    """The auxiliary-loss weight for ``model``: its ``aux_weight`` attribute if it has one, else by class name
    (GoogLeNet 0.3, Inception-v3 0.4), else 0.3 (the GoogLeNet paper's value)."""
    own = getattr(model, "aux_weight", None)
    if own is not None:
        return float(own)
    return AUX_WEIGHTS.get(type(model).__name__.lower(), DEFAULT_AUX_WEIGHT)


def split_outputs(outputs):
    """(logits, [aux_logits, ...]) from a model's output: a Tensor, or a tuple whose first entry is the main
    logits and whose other entries are auxiliary logits (None entries, for disabled heads, are dropped)."""
    if isinstance(outputs, (tuple, list)):
        if not outputs:
            raise ValueError("training loss: the model returned an empty tuple; expected (logits, aux_logits...)")
        return outputs[0], [aux for aux in outputs[1:] if aux is not None]
    return outputs, []


def cross_entropy_loss(label_smoothing=0.0):
    """``loss_fn(logits (N, C), labels (N,)) -> scalar Tensor``: mean cross entropy with label smoothing."""
    def loss_fn(logits, labels):
        return F.cross_entropy(logits, labels, label_smoothing=label_smoothing)
    return loss_fn


def training_loss(outputs, labels, loss_fn, aux_weight):
    """(total loss Tensor, main logits Tensor) for a model's train-mode ``outputs`` and ``labels`` (N,).

    total = loss_fn(logits, labels) + aux_weight * sum of loss_fn(aux, labels) over the auxiliary logits.
    """
    logits, aux_outputs = split_outputs(outputs)
    loss = loss_fn(logits, labels)
    for aux_logits in aux_outputs:
        loss = loss + loss_fn(aux_logits, labels) * aux_weight
    return loss, logits
