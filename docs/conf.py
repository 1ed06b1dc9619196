"""Sphinx configuration for tinyinception's documentation site.

Build it (from the repository root):

    pip install -e ".[docs]" && sphinx-build -W -b html docs docs/_build/html

The tutorial gallery runs every ``tutorials/NN_*.py`` in its ``--quick`` form during the build and shows its
printed output and figures; the networks table is computed by ``docs/networks_table.py`` when the site is built.
"""
import ast
import os
import pathlib
import shutil
import sys

DOCS = pathlib.Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))            # document (and run the tutorials on) this checkout's package
sys.path.insert(0, str(DOCS))            # gallery_hooks, networks_table
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
os.environ.setdefault("MPLBACKEND", "Agg")

import tinyinception  # noqa: E402

project = "tinyinception"
author = "the tinyinception authors"
copyright = "tinyinception authors, MIT licence"
release = version = tinyinception.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "sphinx_gallery.gen_gallery",
    "docstrings",                        # docs/docstrings.py: plain-text docstrings read as valid reST
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "tutorials/*.ipynb", "tutorials/*.py", "tutorials/*.zip", "tutorials/*.md5",
                    "tutorials/*.json", "_tutorials_src", "README.md",
                    "_generated", "tutorials_header.rst"]
myst_enable_extensions = ["colon_fence", "dollarmath"]
myst_heading_anchors = 3

# The API reference: docstrings as written (reST), signatures from the code, members in source order.
autodoc_member_order = "bysource"
autodoc_default_options = {}
autodoc_typehints = "none"
add_module_names = False

# --- the tutorial gallery -----------------------------------------------------------------------------------
# sphinx-gallery wants a header file in the folder it reads; tutorials/ holds only the scripts, so the build
# reads a fresh copy of tutorials/ (docs/_tutorials_src, not kept) with docs/tutorials_header.rst as its header.
GALLERY_SOURCE = DOCS / "_tutorials_src"


def _legacy_docstring_as_literal(path):
    """A tutorial whose docstring is plain text (no reST title underlined with ``=``) shows its first line as the
    page title and the rest verbatim; a docstring in the gallery format (title, then reST) is left alone."""
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source)
    docstring = ast.get_docstring(tree, clean=True)
    if not docstring:
        return
    lines = docstring.splitlines()
    if len(lines) > 1 and set(lines[1].strip()) == {"="}:
        return
    body = "\n".join("    " + line if line.strip() else "" for line in lines[1:]).strip("\n")
    text = lines[0].strip() + "\n" + "=" * len(lines[0].strip()) + "\n" + ("\n::\n\n" + body + "\n" if body else "")
    node = tree.body[0]
    source_lines = source.splitlines(keepends=True)
    source_lines[node.lineno - 1:node.end_lineno] = ['"""' + text + '"""\n']
    path.write_text("".join(source_lines), encoding="utf-8")


def _stage_tutorials():
    if GALLERY_SOURCE.exists():
        shutil.rmtree(GALLERY_SOURCE)
    shutil.copytree(ROOT / "tutorials", GALLERY_SOURCE,
                    ignore=shutil.ignore_patterns("runs", "__pycache__", "*.pyc", ".ipynb_checkpoints"))
    shutil.copyfile(DOCS / "tutorials_header.rst", GALLERY_SOURCE / "GALLERY_HEADER.rst")
    for script in GALLERY_SOURCE.glob("[0-9][0-9]_*.py"):
        _legacy_docstring_as_literal(script)


_stage_tutorials()


sphinx_gallery_conf = {
    "examples_dirs": [str(GALLERY_SOURCE)],
    "gallery_dirs": ["tutorials"],
    "filename_pattern": r"[/\\][0-9][0-9]_[^/\\]*\.py$",       # run every numbered tutorial
    "ignore_pattern": r"[/\\]_[^/\\]*\.py$",                     # _helpers.py: imported, not a page
    "reset_argv": "gallery_hooks.quick_argv",                 # every tutorial runs --quick
    "image_scrapers": ("matplotlib",),
    "within_subsection_order": "FileNameSortKey",
    "download_all_examples": False,
    "remove_config_comments": True,
    "abort_on_example_error": True,
    "run_stale_examples": False,
    "capture_repr": (),
    "show_memory": False,
    "min_reported_time": 1,
    "write_computation_times": False,
}

# --- the networks table, computed from the code ---------------------------------------------------------------
import networks_table  # noqa: E402

networks_table.write(DOCS / "_generated" / "networks_table.md")

# --- the look ---------------------------------------------------------------------------------------------------
html_theme = "furo"
html_title = "tinyinception"
html_static_path = ["_static"]
html_css_files = ["tinyinception.css"]
html_theme_options = {"source_repository": "", "navigation_with_keys": True}
pygments_style = "sphinx"
