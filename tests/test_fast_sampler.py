"""The reverse-SDE sampler, the named sampler configurations and the fast hybrid generator."""

import pytest
import torch

from lgtutorial.cli.main import build_parser
from lgtutorial.cli.options import from_arguments
from lgtutorial.grf.field import GaussianRandomField
from lgtutorial.sampling.hybrid import HybridGenerator
from lgtutorial.sampling.integrators import reverse_diffusion, reverse_diffusion_evaluations
from lgtutorial.sampling.samplers import (
    SAMPLERS,
    SamplerConfiguration,
    prepare_model,
    resolve_sampler,
    with_options,
)
from lgtutorial.sampling.settings import HybridSettings, RefinementOptions
from lgtutorial.score.schedules import geometric_sigmas
from tests.scores import CountingScore, blob_field, gaussian_score


@pytest.fixture
def field() -> GaussianRandomField:
    return blob_field()


# -- reverse_diffusion ---------------------------------------------------------------------------
@pytest.mark.parametrize("corrector_steps", [0, 1])
def test_reverse_sde_samples_a_gaussian_with_the_right_mean_and_spread(corrector_steps):
    # the hybrid's range: 50 levels from 0.75 down; Euler-Maruyama's variance error there is about +2 %
    # (+6.5 % over 5 -> 0.01, where each step spans more of the distribution)
    generator = torch.Generator().manual_seed(0)
    sigmas = geometric_sigmas(0.75, 0.01, 50)
    start = 1.0 + (0.5**2 + 0.75**2) ** 0.5 * torch.randn(20000, generator=generator)  # the sigma_1 marginal
    out = reverse_diffusion(gaussian_score(1.0, 0.5), start, sigmas, generator=generator,
                            corrector_steps=corrector_steps)
    assert float(out.mean()) == pytest.approx(1.0, abs=0.02)
    assert float(out.std()) == pytest.approx(0.5, rel=0.05)


def test_from_a_clean_start_with_start_noise_the_spread_is_kept():
    generator = torch.Generator().manual_seed(1)
    sigmas = geometric_sigmas(0.75, 0.01, 50)
    start = -2.0 + 0.3 * torch.randn(20000, generator=generator)  # samples of the data distribution itself
    configuration = SamplerConfiguration(method="reverse-sde", denoise=True, start_noise=1.0)
    out = configuration.run(gaussian_score(-2.0, 0.3), start, sigmas, generator=generator)
    assert float(out.mean()) == pytest.approx(-2.0, abs=0.02)
    assert float(out.std()) == pytest.approx(0.3, rel=0.05)


def test_zero_score_and_zero_noise_leave_the_input_alone_and_bad_levels_are_rejected():
    x = torch.randn(2, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    out = reverse_diffusion(lambda y, s: torch.zeros_like(y), x, geometric_sigmas(1.0, 0.01, 5), noise_scale=0.0)
    assert torch.equal(out, x) and out is not x
    with pytest.raises(ValueError, match="must decrease strictly"):
        reverse_diffusion(gaussian_score(0, 1), x, torch.tensor([0.5, 0.5, 0.1]))
    with pytest.raises(ValueError, match="at least 2 levels"):
        reverse_diffusion(gaussian_score(0, 1), x, torch.tensor([0.5]))
    with pytest.raises(ValueError, match="corrector_steps must be a non-negative integer"):
        reverse_diffusion(gaussian_score(0, 1), x, geometric_sigmas(1.0, 0.01, 5), corrector_steps=-1)


@pytest.mark.parametrize(("levels", "corrector_steps", "denoise"), [(10, 0, True), (10, 1, True), (7, 2, False)])
def test_reverse_sde_spends_the_evaluations_it_claims(levels, corrector_steps, denoise):
    counter, seen = CountingScore(), []
    x = torch.rand(3, 1, 8, 8)
    reverse_diffusion(counter, x, geometric_sigmas(1.0, 0.01, levels), corrector_steps=corrector_steps,
                      denoise=denoise, callback=seen.append)
    claimed = reverse_diffusion_evaluations(levels, corrector_steps=corrector_steps, denoise=denoise)
    assert counter.evaluations == 3 * claimed and len(seen) == claimed


def test_initial_correctors_run_at_the_first_level_before_the_first_predictor_step():
    counter, seen = CountingScore(), []
    sigmas = geometric_sigmas(0.75, 0.01, 6)
    reverse_diffusion(counter, torch.rand(2, 1, 8, 8), sigmas, corrector_steps=1, initial_correctors=4,
                      callback=seen.append)
    claimed = reverse_diffusion_evaluations(6, corrector_steps=1, initial_correctors=4)
    assert claimed == 4 + 5 * 2 + 1 and counter.evaluations == 2 * claimed and len(seen) == claimed
    assert [float(info["sigma"]) for info in seen[:4]] == [float(sigmas[0])] * 4
    assert [info["step_size"] for info in seen[:4]] == pytest.approx([0.2 * float(sigmas[0]) ** 2] * 4)
    assert float(seen[4]["sigma"]) == float(sigmas[0]) and seen[4]["step_size"] > seen[0]["step_size"]
    with pytest.raises(ValueError, match="initial_correctors must be a non-negative integer"):
        reverse_diffusion(counter, torch.rand(1, 1, 4, 4), sigmas, initial_correctors=-2)
    with pytest.raises(ValueError, match="initial_correctors applies to method 'reverse-sde' only"):
        SamplerConfiguration(initial_correctors=3)
    with pytest.raises(ValueError, match="likelihood_on must be 'iterate' or 'denoised'"):
        SamplerConfiguration(likelihood_on="clean")
    configuration = SamplerConfiguration(method="reverse-sde", corrector_steps=1, initial_correctors=4, denoise=True)
    assert configuration.evaluations(6) == claimed


def test_a_stationary_gaussian_stays_put_under_initial_correctors():
    # Langevin steps at sigma_1 on the sigma_1 marginal leave it invariant (up to the step's error)
    generator = torch.Generator().manual_seed(3)
    sigmas = geometric_sigmas(0.75, 0.01, 20)
    start = 1.0 + (0.5**2 + 0.75**2) ** 0.5 * torch.randn(20000, generator=generator)
    out = reverse_diffusion(gaussian_score(1.0, 0.5), start, sigmas, generator=generator, corrector_steps=1,
                            corrector_ratio=0.5, initial_correctors=20)
    assert float(out.mean()) == pytest.approx(1.0, abs=0.02)
    assert float(out.std()) == pytest.approx(0.5, rel=0.06)


# -- the named configurations in the hybrid generator ---------------------------------------------
@pytest.mark.parametrize("name", ["faithful", "fast"])
def test_the_generator_spends_the_evaluations_it_claims(field, name):
    counter = CountingScore()
    generator = HybridGenerator(field, counter, sampler=name, padding=4, levels=120 if name == "faithful" else None)
    assert generator.evaluations == 0
    samples = generator.sample(3, seed=0, batch_size=2, progress=False)
    assert counter.evaluations == 3 * generator.evaluations_per_sample
    assert generator.evaluations == counter.evaluations  # the generator's own counter agrees
    assert samples.microstructures.shape == (3, 2, 32, 32)
    assert generator.sampler is SAMPLERS[name]


def test_the_fast_sampler_spends_a_tenth_of_the_papers_evaluations_on_its_schedule(field):
    fast = HybridGenerator(field, CountingScore(), sampler="fast")
    faithful = HybridGenerator(field, CountingScore(), sampler="faithful")
    assert faithful.evaluations_per_sample == len(faithful.sigmas) == 568
    # one predictor and two corrector steps per level after the first, plus the denoising step
    assert fast.evaluations_per_sample == (len(fast.sigmas) - 1) * 3 + 1 == 49
    assert 10 * fast.evaluations_per_sample <= faithful.evaluations_per_sample
    # both start at the level of their schedule closest (in log) to sigma_c: 0.747 of the paper's
    # 1000 levels, 0.742 of the fast sampler's 61 (a ratio of 1.135 between neighbouring levels)
    assert float(faithful.sigmas[0]) == pytest.approx(0.75, rel=0.01)
    ratio = float(fast.sigmas[0] / fast.sigmas[1])
    assert 1 / ratio ** 0.5 <= float(fast.sigmas[0]) / 0.75 <= ratio ** 0.5
    assert float(faithful.sigmas[-1]) == pytest.approx(0.01, rel=1e-4)
    assert float(fast.sigmas[-1]) == pytest.approx(SAMPLERS["fast"].sigma_end or 0.01, rel=0.1)
    # the fast sampler measures the volume fraction on the denoised estimate, the paper's on the iterate
    assert fast.score().measure_on == "denoised" and faithful.score().measure_on == "iterate"


def test_sampler_names_and_configurations_are_validated(field):
    with pytest.raises(ValueError, match="--sampler \\(sampler\\): expected one of faithful, fast, fast-v1, fast-predictor-only, fast-sharp, fast-fine, fast-compiled, few-step, few-step-ode, oriented, got 'quick'"):
        HybridGenerator(field, CountingScore(), sampler="quick")
    with pytest.raises(TypeError, match="sampler must be a name"):
        resolve_sampler(3)
    with pytest.raises(ValueError, match="method must be one of"):
        SamplerConfiguration(method="euler")
    with pytest.raises(ValueError, match="levels must be None or an integer >= 2"):
        SamplerConfiguration(levels=1)
    with pytest.raises(ValueError, match="must be positive"):
        SamplerConfiguration(likelihood_scale=0.0)
    custom = with_options(SAMPLERS["fast"], levels=30)
    assert resolve_sampler(custom) is custom and HybridGenerator(field, CountingScore(), sampler=custom).sampler_name == "custom"


def test_prepare_model_copies_into_channels_last_and_leaves_the_model_alone():
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(4, 1, 3, padding=1))
    model.score = lambda x, sigma: model(x) / sigma
    score = prepare_model(model, SamplerConfiguration(channels_last=True))
    x = torch.rand(2, 1, 12, 12)
    torch.testing.assert_close(score(x, torch.tensor(0.5)), model(x) / 0.5)
    assert model[0].weight.is_contiguous()  # the original keeps its memory format
    assert prepare_model(model, SamplerConfiguration()) is model.score


# -- the CLI ----------------------------------------------------------------------------------------
def test_one_default_sampler_for_the_api_the_cli_and_the_sweep_design(field):
    import inspect

    from lgtutorial.sampling.samplers import DEFAULT_SAMPLER
    from lgtutorial.sweep.design import SamplerSettings

    assert DEFAULT_SAMPLER == "fast"
    assert RefinementOptions().sampler == DEFAULT_SAMPLER and "sampler" not in inspect.signature(HybridGenerator).parameters
    assert HybridSettings().sampler == SamplerSettings().name == DEFAULT_SAMPLER
    # fit leaves the choice to its plan: the default, or "fast-fine" for thin two-phase features (test_fit.py)
    assert build_parser().parse_args(["fit", "micrograph.png"]).sampler is None
    from lgtutorial.fitting.plan import FitPlan

    assert inspect.signature(FitPlan).parameters["sampler"].default == DEFAULT_SAMPLER
    assert HybridGenerator(field, CountingScore()).sampler is SAMPLERS[DEFAULT_SAMPLER]


def test_the_cli_defaults_to_the_fast_sampler_and_offers_the_faithful_one_by_name():
    assert HybridSettings().sampler == "fast"
    args = build_parser().parse_args(["generate", "--sampler", "faithful"])
    assert from_arguments(HybridSettings, args).sampler == "faithful"


# -- with the authors' case-study-1 model ------------------------------------------------------------
@pytest.mark.requires_data("nbsa-authors-checkpoint", "nbsa-proxy")
def test_fast_sampler_with_the_authors_model_reaches_the_target_volume_fraction():
    from lgtutorial.data import load_reference
    from lgtutorial.grf.field import statistics_row
    from lgtutorial.sampling.samplers import model_volume_fraction_shift
    from lgtutorial.score.registry import load_score_model

    model, sigmas = load_score_model("nbsa-authors-checkpoint")
    reference, _ = load_reference("nbsa-proxy")
    # the fast sampler measures the volume fraction on the denoised estimate: no target shift needed
    assert model.volume_fraction_shift == 0.0073 and model_volume_fraction_shift(model, "fast") == 0.0
    generator = HybridGenerator.from_statistics(
        statistics_row(reference), model, shape=(64, 64), sigmas=sigmas, sampler="fast",
    )
    samples = generator.sample(3, seed=0, return_grf=True, progress=False)
    achieved = samples.achieved_volume_fractions[:, 1]
    target = float(samples.target_volume_fractions[1])
    # measured at 64x64: largest error 0.005 over 12 fast samples (seeds 0-3), 0.004 over 3 faithful ones
    assert float((achieved - target).abs().max()) < 0.008
    assert not torch.equal(samples.microstructures, samples.grf)  # the model did refine the GRF samples


def test_sigma_end_cuts_the_schedule_and_keeps_at_least_two_levels(field):
    def levels(**options):
        configuration = with_options(SAMPLERS["fast"], **options)
        return HybridGenerator(field, CountingScore(), sampler=configuration).sigmas

    full = levels(sigma_end=None)
    assert float(full[-1]) == pytest.approx(0.01, rel=1e-4)
    cut = levels(sigma_end=0.1)
    assert torch.equal(cut, full[: len(cut)]) and float(cut[-1]) == pytest.approx(0.1, rel=0.05)
    assert torch.equal(levels(sigma_end=1e-4), full)  # below the schedule: everything is run
    assert len(levels(sigma_end=5.0)) == 2  # above sigma_c: one step and the denoising
