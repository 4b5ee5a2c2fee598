"""The synthetic micrographs of the tests, benchmarks and examples (lgtutorial.synthetic)."""

import math

import pytest
import torch

from lgtutorial.statistics.chords import chord_lengths
from lgtutorial.synthetic import blobs, lamellae, ring_lamellae, ring_noise, smooth_noise


@pytest.mark.parametrize("fractions", [(0.3, 0.7), (0.2, 0.3, 0.5), (0.1, 0.4, 0.25, 0.25)])
@pytest.mark.parametrize("make", [lambda f: blobs(64, 2.5, 1, fractions=f), lambda f: ring_lamellae(64, 5.0, 1, fractions=f),
                                  lambda f: blobs((32, 48), (1.0, 3.0), 2, fractions=f)])
def test_every_phase_has_the_volume_fraction_asked_to_a_pixel(make, fractions):
    micrograph = make(fractions)
    pixels = math.prod(micrograph.shape[2:])
    assert micrograph.shape[:2] == (1, len(fractions)) and micrograph.dtype == torch.float32
    assert torch.equal(micrograph.sum(1), torch.ones_like(micrograph[:, 0]))  # one-hot
    achieved = micrograph.double().mean((0, 2, 3))
    assert float((achieved - torch.tensor(fractions, dtype=torch.float64)).abs().max()) < 1 / pixels


def test_two_phases_without_fractions_are_half_and_half_and_a_seed_is_a_picture():
    assert blobs(64, 2.0).double().mean((0, 2, 3)).tolist() == [0.5, 0.5]
    assert torch.equal(blobs(48, 2.0, seed=4), blobs(48, 2.0, seed=4))
    assert not torch.equal(blobs(48, 2.0, seed=4), blobs(48, 2.0, seed=5))
    volume = blobs((8, 12, 16), 1.5, fractions=(0.25, 0.75))
    assert volume.shape == (1, 2, 8, 12, 16) and float(volume[:, 1].mean()) == 0.75


def _seam_and_inside(labels: torch.Tensor) -> tuple[float, float]:
    """How often the phase changes from the last column to the first, and between neighbouring columns."""
    return float((labels[..., 0] != labels[..., -1]).double().mean()), float(
        (labels[..., 1:] != labels[..., :-1]).double().mean())


@pytest.mark.parametrize("make", [lambda seed: blobs(96, 3.0, seed, fractions=(0.4, 0.35, 0.25)),
                                  lambda seed: ring_lamellae(96, 10.0, seed)])
def test_the_pictures_are_periodic_the_seam_changes_phase_as_often_as_inside(make):
    seams, insides = [], []
    for seed in range(8):
        labels = make(seed).argmax(1)[0]
        for image in (labels, labels.T):  # the seam between the last and the first column, then row
            seam, inside = _seam_and_inside(image)
            seams.append(seam)
            insides.append(inside)
    seam, inside = sum(seams) / len(seams), sum(insides) / len(insides)
    assert 0.02 < inside < 0.25  # features several pixels wide
    assert abs(seam - inside) < 0.25 * inside
    # a cut-out is not periodic: its seam joins pixels 47 px apart, unrelated, far more changes than inside
    labels = make(0).argmax(1)[0]
    cuts = [_seam_and_inside(image[:, 10:58]) for image in (labels, labels.T)]
    assert sum(seam for seam, _ in cuts) > 2.5 * sum(inside for _, inside in cuts)


def test_a_width_per_axis_elongates_the_features_along_the_wider_axis():
    micrograph = blobs(96, (6.0, 1.5), 3)  # (height, width)
    along_y = chord_lengths(micrograph, axis="y", periodic=True)[1].mean()
    along_x = chord_lengths(micrograph, axis="x", periodic=True)[1].mean()
    assert along_y > 3 * along_x


@pytest.mark.parametrize("period", [4, 6, 10])
def test_lamellae_across_and_along_the_axes_have_the_period_asked(period):
    size = 12 * period  # whole periods: periodic
    across_x = lamellae(size, period=period)  # at 0 degrees the bands run along y
    for phase in chord_lengths(across_x, axis="x", periodic=True):
        assert phase.lengths.unique().tolist() == [period // 2]
    for phase in chord_lengths(across_x, axis="y", periodic=True):
        assert phase.lengths.unique().tolist() == [size]  # a column is one band
    across_y = lamellae(size, period=period, angle=90)
    assert torch.equal(across_y.argmax(1)[0], across_x.argmax(1)[0].T)
    thin = chord_lengths(lamellae(size, period=period, share=0.25), axis="x", periodic=True)
    assert [len(phase.lengths) for phase in thin] == [size * 12] * 2  # still one band of each phase per period
    assert abs(thin[1].mean() - 0.25 * period) < 1  # phase 1: a quarter of the period, to the pixel


@pytest.mark.parametrize("period, angle", [(6, 30.0), (12, 45.0), (10, 60.0), (7, 20.0)])
def test_oblique_lamellae_have_the_period_and_the_angle_asked(period, angle):
    # a band of width a crosses a row in a / cos(angle) px and a column in a / sin(angle) px
    micrograph = lamellae(240, period=period, angle=angle)
    along_x = sum(c.mean() for c in chord_lengths(micrograph, axis="x", periodic=False)) / 2
    along_y = sum(c.mean() for c in chord_lengths(micrograph, axis="y", periodic=False)) / 2
    width = 1 / math.hypot(1 / along_x, 1 / along_y)
    assert 2 * width == pytest.approx(period, rel=0.02)
    assert math.degrees(math.atan2(along_x, along_y)) == pytest.approx(angle, abs=0.5)


def test_rough_lamellae_wander_but_keep_their_share():
    straight, rough = lamellae(128, period=8), lamellae(128, period=8, roughness=0.3, seed=1)
    assert float(rough[:, 1].mean()) == pytest.approx(0.5, abs=0.03)
    assert not torch.equal(rough, straight) and torch.equal(rough, lamellae(128, period=8, roughness=0.3, seed=1))
    # the bands no longer run straight: a column is no longer a single band
    assert chord_lengths(rough, axis="y", periodic=True)[1].mean() < 128


@pytest.mark.parametrize("call, argument", [
    (lambda: blobs(1, 2.0), "size"),
    (lambda: blobs(32.0, 2.0), "size"),
    (lambda: blobs((4, 4, 4, 4), 2.0), "size"),
    (lambda: lamellae((8, 8, 8)), "size"),
    (lambda: blobs(32, -1.0), "width"),
    (lambda: blobs(32, float("nan")), "width"),
    (lambda: blobs(32, (1.0, 2.0, 3.0)), "width"),
    (lambda: blobs(32, 2.0, seed=1.5), "seed"),
    (lambda: blobs(32, 2.0, fractions=[1.0]), "fractions"),
    (lambda: blobs(32, 2.0, fractions=[0.5, 0.6]), "fractions"),
    (lambda: blobs(32, 2.0, fractions=[1.2, -0.2]), "fractions"),
    (lambda: blobs(32, 2.0, fractions="half"), "fractions"),
    (lambda: ring_lamellae(32, 1.5), "period"),
    (lambda: ring_noise(32, float("inf")), "period"),
    (lambda: smooth_noise(32, "wide"), "width"),
    (lambda: lamellae(32, period=1), "period"),
    (lambda: lamellae(32, period=4.5), "period"),
    (lambda: lamellae(32, angle=float("nan")), "angle"),
    (lambda: lamellae(32, share=1.0), "share"),
    (lambda: lamellae(32, roughness=-0.1), "roughness"),
])
def test_bad_input_names_the_argument(call, argument):
    with pytest.raises(ValueError, match=f"^{argument}: expected"):
        call()
