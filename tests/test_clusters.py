"""Connected-region sizes (lgtutorial.statistics.clusters): closed cells against broken networks, separate
particles against merged ones, features against speckle, in 2D and 3D."""

import math

import numpy as np
import pytest
import torch

from lgtutorial.evaluation.compare import compare
from lgtutorial.fitting.checks import regions_like_reference
from lgtutorial.microstructure import labels_to_one_hot
from lgtutorial.statistics.clusters import (
    cluster_size_distance,
    cluster_sizes,
    common_window,
    halves_cluster_distance,
    median_cluster_size,
)


def grain_network(size=64, cell=16, width=2, gaps=False, shift=0):
    """Phase 0: boundaries of width ``width`` every ``cell`` px; phase 1: the grains between them. With
    ``gaps``, every other vertical boundary is broken in each cell row, so grains run into their neighbours."""
    labels = torch.ones(size, size, dtype=torch.int64)
    lines = (torch.arange(size) + shift) % cell < width
    labels[lines, :] = 0
    labels[:, lines] = 0
    if gaps:
        columns = [c for c in range(size) if (c + shift) % cell == 0]
        for k, c in enumerate(columns):
            if k % 2:
                for row in range(cell // 2 - shift % cell, size, cell):
                    labels[max(row - 2, 0):row + 2, c:c + width] = 1
    return labels_to_one_hot(labels, n_phases=2)


def particles(size=96, spacing=12, radius=4, merged=False):
    """Phase 1: discs on a square lattice; with ``merged``, each disc joined to its right neighbour in pairs."""
    y, x = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    labels = torch.zeros(size, size, dtype=torch.int64)
    centres = range(spacing // 2, size, spacing)
    for cy in centres:
        for k, cx in enumerate(centres):
            labels[(y - cy) ** 2 + (x - cx) ** 2 <= radius**2] = 1
            if merged and k % 2 == 0 and cx + spacing < size:
                labels[cy - 1:cy + 2, cx:cx + spacing] = 1
    return labels_to_one_hot(labels, n_phases=2)


def test_broken_grain_boundaries_let_grains_run_together():
    closed, broken = grain_network(), grain_network(gaps=True)
    assert (broken[:, 1].mean() - closed[:, 1].mean()).abs() < 0.02  # the gaps are 1.6 % of the area
    assert median_cluster_size(closed, 1) == 14 * 14
    assert median_cluster_size(broken, 1) > 2 * 14 * 14
    grains = cluster_size_distance(broken, closed, 1)
    assert grains > 0.3, grains  # at least twice as large
    moved = cluster_size_distance(grain_network(shift=5), closed, 1)
    assert 0 < moved < 0.15  # the same network, moved: only the grains cut by the edges differ
    halves = dict(zip(("boundaries", "grains"), halves_cluster_distance(closed)))
    assert halves == {"boundaries": 0.0, "grains": 0.0}
    assert not regions_like_reference({"grains": {"hybrid": grains}}, halves)
    large = grain_network(size=128)  # more grains, fewer of them cut by the edges
    assert regions_like_reference({"grains": {"hybrid": cluster_size_distance(grain_network(size=128, shift=5), large, 1)}},
                                  dict(zip(("boundaries", "grains"), halves_cluster_distance(large))))


def test_merged_particles_are_told_from_separate_ones():
    separate, merged = particles(), particles(merged=True)
    assert median_cluster_size(separate, 1) == median_cluster_size(particles(), 1)
    distance = cluster_size_distance(merged, separate, 1)
    assert math.log10(2) <= distance < 0.6, distance  # pairs and their bridges: a bit over twice the area
    assert cluster_size_distance(separate, separate, 1) == 0.0


def test_speckle_is_told_from_blobs_of_the_same_volume_fraction():
    blobs = particles(radius=3)  # 20 % of the area: random pixels stay far below percolation
    fraction = float(blobs[:, 1].mean())
    generator = torch.Generator().manual_seed(0)
    speckle = labels_to_one_hot((torch.rand(96, 96, generator=generator) < fraction).long(), n_phases=2)
    assert abs(float(speckle[:, 1].mean()) - fraction) < 0.02
    assert cluster_size_distance(speckle, blobs, 1) > 1.0  # regions ten times smaller at least
    sizes = cluster_sizes(speckle, 1)
    assert sizes.sum() == int(speckle[:, 1].sum()) and np.median(sizes) < 5


def test_windows_make_images_of_different_sizes_comparable():
    small, large = grain_network(size=64), grain_network(size=128)
    assert common_window(small, large) == (64, 64)
    assert cluster_size_distance(small, large, 1) == 0.0
    assert cluster_size_distance(small, large, 0) == 0.0  # the network spans every window alike
    # without the common window, the network of the larger image is one larger region
    assert median_cluster_size(large, 0) > median_cluster_size(small, 0)
    assert len(cluster_sizes(large, 1, window=64)) == 4 * len(cluster_sizes(small, 1))


def test_three_dimensional_regions():
    labels = torch.zeros(2, 12, 12, 12, dtype=torch.int64)
    labels[0, 1:4, 1:4, 1:4] = 1  # a 27-voxel cube
    labels[0, 6:8, 6:8, 6:8] = 1  # an 8-voxel cube
    labels[1, 2:5, 2:5, 2:5] = 1
    volume = labels_to_one_hot(labels, n_phases=2, spatial_dims=3)
    assert sorted(cluster_sizes(volume, 1).tolist()) == [8, 27, 27]
    assert median_cluster_size(volume, 1) == 27.0
    assert cluster_size_distance(volume[:1], volume[1:], 1) > 0


def test_a_missing_phase_gives_nan_and_fails_the_check():
    empty = labels_to_one_hot(torch.zeros(1, 16, 16, dtype=torch.int64), n_phases=2)
    assert math.isnan(cluster_size_distance(empty, particles(size=16), 1))
    assert math.isnan(median_cluster_size(empty, 1))
    assert not regions_like_reference({"particles": {"hybrid": float("nan")}}, {"particles": 0.0})


def test_bad_input_is_refused_with_what_was_expected():
    network = grain_network(size=32)
    with pytest.raises(ValueError, match="phase must be between 0 and 1"):
        cluster_sizes(network, 2)
    with pytest.raises(ValueError, match="does not fit"):
        cluster_sizes(network, 0, window=40)
    with pytest.raises(ValueError, match=r"\(n_samples, n_phases, H, W\)"):
        cluster_sizes(torch.zeros(32, 32), 0)
    with pytest.raises(ValueError, match="different dimensions"):
        common_window(network, torch.zeros(1, 2, 8, 8, 8))


def test_compare_reports_region_sizes_beside_the_chords():
    closed = grain_network()
    result = compare(closed, {"broken": grain_network(gaps=True).repeat(2, 1, 1, 1), "moved": grain_network(shift=5)},
                     three_point_cutoff=2, phase_names=["boundaries", "grains"])
    rows = {(r["model"], r["phase"]): r for r in result.rows}
    assert rows[("reference", "grains")]["cluster_size_distance"] is None
    assert rows[("reference", "grains")]["cluster_size_median"] == 196
    assert rows[("broken", "grains")]["cluster_size_distance"] > 0.3
    assert rows[("moved", "grains")]["cluster_size_distance"] < 0.15
    assert result.cluster_window == (64, 64)
    assert "region dist (dec.)" in result.to_markdown() and "windows of 64 x 64 px" in result.to_markdown()
