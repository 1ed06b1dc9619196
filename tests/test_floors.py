"""The house has floors, and imports only point down (the table in DESIGN.md and in the docs' "How it works").

Every module of the package is parsed with ``ast`` (nothing is imported), every ``import`` in it, at the top or
inside a function, is resolved to the package module it names, and that module's floor must be at most the
importer's. A few rules of the house go further than the floors: datasets know no plotting and no networks, the
kernels know nothing about autograd, and weight files are read without torch.
"""
import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "tinyinception"

# Module (dotted, under ``tinyinception``) or package prefix -> floor. The longest matching prefix wins.
FLOORS = {
    # 1: Tensor and the graph; kernels; which array module; helpers the engine and the kernels share
    "autograd": 1, "kernels": 1, "backend": 1, "gradcheck": 1, "profiler": 1, "allocator": 1,
    "atomic_file": 1, "random": 1, "cuda": 1,
    # 2: differentiable operations
    "functional": 2,
    # 3: modules, layers, optimizers
    "nn": 3, "optim": 3,
    # 4: the networks
    "models": 4,
    # 5: training, data parallelism, datasets, plots, summaries, weight files
    "train": 5, "distributed": 5, "data": 5, "viz": 5, "summary": 5, "interop": 5,
    # 6: the faces: the command line and the package's front door
    "cli": 6, "__main__": 6, "__init__": 6,
}

# Extra rules: (importer prefix, forbidden module prefix, why).
FORBIDDEN = [
    ("data", "viz", "a dataset knows no plotting"),
    ("data", "models", "a dataset knows no networks"),
    ("data", "nn", "a dataset knows no networks"),
    ("data", "train", "a dataset knows no training loop"),
    ("kernels", "autograd", "kernels take and return arrays: they know nothing about autograd"),
    ("autograd", "functional", "the engine imports no operation"),
]
NO_TORCH = ["interop"]        # weight files are read with NumPy alone
# ...except the comparison with a PyTorch model, which imports torch inside the functions that run it (never at
# import time, so `import tinyinception.interop` still loads no torch).
TORCH_INSIDE_FUNCTIONS = ["interop.compare", "interop.recording"]


def module_name(path):
    """'tinyinception/nn/conv.py' -> 'nn.conv'; a package's __init__.py -> the package, the root's -> '__init__'."""
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1] or ["__init__"]
    return ".".join(parts)


def exists(name):
    """Whether ``name`` (dotted under the package) is a module or a package of it."""
    base = PACKAGE.joinpath(*name.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def imported_modules(path):
    """(line, name, internal) for every import in ``path``, in any function too.

    internal: ``name`` is a module of the package, dotted under it (``from ..nn import Module`` in
    ``kernels/x.py`` gives ``"nn"``, ``from . import im2col`` gives ``"kernels.im2col"``); otherwise ``name`` is
    the external module as written (``"numpy"``, ``"torch.nn"``).
    """
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package_parts = list(path.relative_to(PACKAGE).parent.parts)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name.split(".")) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                base = node.module.split(".")
            else:
                base = ["tinyinception"] + package_parts[:len(package_parts) - (node.level - 1)]
                base += node.module.split(".") if node.module else []
            for alias in node.names:
                is_submodule = base[0] == "tinyinception" and exists(".".join(base[1:] + [alias.name]))
                found.append((node.lineno, base + [alias.name] if is_submodule else base))
    names = []
    for line, parts in found:
        if parts[0] == "tinyinception":
            names.append((line, ".".join(parts[1:]) or "__init__", True))
        else:
            names.append((line, ".".join(parts), False))
    return sorted(set(names))


def floor_of(name):
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        key = ".".join(parts[:end])
        if key in FLOORS:
            return FLOORS[key]
    return None


def starts(name, prefix):
    return name == prefix or name.startswith(prefix + ".")


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def test_every_module_has_a_floor():
    missing = [module_name(p) for p in MODULES if floor_of(module_name(p)) is None]
    assert not missing, (f"modules without a floor: {missing}; add them to FLOORS in tests/test_floors.py "
                         f"(and to the table in DESIGN.md)")


@pytest.mark.parametrize("path", MODULES, ids=[module_name(p) for p in MODULES])
def test_imports_point_down(path):
    own = module_name(path)
    own_floor = floor_of(own)
    upward = []
    for line, name, internal in imported_modules(path):
        target_floor = floor_of(name) if internal else None
        if target_floor is not None and own_floor is not None and target_floor > own_floor:
            upward.append(f"line {line}: imports {name} (floor {target_floor}) from floor {own_floor}")
    assert not upward, f"tinyinception.{own} imports up the floors:\n" + "\n".join(upward)


def _indented(path, line):
    """Whether line ``line`` of ``path`` is indented (an import inside a function, not at module level)."""
    text = path.read_text(encoding="utf-8").splitlines()[line - 1]
    return text[:1].isspace()


@pytest.mark.parametrize("path", MODULES, ids=[module_name(p) for p in MODULES])
def test_rules_of_the_house(path):
    own = module_name(path)
    broken = []
    for line, name, internal in imported_modules(path):
        for importer, forbidden, why in FORBIDDEN:
            if internal and starts(own, importer) and starts(name, forbidden):
                broken.append(f"line {line}: imports {name}: {why}")
        if not internal and any(starts(own, prefix) for prefix in NO_TORCH) and starts(name, "torch"):
            if own in TORCH_INSIDE_FUNCTIONS and _indented(path, line):
                continue
            broken.append(f"line {line}: imports torch: weight files are read with NumPy alone")
    assert not broken, f"tinyinception.{own}:\n" + "\n".join(broken)


def test_the_checker_sees_an_upward_import(tmp_path, monkeypatch):
    """The parser resolves relative imports: a kernel importing nn, written as ``from ..nn import Module``."""
    fake_package = tmp_path / "tinyinception"
    (fake_package / "kernels").mkdir(parents=True)
    (fake_package / "nn").mkdir()
    (fake_package / "__init__.py").write_text("")
    (fake_package / "nn" / "__init__.py").write_text("")
    (fake_package / "kernels" / "__init__.py").write_text("")
    bad = fake_package / "kernels" / "bad.py"
    bad.write_text("import numpy as np\nfrom ..nn import Module\nfrom . import im2col\n\n"
                   "def f():\n    from .. import autograd\n")
    (fake_package / "kernels" / "im2col.py").write_text("")
    (fake_package / "autograd.py").write_text("")
    monkeypatch.setitem(globals(), "PACKAGE", fake_package)
    assert imported_modules(bad) == [(1, "numpy", False), (2, "nn", True), (3, "kernels.im2col", True),
                                     (6, "autograd", True)]
    with pytest.raises(AssertionError, match=r"imports nn \(floor 3\) from floor 1"):
        test_imports_point_down(bad)
    with pytest.raises(AssertionError, match="know nothing about autograd"):
        test_rules_of_the_house(bad)
