"""Shared fixtures: the reference data folder and small random microstructures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from lgtutorial.microstructure import labels_to_one_hot


@pytest.fixture(scope="session")
def data_available() -> bool:
    folder = os.environ.get("LGTUTORIAL_DATA")
    return bool(folder) and Path(folder).is_dir()


@pytest.fixture
def require_data(data_available):
    """Tests that read the reference micrographs need $LGTUTORIAL_DATA (CI sets it)."""
    if not data_available:
        pytest.fail("set LGTUTORIAL_DATA to the reference data folder (e.g. ../shared/data)")


def random_labels(shape, n_phases, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, n_phases, shape, generator=generator)


@pytest.fixture
def small_three_phase() -> torch.Tensor:
    """(3, 3, 7, 9): three random 3-phase samples on a non-square grid, float64."""
    return labels_to_one_hot(random_labels((3, 7, 9), 3), n_phases=3, dtype=torch.float64)
