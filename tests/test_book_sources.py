"""Source checks of the book: no control characters (a lost backslash: \\b, \\f, \\t inside LaTeX)."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted(ROOT.glob("book/*.ipynb")) + sorted(ROOT.glob("book/*.md")) + [ROOT / "README.md"]
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@pytest.mark.parametrize("path", SOURCES, ids=[p.name for p in SOURCES])
def test_no_control_characters(path):
    if path.suffix == ".ipynb":
        cells = [(k, c.cell_type, c.source) for k, c in enumerate(nbformat.read(path, 4).cells)]
    else:
        cells = [(0, "markdown", path.read_text(encoding="utf-8"))]
    for index, kind, text in cells:
        found = CONTROL.search(text) or (kind == "markdown" and "\t" in text and re.search(r"\t", text))
        assert not found, f"{path.name} cell {index}: control character {found.group()!r} near {text[max(0, found.start() - 30):found.start() + 30]!r}"


def test_chapters_are_stored_without_outputs():
    for path in sorted(ROOT.glob("book/*.ipynb")):
        for index, cell in enumerate(nbformat.read(path, 4).cells):
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, f"{path.name} cell {index} has outputs"
