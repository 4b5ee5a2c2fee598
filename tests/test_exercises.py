"""Course exercises in the book: every stub raises NotImplementedError, every stub has a solution.

Convention: a code cell tagged ``exercise`` defines one or more functions whose bodies raise
``NotImplementedError``; the next code cell, tagged ``solution`` and ``hide-cell`` (collapsed in the
rendered book), redefines them and checks the answer with an ``assert``. Executing the notebook
(``pytest --nbval-lax book/``) runs every solution and its check; this file checks the stubs.
"""

import ast
import inspect
from pathlib import Path

import nbformat
import pytest

BOOK = Path(__file__).resolve().parents[1] / "book"
NOTEBOOKS = sorted(BOOK.glob("*.ipynb"))


def exercise_pairs(path):
    cells = [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
    pairs = []
    for index, cell in enumerate(cells):
        if "exercise" in cell.metadata.get("tags", []):
            following = cells[index + 1] if index + 1 < len(cells) else None
            pairs.append((cell, following))
    return pairs


def defined_functions(source):
    return [node.name for node in ast.parse(source).body if isinstance(node, ast.FunctionDef)]


ALL_PAIRS = [(path.name, k, pair) for path in NOTEBOOKS for k, pair in enumerate(exercise_pairs(path))]


def test_the_book_has_exercises_in_at_least_three_chapters():
    chapters = sorted({notebook for notebook, _, _ in ALL_PAIRS})
    assert len(chapters) >= 3, f"cells tagged 'exercise' in at least 3 notebooks of book/ expected, found {chapters}"


@pytest.mark.parametrize("notebook, k, pair", ALL_PAIRS, ids=[f"{n}-{k}" for n, k, _ in ALL_PAIRS])
def test_stub_raises_and_solution_follows(notebook, k, pair):
    stub, solution = pair
    names = defined_functions(stub.source)
    assert names, f"{notebook}: exercise cell {k} defines no function"
    namespace = {}
    exec(compile(stub.source, f"{notebook}:exercise{k}", "exec"), namespace)
    for name in names:
        function = namespace[name]
        arguments = [None] * len(
            [p for p in inspect.signature(function).parameters.values() if p.default is inspect.Parameter.empty]
        )
        with pytest.raises(NotImplementedError):
            function(*arguments)
    assert solution is not None, f"{notebook}: exercise {k} has no solution cell after it"
    tags = solution.metadata.get("tags", [])
    assert "solution" in tags and "hide-cell" in tags, f"{notebook}: solution {k} must be tagged solution + hide-cell"
    assert set(names) <= set(defined_functions(solution.source)), f"{notebook}: solution {k} must define {names}"
    assert "assert" in solution.source, f"{notebook}: solution {k} must check its answer with an assert"
