"""Optimizers and learning-rate schedules, with PyTorch's algorithms, argument names and defaults.

* :class:`Optimizer` -- parameter groups, per-parameter state, ``zero_grad``, ``step``, ``state_dict``;
* :class:`SGD` (momentum, Nesterov), :class:`RMSprop` (the Inception-v3/v4 optimizer), :class:`Adam`,
  :class:`AdamW`;
* :mod:`lr_scheduler` -- StepLR, ExponentialLR, CosineAnnealingLR, LinearLR, SequentialLR and the papers'
  :func:`~lr_scheduler.inception_schedule`.

The usual loop::

    opt = ti.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    opt.zero_grad()
    loss = loss_fn(model(images), labels)
    loss.backward()
    opt.step()
"""
from tinyinception.optim import lr_scheduler
from tinyinception.optim.adam import Adam, AdamW
from tinyinception.optim.optimizer import Optimizer
from tinyinception.optim.rmsprop import RMSprop, inception_v3_rmsprop
from tinyinception.optim.sgd import SGD

__all__ = ["Optimizer", "SGD", "RMSprop", "Adam", "AdamW", "inception_v3_rmsprop", "lr_scheduler"]
