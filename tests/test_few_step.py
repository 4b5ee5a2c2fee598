"""The few-step integrators (probability-flow ODE, EDM's stochastic sampler) and their named samplers (issue #41)."""

import math

import pytest
import torch

from lgtutorial.grf.field import GaussianRandomField
from lgtutorial.sampling.hybrid import HybridGenerator
from lgtutorial.sampling.ode import edm_evaluations, edm_sampler, few_step_schedule, probability_flow_ode
from lgtutorial.sampling.samplers import (
    SAMPLERS,
    SamplerConfiguration,
    evaluations_at,
    sampler_help,
)
from lgtutorial.score.schedules import geometric_sigmas, rho_spaced_sigmas
from lgtutorial.score.settings import UNetSettings
from lgtutorial.score.unet import ScoreUNet
from tests.scores import CountingScore, blob_field
from tests.scores import gaussian_score as gaussian_score_of

DATA_STD = 0.5
FEW_STEP_SAMPLERS = [name for name, configuration in SAMPLERS.items() if configuration.method in ("ode", "edm")]


#: exact score of N(0, DATA_STD^2) smoothed by noise of level sigma
gaussian_score = gaussian_score_of(0.0, DATA_STD)


@pytest.fixture
def field() -> GaussianRandomField:
    return blob_field()


def noised_marginal(top: float, n: int = 40000) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return (DATA_STD**2 + top**2) ** 0.5 * torch.randn(n, generator=generator)


# -- the integrators on a Gaussian whose score is known -----------------------------------------
@pytest.mark.parametrize(("solver", "steps", "tolerance"), [("euler", 40, 0.03), ("heun", 12, 0.01)])
def test_the_ode_carries_the_noised_gaussian_to_the_clean_one(solver, steps, tolerance):
    # the exact flow maps N(0, s0^2 + 0.75^2) to N(0, s0^2 + 0.01^2); a wrong sign or a factor 2 on the
    # drift (the SDE's d(sigma^2) without its noise) ends at a spread far outside the tolerance
    out = probability_flow_ode(gaussian_score, noised_marginal(0.75), geometric_sigmas(0.75, 0.01, steps + 1),
                               solver=solver)
    assert float(out.std()) == pytest.approx((DATA_STD**2 + 0.01**2) ** 0.5, rel=tolerance)
    halved = edm_sampler(lambda x, s: 2 * gaussian_score(x, s), noised_marginal(0.75),
                         geometric_sigmas(0.75, 0.01, steps + 1), solver=solver)
    assert abs(float(halved.std()) - DATA_STD) > 5 * tolerance * DATA_STD


def test_heun_is_second_order_and_euler_first():
    # for a Gaussian the flow is linear: x(0.01) = x(0.75) sqrt((s0^2 + 0.01^2) / (s0^2 + 0.75^2))
    exact = ((DATA_STD**2 + 0.01**2) / (DATA_STD**2 + 0.75**2)) ** 0.5
    error = {(solver, steps): abs(float(probability_flow_ode(gaussian_score, torch.ones(1, dtype=torch.float64),
                                                             geometric_sigmas(0.75, 0.01, steps + 1, dtype=torch.float64),
                                                             solver=solver)) - exact)
             for solver in ("euler", "heun") for steps in (8, 16)}
    assert error["euler", 8] / error["euler", 16] == pytest.approx(2.0, rel=0.25)
    assert error["heun", 8] / error["heun", 16] > 3.0


def test_without_churn_the_edm_sampler_is_heun_exactly():
    sigmas = rho_spaced_sigmas(0.75, 0.01, 6)
    start = noised_marginal(0.75, 100)
    x = start.clone()
    for now, following in zip(sigmas.double().tolist(), sigmas.double().tolist()[1:]):  # Heun written out
        slope = -now * gaussian_score(x, torch.tensor(now))
        predicted = x + (following - now) * slope
        x = x + (following - now) * 0.5 * (slope - following * gaussian_score(predicted, torch.tensor(following)))
    out = edm_sampler(gaussian_score, start, sigmas, solver="heun", churn=0.0, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(out, x)
    churned = edm_sampler(gaussian_score, start, sigmas, churn=1.0, generator=torch.Generator().manual_seed(1))
    assert not torch.equal(churned, out)  # churn adds noise


def test_churn_keeps_the_gaussian_within_the_step_error_and_respects_its_window():
    out = edm_sampler(gaussian_score, noised_marginal(0.75), geometric_sigmas(0.75, 0.01, 21), churn=2.0,
                      generator=torch.Generator().manual_seed(2))
    assert float(out.std()) == pytest.approx(DATA_STD, rel=0.03)
    sigmas, seen = geometric_sigmas(0.75, 0.01, 5), []
    edm_sampler(gaussian_score, noised_marginal(0.75, 10), sigmas, solver="euler", churn=1.0, churn_max=0.2,
                generator=torch.Generator().manual_seed(0), callback=lambda info: seen.append(float(info["sigma"])))
    gamma = min(1.0 / 4, math.sqrt(2) - 1)
    expected = [s * (1 + gamma) if s <= 0.2 else s for s in sigmas.tolist()[:-1]]
    assert seen == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize(("solver", "steps", "denoise"), [("euler", 9, True), ("heun", 4, True), ("heun", 3, False)])
def test_the_integrators_spend_the_evaluations_they_claim_and_report_each(solver, steps, denoise):
    calls, reported = [], []
    score = lambda x, s: calls.append(1) or gaussian_score(x, s)  # noqa: E731
    edm_sampler(score, torch.zeros(4), geometric_sigmas(0.75, 0.01, steps + 1), solver=solver, denoise=denoise,
                churn=0.5, generator=torch.Generator().manual_seed(0), callback=reported.append)
    assert len(calls) == len(reported) == edm_evaluations(steps + 1, solver=solver, denoise=denoise)
    assert {"i", "sigma", "x", "step_size", "denoised"} <= set(reported[0])


def test_schedules_run_from_the_top_to_the_bottom_level_and_bad_levels_are_refused():
    for spacing in ("geometric", "edm"):
        levels = few_step_schedule(0.75, 0.01, 5, spacing=spacing)
        assert len(levels) == 6 and float(levels[0]) == pytest.approx(0.75) and float(levels[-1]) == pytest.approx(0.01)
    # rho = 7 crowds the levels towards the bottom less than the geometric spacing (rho -> infinity) does
    assert float(few_step_schedule(0.75, 0.01, 5, spacing="edm")[1]) > float(few_step_schedule(0.75, 0.01, 5)[1])
    with pytest.raises(ValueError, match="decrease"):
        edm_sampler(gaussian_score, torch.zeros(3), torch.tensor([0.1, 0.5]))
    with pytest.raises(ValueError, match="spacing"):
        few_step_schedule(0.75, 0.01, 5, spacing="linear")


# -- the configurations ------------------------------------------------------------------------------
@pytest.mark.parametrize(("changes", "field_name"), [
    ({"method": "ode", "steps": 4, "solver": "rk4"}, "solver"),
    ({"method": "ode", "steps": 0}, "steps"),
    ({"method": "ode"}, "steps"),
    ({"method": "reverse-sde", "steps": 4}, "steps"),
    ({"method": "ode", "steps": 4, "spacing": "linear"}, "spacing"),
    ({"method": "ode", "steps": 4, "rho": 0.0}, "rho"),
    ({"method": "ode", "steps": 4, "churn": 1.0}, "churn"),
    ({"method": "edm", "steps": 4, "churn": -1.0}, "churn"),
    ({"method": "edm", "steps": 4, "churn_min": 1.0, "churn_max": 0.5}, "churn_min"),
    ({"method": "edm", "steps": 4, "churn_noise": 0.0}, "churn_noise"),
])
def test_bad_few_step_options_are_refused_with_the_field_named(changes, field_name):
    with pytest.raises(ValueError, match=field_name):
        SamplerConfiguration(**changes)


@pytest.mark.parametrize("solver", ["euler", "heun"])
def test_the_generator_counts_what_a_few_step_configuration_claims(field, solver):
    configuration = SamplerConfiguration(method="edm", solver=solver, steps=4, churn=1.0, denoise=True, start_noise=1.0)
    counter = CountingScore()
    generator = HybridGenerator(field, counter, sampler=configuration, padding=4)
    assert len(generator.sigmas) == 5 and float(generator.sigmas[0]) == pytest.approx(0.75)
    generator.sample(3, seed=0, batch_size=2, progress=False)
    assert counter.evaluations == generator.evaluations == 3 * generator.evaluations_per_sample
    assert generator.evaluations_per_sample == (9 if solver == "heun" else 5)


def test_the_volume_fraction_posterior_reaches_the_few_step_integrators(field):
    configuration = SamplerConfiguration(method="ode", solver="euler", steps=6, denoise=True, start_noise=1.0,
                                         likelihood_on="denoised")
    generator = HybridGenerator(field, lambda x, s: torch.zeros_like(x), sampler=configuration, padding=0,
                                volume_fraction_shift=0.2)
    start = torch.full((2, 1, 32, 32), 0.2)  # a uniform field: only the likelihood's pull can move it
    moved = generator.refine(start, generator=torch.Generator().manual_seed(0))
    assert bool((moved.mean((1, 2, 3)) > 0.25).all())  # pulled up towards the shifted target (0.35 + 0.2)
    unconditioned = HybridGenerator(field, lambda x, s: torch.zeros_like(x), sampler=configuration, padding=0,
                                    condition_volume_fraction=False).refine(start, generator=torch.Generator().manual_seed(0))
    assert float((unconditioned - start).abs().max()) > 0  # only the start noise
    assert float(unconditioned.mean()) == pytest.approx(0.2, abs=0.05)


# -- the named few-step samplers -----------------------------------------------------------------------
def test_there_are_named_few_step_samplers_of_at_most_ten_evaluations_in_the_help():
    assert FEW_STEP_SAMPLERS
    for name in FEW_STEP_SAMPLERS:
        assert evaluations_at(name) <= 10
        assert f"{name} {evaluations_at(name)}" in sampler_help()
        assert f"{evaluations_at(name)} evaluations" in SAMPLERS[name].description


@pytest.mark.parametrize("name", FEW_STEP_SAMPLERS)
def test_a_named_few_step_sampler_through_the_hybrid_generator_with_a_tiny_model(field, name):
    torch.manual_seed(0)
    model = ScoreUNet(UNetSettings(channels=1, latent_channels=4, depth=1, num_blocks=0))
    generator = HybridGenerator(field, model, sampler=name, padding=4)
    samples = generator.sample(2, seed=0, progress=False, return_grf=True)
    assert samples.microstructures.shape == (2, 2, 32, 32)
    assert generator.evaluations == 2 * generator.evaluations_per_sample <= 2 * 10
    assert torch.isfinite(samples.refined).all()
    again = HybridGenerator(field, model, sampler=name, padding=4).sample(2, seed=0, progress=False)
    assert torch.equal(again.microstructures, samples.microstructures)  # seeded: reproducible
