"""3D generation from one 2D micrograph: statistics under isotropy, the slice score, the volume generator, export.

The tests that take ``device`` run on the CPU, the fake GPU and a real one where present (``tests/conftest.py``),
at 8^3 to 16^3 (the 32^3 refinements stay on the CPU); their micrographs are made on the CPU first.
"""

import math
import warnings

import numpy as np
import pytest
import torch

from lgtutorial import synthetic
from lgtutorial.grf.field import GaussianRandomField, statistics_row
from lgtutorial.microstructure import labels_to_one_hot
from lgtutorial.sampling.integrators import with_circular_padding
from lgtutorial.score.settings import UNetSettings
from lgtutorial.score.unet import ScoreUNet
from lgtutorial.volume.export import load_tiff_stack, plot_orthogonal_slices, save_tiff_stack
from lgtutorial.volume.generator import VolumeGenerator
from lgtutorial.volume.settings import ANNEALED_PASSES
from lgtutorial.volume.slice_score import SliceScore, slice_score
from lgtutorial.volume.slices import slice_statistics, volume_slices
from lgtutorial.volume.statistics import (
    ORIENTATIONS,
    isotropic_statistics,
    radial_profiles,
    transversely_isotropic_statistics,
)
from tests.conftest import cpu_streams


def blobs(size: int = 64, seed: int = 0, *, stretch: int = 1) -> torch.Tensor:
    """This file's periodic 2-phase micrograph (1, 2, size, size): features about 3 px across, 35 % phase 1.

    ``stretch`` > 1 elongates the features as many times along the first (height) axis.
    """
    return synthetic.blobs(size, (1.4 * stretch, 1.4), seed, fractions=(0.65, 0.35))


def tiny_model(seed: int = 0, channels: int = 1) -> ScoreUNet:
    settings = UNetSettings(channels=channels, latent_channels=4, depth=1, num_blocks=0)
    return ScoreUNet(settings, generator=torch.Generator().manual_seed(seed)).eval()


@pytest.fixture(scope="module")
def micrograph() -> torch.Tensor:
    """:func:`blobs` of 64 px, made once on the CPU."""
    return blobs()


def assert_valid_row(row: torch.Tensor, v: torch.Tensor, reference_phase: int = 0) -> GaussianRandomField:
    origin = (slice(None), 0, 0, 0)
    assert torch.allclose(row[origin], torch.eye(len(v), dtype=row.dtype)[reference_phase] * v[reference_phase],
                          atol=1e-12)  # f_pp(0) = v_p, f_pn(0) = 0
    assert float((row.sum(0) - v[reference_phase]).abs().max()) < 1e-12  # the row sums to v_p at every lag
    spectrum = torch.fft.fftn(row[reference_phase]).real
    spectrum[0, 0, 0] = 0
    assert float(spectrum.min()) >= -1e-10 * float(spectrum.max())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # not even a warning about clipped spectral values
        field = GaussianRandomField(row, reference_phase=reference_phase)
    assert torch.allclose(field.target_volume_fractions.double(), v, atol=1e-6)
    return field


# -- 3D statistics from 2D -------------------------------------------------------------------------------


def test_radial_profile_of_an_isotropic_function_is_its_radius_law():
    lag = torch.fft.fftfreq(32, 1 / 32).double()
    radius = (lag[:, None] ** 2 + lag[None, :] ** 2).sqrt()
    radii, profile = radial_profiles(torch.exp(-radius / 3))
    assert radii[0] == 0 and len(radii) == 17
    assert torch.allclose(profile, torch.exp(-radii / 3), atol=0.01)


def test_isotropic_statistics_make_a_valid_row_that_keeps_the_micrograph_statistics():
    micrograph = blobs()
    v = micrograph.double().mean((0, 2, 3))
    statistics = isotropic_statistics(micrograph, (16, 24, 32))
    assert statistics.row.shape == (2, 16, 24, 32) and statistics.assumption == "isotropic"
    assert_valid_row(statistics.row, v)
    assert 0 <= statistics.clipped_fraction < 0.1 and statistics.largest_change < 0.05
    assert "spectral weight clipped" in statistics.report()
    # a 2-phase row gives the same result as the micrograph (the rest of the matrix follows from it)
    from_row = isotropic_statistics(statistics_row(micrograph), (16, 24, 32))
    assert torch.allclose(from_row.row, statistics.row, atol=1e-12)
    # along each axis, short lags follow the 2D radial profile
    radii, profiles = radial_profiles(statistics_row(micrograph))
    for line in (statistics.row[0, :4, 0, 0], statistics.row[0, 0, :4, 0], statistics.row[0, 0, 0, :4]):
        expected = torch.tensor(np.interp([0, 1, 2, 3], radii.numpy(), profiles[0].numpy()))
        assert torch.allclose(line, expected, atol=0.02)


def test_an_extension_that_is_not_a_valid_covariance_is_projected_and_says_so():
    # stripes: their radially averaged 2D autocorrelation oscillates like J0, far below what a 3D
    # isotropic covariance allows, so most frequencies need clipping
    stripes = synthetic.lamellae(64, period=8)
    statistics = isotropic_statistics(stripes, (16, 16, 16))
    assert statistics.clipped_fraction > 0.1 and statistics.clipped_frequencies > 100
    assert_valid_row(statistics.row, torch.tensor([0.5, 0.5], dtype=torch.float64))


def test_three_phase_statistics_from_the_micrograph_keep_every_row_sum():
    two_phase = [blobs(32, seed) for seed in (1, 2)]
    labels = torch.where(two_phase[0][:, 1] > 0, 1, torch.where(two_phase[1][:, 1] > 0, 2, 0))
    micrograph = labels_to_one_hot(labels, n_phases=3)  # about 0.42 / 0.35 / 0.23
    v = micrograph.double().mean((0, 2, 3))
    for phase in range(3):
        assert_valid_row(isotropic_statistics(micrograph, (16, 16, 16), reference_phase=phase).row, v, phase)


def test_grf_volumes_of_isotropic_statistics_look_alike_in_all_three_orientations():
    micrograph = blobs()
    field = GaussianRandomField(isotropic_statistics(micrograph, (32, 32, 32)).row)
    volumes = field.sample(4, generator=torch.Generator().manual_seed(0)).segmented
    measured = slice_statistics(volumes, micrograph, reference_periodic=True)
    for orientation in ORIENTATIONS:
        assert torch.allclose(measured.volume_fractions[orientation].float(), micrograph.mean((0, 2, 3)), atol=2e-3)
        assert measured.two_point_errors[orientation] < 0.15
    assert measured.isotropy_error < 0.1
    axes = measured.axis_chord_distances()
    assert max(axes.values()) < 1.3 * min(axes.values())
    # the same measures see a volume whose features are stretched twice along z
    stretched = slice_statistics(volumes[:, :, :16].repeat_interleave(2, dim=2), micrograph, reference_periodic=True)
    assert stretched.isotropy_error > 0.15
    assert stretched.axis_chord_distances()["z"] > 2 * stretched.axis_chord_distances()["x"]
    assert "| xz |" in measured.table()


def test_transversely_isotropic_statistics_keep_the_long_axis():
    from lgtutorial.statistics.chords import chord_lengths

    section = blobs(stretch=4)  # features four times longer along the section's first axis (z)
    statistics = transversely_isotropic_statistics(section, (32, 32, 32))
    assert statistics.assumption == "transversely isotropic"
    field = assert_valid_row(statistics.row, section.double().mean((0, 2, 3)))
    volumes = field.sample(2, generator=torch.Generator().manual_seed(0)).segmented

    def mean_chord(orientation, axis):  # of phase 1, in the slices of one orientation
        return chord_lengths(volume_slices(volumes, orientation), axis=axis, periodic=True)[1].mean()

    # long along z (the slices' first axis in xz and yz), alike along x and y
    assert mean_chord("xz", "y") > 2 * mean_chord("xz", "x")
    assert mean_chord("yz", "y") > 2 * mean_chord("yz", "x")
    assert abs(mean_chord("xy", "x") - mean_chord("xy", "y")) < 0.15 * mean_chord("xy", "x")


# -- the slice score ---------------------------------------------------------------------------------------


def test_slice_score_is_the_2d_model_on_every_slice_of_every_orientation(device):
    model = tiny_model().to(device)
    periodic = with_circular_padding(model)
    volume = torch.rand(2, 1, 6, 8, 10, generator=torch.Generator().manual_seed(0)).to(device)
    sigma = torch.tensor([0.5, 0.2], device=device)
    score = slice_score(model, chunk_size=5)  # chunks that do not divide the slice counts
    with torch.no_grad():
        result = score(volume, sigma)
        by_hand = {
            "xy": torch.stack([periodic.score(volume[:, :, k], sigma) for k in range(6)], dim=2),
            "xz": torch.stack([periodic.score(volume[:, :, :, k], sigma) for k in range(8)], dim=3),
            "yz": torch.stack([periodic.score(volume[..., k], sigma) for k in range(10)], dim=4),
        }
        for orientation, expected in by_hand.items():
            assert torch.allclose(score.only(orientation)(volume, sigma), expected, atol=1e-5)
    assert torch.allclose(result, sum(by_hand.values()) / 3, atol=1e-5) and result.device.type == device.type
    assert score.calls == 4 and score.slices == 2 * (6 + 8 + 10) * 2


def test_slice_score_of_a_volume_constant_along_z_is_the_2d_score_on_every_xy_slice():
    model = tiny_model(seed=3)
    image = torch.rand(1, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    volume = image.unsqueeze(2).expand(1, 1, 4, 8, 8).contiguous()
    with torch.no_grad():
        expected = with_circular_padding(model).score(image, 0.3)
        result = slice_score(model, orientations=("xy",))(volume, 0.3)
    for k in range(4):
        assert torch.allclose(result[:, :, k], expected, atol=1e-5)


def test_slice_score_is_periodic_in_all_three_directions():
    score = slice_score(tiny_model(seed=2))
    volume = torch.rand(1, 1, 8, 8, 8, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        reference = score(volume, 0.4)
        for axis in (2, 3, 4):  # shifts by the network's size multiple (2) commute with it
            shifted = score(torch.roll(volume, 2, dims=axis), 0.4)
            assert torch.allclose(shifted, torch.roll(reference, 2, dims=axis), atol=1e-5)


# -- the generator -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme, sampler", [("passes", "fast"), ("mean", "fast"), ("passes", "faithful")])
def test_an_untrained_tiny_model_refines_a_32_cube_without_nans(scheme, sampler):
    micrograph = blobs()
    levels = {"faithful": 60}.get(sampler)  # a coarse Langevin schedule keeps the test short
    generator = VolumeGenerator.from_micrograph(micrograph, tiny_model(), shape=(32, 32, 32), scheme=scheme,
                                                sampler=sampler, levels=levels)
    samples = generator.sample(1, seed=0, return_grf=True, progress=False)
    assert samples.volumes.shape == (1, 2, 32, 32, 32) and samples.grf.shape == (1, 2, 32, 32, 32)
    assert torch.isfinite(samples.volumes).all() and torch.all(samples.volumes.sum(1) == 1)
    target = float(micrograph[:, 1].mean())
    assert abs(float(samples.achieved_volume_fractions[0, 1]) - target) < 0.05
    assert abs(float(samples.grf_volume_fractions[0, 1]) - target) < 1e-3
    assert samples.evaluations == generator.evaluations_per_sample == generator.evaluations
    assert samples.slice_evaluations == generator.slices_per_sample
    assert "score evaluations" in samples.report()


def _annealed_volume(micrograph, device, callback=None):
    generator = VolumeGenerator.from_micrograph(micrograph, tiny_model(), shape=(16, 16, 16), device=device,
                                                sigma_pass=(0.5, 0.3, 0.15, 0.1))
    return generator, generator.sample(1, seed=0, progress=False, callback=callback, return_grf=True)


def test_annealed_passes_run_one_schedule_per_pass_in_turning_orientations(micrograph, device_kind, device):
    seen = []
    generator, samples = _annealed_volume(micrograph, device, lambda info: seen.append(info["pass"]))
    assert generator.passes == ("xy", "xz", "yz", "xy", "xz")
    starts = [float(levels[0]) for levels in generator.pass_schedules]
    assert starts == sorted(starts, reverse=True) and abs(starts[0] - 0.5) < 0.05  # each re-noises less
    assert sorted(set(seen)) == [0, 1, 2, 3, 4] or sorted(set(seen)) == [0, 1, 2, 3]  # a pass at sigma_end may be empty
    assert samples.evaluations == generator.evaluations_per_sample and samples.slice_evaluations == generator.slices_per_sample
    assert samples.volumes.device.type == device.type and torch.all(samples.volumes.sum(1) == 1)
    if cpu_streams(device_kind) and device.type == "cuda":  # the fake GPU: the CPU's volume, bit for bit
        on_cpu = _annealed_volume(micrograph, torch.device("cpu"))[1]
        assert torch.equal(samples.volumes.cpu(), on_cpu.volumes) and torch.equal(samples.grf.cpu(), on_cpu.grf)
    assert len(ANNEALED_PASSES) == 11 and ANNEALED_PASSES[0] == 0.6 and ANNEALED_PASSES[-1] == 0.15
    with pytest.raises(ValueError, match="non-empty sequence"):
        VolumeGenerator.from_micrograph(micrograph, tiny_model(), shape=(8, 8, 8), sigma_pass=())
    with pytest.raises(ValueError, match="sigma_pass must lie in the model's range"):
        VolumeGenerator.from_micrograph(micrograph, tiny_model(), shape=(8, 8, 8), sigma_pass=(0.5, 50.0))


def test_final_denoising_step_runs_all_orientations_once_per_draw():
    generator = VolumeGenerator.from_micrograph(blobs(), tiny_model(), shape=(16, 16, 16), sigma_pass=(0.5, 0.2),
                                                final_sigma=0.4, final_draws=3)
    plain = VolumeGenerator.from_micrograph(blobs(), tiny_model(), shape=(16, 16, 16), sigma_pass=(0.5, 0.2))
    assert generator.evaluations_per_sample == plain.evaluations_per_sample + 3
    assert generator.slices_per_sample == plain.slices_per_sample + 3 * (16 + 16 + 16)
    seen = []
    samples = generator.sample(1, seed=0, progress=False, callback=lambda info: seen.append(info["orientation"]))
    assert seen[-3:] == ["all"] * 3 and "all" not in seen[:-3]
    assert samples.evaluations == generator.evaluations_per_sample and samples.slice_evaluations == generator.slices_per_sample
    # no autograd graph kept across the draws (a 64^3 volume's would fill the memory)
    assert not generator._final_denoise(torch.zeros(1, 1, 16, 16, 16)).requires_grad
    for bad in (0.0, -0.1, "0.4"):
        with pytest.raises(ValueError, match="final_sigma"):
            VolumeGenerator.from_micrograph(blobs(), tiny_model(), shape=(8, 8, 8), final_sigma=bad)
    with pytest.raises(ValueError, match="final_sigma must lie in the model's range"):
        VolumeGenerator.from_micrograph(blobs(), tiny_model(), shape=(8, 8, 8), final_sigma=50.0)
    with pytest.raises(ValueError, match="final_draws"):
        VolumeGenerator.from_micrograph(blobs(), tiny_model(), shape=(8, 8, 8), final_sigma=0.4, final_draws=0)


def test_final_denoising_step_keeps_a_volume_the_orientations_agree_on(micrograph, device):
    # a score that says "this is clean" (zero) in every orientation: the averaged draws' noise cancels,
    # every voxel keeps its phase (no volume-fraction pull: conditioning off)
    generator = VolumeGenerator.from_micrograph(micrograph, lambda x, sigma: torch.zeros_like(x), shape=(8, 8, 8),
                                                channels=1, condition_volume_fraction=False, final_sigma=0.05,
                                                final_draws=4, device=device)
    volume = (torch.rand(1, 1, 8, 8, 8, generator=torch.Generator().manual_seed(0)) > 0.6).float().to(device)
    out = generator._final_denoise(volume, generator=torch.Generator(device=device).manual_seed(1))
    assert torch.equal((out > 0.5).float(), volume) and out.device.type == device.type


def test_volume_fraction_posterior_acts_on_the_whole_volume(micrograph, device):
    generator = VolumeGenerator.from_micrograph(micrograph, lambda x, sigma: torch.zeros_like(x), shape=(8, 8, 8),
                                                channels=1, device=device)
    x = torch.zeros(1, 1, 8, 8, 8, device=device)
    x[:, :, :4] = 1.0  # half the volume in phase 1, above the target of 0.35
    pull = generator.score()(x, torch.tensor(0.5, device=device))
    assert pull.device.type == device.type
    assert torch.all(pull < 0) and torch.allclose(pull, pull.flatten()[0].expand_as(pull))  # same push everywhere


def test_likelihood_widths_stop_narrowing_above_width_voxels(monkeypatch):
    # below WIDTH_VOXELS the widths narrow as 1/sqrt(voxels): the same volume-fraction error pulls every voxel
    # equally hard at any size; above it they are held, so a volume 8x larger is pulled 8x less per voxel
    # (at 128^3 the narrower widths made the first pass oscillate into a one-phase volume)
    from lgtutorial.volume import generator as volume_module

    def pull(side: int) -> float:
        generator = VolumeGenerator.from_micrograph(blobs(), lambda x, sigma: torch.zeros_like(x),
                                                    shape=(side,) * 3, channels=1)
        x = torch.zeros(1, 1, side, side, side)
        x[:, :, : side // 2] = 1.0
        return float(generator.score()(x, torch.tensor(0.5)).mean())

    monkeypatch.setattr(volume_module, "WIDTH_VOXELS", 16**3)
    assert pull(16) == pytest.approx(pull(8), rel=1e-4)
    monkeypatch.setattr(volume_module, "WIDTH_VOXELS", 8**3)
    assert pull(16) == pytest.approx(pull(8) / 8, rel=1e-4) and pull(8) < 0


# -- export ------------------------------------------------------------------------------------------------


def test_tiff_stack_round_trips_with_tifffile(tmp_path, device):
    import tifffile

    labels = torch.randint(0, 3, (1, 5, 6, 7), generator=torch.Generator().manual_seed(0))
    volume = labels_to_one_hot(labels, n_phases=3, spatial_dims=3)
    path = save_tiff_stack(volume.to(device), tmp_path / "out" / "volume.tif", voxel_size=0.5)
    stored = tifffile.imread(path)
    assert stored.dtype == np.uint8 and stored.shape == (5, 6, 7)
    assert np.array_equal(stored, labels[0].numpy())
    with tifffile.TiffFile(path) as tif:
        assert tif.is_imagej and tif.imagej_metadata["spacing"] == 0.5 and len(tif.pages) == 5
    assert torch.equal(load_tiff_stack(path, n_phases=3), volume)
    assert not list(path.parent.glob(".*.tmp"))  # the temporary file was renamed onto the target
    save_tiff_stack(labels[0].to(device), tmp_path / "labels.tif")  # integer labels on the device too
    assert np.array_equal(tifffile.imread(tmp_path / "labels.tif"), labels[0].numpy())


def test_orthogonal_slices_figure_is_written_as_png(tmp_path, device):
    import matplotlib

    matplotlib.use("Agg")
    volume = labels_to_one_hot(torch.randint(0, 2, (1, 6, 6, 6)), n_phases=2, spatial_dims=3).to(device)
    figure = plot_orthogonal_slices(volume, path=tmp_path / "slices.png", title="test")
    assert len(figure.axes) == 3 and (tmp_path / "slices.png").read_bytes()[:4] == b"\x89PNG"


# -- bad input ---------------------------------------------------------------------------------------------


def test_bad_input_is_refused_with_what_was_expected(tmp_path):
    micrograph = blobs(16)
    with pytest.raises(ValueError, match=r"expected 2D data: a one-hot micrograph \(n_samples, n_phases, H, W\)"):
        isotropic_statistics(micrograph[0, 0], (8, 8, 8))  # a bare 2D array
    with pytest.raises(ValueError, match=r"expected 2D data"):
        isotropic_statistics(torch.zeros(1, 2, 4, 4, 4), (8, 8, 8))  # already a volume
    with pytest.raises(ValueError, match="for N > 2 pass the one-hot micrograph"):
        isotropic_statistics(torch.rand(3, 8, 8), (8, 8, 8))
    with pytest.raises(ValueError, match=r"shape must be the volume's \(D, H, W\)"):
        isotropic_statistics(micrograph, (8, 8))
    score = slice_score(tiny_model())
    with pytest.raises(ValueError, match=r"expected a volume of shape \(n_samples, 1, D, H, W\)"):
        score(torch.zeros(1, 1, 8, 8), 0.5)  # a 2D batch where a volume is expected
    with pytest.raises(ValueError, match=r"expected a volume of shape \(n_samples, 1, D, H, W\)"):
        score(torch.zeros(1, 3, 8, 8, 8), 0.5)  # wrong channel count
    with pytest.raises(ValueError, match="the score model has 3 channel"):
        VolumeGenerator.from_micrograph(micrograph, tiny_model(channels=3), shape=(8, 8, 8))
    with pytest.raises(ValueError, match=r"expected a 3D statistics row \(n_phases, D, H, W\)"):
        VolumeGenerator.from_statistics(statistics_row(micrograph), tiny_model())
    with pytest.raises(ValueError, match="multiple of 2"):
        VolumeGenerator.from_micrograph(micrograph, tiny_model(), shape=(8, 9, 8))
    with pytest.raises(ValueError, match=r"volumes: expected a one-hot tensor .*\(n_samples, n_phases, D, H, W\)|volumes: expected"):
        slice_statistics(micrograph, micrograph)
    with pytest.raises(ValueError, match=r"expected one volume: one-hot \(n_phases, D, H, W\)"):
        save_tiff_stack(micrograph[0, 0], tmp_path / "flat.tif")
    with pytest.raises(ValueError, match="orientations must be"):
        SliceScore(lambda x, s: x, channels=1, orientations=("xy", "zz"))


# -- the shipped model on the case-study-1 reference -------------------------------------------------------


@pytest.mark.requires_data("nbsa-proxy")
def test_shipped_case1_model_refines_a_volume_of_nbsa_statistics():
    from lgtutorial import data
    from lgtutorial.score import registry as pretrained

    micrograph, _ = data.load("nbsa-proxy")
    model, sigmas = pretrained.load_with_sigmas("lgtutorial-case1")
    # one round of orientation passes keeps the test near half a minute (the default two: benchmarks/volume_cost.py)
    generator = VolumeGenerator.from_micrograph(micrograph, model, shape=(32, 32, 32), sigmas=sigmas, sampler="fast",
                                                rounds=1)
    samples = generator.sample(1, seed=0, return_grf=True, progress=False)
    assert not samples.degenerate
    hybrid = slice_statistics(samples.volumes, micrograph, reference_periodic=True)
    grf = slice_statistics(samples.grf, micrograph, reference_periodic=True)
    target = float(micrograph[:, 1].mean())
    for orientation in ORIENTATIONS:
        assert abs(float(hybrid.volume_fractions[orientation][1]) - target) < 0.02
        assert hybrid.chord_distance(orientation) < grf.chord_distance(orientation)
    assert math.isfinite(hybrid.isotropy_error)
