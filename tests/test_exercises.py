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


def test_second_solution_mean_chords_by_axis():
    """Chapter 10's exercise, solved a second way (run lengths along every line), against the package's chords."""
    import numpy as np
    import torch

    from lgtutorial.statistics.chords import chord_lengths
    from lgtutorial.volume.slices import volume_slices

    labels = torch.from_numpy(np.random.default_rng(3).random((6, 7, 8)) < 0.4).long()
    labels[:, 2, :] = 1  # some lines along x of one phase only
    volume = torch.nn.functional.one_hot(labels, 2).permute(3, 0, 1, 2)[None].float()  # (1, 2, D, H, W)

    def runs_along(line):
        line = np.asarray(line)
        if line.all():
            return [len(line)]
        start = int(np.argmin(line))  # begin at a voxel of another phase: no run is cut by the wrap
        rolled, found, run = np.roll(line, -start), [], 0
        for value in np.append(rolled, False):
            if value:
                run += 1
            elif run:
                found.append(run)
                run = 0
        return found

    inside = (labels == 1).numpy()
    second = {axis: float(np.mean([r for line in np.moveaxis(inside, dim, -1).reshape(-1, inside.shape[dim])
                                   for r in runs_along(line)]))
              for axis, dim in (("x", 2), ("y", 1), ("z", 0))}
    along = {"x": ("xy", "x"), "y": ("xy", "y"), "z": ("xz", "y")}
    package = {axis: float(chord_lengths(volume_slices(volume, o), axis=a, periodic=True)[1].mean())
               for axis, (o, a) in along.items()}
    assert all(abs(second[a] - package[a]) < 1e-9 for a in "xyz"), (second, package)


def test_second_solution_sample_seeds():
    """The appendix's exercise, solved a second way (numpy's Generator seeded by the same sequence), against the package."""
    import numpy as np

    from lgtutorial.sweep.design import sample_seed

    def seeds(design_seed, n_points, samples_per_point):
        out = []
        for slot in range(n_points * samples_per_point):
            point, sample = divmod(slot, samples_per_point)
            state = np.random.SeedSequence(entropy=[design_seed, point, sample]).generate_state(2, dtype=np.uint32)
            out.append((int(state[0]) | int(state[1]) << 32) // 2)
        return out

    assert seeds(7, 3, 2) == [sample_seed(7, p, s) for p in range(3) for s in range(2)]
