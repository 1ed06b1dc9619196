"""Callables the tutorial gallery's configuration names (as strings, so Sphinx can cache the configuration)."""
import ast
import pathlib


def quick_argv(gallery_conf, script_vars):
    """The command-line arguments every tutorial runs with in the build: its fast ``--quick`` mode.

    sphinx-gallery runs a script with an empty ``__doc__`` (its docstring becomes the page's introduction) and no
    ``__file__``; a tutorial is also a plain script that may use both (``argparse``'s description; tutorial 12
    starts itself again under ``mpiexec``), so it gets them back.
    """
    source = pathlib.Path(script_vars["src_file"]).read_text(encoding="utf-8")
    script_vars["example_globals"]["__doc__"] = ast.get_docstring(ast.parse(source), clean=False)
    script_vars["example_globals"]["__file__"] = str(script_vars["src_file"])
    return ["--quick"]
