"""The student edition of the book: every chapter without its exercise solutions, built and checked.

    python tools/student_edition.py            # write _student/ and check the stubs (seconds)
    python tools/student_edition.py --build    # ... then build its HTML, executing every chapter
    python tools/student_edition.py --list     # the exercises as a Markdown table (the README's)

``make student`` runs ``--build``. The edition is a copy of the book's sources in ``_student/``
(``_config.yml``, ``_toc.yml``, ``book/``, and ``benchmarks/results/`` that two chapters read) in
which each code cell tagged ``solution`` is replaced by a short note; the exercise stubs (cells tagged
``exercise``) stay. It checks that

* every function an exercise cell defines raises ``NotImplementedError`` when called (the student's
  starting point), and no solution is left in the notebooks;
* every other cell runs: ``--build`` executes each chapter with Jupyter Book (a cell that fails stops
  the build), so a later cell that needed a solution's result fails here, not in a classroom.

The notebooks for students are ``_student/book/*.ipynb`` (without outputs), the pages
``_student/_build/html``.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
NOTE = ("*Your solution goes in the cell above. The worked solution is in the instructor's edition "
        "(the published book, where it is collapsed under this exercise).*")


def exercise_functions(source: str) -> list[str]:
    """The names of the functions a cell defines at its top level."""
    return [node.name for node in ast.parse(source).body if isinstance(node, ast.FunctionDef)]


def stub_raises(source: str, where: str) -> list[str]:
    """Run an exercise cell and call each function it defines with placeholder arguments.

    Returns the function names; raises AssertionError naming ``where`` if one does not raise
    ``NotImplementedError`` (a stub that returns something, or fails in another way, misleads a student).
    """
    names = exercise_functions(source)
    if not names:
        raise AssertionError(f"{where}: the exercise cell defines no function")
    namespace: dict = {}
    exec(compile(source, where, "exec"), namespace)
    for name in names:
        function = namespace[name]
        required = [p for p in inspect.signature(function).parameters.values()
                    if p.default is inspect.Parameter.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        try:
            function(*[None] * len(required))
        except NotImplementedError:
            continue
        except Exception as error:
            raise AssertionError(f"{where}: {name}() should raise NotImplementedError, raised {error!r}") from None
        raise AssertionError(f"{where}: {name}() should raise NotImplementedError, it returned")
    return names


def student_notebook(notebook, where: str):
    """A copy of ``notebook`` without solution cells; returns it and the exercise function names."""
    copy = nbformat.from_dict(notebook)
    cells, exercises = [], []
    for cell in copy.cells:
        tags = cell.metadata.get("tags", [])
        if cell.cell_type == "code" and "solution" in tags:
            cells.append(nbformat.v4.new_markdown_cell(NOTE))
            continue
        if cell.cell_type == "code" and "exercise" in tags:
            exercises.append(stub_raises(cell.source, f"{where}, exercise {len(exercises) + 1}"))
        cells.append(cell)
    copy.cells = cells
    leftover = [c for c in copy.cells if "solution" in c.metadata.get("tags", [])]
    if leftover:
        raise AssertionError(f"{where}: solution cells left in the student edition")
    return copy, exercises


def write_edition(output: Path) -> dict[str, list[list[str]]]:
    """Write the student edition into ``output``; returns the exercises per notebook."""
    if output.exists():
        shutil.rmtree(output)
    (output / "book").mkdir(parents=True)
    config = (ROOT / "_config.yml").read_text(encoding="utf-8")
    title = next(line for line in config.splitlines() if line.startswith("title:"))
    config = config.replace(title, title.rstrip().rstrip('"') + ' (student edition)"', 1)
    (output / "_config.yml").write_text(config, encoding="utf-8")
    shutil.copy2(ROOT / "_toc.yml", output / "_toc.yml")
    shutil.copytree(ROOT / "benchmarks" / "results", output / "benchmarks" / "results")
    exercises = {}
    for path in sorted((ROOT / "book").iterdir()):
        if path.name.startswith((".", "_")):
            continue
        target = output / "book" / path.name
        if path.is_dir():
            shutil.copytree(path, target)
        elif path.suffix == ".ipynb":
            notebook, found = student_notebook(nbformat.read(path, as_version=4), path.name)
            nbformat.write(notebook, target)
            exercises[path.name] = found
        else:
            shutil.copy2(path, target)
    return exercises


def exercise_table() -> str:
    """One row per exercise: chapter, functions, and the statement's first sentence (the cell above)."""
    rows = ["| chapter | exercise | functions |", "|---|---|---|"]
    for path in sorted((ROOT / "book").glob("*.ipynb")):
        cells = nbformat.read(path, as_version=4).cells
        for index, cell in enumerate(cells):
            if cell.cell_type == "code" and "exercise" in cell.metadata.get("tags", []):
                statement = next((c.source for c in reversed(cells[:index]) if c.cell_type == "markdown"), "")
                first = " ".join(line.strip("# ").strip() for line in statement.splitlines()[:2] if line.strip())
                rows.append(f"| {path.stem} | {first[:90]} | {', '.join(f'`{n}`' for n in exercise_functions(cell.source))} |")
    return "\n".join(rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=ROOT / "_student")
    parser.add_argument("--build", action="store_true", help="also build the HTML, executing every chapter")
    parser.add_argument("--list", action="store_true", help="print the exercises as a Markdown table and stop")
    args = parser.parse_args(argv)
    if args.list:
        print(exercise_table())
        return 0
    try:
        exercises = write_edition(args.output)
    except AssertionError as error:
        print(f"student edition: {error}", file=sys.stderr)
        return 1
    count = sum(len(found) for found in exercises.values())
    without = [name for name, found in exercises.items() if not found]
    print(f"student edition: {len(exercises)} notebooks, {count} exercises, every stub raises "
          f"NotImplementedError, no solution left -> {args.output}")
    if without:
        print(f"student edition: notebooks without an exercise: {', '.join(without)}")
    if not args.build:
        return 0
    env = {key: value for key, value in os.environ.items() if key != "MPLBACKEND"}
    jupyter_book = Path(sys.executable).parent / "jupyter-book"
    result = subprocess.run([str(jupyter_book), "build", str(args.output)], env=env)
    if result.returncode:
        print("student edition: the build failed (a cell that is not an exercise stub raised; see above)",
              file=sys.stderr)
        return result.returncode
    print(f"student edition: every chapter ran without its solutions -> {args.output / '_build' / 'html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
