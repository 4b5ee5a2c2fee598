"""A statistics row moved onto another grid stays a valid GRF input (the 201x201 NGRF examples, fit at 200x200)."""

from __future__ import annotations

import pytest
import torch

from lgtutorial import data
from lgtutorial.grf.field import GaussianRandomField, statistics_row
from lgtutorial.grf.interpolation import statistics_row_for_shape


@pytest.mark.requires_data("ngrf-two-phase-elongated", "ngrf-three-phase-elongated")
@pytest.mark.parametrize("name", ["ngrf-two-phase-elongated", "ngrf-three-phase-elongated"])
def test_a_resized_row_has_a_nonnegative_reference_spectrum(name):
    micro, _ = data.load(name)
    row = statistics_row(micro)
    moved = statistics_row_for_shape(row, (200, 200))
    spectrum = torch.fft.fft2(moved[0]).real
    spectrum[0, 0] = 0
    assert float(spectrum.min()) >= -1e-12 * float(spectrum.abs().max())
    # the phases still sum to f_pp(0) at every lag, to far better than the GRF's tolerance
    assert float((moved.sum(0) - moved[0, 0, 0]).abs().max()) < 1e-4
    field = GaussianRandomField(moved)  # raised "not a valid covariance" before the repair
    assert torch.allclose(field.target_volume_fractions.double().cpu(), micro.double().mean((0, 2, 3)), atol=1e-3)
