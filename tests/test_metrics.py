"""Chord lengths, the 3-point subset, feature size, patch statistics, PCA and the ensemble comparison."""

import csv
import io
import itertools
import math

import numpy as np
import pytest
import torch

from lgtutorial.evaluation.compare import compare
from lgtutorial.evaluation.table import COLUMNS
from lgtutorial.microstructure import labels_to_one_hot
from lgtutorial.statistics.chords import chord_lengths
from lgtutorial.statistics.higher_order import (
    FIRST_DISPLACEMENTS,
    feature_size,
    patch_two_point_statistics,
    radial_average,
    three_point_statistics,
)
from lgtutorial.statistics.pca import PCA, fit_project
from lgtutorial.statistics.two_point import two_point_statistics

from .conftest import random_labels


def sorted_lengths(microstructure, *, axis, periodic, phase):
    return sorted(chord_lengths(microstructure, axis=axis, periodic=periodic)[phase].lengths.tolist())


# -- chord lengths ------------------------------------------------------------------------------
@pytest.fixture
def bars():
    """6 x 10: phase 1 in columns 2-4 and 7-8 (vertical bars of width 3 and 2), phase 0 elsewhere."""
    labels = torch.zeros(6, 10, dtype=torch.int64)
    labels[:, 2:5] = 1
    labels[:, 7:9] = 1
    return labels_to_one_hot(labels)


def test_bars_along_x(bars):
    assert sorted_lengths(bars, axis="x", periodic=False, phase=1) == [2] * 6 + [3] * 6
    # phase 0: columns 0-1 and 9 touch the edges and are dropped; 5-6 is a chord of 2
    assert sorted_lengths(bars, axis="x", periodic=False, phase=0) == [2] * 6
    # periodic: columns 9, 0, 1 join across the seam into chords of 3
    assert sorted_lengths(bars, axis="x", periodic=True, phase=0) == [2] * 6 + [3] * 6


def test_bars_along_y(bars):
    # every column is one phase from edge to edge: no complete chord in a micrograph ...
    assert sorted_lengths(bars, axis="y", periodic=False, phase=1) == []
    # ... and one chord as long as the column on a torus
    assert sorted_lengths(bars, axis="y", periodic=True, phase=1) == [6] * 5
    assert sorted_lengths(bars, axis="y", periodic=True, phase=0) == [6] * 5


def test_checkerboards():
    even = labels_to_one_hot(torch.tensor([[(i + j) % 2 for j in range(6)] for i in range(4)]))
    for phase in (0, 1):
        # four interior pixels per row of six survive; every chord is a single pixel
        assert sorted_lengths(even, axis="x", periodic=False, phase=phase) == [1] * 8
        assert sorted_lengths(even, axis="x", periodic=True, phase=phase) == [1] * 12
        assert sorted_lengths(even, axis="y", periodic=True, phase=phase) == [1] * 12
    odd = labels_to_one_hot(torch.tensor([[(i + j) % 2 for j in range(5)] for i in range(1)]))  # 0 1 0 1 0
    assert sorted_lengths(odd, axis="x", periodic=True, phase=0) == [1, 2]  # the two edge pixels meet
    assert sorted_lengths(odd, axis="x", periodic=False, phase=0) == [1]


def test_periodic_stripe_wraps():
    labels = torch.zeros(8, 5, dtype=torch.int64)
    labels[[6, 7, 0, 1]] = 1  # a horizontal stripe of height 4 across the top/bottom seam
    m = labels_to_one_hot(labels)
    assert sorted_lengths(m, axis="y", periodic=True, phase=1) == [4] * 5
    assert sorted_lengths(m, axis="y", periodic=True, phase=0) == [4] * 5
    assert sorted_lengths(m, axis="y", periodic=False, phase=1) == []  # both halves touch an edge
    assert sorted_lengths(m, axis="y", periodic=False, phase=0) == [4] * 5


def test_periodic_mean_chord_equals_two_point_identity():
    """On a torus the number of x-chords of phase a per pixel is f_aa(0) - f_aa(0, 1)."""
    m = labels_to_one_hot(random_labels((3, 16, 20), 3, seed=4), n_phases=3, dtype=torch.float64)
    f = two_point_statistics(m)
    chords = chord_lengths(m, axis="x", periodic=True)
    for a in range(3):
        per_sample = chords[a].per_sample_mean()
        expected = f[:, a, a, 0, 0] / (f[:, a, a, 0, 0] - f[:, a, a, 0, 1])
        assert torch.allclose(per_sample, expected, rtol=1e-10)


def test_distribution_and_sample_bookkeeping():
    first = torch.zeros(4, 6, dtype=torch.int64)
    first[:, 1:3] = 1  # chords of 2
    second = torch.zeros(4, 6, dtype=torch.int64)
    second[:, 1:5] = 1  # chords of 4
    m = labels_to_one_hot(torch.stack([first, second]))
    chords = chord_lengths(m, axis="x", periodic=False, phases=[1])[0]
    assert chords.per_sample_mean().tolist() == [2.0, 4.0]
    assert chords.mean() == 3.0 and chords.std() == 1.0
    pooled = chords.distribution()
    assert pooled.shape == (6,) and pooled[1] == 0.5 and pooled[3] == 0.5 and float(pooled.sum()) == 1.0
    per_sample = chords.distribution(3, per_sample=True)
    assert per_sample.tolist() == [[0.0, 1.0, 0.0], [0.0, 0.0, 0.0]]  # chords of 4 lie beyond the 3 bins
    one_at_a_time = chord_lengths(m, axis="x", periodic=False, phases=[1], batch_size=1)[0]
    assert torch.equal(one_at_a_time.lengths, chords.lengths) and torch.equal(
        one_at_a_time.samples, chords.samples
    )


def test_chord_errors(bars):
    with pytest.raises(ValueError, match="axis must be 'x' or 'y'"):
        chord_lengths(bars, axis="z", periodic=True)
    with pytest.raises(TypeError, match="periodic must be True or False"):
        chord_lengths(bars, axis="x", periodic=None)
    with pytest.raises(ValueError, match=r"expected shape \(n_samples, n_phases, H, W\)"):
        chord_lengths(bars[0], axis="x", periodic=True)
    with pytest.raises(ValueError, match="phase 5 is out of range"):
        chord_lengths(bars, axis="x", periodic=True, phases=[5])


# -- 3-point statistics -------------------------------------------------------------------------
def brute_force_three_point(m, r1, r2, periodic):
    """Average of m(x) m(x + r1) m(x + r2) over the positions x (with all three points inside)."""
    height, width = m.shape
    total, count = 0.0, 0
    for y, x in itertools.product(range(height), range(width)):
        points = [(y, x), (y + r1[0], x + r1[1]), (y + r2[0], x + r2[1])]
        if periodic:
            points = [(py % height, px % width) for py, px in points]
        elif not all(0 <= py < height and 0 <= px < width for py, px in points):
            continue
        total += float(np.prod([m[p] for p in points]))
        count += 1
    return total / count


@pytest.mark.parametrize("periodic", [True, False])
def test_three_point_matches_brute_force(periodic):
    m = labels_to_one_hot(random_labels((2, 5, 6), 3, seed=7), n_phases=3, dtype=torch.float64)
    f = three_point_statistics(m, periodic=periodic, cutoff=2)
    assert f.shape == (2, 3, len(FIRST_DISPLACEMENTS), 5, 5)
    image = m[1].numpy()
    for a, (k, r1) in itertools.product(range(3), enumerate(FIRST_DISPLACEMENTS)):
        for r2 in [(0, 0), (1, 2), (-2, 1), (2, -2), (0, -1)]:
            expected = brute_force_three_point(image[a], r1, r2, periodic)
            assert float(f[1, a, k, r2[0] % 5, r2[1] % 5]) == pytest.approx(expected, abs=1e-12)



def test_non_periodic_three_point_statistics_are_those_of_the_2l_minus_1_padding():
    m = torch.rand((2, 2, 37, 20), generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    f = three_point_statistics(m, periodic=False).numpy()  # pads to 75 x 40 (fast sizes), not 73 x 39
    height, width = m.shape[-2:]
    shape = (2 * height - 1, 2 * width - 1)

    def correlate(a, b):
        return np.fft.irfft2(np.conj(np.fft.rfft2(a, s=shape)) * np.fft.rfft2(b, s=shape), s=shape)

    for k, (dy, dx) in enumerate(FIRST_DISPLACEMENTS):
        valid = np.zeros((height, width))
        valid[max(0, -dy):height - max(0, dy), max(0, -dx):width - max(0, dx)] = 1
        pairs = np.round(correlate(valid, np.ones((height, width))))
        for n, a in itertools.product(range(2), range(2)):
            image = m[n, a].numpy()
            expanded = image * np.roll(image, (-dy, -dx), axis=(0, 1)) * valid
            expected = np.where(pairs > 0.5, correlate(expanded, image) / np.maximum(pairs, 1), np.nan)
            assert np.array_equal(np.isnan(f[n, a, k]), np.isnan(expected))
            assert np.allclose(f[n, a, k], expected, rtol=0, atol=1e-12, equal_nan=True)

def test_three_point_with_zero_first_displacement_is_the_autocorrelation():
    m = labels_to_one_hot(random_labels((3, 9, 8), 2, seed=2), dtype=torch.float64)
    for periodic in (True, False):
        f3 = three_point_statistics(m, periodic=periodic, cutoff=3, first_displacements=[(0, 0)])
        f2 = two_point_statistics(m, periodic=periodic, cutoff=3)
        assert torch.allclose(f3[:, :, 0], torch.diagonal(f2, dim1=1, dim2=2).movedim(-1, 1), atol=1e-12)
    one_by_one = three_point_statistics(m, periodic=True, cutoff=3, batch_size=1)
    assert torch.allclose(one_by_one, three_point_statistics(m, periodic=True, cutoff=3), atol=1e-12)


def test_three_point_errors():
    m = labels_to_one_hot(random_labels((1, 4, 4), 2))
    with pytest.raises(ValueError, match=r"\(dy, dx\) pairs"):
        three_point_statistics(m, periodic=True, first_displacements=[(1, 0, 0)])
    with pytest.raises(ValueError, match="out of range"):
        three_point_statistics(m, periodic=True, phases=[2])


# -- feature size, radial average, patch statistics ---------------------------------------------
def test_feature_size_is_shared_by_two_phases_and_scales_with_the_image():
    labels = random_labels((2, 16, 16), 2, seed=1)
    sizes = {}
    for factor in (4, 8):
        up = labels.repeat_interleave(factor, 1).repeat_interleave(factor, 2)
        sizes[factor] = feature_size(labels_to_one_hot(up, dtype=torch.float64), periodic=True)
        # f_11 = 1 - 2 v_0 + f_00 and v_1 (1 - v_1) = v_0 (1 - v_0): the same size for both phases
        assert torch.allclose(sizes[factor][:, 0], sizes[factor][:, 1], rtol=1e-10)
    ratio = sizes[8] / sizes[4]
    assert bool(((ratio > 1.8) & (ratio < 2.2)).all()), ratio
    single = labels_to_one_hot(torch.zeros(1, 6, 6, dtype=torch.int64), n_phases=2)
    assert torch.isnan(feature_size(single, periodic=True)).all()  # no interfaces, no size


def test_radial_average_of_a_distance_map():
    lags = torch.fft.fftfreq(9, d=1 / 9)
    distance = torch.sqrt(lags[:, None] ** 2 + lags[None, :] ** 2).double()
    radii, values = radial_average(distance, max_radius=3)
    assert torch.allclose(radii, values)  # each ring's average distance is its radius
    assert radii[0] == 0 and bool((radii[1:] > radii[:-1]).all()) and len(radii) == 4


def test_patch_two_point_statistics():
    patches = labels_to_one_hot(random_labels((4, 8, 8), 3, seed=3), n_phases=3, dtype=torch.float64)
    features = patch_two_point_statistics(patches)
    assert features.shape == (4, 6 * 9 * 9)  # 3 phase pairs a <= b ... 6 of them, lags -4..4
    f = two_point_statistics(patches, periodic=False, cutoff=4)
    assert torch.allclose(features[:, :81], f[:, 0, 0].flatten(1))
    assert torch.allclose(features[:, 81:162], f[:, 0, 1].flatten(1))


# -- PCA ----------------------------------------------------------------------------------------
def test_pca_round_trip_and_projection_of_other_sets():
    generator = torch.Generator().manual_seed(0)
    basis = torch.linalg.qr(torch.randn(20, 3, generator=generator, dtype=torch.float64))[0].T  # (3, 20)
    offset = torch.randn(20, generator=generator, dtype=torch.float64)
    train = torch.randn(30, 3, generator=generator, dtype=torch.float64) @ basis + offset
    other = torch.randn(7, 3, generator=generator, dtype=torch.float64) @ basis + offset
    pca = PCA(3).fit(train)
    assert torch.allclose(pca.components @ pca.components.T, torch.eye(3, dtype=torch.float64), atol=1e-10)
    assert float(pca.explained_variance_ratio.sum()) == pytest.approx(1.0)
    assert torch.allclose(pca.inverse_transform(pca.transform(train)), train, atol=1e-10)
    assert torch.allclose(pca.inverse_transform(pca.transform(other)), other, atol=1e-10)
    one_component = PCA(1).fit(train)
    assert not torch.allclose(
        one_component.inverse_transform(one_component.transform(train)), train, atol=1e-3
    )

    pca_b, scores = fit_project({"train": train, "other": other}, n_components=2, fit_on="train")
    assert torch.allclose(scores["other"], PCA(2).fit(train).transform(other))
    _, together = fit_project({"train": train, "other": other}, n_components=2)
    assert torch.allclose(
        together["train"].mean(0) * 30 + together["other"].mean(0) * 7,
        torch.zeros(2, dtype=torch.float64),
        atol=1e-9,
    )  # centred on all sets together
    assert PCA(50).fit(train).n_components == 20  # at most min(samples, features)


def test_pca_errors():
    with pytest.raises(ValueError, match="n_components must be a positive integer"):
        PCA(0)
    with pytest.raises(ValueError, match="not fitted yet"):
        PCA(2).transform(torch.zeros(3, 4))
    pca = PCA(2).fit(torch.randn(5, 4, generator=torch.Generator().manual_seed(1)))
    with pytest.raises(ValueError, match="has 6 features per sample but the PCA was fit on 4"):
        pca.transform(torch.zeros(3, 6))
    with pytest.raises(ValueError, match="NaN or infinite"):
        PCA(1).fit(torch.tensor([[0.0, float("nan")], [1.0, 2.0]]))
    with pytest.raises(ValueError, match="fit_on names"):
        fit_project({"a": torch.zeros(3, 2)}, n_components=1, fit_on="b")


# -- compare ------------------------------------------------------------------------------------
ERRORS = [c for c in COLUMNS if "error" in c or c in ("three_point_offset", "cluster_size_distance")]


@pytest.mark.parametrize("periodic", [True, False])
def test_compare_identical_ensembles_gives_zero_errors(periodic):
    reference = labels_to_one_hot(random_labels((1, 24, 20), 3, seed=5), n_phases=3)
    copies = reference.repeat(3, 1, 1, 1)
    result = compare(
        reference,
        {"copy": copies, "labels": copies.argmax(1).numpy()},
        patch_size=8,
        reference_periodic=periodic,
        ensemble_periodic=periodic,
        three_point_cutoff=3,
    )
    assert len(result.rows) == 3 * 3 and result.models == ["copy", "labels"]
    for row in result.rows:
        if row["model"] == "reference":
            assert all(row[c] is None for c in ERRORS)
            continue
        for column in ERRORS:
            assert abs(row[column]) < 1e-9, (row["model"], column, row[column])


def test_compare_detects_a_different_ensemble_and_writes_tables():
    reference = labels_to_one_hot(random_labels((1, 32, 32), 2, seed=6))
    coarse = labels_to_one_hot(
        random_labels((4, 10, 10), 2, seed=8).repeat_interleave(2, 1).repeat_interleave(2, 2)
    )
    result = compare(
        reference,
        {"GRF": coarse},
        patch_size=6,
        three_point_cutoff=4,
        n_components=3,
        phase_names=["matrix", "precipitate"],
    )
    assert result.cutoff == 9  # the 20 px periodic samples provide lags up to 9 px
    grf = [row for row in result.rows if row["model"] == "GRF"]
    assert all(row["chord_x_relative_error"] > 0.3 for row in grf)  # 2x2 blocks: chords about twice as long
    assert all(row["feature_size_relative_error"] > 0.1 for row in grf)
    assert all(row["two_point_relative_error_inside"] > 0.01 for row in grf)
    parsed = list(csv.DictReader(io.StringIO(result.to_csv())))
    assert list(parsed[0]) == list(COLUMNS) and len(parsed) == 4
    assert parsed[0]["volume_fraction_error"] == "" and float(parsed[2]["chord_x_relative_error"]) > 0.3
    markdown = result.to_markdown()
    assert "non-periodic" in markdown and markdown.count("\n| GRF |") == 2
    figures = result.figures()
    assert {
        "volume_fractions",
        "chord_lengths_x",
        "chord_lengths_y",
        "two_point_slices_phase1",
        "autocorrelation_error_phase0",
        "three_point_pca_phase1",
    } <= set(figures)
    import matplotlib.pyplot as plt

    for figure in figures.values():
        assert figure.axes
        plt.close(figure)


def test_compare_errors():
    reference = labels_to_one_hot(random_labels((1, 12, 12), 2))
    with pytest.raises(ValueError, match="'reference' is reserved"):
        compare(reference, {"reference": reference})
    with pytest.raises(ValueError, match="has 3 phases but the reference has 2"):
        compare(reference, {"GRF": labels_to_one_hot(random_labels((2, 12, 12), 3), n_phases=3)})
    with pytest.raises(ValueError, match="cutoff must be between 0 and 5 px"):
        compare(reference, {"GRF": reference.repeat(2, 1, 1, 1)}, cutoff=9)
    with pytest.raises(TypeError, match="ensembles must be a non-empty dict"):
        compare(reference, [reference])
    with pytest.raises(ValueError, match="expected one-hot values 0 or 1"):
        compare(reference, {"GRF": reference * 0.5})


def test_patch_statistics_pca_fits_on_training_patches_only():
    from lgtutorial.statistics.pca import patch_statistics_pca

    training = labels_to_one_hot(random_labels((12, 6, 6), 2, seed=9), dtype=torch.float64)
    generated = labels_to_one_hot(random_labels((5, 6, 6), 2, seed=10), dtype=torch.float64)
    pca, scores = patch_statistics_pca(training, {"generated": generated}, n_components=4)
    features = patch_two_point_statistics(training, cutoff=3)
    assert pca.mean.shape == features.shape[1:] and torch.allclose(pca.mean, features.mean(0))
    assert torch.allclose(scores["training"].mean(0), torch.zeros(4, dtype=torch.float64), atol=1e-10)
    assert scores["generated"].shape == (5, 4)
    with pytest.raises(ValueError, match="'training' names the training patches"):
        patch_statistics_pca(training, {"training": generated})


# -- measures that noise cannot fool (laths against speckle) ----------------------------------------
def _laths(size=64, width=2, seed=0):
    """Colonies of parallel laths (two phases), one random orientation per 32 px block."""
    generator = torch.Generator().manual_seed(seed)
    y, x = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    labels = torch.zeros(size, size, dtype=torch.long)
    for by in range(0, size, 32):
        for bx in range(0, size, 32):
            angle = float(torch.rand(1, generator=generator)) * math.pi
            along = (x * math.cos(angle) + y * math.sin(angle))[by:by + 32, bx:bx + 32]
            labels[by:by + 32, bx:bx + 32] = (torch.floor(along / width) % 2).long()
    return labels_to_one_hot(labels[None])


def test_coherence_tells_laths_from_speckle_with_the_same_volume_fraction():
    from lgtutorial.statistics.chords import chord_distribution_distance
    from lgtutorial.statistics.higher_order import boundary_coherence

    laths = _laths()
    fraction = float(laths[:, 1].mean())
    generator = torch.Generator().manual_seed(1)
    speckle = labels_to_one_hot((torch.rand(1, 64, 64, generator=generator) < fraction).long())
    coherent, noisy = float(boundary_coherence(laths, 1, periodic=True)[0]), float(boundary_coherence(speckle, 1, periodic=True)[0])
    assert coherent > 0.6 and noisy < 0.3
    x = lambda m: chord_lengths(m, axis="x", periodic=True)[1]  # noqa: E731
    assert chord_distribution_distance(x(laths), x(laths)) == 0.0
    assert chord_distribution_distance(x(laths), x(speckle)) > 0.2


def test_coherence_can_leave_out_the_regions_of_another_phase():
    from lgtutorial.statistics.higher_order import boundary_coherence

    laths = _laths(size=64)[0].argmax(0)
    labels = laths.clone()
    labels[:, 32:] = 2  # the right half is a third phase: no boundaries of phase 1 there
    labels[::4, 40:] = 1  # ... but horizontal dashes of phase 1 inside it
    micro = labels_to_one_hot(labels[None], n_phases=3)
    everything = float(boundary_coherence(micro, 1, periodic=False)[0])
    colonies = float(boundary_coherence(micro, 1, periodic=False, exclude_phase=2)[0])
    assert colonies != everything
    with pytest.raises(ValueError, match="out of range"):
        boundary_coherence(micro, 3, periodic=True)
    with pytest.raises(ValueError, match="positive"):
        boundary_coherence(micro, 1, periodic=True, tensor_sigma=0)



def coherence_by_scipy(x, exclude, window, periodic, derivative_sigma=1.0, tensor_sigma=3.0):
    """boundary_coherence written with scipy.ndimage: Gaussian derivatives, structure tensor, box filter."""
    from scipy import ndimage

    mode = "wrap" if periodic else "mirror"  # torch's "reflect" padding is scipy's "mirror"
    gx = ndimage.gaussian_filter(x, derivative_sigma, order=(0, 1), mode=mode, truncate=4.0)
    gy = ndimage.gaussian_filter(x, derivative_sigma, order=(1, 0), mode=mode, truncate=4.0)
    jxx, jyy, jxy = (ndimage.gaussian_filter(v, tensor_sigma, mode=mode, truncate=4.0)
                     for v in (gx * gx, gy * gy, gx * gy))
    weight = ndimage.uniform_filter(exclude, window, mode=mode) < 0.5
    anisotropy = np.sqrt((jxx - jyy) ** 2 + 4 * jxy**2)
    return float((anisotropy * weight).sum() / ((jxx + jyy) * weight).sum())


def test_coherence_leaves_out_windows_of_either_parity_as_scipy_does():
    from lgtutorial.statistics.higher_order import boundary_coherence

    labels = _laths(size=64)[0].argmax(0)[:, :56]  # not square: 64 x 56
    generator = torch.Generator().manual_seed(3)
    blocks = (torch.rand(8, 7, generator=generator) < 0.4).repeat_interleave(8, 0).repeat_interleave(8, 1)
    labels[blocks] = 2  # blocks of a third phase ...
    labels[::4][blocks[::4] & (torch.arange(56) % 3 > 0)] = 1  # ... crossed by dashes of phase 1
    micro = labels_to_one_hot(labels[None], n_phases=3, dtype=torch.float64)
    x, exclude = micro[0, 1].numpy(), micro[0, 2].numpy()
    for periodic in (True, False):
        got = {}
        for window in (4, 5, 15, 16):  # even windows failed: "size 64 vs 65"
            got[window] = float(boundary_coherence(micro, 1, periodic=periodic, exclude_phase=2,
                                                   exclude_window=window)[0])
            assert got[window] == pytest.approx(coherence_by_scipy(x, exclude, window, periodic), abs=1e-12)
        assert len(set(got.values())) == 4  # each window leaves out other pixels
    with pytest.raises(ValueError, match="exclude_window"):
        boundary_coherence(micro, 1, periodic=True, exclude_phase=2, exclude_window=0)

def test_compare_reports_chord_distribution_distances_and_coherence():
    from lgtutorial.evaluation.compare import compare

    reference = _laths(seed=0)
    generator = torch.Generator().manual_seed(2)
    speckle = labels_to_one_hot((torch.rand(2, 64, 64, generator=generator) < 0.5).long())
    result = compare(reference, {"laths": torch.cat([_laths(seed=3), _laths(seed=4)]), "speckle": speckle},
                     reference_periodic=True)
    rows = {(r["model"], r["phase"]): r for r in result.rows}
    assert rows[("reference", "phase 1")]["chord_x_distance"] is None
    assert rows[("laths", "phase 1")]["chord_x_distance"] < rows[("speckle", "phase 1")]["chord_x_distance"]
    assert abs(rows[("laths", "phase 1")]["coherence_relative_error"]) < 0.25
    assert rows[("speckle", "phase 1")]["coherence_relative_error"] < -0.4
    assert "x-CLD dist" in result.to_markdown() and "coherence_mean" in result.to_csv()


def test_halves_chord_distance_is_zero_for_a_uniform_pattern_and_large_for_a_mixed_one():
    from lgtutorial.statistics.chords import halves_chord_distance

    stripes = labels_to_one_hot(torch.tensor([[0, 0, 1, 1, 1] * 8] * 16))
    assert halves_chord_distance(stripes) == [0.0, 0.0]
    # top half fine stripes, bottom half coarse: the two halves of one image disagree
    fine = torch.tensor([[0, 1] * 20] * 8)
    coarse = torch.tensor([([0] * 5 + [1] * 5) * 4] * 8)
    mixed = labels_to_one_hot(torch.cat([fine, coarse]))
    assert min(halves_chord_distance(mixed)) > 0.9
    with pytest.raises(ValueError, match="expected"):
        halves_chord_distance(torch.zeros(1, 2, 8))


def _sparse_particles(size: int, n_particles: int, seed: int) -> torch.Tensor:
    """Square particles of 2-4 px (phase 1) scattered in a matrix (phase 0) of a periodic image."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.zeros(size, size, dtype=torch.int64)
    for _ in range(n_particles):
        y, x = torch.randint(0, size, (2,), generator=generator).tolist()
        side = int(torch.randint(2, 5, (1,), generator=generator))
        rows, cols = torch.arange(y, y + side) % size, torch.arange(x, x + side) % size
        labels[rows[:, None], cols[None, :]] = 1
    return labels


def test_boundary_mean_chord_is_unbiased_on_a_cut_out_where_edge_dropped_chords_are_not():
    from lgtutorial.statistics.chords import boundary_mean_chord

    # a large periodic specimen of sparse particles: the matrix's chords run to a few hundred px
    specimen = _sparse_particles(1024, 1400, seed=0)
    truth = boundary_mean_chord(labels_to_one_hot(specimen), axis="x", periodic=True)
    matrix = chord_lengths(labels_to_one_hot(specimen), axis="x", periodic=True)[0].mean()
    # on a periodic image both are the mean chord, but for the few lines without a particle (one chord of the
    # line's length for chord_lengths, pixels that never end for the boundary count)
    assert abs(truth[0] / matrix - 1) < 0.02 and 100 < truth[0] < 400
    # 256 px cut-outs of it: the edge chords dropped leave mostly short gaps; boundary counts do not care
    crops = labels_to_one_hot(torch.stack([specimen[i:i + 256, j:j + 256] for i in (0, 512) for j in (0, 512)]))
    counted = boundary_mean_chord(crops, axis="x", periodic=False)
    dropped = chord_lengths(crops, axis="x", periodic=False)[0].mean()
    assert abs(counted[0] / truth[0] - 1) < 0.1, (counted, truth)
    assert dropped < 0.75 * truth[0], (dropped, truth)
    # the particles are short: both ways agree with the truth there
    assert abs(counted[1] / truth[1] - 1) < 0.1
    # absent and never-ending phases, and bad arguments
    uniform = labels_to_one_hot(torch.zeros(1, 8, 8, dtype=torch.int64), n_phases=2)
    assert boundary_mean_chord(uniform, axis="y", periodic=True)[0] == float("inf")
    assert boundary_mean_chord(uniform, axis="y", periodic=True)[1] != boundary_mean_chord(uniform, axis="y", periodic=True)[1]
    with pytest.raises(ValueError, match="axis must be 'x' or 'y'"):
        boundary_mean_chord(uniform, axis="z", periodic=True)
    with pytest.raises(TypeError, match="periodic must be True or False"):
        boundary_mean_chord(uniform, axis="x", periodic="no")
