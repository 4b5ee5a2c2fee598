"""One licence statement: LICENSE, the README's "Licence" section, the registry and the model cards agree."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from lgtutorial import data
from lgtutorial.score import registry as pretrained
from lgtutorial.score.model_card import licence_section, model_card

ROOT = Path(__file__).resolve().parents[1]
#: the licences the README's statement covers (data/registry.toml's header explains each)
KNOWN_LICENCES = {"GPL-3.0", "GPL-3.0 (derived)", "CC BY 4.0", "MIT"}


def readme_licence_table() -> list[tuple[list[str], str]]:
    """(registry names or name patterns, licence) for each row of the README's reference-data table."""
    section = ROOT.joinpath("README.md").read_text(encoding="utf-8").split("## Licence\n", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if line.startswith("| `") and len(cells) == 3:
            rows.append((re.findall(r"`([^`]+)`", cells[0]), cells[2]))
    return rows


def test_the_code_is_mit():
    assert ROOT.joinpath("LICENSE").read_text().startswith("MIT License\n\nCopyright (c) 2026 lgtutorial contributors")
    assert 'license = { text = "MIT" }' in ROOT.joinpath("pyproject.toml").read_text()


def test_every_registry_licence_is_known_and_stated_in_the_readme():
    rows = readme_licence_table()
    for entry in data.registry().values():
        assert entry.licence in KNOWN_LICENCES, (entry.name, entry.licence)
        if getattr(entry, "shipped", False):  # made by this project and kept in the repository: not in the table
            continue
        stated = [licence for names, licence in rows
                  if entry.name in names or any(n.endswith("*") and entry.name.startswith(n[:-1]) for n in names)]
        assert stated == [entry.licence], (entry.name, entry.licence, stated)
    assert data.registry()["nbsa-proxy"].licence == "GPL-3.0 (derived)"  # a sample of the GPL-3.0 checkpoint


@pytest.mark.parametrize("name", ["lgtutorial-case1", "lgtutorial-case2"])
def test_model_cards_end_with_the_licence_section(name):
    payload = torch.load(pretrained.pretrained_directory() / f"{name}.pt", map_location="cpu", weights_only=True)
    card = model_card(payload, "0" * 64)
    reference = payload["provenance"]["reference"]["name"]
    section = licence_section(data.registry()[reference].licence, reference=f"`{reference}`")
    assert card.rstrip().endswith(section.rstrip())
    assert card.count("## Licence") == 1 and "distributed under GPL-3.0" in section
    assert "claims no rights in them" in section and "not legal advice" in section


def test_licence_section_for_other_sources():
    section = licence_section("CC BY 4.0", reference="`li2018-alloy`")
    assert section.startswith("## Licence\n") and "under the same terms as the training micrograph (CC BY 4.0)" in section
    assert "GPL" not in section
