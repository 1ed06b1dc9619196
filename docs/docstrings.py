"""Let autodoc read the package's plain-text docstrings as reStructuredText without complaint.

The docstrings are written to be read in a terminal: ``name: what it is`` lines whose long descriptions hang
indented below them, shapes such as ``(out, in, *kernel)``, ``|a - b|`` for an absolute value and PyTorch's
in-place names such as ``clip_grad_norm_``. reST reads an indented line after a paragraph as an error, a lone
``*`` as the start of emphasis, ``|...|`` as a substitution and ``name_`` as a link. This hook (connected in
``conf.py``) joins a hanging continuation to the line it continues, puts a blank line where an indented block
(after a line ending in ``:``) starts or ends, and escapes those characters outside inline literals, ``::``
literal blocks and tables; it changes nothing else.
"""
import re

STARRED_NAME = re.compile(r"(?<![*\\`])\*(\w+)(?=[),\]])")
LINK_LIKE_NAME = re.compile(r"(?<=\w)_(?=[\s,.;:)\]]|$)")
INLINE_LITERAL = re.compile(r"(``.+?``|`[^`]+`)")
BULLETS = ("* ", "- ", "+ ")
TABLE_BORDER = re.compile(r"^\s*=+(\s+=+)+\s*$")


def _indent(line):
    return len(line) - len(line.lstrip())


def _literal_lines(lines):
    """Indices of the lines inside ``::`` literal blocks (indented below a line that ends in ``::``)."""
    inside, opener_indent = set(), None
    for index, line in enumerate(lines):
        if opener_indent is not None:
            if not line.strip() or _indent(line) > opener_indent:
                inside.add(index)
                continue
            opener_indent = None
        if line.rstrip().endswith("::"):
            opener_indent = _indent(line)
    return inside


def _table_lines(lines):
    """Indices of the lines of simple tables (from the first ``=== ===`` border to the last)."""
    inside, start, last_border = set(), None, None
    for index, line in enumerate(lines):
        if TABLE_BORDER.match(line):
            if start is None:
                start = index
            elif index + 1 == len(lines) or not lines[index + 1].strip():
                inside.update(range(start, index + 1))
                start = None
            last_border = index
    if start is not None and last_border > start:
        inside.update(range(start, last_border + 1))
    return inside


def _escape(line):
    """``line`` with ``*name``, ``|`` and ``name_`` escaped outside inline literals (a line block's or a grid
    table's leading ``|`` is left alone)."""
    parts = INLINE_LITERAL.split(line)
    bars = not line.lstrip().startswith(("|", "+"))
    for i in range(0, len(parts), 2):                 # even parts lie outside the literals
        part = STARRED_NAME.sub(r"\\*\1", parts[i])
        part = part.replace("|", "\\|") if bars else part
        parts[i] = LINK_LIKE_NAME.sub(r"\\_", part)
    return "".join(parts)


def tidy(lines):
    """The docstring's lines, valid reST: continuations joined, blank lines around indented blocks, stray markup
    escaped."""
    literal, table = _literal_lines(lines), _table_lines(lines)
    out = []
    for index, line in enumerate(lines):
        previous = out[-1] if out else ""
        if index in table:
            out.append(line)
            continue
        if index in literal:
            if line.strip() and previous.rstrip().endswith("::"):
                out.append("")
            out.append(line)
            continue
        doctest = line.lstrip().startswith((">>>", "...")) or previous.lstrip().startswith((">>>", "..."))
        if line.strip() and previous.strip() and not doctest and _indent(line) > _indent(previous) \
                and not previous.rstrip().endswith(":") and not line.lstrip().startswith(BULLETS):
            out[-1] = previous.rstrip() + " " + _escape(line.strip())     # a hanging continuation: same paragraph
            continue
        if line.strip() and previous.strip() and not doctest and _indent(line) != _indent(previous):
            out.append("")
        out.append(line if line.lstrip().startswith((">>>", "...")) else _escape(line))
    return out


def process_docstring(app, what, name, obj, options, lines):
    lines[:] = tidy(lines)


def setup(app):
    app.connect("autodoc-process-docstring", process_docstring)
    return {"parallel_read_safe": True}
