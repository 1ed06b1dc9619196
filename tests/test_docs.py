"""The documentation: the built site has every tutorial page with its output and figures, and the README's Python
examples run on their own.

The site is built by ``sphinx-build -W -b html docs docs/_build/html`` (``.ci/run`` does it before pytest, and
that build runs every tutorial in its ``--quick`` form); the tests of the built pages skip until it exists.
"""
import html.parser
import os
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
BUILT = ROOT / "docs" / "_build" / "html"
TUTORIALS = sorted(p for p in (ROOT / "tutorials").glob("[0-9][0-9]_*.py"))
API_PAGES = ["tinyinception", "nn", "functional", "optim", "models", "data", "train", "interop", "summary", "viz",
             "gradcheck"]
DRAWS_A_FIGURE = re.compile(r"\bplt\.(subplots|figure|imshow|plot|bar)\(")

needs_build = pytest.mark.skipif(not (BUILT / "index.html").is_file(),
                                 reason="the site is not built (sphinx-build -W -b html docs docs/_build/html)")


class _Page(html.parser.HTMLParser):
    """The images and the class names of the blocks of one built page."""

    def __init__(self):
        super().__init__()
        self.images, self.classes = [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img" and attrs.get("src"):
            self.images.append((attrs["src"], attrs.get("class") or ""))
        if attrs.get("class"):
            self.classes.extend(attrs["class"].split())


def read_page(path):
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def is_cell_format(script):
    """A tutorial in the gallery's cell format (``# %%`` cells), which leaves its figures open for the page."""
    return any(line.startswith("# %%") for line in script.read_text(encoding="utf-8").splitlines())


@pytest.mark.docs
@needs_build
@pytest.mark.parametrize("script", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_every_tutorial_has_a_page_with_its_output_and_figures(script):
    page_path = BUILT / "tutorials" / f"{script.stem}.html"
    assert page_path.is_file(), f"no page for {script.name} in the built site ({page_path} is missing)"
    page = read_page(page_path)
    assert "sphx-glr-script-out" in page.classes, f"{page_path.name}: no printed output on the page"
    for src, _ in page.images:
        assert (page_path.parent / src).resolve().is_file(), f"{page_path.name}: image {src} is not in the site"
    figures = [src for src, cls in page.images if "sphx-glr-single-img" in cls or "sphx-glr-multi-img" in cls]
    if is_cell_format(script) and DRAWS_A_FIGURE.search(script.read_text(encoding="utf-8")):
        assert figures, f"{script.name} draws with matplotlib but its page shows no figure"


@pytest.mark.docs
@needs_build
def test_the_gallery_lists_every_tutorial():
    index = (BUILT / "tutorials" / "index.html").read_text(encoding="utf-8")
    missing = [p.stem for p in TUTORIALS if f"{p.stem}.html" not in index]
    assert not missing, f"the tutorials page does not link to {missing}"


@pytest.mark.docs
@needs_build
@pytest.mark.parametrize("name", API_PAGES)
def test_the_api_reference_documents_each_public_module(name):
    page = BUILT / "api" / f"{name}.html"
    assert page.is_file(), f"no API page for tinyinception.{name}"
    assert 'class="sig-name descname"' in page.read_text(encoding="utf-8"), f"api/{name}.html documents nothing"


@pytest.mark.docs
@needs_build
def test_the_networks_table_was_computed_at_build_time():
    text = (BUILT / "networks.html").read_text(encoding="utf-8")
    for network, params in [("googlenet()", "13,004,888"), ("inception_v3()", "27,161,264"),
                            ("inception_resnet_v2()", "55,843,464")]:
        assert network in text and params in text, f"the networks page lacks {network} with {params} parameters"


def readme_python_blocks():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(readme_python_blocks())))
def test_readme_python_block_runs_on_its_own(index, tmp_path):
    code = readme_python_blocks()[index]
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), MPLBACKEND="Agg")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=600, check=False)
    assert result.returncode == 0, f"README block {index + 1} failed:\n{code}\n--- stderr ---\n{result.stderr[-3000:]}"
