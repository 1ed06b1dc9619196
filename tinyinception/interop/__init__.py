"""Exchange weights with the PyTorch reference implementations (``ti.interop``).

``load_torch_state_dict(model, state_dict)`` takes the reference's state_dict (torch tensors or NumPy arrays, keys
as the reference names them) and loads it strictly; ``to_torch_state_dict(model)`` gives the reverse. The name tables,
one per network, live next to this file. ``compare(model, reference, inputs)`` runs ours and a PyTorch module side
by side and reports, module by module, where they differ and whether rounding explains it (it needs PyTorch).

Weight files with NumPy alone (no torch import on this path): ``read_state_dict(path)`` reads PyTorch ``.pth``/
``.pt`` files (zip and legacy formats, ``torch_file``) and safetensors files (``safetensors_file``);
``load_weight_file(model, path)`` loads one through the name tables. ``published`` records every network's
published weights (URL, checksum, preprocessing) and ``hub`` downloads them into ``$TINYINCEPTION_HOME``.
"""
from .compare import Comparison, compare
from .mapping import load_torch_state_dict, reference_keys, register_table, to_torch_state_dict
from . import inception_resnet
from . import inception_v1, inception_v2
from . import inception_v3, inception_v4
from .errors import WeightFileError
from .safetensors_file import read_safetensors, write_safetensors
from .torch_file import read_torch_file
from .weight_file import load_weight_file, read_state_dict
from . import published
from .hub import WeightsDownloadError, fetch, weights_home
from ..models.registry import register_weights as _register_weights

for _record in published.PUBLISHED:
    _register_weights(_record)
