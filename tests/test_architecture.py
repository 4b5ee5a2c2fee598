"""The house keeps itself: the layer and no-cycle contracts of ``pyproject.toml`` hold, and fail on a
deliberately added upward import or cycle; subpackages hold no re-exports; modules stay short."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import lgtutorial

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path(lgtutorial.__file__).parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"

pytestmark = pytest.mark.skipif(not LINT_IMPORTS.exists(), reason="import-linter is a dev dependency (pip install -e '.[dev]')")


def _lint(package_parent: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(package_parent))
    return subprocess.run([str(LINT_IMPORTS), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
                          cwd=package_parent, env=env, capture_output=True, text=True)


def _copy_with(tmp_path: Path, module: str, line: str) -> Path:
    shutil.copytree(PACKAGE, tmp_path / "lgtutorial", ignore=shutil.ignore_patterns("__pycache__"))
    path = tmp_path / "lgtutorial" / (module.replace(".", "/") + ".py")
    path.write_text(path.read_text() + f"\n{line}\n")
    return tmp_path


def test_the_package_keeps_its_contracts():
    done = _lint(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 kept, 0 broken" in done.stdout


def test_an_upward_import_breaks_the_layer_contract(tmp_path):
    done = _lint(_copy_with(tmp_path, "statistics.two_point", "import lgtutorial.sampling.hybrid  # noqa"))
    assert done.returncode != 0
    assert "lgtutorial.statistics.two_point -> lgtutorial.sampling.hybrid" in done.stdout


def test_an_import_cycle_inside_a_package_breaks_the_cycle_contract(tmp_path):
    done = _lint(_copy_with(tmp_path, "sampling.samples", "import lgtutorial.sampling.hybrid  # noqa"))
    assert done.returncode != 0
    assert "No cycles are allowed in lgtutorial.sampling" in done.stdout


def test_subpackages_hold_only_their_docstring_and_nothing_reexports_by_getattr():
    for init in PACKAGE.glob("*/__init__.py"):
        body = ast.parse(init.read_text()).body
        assert len(body) == 1 and isinstance(body[0], ast.Expr), f"{init} holds more than its docstring"
    for module in PACKAGE.rglob("*.py"):
        names = {node.name for node in ast.parse(module.read_text()).body if isinstance(node, ast.FunctionDef)}
        assert "__getattr__" not in names, f"{module} has a module __getattr__"


def _imports_of_lgtutorial(source: str):
    """Every ``from lgtutorial... import name`` in ``source``, at any depth (magics and shell lines dropped)."""
    lines = [line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))]
    for node in ast.walk(ast.parse("\n".join(lines))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "lgtutorial":
            for alias in node.names:
                yield node.module, alias.name


def test_every_import_of_the_package_in_the_repository_resolves():
    """Benchmarks, tools, figure scripts and chapters name each thing by its one home (they are not all run
    by the tests, so a moved name would otherwise break them silently)."""
    import importlib
    import json

    sources = {str(path): path.read_text() for folder in ("benchmarks", "tools", "book/figures", "tests", "lgtutorial")
               for path in (ROOT / folder).rglob("*.py")}
    for notebook in (ROOT / "book").glob("*.ipynb"):
        cells = json.loads(notebook.read_text())["cells"]
        sources[str(notebook)] = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    broken = []
    for where, source in sources.items():
        for module, name in _imports_of_lgtutorial(source):
            try:
                imported = importlib.import_module(module)
            except ImportError as error:
                broken.append(f"{where}: {module} ({error})")
                continue
            if not hasattr(imported, name):
                try:
                    importlib.import_module(f"{module}.{name}")
                except ImportError:
                    broken.append(f"{where}: from {module} import {name}")
    assert not broken, "\n".join(broken)


def test_no_module_is_over_400_lines():
    long = {str(path.relative_to(PACKAGE)): n for path in PACKAGE.rglob("*.py")
            if (n := len(path.read_text().splitlines())) > 400}
    assert not long, long


def _repeated_blocks(sources: dict[str, str], size: int = 6) -> list[str]:
    """Places where the same ``size`` code lines (blank lines, comments and imports skipped, white space
    folded) stand twice."""
    seen, repeats = {}, []
    for where, source in sources.items():
        lines = [(number, " ".join(line.split())) for number, line in enumerate(source.splitlines(), 1)]
        code = [(n, text) for n, text in lines if text and not text.startswith(("#", "import ", "from ", '"""'))
                and text not in (")", "]", "}", "):", "],", "},", "else:", "try:", "return", "continue")]
        for k in range(len(code) - size + 1):
            block = tuple(text for _, text in code[k:k + size])
            here = f"{where}:{code[k][0]}"
            if block in seen and not seen[block].startswith(f"{where}:") or block in seen and \
                    abs(int(seen[block].rsplit(":", 1)[1]) - code[k][0]) >= size:
                repeats.append(f"{seen[block]} ~ {here}")
            seen.setdefault(block, here)
    return repeats


def test_no_block_of_six_lines_is_written_twice_in_the_package_or_across_chapters():
    import json

    package = {str(path.relative_to(ROOT)): path.read_text() for path in sorted(PACKAGE.rglob("*.py"))}
    assert not _repeated_blocks(package), _repeated_blocks(package)[:10]
    chapters = {}
    for notebook in sorted((ROOT / "book").glob("*.ipynb")):
        cells = json.loads(notebook.read_text())["cells"]
        chapters[notebook.name] = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    repeats = [r for r in _repeated_blocks(chapters) if r.split(":")[0] != r.split(" ~ ")[1].split(":")[0]]
    assert not repeats, repeats[:10]
