"""The book as a course (issue #40): checks out of the reader's way, no timing asserted, run times measured.

* at most 40 visible ``assert`` lines in the book's code cells (cells tagged ``remove-cell`` or
  ``remove-input`` are executed by the build and by nbval but not shown);
* no ``assert`` on a timing anywhere, live or read from a record;
* the introduction's course plan shows the build's own execution times ({nb-exec-table}) and links
  the glossary, which defines the terms the book relies on;
* no chapter types its run time.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
NOTEBOOKS = sorted(BOOK.glob("*.ipynb")) + sorted((BOOK / "lab_notes").glob("*.ipynb"))
ASSERT = re.compile(r"^\s*assert\b")
# an assert that compares a duration, a rate or a speed-up
TIMING = re.compile(r"perf_counter|\bseconds\b|\bminutes\b|timings?\b|_time\b|\bs per sample|steps per s|speed-?up|"
                    r"train_minutes|one-off set-up|\bclock\(")


def code_cells(path):
    return [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]


def hidden(cell) -> bool:
    return bool({"remove-cell", "remove-input"} & set(cell.metadata.get("tags", [])))


def statements(source: str):
    """Each assert statement of a cell with its continuation lines (a trailing backslash or open brackets)."""
    lines = source.splitlines()
    for index, line in enumerate(lines):
        if ASSERT.match(line):
            text, depth, k = line, line.count("(") + line.count("[") - line.count(")") - line.count("]"), index
            while (text.rstrip().endswith("\\") or depth > 0) and k + 1 < len(lines):
                k += 1
                text += "\n" + lines[k]
                depth += lines[k].count("(") + lines[k].count("[") - lines[k].count(")") - lines[k].count("]")
            yield text


def test_at_most_40_visible_assert_lines_in_the_book():
    visible = {path.relative_to(BOOK).as_posix(): sum(1 for cell in code_cells(path) if not hidden(cell)
                                                      for line in cell.source.splitlines() if ASSERT.match(line))
               for path in NOTEBOOKS}
    assert sum(visible.values()) <= 40, f"{sum(visible.values())} visible assert lines: {visible}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_no_assert_on_a_timing(path):
    timed = [statement.splitlines()[0][:100] for cell in code_cells(path) for statement in statements(cell.source)
             if TIMING.search(statement)]
    assert not timed, f"{path.name}: asserts on timings (print them instead): {timed}"


def test_the_timing_pattern_catches_what_it_should():
    caught = ['assert largest[3] < 0.1  # seconds', 'assert seconds["faithful"] / seconds["fast"] > 10',
              'assert result.seconds["training"] > 60 * minutes', 'assert r["train_minutes"] <= 19']
    assert all(TIMING.search(text) for text in caught)
    assert not TIMING.search('assert spread["hybrid"] < 0.5 * spread["SBG"]')
    assert not TIMING.search('assert cost["fast"]["score evaluations per sample (counted)"] == "49"')


def test_the_introduction_shows_measured_run_times_and_links_the_glossary():
    intro = (BOOK / "intro.md").read_text(encoding="utf-8")
    assert "```{nb-exec-table}" in intro, "the course plan's run times come from the build"
    assert "{doc}`glossary`" in intro
    glossary = (BOOK / "glossary.md").read_text(encoding="utf-8")
    assert "```{glossary}" in glossary
    for term in ("stochastic microstructure function", "2-point statistics", "GRF", "segmentation", "score",
                 "sigma_c", "hybrid", "`fast`", "`faithful`", "Tweedie step", "volume-fraction posterior",
                 "chord length distribution", "boundary coherence", "region size", "lath", "colony", "EMA"):
        assert re.search(rf"^{re.escape(term)}$", glossary, re.M), f"the glossary has no entry '{term}'"


@pytest.mark.parametrize("path", sorted(BOOK.glob("[0-9][0-9]_*.ipynb")), ids=lambda p: p.stem)
def test_no_chapter_types_its_run_time(path):
    first = nbformat.read(path, as_version=4).cells[0].source
    typed = re.findall(r"[^.]*\btakes? [\d–-]+ ?(?:s|seconds|minutes)\b[^.]*|[^.]*measured: \d+[^.]*", first)
    assert not typed, f"{path.name}: a typed run time in the first cell: {typed}"
