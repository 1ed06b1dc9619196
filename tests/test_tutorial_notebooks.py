"""Every numbered tutorial is also a notebook and a gallery page.

The cell format (what sphinx-gallery and jupytext both read): a module docstring in reStructuredText whose first
line is a title underlined with ``=``; cells separated by ``# %%`` lines; text cells marked ``# %% [markdown]``
and written as ``# `` comment lines. jupytext turns each tutorial into a notebook with markdown and code cells;
those tests skip cleanly where jupytext is not installed.
"""
import ast
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
TUTORIALS = sorted((ROOT / "tutorials").glob("[0-9][0-9]_*.py"))
IDS = [path.stem for path in TUTORIALS]


def test_tutorials_exist():
    assert len(TUTORIALS) >= 7


@pytest.mark.parametrize("script", TUTORIALS, ids=IDS)
def test_tutorial_has_the_gallery_layout(script):
    source = script.read_text()
    docstring = ast.get_docstring(ast.parse(source), clean=False)
    assert docstring, f"{script.name}: no module docstring (the page's title and introduction)"
    lines = docstring.strip("\n").splitlines()
    assert len(lines) >= 3 and re.fullmatch(r"=+", lines[1]) and len(lines[1]) >= len(lines[0]), (
        f"{script.name}: the docstring must open with a title underlined by '=' as long as the title, got "
        f"{lines[:2]}")
    assert "--quick" in docstring, f"{script.name}: the introduction must say what --quick does"
    assert re.search(r"Run time", docstring), f"{script.name}: the introduction must say how long it takes"
    assert source.count("\n# %%\n") >= 2 and source.count("\n# %% [markdown]\n") >= 2, (
        f"{script.name}: expected several '# %%' code cells and '# %% [markdown]' text cells")
    for match in re.finditer(r"\n# %% \[markdown\]\n((?:#.*\n)*)", source):
        assert match.group(1).strip(), f"{script.name}: an empty text cell"
    assert "parse_known_args()" in source, f"{script.name}: parse arguments with parse_known_args (notebooks, docs)"
    assert "plt.close" not in source, f"{script.name}: figures stay open for the gallery to capture"
    if "matplotlib" in source:
        assert f'os.path.join("runs", "tutorials", "{script.stem}")' in source, (
            f"{script.name}: figures go under runs/tutorials/{script.stem}/")


def text_of(source):
    """The page's reStructuredText: the module docstring, then every text cell with its ``# `` markers removed."""
    parts = [ast.get_docstring(ast.parse(source), clean=False)]
    for match in re.finditer(r"\n# %% \[markdown\]\n((?:#.*\n)*)", source):
        parts.append("\n".join(line[2:] for line in match.group(1).splitlines()))
    return "\n\n".join(parts)


@pytest.mark.parametrize("script", TUTORIALS, ids=IDS)
def test_tutorial_text_is_valid_restructuredtext(script):
    import io

    docutils_core = pytest.importorskip("docutils.core")
    warnings = io.StringIO()
    docutils_core.publish_doctree(text_of(script.read_text()),
                                  settings_overrides={"warning_stream": warnings, "report_level": 2})
    assert not warnings.getvalue(), f"{script.name}: reStructuredText problems:\n{warnings.getvalue()}"


@pytest.mark.parametrize("script", TUTORIALS, ids=IDS)
def test_tutorial_converts_to_a_notebook(script):
    jt = pytest.importorskip("jupytext")
    nbformat = pytest.importorskip("nbformat")
    notebook = jt.read(script)
    kinds = [cell.cell_type for cell in notebook.cells]
    assert kinds.count("markdown") >= 2 and kinds.count("code") >= 2, f"{script.name}: cells {kinds}"
    nbformat.validate(nbformat.reads(jt.writes(notebook, fmt="ipynb"), as_version=4))
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            assert cell.source.strip() and not cell.source.lstrip().startswith("# "), (
                f"{script.name}: a markdown cell kept its comment markers: {cell.source[:60]!r}")
        else:
            compile(cell.source, f"{script.name} cell", "exec")   # every code cell is valid Python on its own
    code = "\n".join(cell.source for cell in notebook.cells if cell.cell_type == "code")
    assert "parse_known_args" in code
