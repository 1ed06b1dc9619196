"""Exchange weights with the PyTorch reference implementations (``ti.interop``).

``load_torch_state_dict(model, state_dict)`` takes the reference's state_dict (torch tensors or NumPy arrays, keys
as the reference names them) and loads it strictly; ``to_torch_state_dict(model)`` gives the reverse. The name tables,
one per network, live next to this file. ``compare(model, reference, inputs)`` runs ours and a PyTorch module side
by side and reports, module by module, where they differ and whether rounding explains it.
"""
from .compare import Comparison, compare
from .mapping import load_torch_state_dict, reference_keys, register_table, to_torch_state_dict
from . import inception_resnet
from . import inception_v1, inception_v2
from . import inception_v3, inception_v4
