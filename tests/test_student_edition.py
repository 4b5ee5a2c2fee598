"""``make student``: the book without its solutions (the edition's build itself runs in ``make student``)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("student_edition", ROOT / "tools" / "student_edition.py")
student_edition = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(student_edition)


def _tags(cell):
    return cell.metadata.get("tags", [])


def test_the_edition_has_every_exercise_and_no_solution(tmp_path):
    exercises = student_edition.write_edition(tmp_path / "student")
    assert "(student edition)" in (tmp_path / "student" / "_config.yml").read_text()
    for source in sorted((ROOT / "book").glob("*.ipynb")):
        original = nbformat.read(source, as_version=4).cells
        edition = nbformat.read(tmp_path / "student" / "book" / source.name, as_version=4).cells
        assert not [c for c in edition if "solution" in _tags(c)], f"{source.name}: a solution is left"
        stubs = [c.source for c in original if "exercise" in _tags(c)]
        assert [c.source for c in edition if "exercise" in _tags(c)] == stubs
        assert len(exercises[source.name]) == len(stubs)
        # everything that is not a solution is there, in order
        kept = [c.source for c in original if "solution" not in _tags(c)]
        assert [c.source for c in edition if c.source != student_edition.NOTE] == kept
    assert (tmp_path / "student" / "benchmarks" / "results").is_dir()  # chapters 4 and 8 read it


def test_a_stub_that_does_not_raise_is_refused():
    notebook = nbformat.v4.new_notebook()
    stub = nbformat.v4.new_code_cell("def answer(x):\n    return 42\n", metadata={"tags": ["exercise"]})
    notebook.cells = [stub]
    with pytest.raises(AssertionError, match="answer\\(\\) should raise NotImplementedError"):
        student_edition.student_notebook(notebook, "demo.ipynb")
    stub.source = "def answer(x):\n    raise NotImplementedError\n"
    edition, found = student_edition.student_notebook(notebook, "demo.ipynb")
    assert found == [["answer"]]


def test_the_instructors_table_in_the_readme_names_every_exercise():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("**For instructors"):readme.index("**Browser check.**")]
    for source in sorted((ROOT / "book").glob("*.ipynb")):
        for cell in nbformat.read(source, as_version=4).cells:
            if "exercise" in _tags(cell):
                for name in student_edition.exercise_functions(cell.source):
                    assert f"`{name}`" in section, f"README's instructor table misses {name} ({source.name})"
