"""Property-based tests (hypothesis): the statistics and the GRF on random valid and invalid inputs."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lgtutorial.grf.field import GaussianRandomField
from lgtutorial.grf.segmentation import segment_preserving_fractions
from lgtutorial.grf.settings import GRFSettings
from lgtutorial.microstructure import labels_to_one_hot
from lgtutorial.sampling.settings import HybridSettings
from lgtutorial.score.settings import TrainingSettings
from lgtutorial.statistics.chords import chord_lengths
from lgtutorial.statistics.higher_order import boundary_coherence
from lgtutorial.statistics.two_point import two_point_statistics, volume_fractions

FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def micrographs(draw, min_phases=2, max_phases=4):
    """Random labellings ``(1, N, H, W)`` with every phase present."""
    n_phases = draw(st.integers(min_phases, max_phases))
    height, width = draw(st.integers(4, 20)), draw(st.integers(4, 20))
    seed = draw(st.integers(0, 2**31 - 1))
    labels = torch.randint(0, n_phases, (height, width), generator=torch.Generator().manual_seed(seed))
    labels.view(-1)[:n_phases] = torch.arange(n_phases)  # every phase present
    return labels_to_one_hot(labels[None], n_phases=n_phases).double()


@FAST
@given(micrographs())
def test_two_point_statistics_hold_their_identities(micro):
    stats = two_point_statistics(micro)[0]  # (N, N, H, W), periodic
    fractions = volume_fractions(micro)[0]
    assert torch.allclose(stats[:, :, 0, 0].diagonal(), fractions, atol=1e-12)  # f_aa(0) = v_a
    assert torch.allclose(stats.sum(1), fractions[:, None, None].expand_as(stats[:, 0]), atol=1e-12)  # sum_b f_ab = v_a
    assert torch.allclose(stats.mean(dim=(2, 3)), torch.outer(fractions, fractions), atol=1e-12)  # mean = v_a v_b
    assert (stats >= -1e-12).all() and (stats <= 1 + 1e-12).all()


@FAST
@given(micrographs(), st.integers(0, 2**31 - 1))
def test_grf_samples_sum_to_one_and_segmentations_hit_the_fractions(micro, seed):
    field = GaussianRandomField.from_microstructure(micro)
    raw = field.sample_raw(3, generator=torch.Generator().manual_seed(seed))
    assert torch.isfinite(raw).all()
    assert torch.allclose(raw.sum(1), torch.ones_like(raw[:, 0]), atol=1e-4)
    size = micro.shape[2] * micro.shape[3]
    for smooth in (True, False):
        segmented = segment_preserving_fractions(raw, field.target_volume_fractions, smooth=smooth)
        assert torch.equal(segmented.sum(1), torch.ones_like(segmented[:, 0]))
        counts = segmented.sum(dim=(2, 3))
        expected = (field.target_volume_fractions.double().cpu() * size).round()
        largest = int(torch.argmax(field.target_volume_fractions))
        for phase in range(micro.shape[1]):
            if phase != largest:
                assert torch.all(counts[:, phase] == expected[phase])


@FAST
@given(micrographs(max_phases=3))
def test_chords_tile_every_line_and_coherence_is_a_fraction(micro):
    for axis, length in (("x", micro.shape[3]), ("y", micro.shape[2])):
        chords = chord_lengths(micro, axis=axis, periodic=True)
        lines = micro.shape[2] if axis == "x" else micro.shape[3]
        assert sum(int(c.lengths.sum()) for c in chords) == lines * length  # periodic chords cover every pixel once
    for phase in range(micro.shape[1]):
        value = float(boundary_coherence(micro, phase, periodic=True)[0])
        assert math.isnan(value) or -1e-9 <= value <= 1 + 1e-9


@FAST
@given(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-5, 5)))
def test_settings_take_exactly_the_valid_numbers(value):
    valid = isinstance(value, (int, float)) and math.isfinite(value) and value > 0
    for make in (lambda: HybridSettings(step_lr=value), lambda: HybridSettings(sigma_c=value),
                 lambda: TrainingSettings(grad_clip=value)):
        if valid:
            make()
        else:
            with pytest.raises(ValueError, match="expected a positive finite"):
                make()
    if value is not None and not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        with pytest.raises(ValueError, match="filter-sigma"):
            GRFSettings(filter_sigma=value)


@FAST
@given(st.lists(st.floats(-2, 2, allow_nan=False), min_size=4, max_size=4), st.integers(2, 6))
def test_invalid_statistics_rows_are_refused_with_a_reason(values, side):
    row = torch.tensor(values, dtype=torch.float64).repeat(side * side).view(side, side, 4).movedim(-1, 0)[:2]
    try:
        field = GaussianRandomField(row)
    except ValueError as error:
        assert any(word in str(error) for word in ("volume fraction", "sum to", "covariance", "finite"))
    else:  # accepted: then it is a usable field
        assert torch.isfinite(field.sample_raw(1, generator=torch.Generator().manual_seed(0))).all()
