"""The rendered book's home: .github/workflows/book.yml builds the book and publishes it to GitHub Pages.

``make lint`` validates the workflow against GitHub's workflow schema with check-jsonschema (a dev
dependency); these tests check that the validator accepts the file, that it rejects a broken copy (so
the lint step can fail), and that the workflow does what the README promises.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "book.yml"
VALIDATOR = shutil.which("check-jsonschema", path=str(Path(sys.executable).parent)) or shutil.which("check-jsonschema")
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))


def validate(path: Path) -> subprocess.CompletedProcess:
    assert VALIDATOR, "check-jsonschema is a dev dependency (pip install -e '.[dev]')"
    return subprocess.run([VALIDATOR, "--builtin-schema", "vendor.github-workflows", str(path)],
                          capture_output=True, text=True, timeout=120)


def pages_address() -> str:
    owner, name = CONFIG["repository"]["url"].rstrip("/").removeprefix("https://github.com/").split("/")
    return f"https://{owner.lower()}.github.io/{name}/"


def test_the_workflow_passes_the_schema():
    result = validate(WORKFLOW)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("breakage", ["a job without runs-on", "a step with both uses and run", "a misspelt key"])
def test_the_validator_rejects_a_broken_copy(tmp_path, breakage):
    workflow = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    build = workflow["jobs"]["build"]
    if breakage == "a job without runs-on":
        del build["runs-on"]
    elif breakage == "a step with both uses and run":
        build["steps"][0]["run"] = "echo both"
    else:
        build["step"] = build.pop("steps")
    broken = tmp_path / "book.yml"
    broken.write_text(yaml.safe_dump(workflow, sort_keys=False), encoding="utf-8")
    result = validate(broken)
    assert result.returncode != 0, f"check-jsonschema accepted a workflow with {breakage}"


def test_the_workflow_builds_the_book_and_deploys_it_on_every_push_to_main():
    workflow = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    assert triggers["push"]["branches"] == ["main"]
    assert workflow["permissions"]["pages"] == "write" and workflow["permissions"]["id-token"] == "write"
    build = workflow["jobs"]["build"]["steps"]
    runs = "\n".join(step.get("run", "") for step in build)
    assert "download.pytorch.org/whl/cpu" in runs and '-e ".[dev]"' in runs and "make book" in runs
    assert "LGTUTORIAL_DATA" not in WORKFLOW.read_text(encoding="utf-8").replace("LGTUTORIAL_DATA is left unset", "")
    upload = [step for step in build if step.get("uses", "").startswith("actions/upload-pages-artifact@")]
    assert upload and upload[0]["with"]["path"] == "_build/html"
    deploy = workflow["jobs"]["deploy"]
    assert deploy["needs"] == "build"
    assert any(step.get("uses", "").startswith("actions/deploy-pages@") for step in deploy["steps"])


def test_the_readme_names_the_rendered_books_address():
    assert pages_address() in (ROOT / "README.md").read_text(encoding="utf-8")
    assert pages_address() in WORKFLOW.read_text(encoding="utf-8")
