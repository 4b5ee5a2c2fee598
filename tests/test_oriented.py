"""The oriented global layer (issue #42): it measures known lath periods and orientations on synthetic
micrographs, paints laths that keep every phase's pixels and the matrix, and is chosen only where the
micrograph's laths are more coherent than GRF samples of its statistics."""

from __future__ import annotations

import math

import pytest
import torch

from lgtutorial.grf.field import GaussianRandomField, statistics_row
from lgtutorial.grf.oriented import lath_phases, measure_oriented_layer, needs_oriented_layer
from lgtutorial.microstructure import labels_to_one_hot
from lgtutorial.statistics.higher_order import boundary_coherence, structure_tensor
from lgtutorial.synthetic import blobs, lamellae


def _colonies(size=192, period=6, angles=(30.0, 30.0, 30.0), seed=0):
    """Three phases: a matrix (1) with three round colonies of laths of phases 0 and 2 at the given angles."""
    y, x = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    labels = torch.ones(size, size, dtype=torch.long)
    centres = [(size * 0.28, size * 0.3), (size * 0.7, size * 0.68), (size * 0.25, size * 0.75)]
    for (cy, cx), angle in zip(centres, angles):
        disc = (y - cy) ** 2 + (x - cx) ** 2 < (size * 0.2) ** 2
        laths = lamellae(size, period=period, angle=angle, seed=seed).argmax(1)[0]  # 0 / 1
        labels[disc] = torch.where(laths[disc] == 1, 2, 0)
    return labels_to_one_hot(labels[None], n_phases=3)


def _mean_normal_angle(one_hot, a, b, where):
    jxx, jyy, jxy = structure_tensor((one_hot[:, a] - one_hot[:, b]).double(), periodic=True)
    return 0.5 * math.atan2(float((2 * jxy)[where].sum()), float((jxx - jyy)[where].sum()))


def test_the_layer_measures_the_lath_phases_period_and_orientation_of_colonies():
    micro = _colonies(period=6, angles=(30.0, 30.0, 30.0))
    layer = measure_oriented_layer(micro)
    assert set(layer.phases) == {0, 2} and layer.layout == "domains"
    assert layer.period == pytest.approx(6.0, rel=0.15)
    assert layer.share == pytest.approx(float(micro[0, layer.phases[0]].sum() / micro[0, [0, 2]].sum()))
    assert torch.allclose(layer.angles, torch.full_like(layer.angles, math.radians(30.0)), atol=math.radians(4))


def test_lamellae_filling_the_picture_get_a_smooth_orientation_field():
    micro = lamellae(128, period=8, angle=60.0, roughness=0.2)
    layer = measure_oriented_layer(micro)
    assert layer.layout == "field" and layer.period == pytest.approx(8.0, rel=0.15)
    assert layer.correlation_length > 8


@pytest.mark.parametrize("angle", [0.0, 30.0, 105.0])
def test_painting_keeps_each_phases_pixels_and_the_matrix_and_draws_the_measured_orientation(angle):
    micro = _colonies(period=6, angles=(angle,) * 3)
    layer = measure_oriented_layer(micro, sharpness=4.0)
    field = GaussianRandomField(statistics_row(micro))
    start = field.sample(2, generator=torch.Generator().manual_seed(1), segmentation="auto").segmented.argmax(1)
    painted = layer.paint(start, generator=torch.Generator().manual_seed(2))
    for phase in range(3):
        assert torch.equal((painted == phase).sum((1, 2)), (start == phase).sum((1, 2)))
    assert torch.equal(painted == 1, start == 1)  # the matrix keeps the GRF's layout
    one_hot = labels_to_one_hot(painted, n_phases=3)
    assert float(boundary_coherence(one_hot, 0, periodic=True, exclude_phase=1).mean()) > 0.6
    a, b = layer.phases
    drawn = _mean_normal_angle(one_hot, a, b, painted != 1)
    difference = (drawn - math.radians(angle) + math.pi / 2) % math.pi - math.pi / 2
    assert abs(difference) < math.radians(8)


def test_the_two_phases_with_most_boundary_between_them_are_the_lath_phases():
    micro = _colonies()
    assert lath_phases(micro) == (0, 2) or lath_phases(micro) == (2, 0)
    assert lath_phases(blobs(32, 2.0)) == (0, 1)


def test_the_layer_is_needed_for_colonies_of_laths_and_not_for_isotropic_blobs():
    # colonies at three angles: the whole micrograph's 2-point statistics average the orientation out; at one
    # angle they keep it, and the GRF draws aligned laths itself; blobs have smooth boundaries but no period
    cases = ((_colonies(angles=(30.0, 100.0, 160.0)), True), (_colonies(angles=(30.0, 30.0, 30.0)), False),
             (blobs(128, 3.0, seed=2), False), (blobs(64, 3.0, seed=1), False))
    for micro, expected in cases:
        field = GaussianRandomField(statistics_row(micro))
        grf = field.sample(2, generator=torch.Generator().manual_seed(0), segmentation="auto").segmented
        needed, reason = needs_oriented_layer(micro, grf)
        assert needed is expected, reason
        assert "boundary coherence" in reason or "no oriented layer" in reason


def test_the_global_layer_option(tmp_path):
    import numpy as np

    import lgtutorial as lg
    from lgtutorial.sampling.settings import HybridSettings

    with pytest.raises(ValueError, match="--global-layer"):
        HybridSettings(global_layer="lines")
    with pytest.raises(ValueError, match="pass --reference"):
        lg.generate(global_layer="oriented", n_samples=1, size=32, device="cpu", progress=False)
    path = tmp_path / "blobs.npy"
    np.save(path, blobs(64, 3.0, seed=1).argmax(1)[0].numpy().astype(np.uint8))
    result = lg.generate(reference=str(path), n_samples=1, device="cpu", progress=False, force=True)
    assert result.global_layer == "grf" and "not stacked" in result.global_layer_reason
    stripes = tmp_path / "colonies.npy"
    np.save(stripes, _colonies(size=128, period=4).argmax(1)[0].numpy().astype(np.uint8))
    result = lg.generate(reference=str(stripes), n_samples=1, device="cpu", progress=False, force=True,
                         global_layer="oriented", guard=None, size=64)
    assert result.global_layer == "oriented" and result.settings.sampler == "oriented"
    assert result.settings.sigma_c == 0.5 and result.generator.oriented is not None


def test_fit_on_colonies_of_laths_picks_the_oriented_layer_and_says_so(tmp_path):
    import numpy as np

    import lgtutorial as lg

    path = tmp_path / "colonies.npy"
    np.save(path, _colonies(size=128, period=4, angles=(20.0, 95.0, 150.0)).argmax(1)[0].numpy().astype(np.uint8))
    result = lg.fit(path, minutes=0.05, n_samples=1, size=64, output=tmp_path / "fit", device="cpu", progress=False)
    assert result.checks["global_layer"] == "oriented", result.checks["global_layer_reason"]
    assert "Global layer: **oriented**" in (result.output / "report.md").read_text()
    grf = np.load(result.output / "grf.npy")  # the oriented layer's starts: laths in the colonies
    painted = torch.from_numpy(grf).float()
    assert float(boundary_coherence(painted, 0, periodic=True, exclude_phase=1).mean()) > 0.5


@pytest.fixture
def colonies():
    return _colonies(size=96, period=4, angles=(20.0, 95.0, 150.0))


def test_oriented_starts_are_drawn_on_the_samplers_device(colonies, device):
    from lgtutorial.sampling.hybrid import HybridGenerator

    micro = colonies
    layer = measure_oriented_layer(micro, sharpness=4.0)  # measured on the host (scipy labels the colonies)

    def score(x, sigma):
        return -x / (1.0 + sigma**2)

    generator = HybridGenerator.from_reference(micro.to(device), score, shape=(64, 64), sampler="oriented",
                                               sigma_c=0.5, oriented=layer, channels=3, padding=8, device=device,
                                               guard=None)
    samples = generator.sample(2, seed=0, progress=False, return_grf=True)
    assert samples.microstructures.device.type == torch.device(device).type
    starts = samples.grf.cpu()
    assert float(boundary_coherence(starts, 0, periodic=True, exclude_phase=1).mean()) > 0.5
