"""Invariants of the multi-output Gaussian random field (SPEC section 2)."""

import numpy as np
import pytest
import torch

from lgtutorial.grf.field import GaussianRandomField
from lgtutorial.grf.interpolation import interpolate_statistics
from lgtutorial.grf.segmentation import segment_preserving_fractions
from lgtutorial.statistics.two_point import two_point_statistics, volume_fractions
from lgtutorial.synthetic import blobs, lamellae, ring_lamellae

SKEWED = (0.27, 0.33, 0.4)  # three phases' volume fractions, the largest last


@pytest.fixture(scope="module")
def three_phase():
    return blobs((32, 40), 2.0, fractions=SKEWED).double()


@pytest.fixture(scope="module")
def field(three_phase):
    return GaussianRandomField.from_microstructure(three_phase, dtype=torch.float64)


def test_phases_sum_to_one_and_means_match(field, three_phase):
    raw = field.sample_raw(7, generator=torch.Generator().manual_seed(1))
    assert raw.shape == (7, 3, 32, 40)
    assert torch.allclose(raw.sum(1), torch.ones_like(raw[:, 0]), atol=1e-12)
    target = volume_fractions(three_phase)[0]
    assert torch.allclose(field.target_volume_fractions, target, atol=1e-12)
    # every sample has exactly the target mean (the zero frequency is fixed)
    assert torch.allclose(volume_fractions(raw), target.expand(7, 3), atol=1e-12)
    # and the fields are not trivial
    assert float(raw[:, 0].std()) > 0.1


def ensemble_error(field, row, n, seed):
    raw = field.sample_raw(n, generator=torch.Generator().manual_seed(seed))
    mean = two_point_statistics(raw)[:, field.reference_phase].mean(0)
    return float((mean - row).pow(2).mean().sqrt())


def test_ensemble_statistics_converge_like_one_over_sqrt_n(field, three_phase):
    row = two_point_statistics(three_phase)[0, 0]
    sizes = [8, 32, 128, 512]
    errors = [np.mean([ensemble_error(field, row, n, seed) for seed in range(4)]) for n in sizes]
    slope = np.polyfit(np.log(sizes), np.log(errors), 1)[0]
    assert -0.65 < slope < -0.35, (errors, slope)
    assert errors[-1] < 0.2 * errors[0]


def test_cross_correlations_are_reproduced(field, three_phase):
    target = two_point_statistics(three_phase)[0]
    raw = field.sample_raw(1024, generator=torch.Generator().manual_seed(5))
    mean = two_point_statistics(raw).mean(0)
    # the whole matrix, not only the row the field was built from, is close
    assert float((mean[0] - target[0]).abs().max()) < 0.02
    assert float((mean[1, 2] - target[1, 2]).abs().max()) < 0.05


def test_real_and_imaginary_draws_are_independent(field):
    raw = field.sample_raw(400, generator=torch.Generator().manual_seed(2))[:, 0].flatten(1)
    first, second = raw[0::2] - raw[0::2].mean(), raw[1::2] - raw[1::2].mean()
    correlation = (first * second).sum(1) / (first.norm(dim=1) * second.norm(dim=1))
    assert abs(float(correlation.mean())) < 0.03


def test_odd_counts_and_seeds(field):
    a = field.sample_raw(3, generator=torch.Generator().manual_seed(9))
    b = field.sample_raw(3, generator=torch.Generator().manual_seed(9))
    c = field.sample_raw(3, generator=torch.Generator().manual_seed(10))
    assert a.shape[0] == 3 and torch.equal(a, b) and not torch.equal(a, c)
    with pytest.raises(ValueError, match="positive integer"):
        field.sample_raw(0)


def test_preserving_segmentation_hits_target_counts(field):
    samples = field.sample(5, generator=torch.Generator().manual_seed(3))
    counts = samples.segmented.sum((2, 3))
    size = 32 * 40
    expected = torch.round(field.target_volume_fractions * size)
    largest = int(field.target_volume_fractions.argmax())
    for phase in range(3):
        if phase != largest:
            assert torch.all(counts[:, phase] == expected[phase])
    assert torch.all(counts.sum(1) == size)
    assert "target" in samples.report()


def test_argmax_segmentation_and_filter(field):
    samples = field.sample(
        4, generator=torch.Generator().manual_seed(4), filter_sigma=1.5, segmentation="argmax"
    )
    assert torch.allclose(samples.filtered.sum(1), torch.ones(4, 32, 40, dtype=torch.float64), atol=1e-12)
    assert float(samples.filtered.std()) < float(samples.raw.std())  # smoothing removes variance
    assert torch.equal(samples.segmented.argmax(1), samples.filtered.argmax(1))
    assert samples.segmented.sum(1).eq(1).all()
    with pytest.raises(ValueError, match="segmentation must be"):
        field.sample(1, segmentation="otsu")


def test_three_dimensional_cube():
    cube = blobs((12, 12, 12), 1.5, fractions=(0.4, 0.6)).double()
    field = GaussianRandomField.from_microstructure(cube, dtype=torch.float64)
    samples = field.sample(4, generator=torch.Generator().manual_seed(0))
    assert samples.raw.shape == (4, 2, 12, 12, 12)
    assert torch.allclose(samples.raw.sum(1), torch.ones(4, 12, 12, 12, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(volume_fractions(samples.raw), volume_fractions(cube).expand(4, 2), atol=1e-12)
    target = torch.round(field.target_volume_fractions.min() * 12**3)
    assert torch.all(samples.segmented.sum((2, 3, 4)).min(1).values == target)


def test_invalid_statistics_are_rejected(three_phase):
    row = two_point_statistics(three_phase)[0, 0]
    with pytest.raises(ValueError, match="shape"):
        GaussianRandomField(row[0])
    with pytest.raises(ValueError, match="sum to v_p"):
        GaussianRandomField(row[:2])  # an incomplete row
    with pytest.raises(ValueError, match="reference_phase"):
        GaussianRandomField(row, reference_phase=3)
    bad = row.clone()
    bad[0, 1, 0] += 0.2  # a sharp bump at lag (1, 0) and its mirror, balanced by phase 1
    bad[0, -1, 0] += 0.2
    bad[1, 1, 0] -= 0.2
    bad[1, -1, 0] -= 0.2
    with pytest.raises(ValueError, match="not a valid covariance"):
        GaussianRandomField(bad)


def test_round_off_negatives_are_clipped_and_reported():
    stripes = lamellae(16, period=4, share=0.25).double()
    row = two_point_statistics(stripes)[0, 0].clone()
    tiny = 1e-9  # far below the error threshold, far above float64 round-off
    row[0, 1, 0] -= tiny
    row[0, -1, 0] -= tiny
    row[1, 1, 0] += tiny
    row[1, -1, 0] += tiny
    with pytest.warns(UserWarning, match="clipped"):
        field = GaussianRandomField(row)
    assert field.clipped > 0 and field.most_negative_eigenvalue < 0
    raw = field.sample_raw(2, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(raw).all()


def test_segmentation_rejects_bad_targets():
    fields = torch.rand(1, 2, 4, 4)
    with pytest.raises(ValueError, match="expected 2 target"):
        segment_preserving_fractions(fields, [0.2, 0.3, 0.5])
    with pytest.raises(ValueError, match="sum to 1"):
        segment_preserving_fractions(fields, [0.2, 0.3])


def test_interpolated_statistics_feed_the_field(three_phase):
    a = two_point_statistics(three_phase)[0, 0]
    b = two_point_statistics(blobs((32, 40), 3.0, 7, fractions=SKEWED).double()[:, [2, 1, 0]])[0, 0]
    assert torch.equal(interpolate_statistics(a, b, 0.0), a)
    assert torch.allclose(interpolate_statistics(a, b, 1.0), b)
    middle = interpolate_statistics(a, b, 0.4)
    field = GaussianRandomField(middle)
    # the fractions follow the mixture's zero frequency: a weighted average of both references'
    weight = 0.6 * a[0, 0, 0] / (0.6 * a[0, 0, 0] + 0.4 * b[0, 0, 0])
    expected = weight * a.sum((1, 2)) / a.sum() + (1 - weight) * b.sum((1, 2)) / b.sum()
    assert torch.allclose(field.target_volume_fractions.double(), expected, atol=1e-6)
    raw = field.sample_raw(3, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(raw.sum(1), torch.ones(3, 32, 40), atol=1e-5)
    assert torch.allclose(volume_fractions(raw), field.target_volume_fractions.expand(3, 3), atol=1e-5)
    with pytest.raises(ValueError, match="same shape"):
        interpolate_statistics(a, b[:2], 0.5)
    with pytest.raises(ValueError, match="theta"):
        interpolate_statistics(a, b, 1.5)


def test_float32_default_and_device(three_phase):
    field = GaussianRandomField.from_microstructure(three_phase)
    raw = field.sample_raw(2)
    assert raw.dtype == torch.float32 and raw.device.type == "cpu"
    assert torch.allclose(raw.sum(1), torch.ones(2, 32, 40), atol=1e-5)


# -- segmentation rules: which one keeps the 2-point statistics -------------------------------------
@pytest.mark.parametrize("case, expected", [("fine", "quantile"), ("coarse", "preserve")])
def test_auto_segmentation_keeps_the_statistics_of_fine_and_coarse_features(case, expected):
    micro = ring_lamellae(128, 3.5) if case == "fine" else blobs(128, 5.0, fractions=(0.6, 0.4))
    field = GaussianRandomField.from_microstructure(micro)
    assert field.choose_segmentation() == expected
    errors = {}
    for rule in ("preserve", "quantile", "auto"):  # fresh samples, not the probe ones
        samples = field.sample(16, generator=torch.Generator().manual_seed(7), segmentation=rule).segmented
        errors[rule] = field.row_error(samples)
        assert torch.allclose(samples.mean(dim=(0, 2, 3)).double(), field.target_volume_fractions.double(), atol=1e-4)
    other = "preserve" if expected == "quantile" else "quantile"
    assert errors["auto"] == errors[expected] < errors[other]
    if case == "fine":  # the 3x3 mean erases 3.5 px lamellae: a large, not a marginal, loss
        assert errors["preserve"] > 1.3 * errors["quantile"]
    with pytest.raises(ValueError, match="segmentation must be"):
        field.sample(1, segmentation="otsu")
