"""Colab: every chapter opens from its badge and installs the package from the book's one repository address.

The address lives in ``_config.yml`` (``repository: url``, ``branch``); a notebook opened alone on
Colab cannot read that file, so each writes the address out. This keeps them all equal to it.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
URL, BRANCH = CONFIG["repository"]["url"].rstrip("/"), CONFIG["repository"].get("branch", "main")
TOC = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
# the lessons (the lab notes, pages read from committed records, have no Colab badge)
CHAPTERS = [chapter for part in TOC.get("parts", [{"chapters": TOC.get("chapters", [])}])
            if part.get("caption") != "Lab notes" for chapter in part.get("chapters") or []]
NOTEBOOKS = [ROOT / f"{chapter['file']}.ipynb" for chapter in CHAPTERS
             if (ROOT / f"{chapter['file']}.ipynb").is_file()]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_the_badge_and_the_install_use_the_books_repository(path):
    cells = nbformat.read(path, as_version=4).cells
    owner_repo = URL.removeprefix("https://github.com/")
    badge = f"https://colab.research.google.com/github/{owner_repo}/blob/{BRANCH}/book/{path.name}"
    assert badge in cells[0].source, f"{path.name}: the first cell's Colab badge should link {badge}"
    setup = next((c.source for c in cells if c.cell_type == "code" and "google.colab" in c.source), None)
    assert setup is not None, f"{path.name}: no setup cell that installs the package on Colab"
    addresses = set(re.findall(r"https://github\.com/[\w.-]+/[\w.-]+", setup))
    assert addresses == {URL}, f"{path.name}: the setup cell installs from {addresses}, _config.yml says {URL}"
    assert "pip" in setup and "install" in setup, f"{path.name}: the setup cell does not pip-install the package"
