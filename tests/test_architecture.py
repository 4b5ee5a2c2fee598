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
