"""The volume-fraction posterior wrapper and the hybrid generator (with analytic and the authors' scores).

The tests that take ``device`` run on the CPU, the fake GPU and a real one where present (``tests/conftest.py``);
their inputs are made on the CPU first (the module's fixtures), and on the fake GPU seeded samples are compared
with the CPU's bit for bit.
"""

import math
from types import SimpleNamespace

import pytest
import torch

from lgtutorial.grf.field import GaussianRandomField, statistics_row
from lgtutorial.grf.interpolation import statistics_row_for_shape
from lgtutorial.microstructure import labels_to_one_hot
from lgtutorial.sampling.conditioning import (
    likelihood_width,
    likelihood_widths,
    mean_volume_fractions,
    segmented_volume_fractions,
    volume_fraction_posterior,
)
from lgtutorial.sampling.hybrid import HybridGenerator
from lgtutorial.sampling.integrators import annealed_langevin, interior_mask
from lgtutorial.sampling.samples import finalize
from lgtutorial.score.schedules import truncated_schedule
from lgtutorial.statistics.two_point import volume_fractions
from lgtutorial.synthetic import blobs
from tests.conftest import cpu_streams


def gaussian_score(mean: float, std: float):
    return lambda x, sigma: -(x - mean) / (std**2 + sigma**2)


class ToyModel(torch.nn.Module):
    """A local score model: every pixel is pulled toward the mean of its neighbours (zero padding)."""

    def __init__(self, channels: int = 1, depth: int = 0):
        super().__init__()
        self.settings = SimpleNamespace(channels=channels)
        self.size_multiple = 2**depth
        self.conv = torch.nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        with torch.no_grad():
            self.conv.weight.zero_()
            for c in range(channels):
                self.conv.weight[c, c] = 1.0 / 9.0

    def score(self, x, sigma):
        return (self.conv(x) - x) / (0.05 + sigma**2)


@pytest.fixture(scope="module")
def micro() -> torch.Tensor:
    """A periodic 2-phase structure (1, 2, 32, 32): features about 3 px across, 35 % phase 1."""
    return blobs(32, 1.4, fractions=(0.65, 0.35))


@pytest.fixture(scope="module")
def coarse() -> torch.Tensor:
    """Coarser features (6 px across), 40 % phase 1."""
    return blobs(32, 3.0, fractions=(0.6, 0.4))


@pytest.fixture(scope="module")
def stripes() -> torch.Tensor:
    """Three stripes of 8 px, one per phase, periodic (1, 3, 24, 24)."""
    labels = torch.arange(24).view(1, 24).expand(24, 24) // 8
    return labels_to_one_hot(labels[None], n_phases=3)


@pytest.fixture
def field(micro) -> GaussianRandomField:
    return GaussianRandomField.from_microstructure(micro)


# -- the posterior wrapper ---------------------------------------------------------------------
@pytest.mark.parametrize("estimate", ["segmented", "mean"])
def test_the_posterior_pulls_the_volume_fraction_toward_the_target(estimate, device):
    # statistical: it holds on every device's random streams; the target is a CPU tensor, moved by the posterior
    prior = gaussian_score(0.2, 0.1)  # every pixel near 0.2: phase 1 is absent without conditioning
    sigmas = truncated_schedule(20.0, 0.01, n_levels=200, sigma_c=0.75).to(device)
    start = torch.full((2, 1, 16, 16), 0.2, device=device)
    posterior = volume_fraction_posterior(prior, torch.tensor([0.5]), estimate=estimate)
    measure = segmented_volume_fractions if estimate == "segmented" else mean_volume_fractions
    free = measure(annealed_langevin(prior, start, sigmas, generator=torch.Generator(device=device).manual_seed(0)))
    pulled = measure(annealed_langevin(posterior, start, sigmas, generator=torch.Generator(device=device).manual_seed(0)))
    assert pulled.device.type == device.type
    assert (pulled - 0.5).abs().max() < (free - 0.5).abs().min() - 0.05
    if estimate == "segmented":
        assert (pulled - 0.5).abs().max() < 0.05


def test_the_likelihood_term_is_uniform_inside_the_mask_and_zero_outside(device):
    mask = interior_mask((4, 4), 2, device=device)
    x = torch.zeros(1, 1, 8, 8, device=device)
    x[..., ~mask] = 5.0  # the frame does not count toward the volume fraction
    posterior = volume_fraction_posterior(
        lambda y, s: torch.zeros_like(y), [0.25], estimate="mean", mask=mask, widths=(0.1, 0.1)
    )
    pull = posterior(x, torch.tensor(1.0, device=device))
    assert torch.all(pull[..., ~mask] == 0) and pull.device.type == device.type
    expected = -(0.0 - 0.25) / (16 * 0.1**2)
    torch.testing.assert_close(pull[..., mask], torch.full((1, 1, 16), expected, device=device))


def test_the_denoised_measure_sees_the_clean_structure_under_the_noise():
    # a prior that denoises every iterate to a clean half/half image: x + sigma^2 score = clean
    clean = torch.zeros(1, 1, 8, 8)
    clean[..., :4] = 1.0
    prior = lambda y, s: (clean - y) / s**2  # noqa: E731
    noisy = clean + 0.4 * torch.randn(1, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    noisy[..., 0, :] = 1.0  # the iterate itself is not at the target (more than half above 0.5)
    sigma = torch.tensor(0.5)
    on_iterate = volume_fraction_posterior(prior, [0.5], widths=(0.1, 0.1))
    on_denoised = volume_fraction_posterior(prior, [0.5], widths=(0.1, 0.1), measure_on="denoised")
    torch.testing.assert_close(on_denoised(noisy, sigma), prior(noisy, sigma))  # clean is at 0.5: no pull
    measured = float(segmented_volume_fractions(noisy))
    expected = -(measured - 0.5) / (64 * 0.1**2)
    assert measured > 0.5 and on_denoised.measure_on == "denoised"
    torch.testing.assert_close(on_iterate(noisy, sigma) - prior(noisy, sigma), torch.full((1, 1, 8, 8), expected))
    with pytest.raises(ValueError, match="measure_on must be 'iterate' or 'denoised'"):
        volume_fraction_posterior(prior, [0.5], measure_on="clean")


def test_segmented_estimate_leaves_uncertain_pixels_out_of_every_phase():
    x = torch.tensor([[0.8, 0.1, 0.1], [0.1, 0.1, 0.1], [0.2, 0.5, 0.3], [0.0, 0.0, 1.0]]).T.reshape(
        1, 3, 2, 2
    )
    # pixel 2 has 1 - sum = 0.7 > every phase: uncertain, counted in the total only
    torch.testing.assert_close(segmented_volume_fractions(x), torch.tensor([[0.25, 0.25, 0.25]]))
    torch.testing.assert_close(
        segmented_volume_fractions(torch.tensor([[[[0.49, 0.51]]]])), torch.tensor([[0.5]])
    )


def test_likelihood_widths_are_geometric_and_scale_with_the_domain():
    start, end = likelihood_widths(64 * 64)
    assert (start, end) == pytest.approx((0.032, 0.0004))
    # the pull per pixel, 1 / (S sigma_mu^2), does not depend on the domain size
    assert 64 * 64 * start**2 == pytest.approx(256 * 256 * 0.008**2)
    middle = float(
        likelihood_width(math.sqrt(20 * 0.01), sigma_max=20.0, sigma_min=0.01, start=0.008, end=1e-4)
    )
    assert middle == pytest.approx(math.sqrt(0.008 * 1e-4), rel=1e-6)
    with pytest.raises(ValueError, match="estimate must be one of"):
        likelihood_widths(100, estimate="median")


def test_posterior_rejects_bad_targets_and_shapes():
    with pytest.raises(ValueError, match=r"lie in \[0, 1\]"):
        volume_fraction_posterior(gaussian_score(0, 1), [1.5])
    posterior = volume_fraction_posterior(gaussian_score(0, 1), [0.3, 0.3])
    with pytest.raises(ValueError, match="do not fit model channels"):
        posterior(torch.zeros(1, 1, 4, 4), torch.tensor(1.0))


# -- statistics on another grid ------------------------------------------------------------------
def test_statistics_row_for_shape_keeps_volume_fractions_and_a_valid_spectrum():
    micro = blobs(48, 1.4, fractions=(0.65, 0.35))  # (on other devices: tests/test_device_paths.py)
    row = statistics_row(micro)
    assert statistics_row_for_shape(row, (48, 48)) is not None
    torch.testing.assert_close(statistics_row_for_shape(row, (48, 48)), row)
    for shape in [(16, 16), (32, 24), (80, 80)]:
        moved = statistics_row_for_shape(row, shape)
        assert moved.shape == (2, *shape)
        assert float(moved[0, 0, 0]) == pytest.approx(float(row[0, 0, 0]))
        spectrum = torch.fft.fft2(moved[0]).real
        assert float(spectrum.min()) > -1e-9 * float(spectrum.abs().max())
        field = GaussianRandomField(moved)
        torch.testing.assert_close(
            field.target_volume_fractions.double(), volume_fractions(micro)[0].double(), atol=1e-3, rtol=0
        )


# -- the generator -------------------------------------------------------------------------------
def _seeded_samples(micro, device, *, seed: int, batch_size=None, return_grf=False):
    field = GaussianRandomField.from_microstructure(micro, device=device)
    generator = HybridGenerator(field, ToyModel(), sampler="faithful", levels=60, padding=4)
    return generator.sample(3, seed=seed, return_grf=return_grf, progress=False, batch_size=batch_size)


def test_generator_returns_seeded_one_hot_samples_and_the_grf_inputs(micro, device_kind, device):
    field = GaussianRandomField.from_microstructure(micro, device=device)
    generator = HybridGenerator(field, ToyModel(), sampler="faithful", levels=60, padding=4)
    first = generator.sample(3, seed=1, return_grf=True, progress=False, batch_size=2)
    again = generator.sample(3, seed=1, progress=False, batch_size=2)  # same seed and batches: same samples
    other = generator.sample(3, seed=2, progress=False)
    assert first.microstructures.shape == (3, 2, 32, 32)
    assert first.microstructures.device.type == first.refined.device.type == first.grf.device.type == device.type
    assert torch.all(first.microstructures.sum(1) == 1)
    assert torch.equal(first.microstructures, again.microstructures)
    assert not torch.equal(first.microstructures, other.microstructures)
    assert first.refined.shape == (3, 1, 32, 32) and float(first.refined.abs().max()) <= 3.0
    # 2 phases: the GRF input is segmented with the target volume fractions
    assert torch.all((first.grf == 0) | (first.grf == 1))
    torch.testing.assert_close(
        volume_fractions(first.grf), field.target_volume_fractions.expand(3, 2), atol=1.0 / 32**2, rtol=0
    )
    assert again.grf is None and "target" in first.report()
    if cpu_streams(device_kind) and device.type == "cuda":  # the fake GPU: the CPU's samples, bit for bit
        on_cpu = _seeded_samples(micro, torch.device("cpu"), seed=1, batch_size=2, return_grf=True)
        for name in ("microstructures", "refined", "grf"):
            assert torch.equal(getattr(first, name).cpu(), getattr(on_cpu, name)), name


def test_conditioning_brings_a_biased_model_to_the_target(micro, device):
    field = GaussianRandomField.from_microstructure(micro, device=device)
    target = float(field.target_volume_fractions[1])
    errors = {}
    for condition in (True, False):
        generator = HybridGenerator(
            field,
            gaussian_score(0.2, 0.1),
            sampler="faithful",
            levels=200,
            padding=0,
            periodic="none",
            condition_volume_fraction=condition,
        )
        samples = generator.sample(2, seed=0, progress=False)
        errors[condition] = float((samples.achieved_volume_fractions[:, 1] - target).abs().max())
    assert errors[True] < 0.05 < errors[False]


def test_more_than_two_phases_refine_the_raw_field(stripes, device):
    field = GaussianRandomField.from_microstructure(stripes, device=device)
    samples = HybridGenerator(field, ToyModel(channels=3), sampler="faithful", levels=40, padding=4).sample(
        2, seed=0, return_grf=True, progress=False
    )
    assert samples.microstructures.shape == (2, 3, 24, 24) and samples.microstructures.device.type == device.type
    assert not torch.all((samples.grf == 0) | (samples.grf == 1))  # continuous GRF input
    torch.testing.assert_close(samples.grf.sum(1), torch.ones(2, 24, 24, device=device))


def test_the_fast_samplers_segment_the_start_for_three_phases_too(stripes, device):
    """The paper's sampler keeps its rule (continuous for N > 2); the fast ones refine a segmented start,
    whose volume fractions are the target's to a pixel; an explicit segment_grf wins over both."""
    field = GaussianRandomField.from_microstructure(stripes, device=device)
    model = ToyModel(channels=3)
    fast = HybridGenerator(field, model, sampler="fast", padding=4)
    assert fast.segment_grf and not HybridGenerator(field, model, sampler="faithful", padding=4).segment_grf
    assert not HybridGenerator(field, model, sampler="fast", padding=4, segment_grf=False).segment_grf
    start = fast.starting_points(2, generator=torch.Generator(device=device).manual_seed(0))
    assert start.device.type == device.type and bool(((start == 0) | (start == 1)).all())
    assert torch.equal(start.sum(1), torch.ones(2, 24, 24, device=device))
    torch.testing.assert_close(start.mean((-2, -1)), field.target_volume_fractions.expand(2, 3).float(),
                               atol=1 / 24**2, rtol=0)


def test_circular_mode_uses_a_periodic_copy_of_the_model(field):
    model = ToyModel()
    generator = HybridGenerator(field, model, sampler="faithful", levels=30, periodic="circular")
    assert generator.model.conv.padding_mode == "circular" and model.conv.padding_mode == "zeros"
    assert generator.padding == 0
    assert generator.sample(1, seed=0, progress=False).microstructures.shape == (1, 2, 32, 32)


def test_finalize_thresholds_one_channel_and_argmaxes_several():
    one = finalize(torch.tensor([[[[0.4, 0.6, 7.0]]]]), 2)
    assert one[0, 1, 0].tolist() == [0.0, 1.0, 1.0]
    several = finalize(torch.tensor([[[[0.1]], [[0.7]], [[0.2]]]]), 3)
    assert several[0, :, 0, 0].tolist() == [0.0, 1.0, 0.0]


def test_bad_combinations_give_clear_errors(field):
    with pytest.raises(ValueError, match="3 channel\\(s\\) but the statistics describe 2 phases"):
        HybridGenerator(field, ToyModel(channels=3))
    with pytest.raises(ValueError, match="divisible by 2\\*\\*depth = 8"):
        HybridGenerator(field, ToyModel(depth=3), padding=2)  # 32 + 2 * 2 = 36
    HybridGenerator(field, ToyModel(depth=3), padding=4)  # 40 is fine
    with pytest.raises(ValueError, match="sigma_c=30.0 lies outside"):
        HybridGenerator(field, ToyModel(), sigma_c=30.0)
    with pytest.raises(ValueError, match="--periodic \\(periodic\\): expected 'embedding', 'circular' or 'none'"):
        HybridGenerator(field, ToyModel(), periodic="mirror")
    with pytest.raises(TypeError, match="unknown refinement option\\(s\\) \\['n_levels'\\]"):
        HybridGenerator(field, ToyModel(), n_levels=30)
    with pytest.raises(ValueError, match="needs a torch.nn.Module"):
        HybridGenerator(field, gaussian_score(0, 1), periodic="circular")
    with pytest.raises(ValueError, match="n_samples must be a positive integer"):
        HybridGenerator(field, ToyModel()).sample(0)


# -- with the authors' case-study-1 model ------------------------------------------------------
@pytest.mark.requires_data("nbsa-authors-checkpoint", "nbsa-proxy", "ngrf-three-phase-simple")
def test_authors_model_refines_a_grf_sample(device):
    from lgtutorial.data import load_reference
    from lgtutorial.score.registry import load_score_model

    model, sigmas = load_score_model("nbsa-authors-checkpoint", device=device)
    reference, _ = load_reference("nbsa-proxy")
    generator = HybridGenerator.from_reference(reference, model, sigmas=sigmas, shape=(32, 32), sampler="faithful",
                                               levels=40, device=device)
    samples = generator.sample(1, seed=0, return_grf=True, progress=False)
    assert samples.microstructures.shape == (1, 2, 32, 32) and samples.microstructures.device.type == device.type
    assert torch.all(samples.microstructures.sum(1) == 1)
    assert not torch.equal(samples.microstructures, samples.grf)  # the model changed the GRF sample
    with pytest.raises(ValueError, match="1 channel\\(s\\) but the statistics describe 3 phases"):
        three, _ = load_reference("ngrf-three-phase-simple")
        HybridGenerator.from_reference(three, model, sigmas=sigmas, shape=(32, 32))


# -- the collapse guard ----------------------------------------------------------------------------
def _overconfident(x, sigma):
    """A score that pulls every pixel hard towards its nearest phase: stable under the paper's small
    steps, but the fast sampler's larger ones overshoot and collapse the sample into one phase (as a
    young model did in practice)."""
    return -4.0 * (x - (x > 0.5).to(x.dtype)) / sigma**2


def test_collapsed_samples_are_redone_with_the_faithful_sampler(coarse, device):
    field = GaussianRandomField.from_microstructure(coarse, device=device)
    target = float(field.target_volume_fractions[1])
    unguarded = HybridGenerator(field, _overconfident, channels=1, sampler="fast", guard=None).sample(4, seed=0, progress=False)
    assert float(unguarded.achieved_volume_fractions[:, 1].max()) < 0.05  # collapsed, silently
    generator = HybridGenerator(field, _overconfident, channels=1, sampler="fast")
    guarded = generator.sample(4, seed=0, progress=False)
    assert guarded.recovered == [0, 1, 2, 3] and guarded.degenerate == []
    assert guarded.microstructures.device.type == guarded.refined.device.type == device.type
    # the evaluation counter includes the faithful redos
    fallback = generator.fallback()
    assert fallback.sampler_name == "faithful" and fallback.evaluations == 4 * fallback.evaluations_per_sample
    assert generator.evaluations == 4 * generator.evaluations_per_sample + fallback.evaluations
    assert float((guarded.achieved_volume_fractions[:, 1] - target).abs().max()) < 0.05
    assert "redone with the faithful sampler" in guarded.report()


def test_samples_that_fail_even_the_faithful_sampler_are_listed_as_degenerate(coarse, device):
    field = GaussianRandomField.from_microstructure(coarse, device=device)

    def broken(x, sigma):
        return torch.full_like(x, float("nan"))

    out = HybridGenerator(field, broken, channels=1, sampler="fast").sample(3, seed=0, progress=False)
    assert out.degenerate == [0, 1, 2] and out.recovered == []
    assert torch.isfinite(out.refined).all()  # what is returned is still a valid array
    assert "DEGENERATE" in out.report()
    with pytest.raises(ValueError, match="--guard \\(guard\\): expected a volume-fraction error in \\(0, 1\\], or none"):
        HybridGenerator(field, broken, channels=1, guard=0.0)
