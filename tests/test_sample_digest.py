"""What the command line draws on fixed seeds is what it drew before the package became subpackages.

``tests/data/sample_digest.json`` was written by ``tools/sample_digest.py`` on the flat package
(commit cee9130); a move of code that changed any sample, GRF start or trained weight fails here.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.requires_data("nbsa-proxy", "nbsa-authors-checkpoint")
def test_samples_and_weights_are_bit_identical_to_the_committed_digest():
    spec = importlib.util.spec_from_file_location("sample_digest", ROOT / "tools" / "sample_digest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    expected = json.loads((ROOT / "tests" / "data" / "sample_digest.json").read_text())
    assert module.digest() == expected
