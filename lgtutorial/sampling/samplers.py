"""Named sampler configurations of the hybrid generator: the paper's, and faster ones.

The paper refines a GRF sample by annealed Langevin dynamics over the levels of the 1000-level training
schedule below ``sigma_c = 0.75``: 568 network evaluations per 2-phase sample (Section 3.3 of Robertson et
al. 2023); :data:`SAMPLERS` calls it ``"faithful"``. ``"fast"`` (49 evaluations): the reverse-SDE predictor
(:func:`lgtutorial.sampling.integrators.reverse_diffusion`) from ``sigma_c`` down to 0.1, two Langevin
correctors per level, a Tweedie step, Eq. (12)'s volume fraction measured on the denoised estimate, the GRF
start segmented, channels-last (``"fast-compiled"``: also ``torch.compile``). ``HybridGenerator(...,
sampler=...)``, ``lgtutorial generate/fit --sampler`` and a sweep's ``sampler.name`` select one (or any
:class:`SamplerConfiguration`). How each was chosen: ``benchmarks/results/sampler_notes.md``, chapter 5.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch

from lgtutorial.sampling import ode
from lgtutorial.sampling.conditioning import MEASURES
from lgtutorial.sampling.integrators import (
    ScoreFunction,
    annealed_langevin,
    reverse_diffusion,
    reverse_diffusion_evaluations,
)
from lgtutorial.score.schedules import N_LEVELS, SIGMA_C, SIGMA_MAX, SIGMA_MIN, STEP_LR

__all__ = ["model_volume_fraction_shift", "resolve_refinement", "SamplerConfiguration", "SAMPLERS", "DEFAULT_SAMPLER", "resolve_sampler", "prepare_model",
           "sampler_from_noise", "evaluations_at", "sampler_help"]

METHODS = ("langevin", "reverse-sde", *ode.FEW_STEP_METHODS)

#: The sampler used wherever none is named: the generator, ``HybridSettings`` (and so ``lgtutorial
#: generate``, ``demo`` and ``fit``), and a sweep design's ``sampler.name``. The paper's own is
#: ``"faithful"``; name it to reproduce the paper's runs.
DEFAULT_SAMPLER = "fast"


@dataclass(frozen=True)
class SamplerConfiguration:
    """How the hybrid generator integrates from ``sigma_c`` down to the model's smallest level.

    Attributes:
        method: ``"langevin"`` (annealed Langevin, Eq. (5) of Robertson et al. 2023, one step per
            level), ``"reverse-sde"`` (:func:`lgtutorial.sampling.integrators.reverse_diffusion`), ``"ode"``
            (the probability-flow ODE) or ``"edm"`` (the same with churn), both
            :func:`lgtutorial.sampling.ode.edm_sampler`.
        levels: levels of the geometric schedule over the model's whole range ``[sigma_L, sigma_1]``;
            those from ``sigma_c`` down are run. ``None``: the model's own (1000 in the paper).
        sigma_end: last level run (the one of the schedule closest to it); ``None``: the model's
            smallest, ``sigma_L``. A larger one skips the last levels (then ``denoise`` matters).
        step_lr: base Langevin step ``eps_i = step_lr (sigma_i / sigma_L)^2`` (``"langevin"`` only).
        corrector_steps: Langevin corrector steps after each predictor step (``"reverse-sde"``).
        corrector_ratio: corrector step size over ``sigma^2``.
        initial_correctors: Langevin steps at the first level run, before the first predictor step
            (``"reverse-sde"``).
        denoise: end with a Tweedie step ``x + sigma_L^2 score(x, sigma_L)`` (``"reverse-sde"``).
        start_noise: add ``start_noise * sigma_c * z`` to the starting iterate (1: SDEdit's full
            noise of the first level; 0: the bare GRF sample, as the paper's Langevin run starts).
        likelihood_scale: factor on the volume-fraction likelihood term of Eq. (12) (the widths
            ``sigma_mu`` are divided by its square root).
        likelihood_on: where Eq. (12)'s volume fraction is measured: ``"iterate"`` (the paper) or
            ``"denoised"`` (the Tweedie estimate; see
            :func:`lgtutorial.sampling.conditioning.volume_fraction_posterior`).
        segment_start: segment the GRF start (volume-fraction preserving) before refining it, for
            every number of phases; ``None``: the paper's rule, for 2 phases only (the 3-phase hybrid
            of the paper refines the continuous field, its footnote 24). With the continuous start
            of a 3-phase field the volume-fraction pull of the coarse samplers was measured to tip
            samples into one phase; see :data:`SAMPLERS`.
        channels_last: run the network on channels-last tensors (a copy of the model).
        compile: ``torch.compile`` the network (a copy; tens of seconds once per shape on a CPU).
        solver, steps, spacing, rho, churn, churn_min, churn_max, churn_noise: ``"ode"``/``"edm"`` only (``levels``
            unused; churn ``"edm"`` only): :func:`lgtutorial.sampling.ode.edm_sampler`, ``ode.few_step_levels``.
        description: one line for tables and ``--help``.
    """

    method: str = "langevin"
    levels: int | None = None
    sigma_end: float | None = None
    step_lr: float = STEP_LR
    corrector_steps: int = 0
    corrector_ratio: float = 0.2
    initial_correctors: int = 0
    denoise: bool = False
    start_noise: float = 0.0
    likelihood_scale: float = 1.0
    likelihood_on: str = "iterate"
    segment_start: bool | None = None
    channels_last: bool = False
    compile: bool = False
    solver: str = "heun"
    steps: int | None = None
    spacing: str = "geometric"
    rho: float = 7.0
    churn: float = 0.0
    churn_min: float = 0.0
    churn_max: float = float("inf")
    churn_noise: float = 1.0
    description: str = ""

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        if self.likelihood_on not in MEASURES:
            raise ValueError(f"likelihood_on must be 'iterate' or 'denoised', got {self.likelihood_on!r}")
        if self.levels is not None and (not isinstance(self.levels, int) or self.levels < 2):
            raise ValueError(f"levels must be None or an integer >= 2, got {self.levels!r}")
        if not self.start_noise >= 0:
            raise ValueError(f"start_noise must be a non-negative number, got {self.start_noise!r}")
        if not self.step_lr > 0 or not self.corrector_ratio > 0 or not self.likelihood_scale > 0:
            raise ValueError(
                "step_lr, corrector_ratio and likelihood_scale must be positive, got "
                f"{self.step_lr!r}, {self.corrector_ratio!r}, {self.likelihood_scale!r}"
            )
        if not isinstance(self.corrector_steps, int) or self.corrector_steps < 0:
            raise ValueError(f"corrector_steps must be a non-negative integer, got {self.corrector_steps!r}")
        if not isinstance(self.initial_correctors, int) or self.initial_correctors < 0:
            raise ValueError(f"initial_correctors must be a non-negative integer, got {self.initial_correctors!r}")
        if self.initial_correctors and self.method != "reverse-sde":
            raise ValueError("initial_correctors applies to method 'reverse-sde' only")
        ode.check_few_step_options(self)

    def segments_start(self, n_phases: int) -> bool:
        """Whether a GRF start of ``n_phases`` phases is segmented before refinement (``segment_start``,
        else the paper's rule: 2 phases only).

        >>> SAMPLERS["faithful"].segments_start(3), SAMPLERS["fast"].segments_start(3)
        (False, True)
        """
        return n_phases == 2 if self.segment_start is None else bool(self.segment_start)

    def evaluations(self, n_levels: int) -> int:
        """Score evaluations per sample over ``n_levels`` levels run."""
        if self.method == "langevin":
            return n_levels
        if self.method in ode.FEW_STEP_METHODS:
            return ode.edm_evaluations(n_levels, solver=self.solver, denoise=self.denoise)
        return reverse_diffusion_evaluations(
            n_levels, corrector_steps=self.corrector_steps, denoise=self.denoise,
            initial_correctors=self.initial_correctors,
        )

    def run(self, score_fn: ScoreFunction, x: torch.Tensor, sigmas: torch.Tensor, *,
            generator: torch.Generator | None = None, callback: Callable[[dict], None] | None = None,
            project: Callable[[torch.Tensor], torch.Tensor] | None = None, step_lr: float | None = None) -> torch.Tensor:
        """Integrate ``x`` over the levels ``sigmas`` (``step_lr`` overrides the configuration's)."""
        if self.start_noise:
            noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            x = x + self.start_noise * sigmas[0].to(x.device, x.dtype) * noise
            x = project(x) if project is not None else x
        if self.method == "langevin":
            return annealed_langevin(
                score_fn, x, sigmas, step_lr=step_lr or self.step_lr, generator=generator, callback=callback,
                project=project,
            )
        if self.method in ode.FEW_STEP_METHODS:
            return ode.edm_sampler(score_fn, x, sigmas, **ode.few_step_keywords(self), generator=generator,
                                   callback=callback, project=project)
        return reverse_diffusion(
            score_fn, x, sigmas, generator=generator, callback=callback, project=project,
            corrector_steps=self.corrector_steps, corrector_ratio=self.corrector_ratio, denoise=self.denoise,
            initial_correctors=self.initial_correctors,
        )


#: The named configurations. ``"faithful"``: the paper's sampler (568 evaluations per 2-phase sample
#: from sigma_c = 0.75). ``"fast"``: see the module docstring and the benchmark's table.
SAMPLERS = {
    "faithful": SamplerConfiguration(
        description="the paper's: annealed Langevin, one step on each level of the 1000-level schedule below sigma_c",
    ),
    "fast": SamplerConfiguration(
        method="reverse-sde",
        levels=61,
        sigma_end=0.1,
        corrector_steps=2,
        corrector_ratio=0.3,
        denoise=True,
        likelihood_scale=2.0,
        likelihood_on="denoised",
        segment_start=True,
        channels_last=True,
        description="predictor-corrector: reverse-SDE predictor on a 61-level geometric schedule from the level "
        "closest to sigma_c down to 0.1 (16 steps from 0.74 for 20 -> 0.01), 2 Langevin correctors of 0.3 sigma^2 "
        "each, a Tweedie denoising step from 0.1, the volume fraction measured on the denoised estimate with the "
        "likelihood x2, the GRF start segmented for every number of phases: 49 evaluations",
    ),
    "fast-v1": SamplerConfiguration(
        method="reverse-sde",
        levels=21,
        corrector_steps=3,
        corrector_ratio=0.5,
        denoise=True,
        likelihood_scale=2.0,
        channels_last=True,
        description="the first fast sampler (until 2026-12): 21-level schedule (11 steps from 0.65 down to 0.01), "
        "3 correctors of 0.5 sigma^2, Tweedie step, likelihood x2 on the noisy iterate: 45 evaluations; "
        "kept for comparison (its volume fraction ends ~0.005 low, its precipitate chord distributions "
        "are further from the reference's)",
    ),
    "fast-predictor-only": SamplerConfiguration(
        method="reverse-sde",
        levels=88,
        sigma_end=0.05,
        denoise=True,
        likelihood_scale=4.0,
        channels_last=True,
        description="reverse-SDE predictor only, 88-level schedule from sigma_c down to 0.05, Tweedie step, "
        "likelihood x4: 32 evaluations; keeps most of the GRF outline (see the module docstring)",
    ),
}
#: ``"fast-sharp"``: ``"fast"`` with corrector steps of ``0.5 sigma^2``. With the authors' 2-phase model
#: its chord length distributions are the closest to the reference's of all samplers measured, but
#: with this project's young 3-phase model the longer Langevin time made some samples collapse into
#: one phase; ``0.3 sigma^2`` (``"fast"``) did not, in 9 of 9 samples.
SAMPLERS["fast-sharp"] = replace(
    SAMPLERS["fast"], corrector_ratio=0.5,
    description="'fast' with Langevin correctors of 0.5 sigma^2: chord length distributions closer to the "
    "reference's, but it diverged with the young 3-phase model; 49 evaluations",
)
#: ``"fast-fine"``: ``"fast"`` run on down to sigma = 0.02 (88 evaluations) before its Tweedie step. For
#: features one or two pixels wide (grain boundaries) the structure is not settled at 0.1: the Tweedie
#: estimate from there leaves thin lines grey and the threshold breaks them into dots. Measured on the
#: li2018-alloy micrograph with its 30-minute fit model (4 samples, seed 0): with ``"fast"`` the samples'
#: boundary fractions were 0.075, 0.071, 0.158, 0.088 (reference 0.135) and the boundaries dotted; run to
#: 0.02 three of four landed within 0.003 of the reference, but only two of the four drew mostly
#: continuous lines (one drew them too thick, 0.209; one reached the fraction with a dust of dots).
SAMPLERS["fast-fine"] = replace(
    SAMPLERS["fast"], sigma_end=0.02,
    description="'fast' run on to sigma = 0.02 before the Tweedie step (29 steps from 0.74): for features one or two "
    "pixels wide, which the step from 0.1 leaves grey and breaks into dots more often; 88 evaluations",
)
#: ``"fast-compiled"``: ``torch.compile``: ~1.6x faster per evaluation on a CPU after tens of seconds of compiling.
SAMPLERS["fast-compiled"] = replace(
    SAMPLERS["fast"], compile=True, description=SAMPLERS["fast"].description + ", torch.compile"
)
#: ``"few-step"``, ``"few-step-ode"``: at most ten evaluations (issue #41); ``benchmarks/results/few_step_cpu.md``.
SAMPLERS["few-step"] = SamplerConfiguration(
    method="edm", solver="euler", steps=9, churn=4.0, sigma_end=0.1, start_noise=1.0, denoise=True,
    likelihood_on="denoised", segment_start=True, channels_last=True,
    description="EDM's stochastic sampler, Euler steps: the GRF start noised to sigma_c, 9 geometric steps to 0.1, each "
    "from its level raised by EDM's largest churn (x sqrt 2), a Tweedie step, the volume fraction on the denoised estimate: "
    "10 evaluations; loses: case-1 precipitate chord distributions 1.25-1.36x as far from the reference's as 'fast''s, "
    "case 2's volume fraction ~0.003 off (fast 0.002), lath coherence (section 3) 0.28 against fast's 0.30",
)
SAMPLERS["few-step-ode"] = replace(
    SAMPLERS["few-step"], method="ode", solver="heun", steps=4, churn=0.0, likelihood_scale=0.5,
    description="the probability-flow ODE, deterministic: the GRF start noised to sigma_c, 4 Heun steps to 0.1, a Tweedie "
    "step, the volume fraction on the denoised estimate (likelihood x0.5): 9 evaluations; keeps most of the GRF start: "
    "chord distributions 1.4-3x as far from the reference's as 'fast''s; keeps laths of a noised reference best (0.33)",
)

#: ``"oriented"``: for starts painted with laths by the oriented global layer (:mod:`lgtutorial.grf.oriented`),
#: whose correctors would erase them; ``benchmarks/results/case2_oriented_cpu.md``.
SAMPLERS["oriented"] = replace(
    SAMPLERS["fast-predictor-only"], levels=52, start_noise=1.0, likelihood_scale=6.0, segment_start=True,
    description="for lath starts of the oriented global layer: the start noised to sigma_c, the reverse-SDE predictor "
    "alone on a 52-level schedule down to 0.05, a Tweedie step, likelihood x6 (correctors would erase the laths)",
)


#: Samplers that cannot start from pure noise, and the one to use instead for unconditional (SBG)
#: runs: from sigma = 20 the corrector steps of ``"fast"`` diverged with this project's young models
#: (the case-1 model's samples collapsed to one phase), its predictor-only variant does not.
FROM_NOISE = {name: "fast-predictor-only" for name in ("fast", "fast-compiled", "fast-sharp", "fast-v1", "fast-fine",
                                                    "few-step", "few-step-ode", "oriented")}


def sampler_from_noise(sampler):
    """The sampler to use for a run from pure noise (``sigma_c=None``) in place of ``sampler``.

    >>> sampler_from_noise("fast"), sampler_from_noise("faithful")
    ('fast-predictor-only', 'faithful')
    """
    return FROM_NOISE.get(sampler, sampler) if isinstance(sampler, str) else sampler


def resolve_sampler(sampler) -> SamplerConfiguration:
    """A :class:`SamplerConfiguration` from a name in :data:`SAMPLERS` or a configuration itself."""
    if isinstance(sampler, SamplerConfiguration):
        return sampler
    if isinstance(sampler, str):
        if sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {sampler!r}; expected one of {', '.join(SAMPLERS)}")
        return SAMPLERS[sampler]
    raise TypeError(
        f"sampler must be a name ({', '.join(SAMPLERS)}) or a SamplerConfiguration, got {type(sampler).__name__}"
    )


def prepare_model(model: torch.nn.Module, configuration: SamplerConfiguration) -> ScoreFunction:
    """The model's score function as ``configuration`` runs it: channels-last and/or compiled copies.

    The model itself is left unchanged; without either option its own ``.score`` is returned.
    """
    if not (configuration.channels_last or configuration.compile):
        return model.score
    network = copy.deepcopy(model)
    if configuration.channels_last:
        network = network.to(memory_format=torch.channels_last)
    forward = torch.compile(network) if configuration.compile else network

    def score(x: torch.Tensor, sigma) -> torch.Tensor:
        if configuration.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        output = forward(x)
        sigma = torch.as_tensor(sigma, dtype=output.dtype, device=output.device)
        if sigma.ndim == 1:
            sigma = sigma.view(-1, 1, 1, 1)
        return (output / sigma).contiguous()

    return score


def with_options(configuration: SamplerConfiguration, **changes) -> SamplerConfiguration:
    """A copy of ``configuration`` with some fields changed (for sweeps and benchmarks)."""
    return replace(configuration, **changes)


__all__.append("with_options")


def sampler_schedule(configuration: SamplerConfiguration, sigma_max: float, sigma_min: float, n_levels: int,
                     sigma_c, *, device=None) -> torch.Tensor:
    """The levels a sampler runs: ``n_levels`` geometric levels over ``[sigma_min, sigma_max]`` from the
    one closest to ``sigma_c`` down, cut at the level closest to ``configuration.sigma_end`` (at least 2)."""
    from lgtutorial.score.schedules import truncated_schedule, truncation_index

    if configuration.method in ode.FEW_STEP_METHODS:  # its own levels, from sigma_c (or the top) to sigma_end (or the bottom)
        return ode.few_step_levels(configuration, sigma_max, sigma_min, sigma_c, device=device)
    sigmas = truncated_schedule(sigma_max, sigma_min, n_levels=n_levels, sigma_c=sigma_c, device=device)
    if configuration.sigma_end is not None:  # stop early, at the level closest to sigma_end
        end, first = configuration.sigma_end, float(sigmas[0])
        last = len(sigmas) - 1 if end <= float(sigmas[-1]) else (0 if end >= first else truncation_index(sigmas, end))
        sigmas = sigmas[: max(2, last + 1)]
    return sigmas


def evaluations_at(sampler, *, sigma_max: float = SIGMA_MAX, sigma_min: float = SIGMA_MIN,
                   model_levels: int = N_LEVELS, sigma_c: float = SIGMA_C) -> int:
    """Network evaluations one hybrid sample costs with ``sampler`` on a model schedule (default: the
    paper's case-study-1 schedule, 1000 levels 20 -> 0.01, refined from sigma_c = 0.75).

    >>> evaluations_at("faithful"), evaluations_at("fast")
    (568, 49)
    """
    configuration = resolve_sampler(sampler)
    sigmas = sampler_schedule(configuration, sigma_max, sigma_min, configuration.levels or model_levels, sigma_c)
    return configuration.evaluations(len(sigmas))


def sampler_help() -> str:
    """One line per named sampler with its cost, for ``--help`` (generated, never typed)."""
    costs = ", ".join(f"{name} {evaluations_at(name)}" for name in SAMPLERS)
    return (f"network evaluations per sample of the {SIGMA_MAX:g} -> {SIGMA_MIN:g} schedule from sigma_c = "
            f"{SIGMA_C:g}: {costs}")


def model_volume_fraction_shift(model, sampler) -> float:
    """The likelihood-target offset a model carries (its loader sets ``model.volume_fraction_shift``:
    0.0073 for the authors' case-study-1 model, :data:`lgtutorial.score.authors.VOLUME_FRACTION_SHIFTS`),
    as ``sampler`` applies it.

    The authors' offset compensates a bias of measuring the volume fraction on the noisy iterate
    (Eq. (12) as the paper writes it): while sigma is large, thresholding the iterate counts noise
    as phase, so the pull holds the clean structure below the target. Samplers that measure on the
    denoised (Tweedie) estimate (``likelihood_on="denoised"``) do not have that bias and get none.

    >>> class Authors: volume_fraction_shift = 0.0073
    >>> model_volume_fraction_shift(Authors(), "faithful"), model_volume_fraction_shift(Authors(), "fast")
    (0.0073, 0.0)
    >>> model_volume_fraction_shift(object(), "faithful")
    0.0
    """
    if resolve_sampler(sampler).likelihood_on != "iterate":
        return 0.0
    return float(getattr(model, "volume_fraction_shift", 0.0))


def resolve_refinement(options, score_model, n_phases: int, segment_grf: bool | None = None) -> dict:
    """What both generators read from :class:`~lgtutorial.sampling.settings.RefinementOptions`, resolved
    for ``score_model`` and ``n_phases`` phases: the sampler configuration (its from-noise variant when
    ``sigma_c`` is None) and name, the step size (unset: the sampler's), the conditioning, the
    volume-fraction shift (unset: what the model carries, :func:`model_volume_fraction_shift`) and
    whether the GRF start is segmented (unset: the sampler's rule).
    """
    named = sampler_from_noise(options.sampler) if options.sigma_c is None else options.sampler
    sampler = resolve_sampler(named)
    shift = options.volume_fraction_shift
    return {
        "sampler": sampler, "sampler_name": named if isinstance(named, str) else "custom",
        "step_lr": sampler.step_lr if options.step_lr is None else options.step_lr,
        "condition_volume_fraction": options.condition_volume_fraction,
        "volume_fraction_estimate": options.volume_fraction_estimate,
        "volume_fraction_shift": model_volume_fraction_shift(score_model, sampler) if shift is None else shift,
        "segment_grf": sampler.segments_start(n_phases) if segment_grf is None else bool(segment_grf),
    }
