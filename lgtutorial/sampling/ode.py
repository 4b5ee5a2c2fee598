"""Few-step integrators: the probability-flow ODE and EDM's stochastic sampler (Karras et al. 2022).

For the variance-exploding process of the score models here (noise of standard deviation ``sigma``
added to the data), the probability-flow ODE is ``dx/dsigma = -sigma score(x, sigma)`` (Song et al.
2021, Eq. (13), written in sigma). Its solutions carry the noised marginal at one level to the
noised marginal at another without fresh noise, so a handful of large steps can replace the
hundreds of small Langevin steps, at the price of keeping whatever the starting iterate holds.

:func:`edm_sampler` integrates it with Euler or Heun steps between the levels ``sigmas`` (Karras et
al. 2022, Algorithm 1), optionally "churning" each step as their Algorithm 2 does: before the step
from ``sigma_i`` the iterate is noised up to ``sigma_hat = (1 + gamma) sigma_i`` with
``gamma = min(S_churn / N, sqrt(2) - 1)`` for levels inside ``[S_tmin, S_tmax]``, fresh noise scaled
by ``S_noise``. With no churn it is the deterministic ODE solver (:func:`probability_flow_ode`).
``denoise`` ends with the Tweedie step ``x + sigma_L^2 score(x, sigma_L)``, which is exactly an Euler
step of the ODE from ``sigma_L`` to 0.

The signature is the package's (:mod:`lgtutorial.sampling.integrators`): ``project`` is applied after
every change of the iterate, ``callback`` is called after every score evaluation with the denoised
estimate of the point evaluated. Sigma values are turned into host floats once, before the loop, so
the steps queue on a GPU without waiting for it. Schedules: :func:`few_step_schedule`; measured
against the package's other samplers in ``benchmarks/results/few_step_cpu.md``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from lgtutorial.sampling.integrators import ScoreFunction
from lgtutorial.score.schedules import geometric_sigmas, rho_spaced_sigmas

__all__ = ["SOLVERS", "SPACINGS", "FEW_STEP_METHODS", "edm_sampler", "probability_flow_ode", "edm_evaluations",
           "few_step_schedule", "few_step_levels", "few_step_keywords", "check_few_step_options"]

#: ODE steps: first order (one evaluation a step) or Heun's second order (two).
SOLVERS = ("euler", "heun")
#: How a few-step schedule spaces its levels: evenly in log sigma, or in ``sigma^(1/rho)`` (EDM).
SPACINGS = ("geometric", "edm")
#: The sampler configurations' methods run by :func:`edm_sampler`: the ODE, and the same with churn.
FEW_STEP_METHODS = ("ode", "edm")


def edm_evaluations(n_levels: int, *, solver: str = "heun", denoise: bool = False) -> int:
    """Score evaluations of :func:`edm_sampler` over ``n_levels`` levels (per sample).

    >>> edm_evaluations(10, solver="euler", denoise=True), edm_evaluations(5, solver="heun", denoise=True)
    (10, 9)
    """
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}")
    return (n_levels - 1) * (2 if solver == "heun" else 1) + (1 if denoise else 0)


def few_step_schedule(sigma_top: float, sigma_bottom: float, steps: int, *, spacing: str = "geometric",
                      rho: float = 7.0, device=None) -> torch.Tensor:
    """``steps + 1`` levels from ``sigma_top`` down to ``sigma_bottom``, both included.

    >>> [round(s, 3) for s in few_step_schedule(0.8, 0.2, 2).tolist()]
    [0.8, 0.4, 0.2]
    """
    if spacing not in SPACINGS:
        raise ValueError(f"spacing must be one of {SPACINGS}, got {spacing!r}")
    if not sigma_top > sigma_bottom:
        raise ValueError(f"a few-step schedule runs downwards; got sigma {sigma_top:g} -> {sigma_bottom:g}")
    if spacing == "edm":
        return rho_spaced_sigmas(sigma_top, sigma_bottom, steps + 1, rho=rho, device=device)
    return geometric_sigmas(sigma_top, sigma_bottom, steps + 1, device=device)


def few_step_levels(options, sigma_max: float, sigma_min: float, sigma_c, *, device=None) -> torch.Tensor:
    """The levels a few-step configuration runs: ``options.steps + 1`` from ``sigma_c`` (None: the top of the
    model's range) down to ``options.sigma_end`` (None: the model's smallest level), both kept inside the range."""
    top = sigma_max if sigma_c is None else min(max(float(sigma_c), sigma_min), sigma_max)
    bottom = sigma_min if options.sigma_end is None else max(options.sigma_end, sigma_min)
    return few_step_schedule(top, bottom, options.steps, spacing=options.spacing, rho=options.rho, device=device)


def few_step_keywords(options) -> dict:
    """The keywords of :func:`edm_sampler` a sampler configuration sets."""
    names = ("solver", "churn", "churn_min", "churn_max", "churn_noise", "denoise")
    return {name: getattr(options, name) for name in names}


def check_few_step_options(options) -> None:
    """Check the few-step fields of a sampler configuration (``solver``, ``steps``, ``spacing``, ``rho``,
    ``churn``, ``churn_min``, ``churn_max``, ``churn_noise``); a ``ValueError`` names the field."""
    if (options.steps is None) == (options.method in FEW_STEP_METHODS):
        raise ValueError(f"steps must be set for the methods {FEW_STEP_METHODS} and only for them, got "
                         f"steps={options.steps!r} with method {options.method!r}")
    if options.churn and options.method != "edm":
        raise ValueError(f"churn applies to method 'edm' only, got churn={options.churn!r}")
    if options.solver not in SOLVERS:
        raise ValueError(f"solver must be one of {SOLVERS}, got {options.solver!r}")
    if options.spacing not in SPACINGS:
        raise ValueError(f"spacing must be one of {SPACINGS}, got {options.spacing!r}")
    if options.steps is not None and (not isinstance(options.steps, int) or isinstance(options.steps, bool)
                                      or options.steps < 1):
        raise ValueError(f"steps must be None or a positive integer, got {options.steps!r}")
    for name in ("rho", "churn_noise"):
        if not getattr(options, name) > 0:
            raise ValueError(f"{name} must be positive, got {getattr(options, name)!r}")
    if not options.churn >= 0 or not 0 <= options.churn_min <= options.churn_max:
        raise ValueError("churn must be non-negative and 0 <= churn_min <= churn_max, got "
                         f"churn={options.churn!r}, churn_min={options.churn_min!r}, churn_max={options.churn_max!r}")


def _churn_levels(sigmas: list[float], churn: float, churn_min: float, churn_max: float) -> list[float]:
    """``sigma_hat`` of each step of Algorithm 2 (Karras et al. 2022): the level the iterate is noised up to."""
    steps = len(sigmas) - 1
    gamma = min(churn / steps, math.sqrt(2.0) - 1.0) if churn > 0 else 0.0
    return [s * (1.0 + gamma) if churn_min <= s <= churn_max else s for s in sigmas[:-1]]


@torch.no_grad()
def edm_sampler(
    score_fn: ScoreFunction,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    *,
    solver: str = "heun",
    churn: float = 0.0,
    churn_min: float = 0.0,
    churn_max: float = math.inf,
    churn_noise: float = 1.0,
    denoise: bool = False,
    generator: torch.Generator | None = None,
    callback: Callable[[dict], None] | None = None,
    project: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """The probability-flow ODE ``dx/dsigma = -sigma score`` over the levels ``sigmas``, with EDM's churn.

    Karras et al. 2022, Algorithms 1 and 2, in terms of the score (their denoiser is
    ``D(x, sigma) = x + sigma^2 score(x, sigma)``). Each step from ``sigma_i`` to ``sigma_{i+1}``:
    noise ``x`` up to ``sigma_hat`` (``x + S_noise sqrt(sigma_hat^2 - sigma_i^2) z``; no churn:
    ``sigma_hat = sigma_i``), an Euler step ``x' = x + sigma_hat (sigma_hat - sigma_{i+1}) score(x, sigma_hat)``
    and, for ``solver="heun"``, the trapezoidal correction with the slope at ``(x', sigma_{i+1})``.

    Args:
        score_fn: ``score_fn(x, sigma)`` with ``sigma`` a 0-d tensor.
        x: initial iterate at ``sigmas[0]`` (noise, or a start noised to that level), any shape.
        sigmas: ``(L,)`` strictly decreasing positive levels, ``L >= 2``.
        solver: ``"euler"`` (one evaluation a step) or ``"heun"`` (two).
        churn, churn_min, churn_max, churn_noise: ``S_churn``, ``S_tmin``, ``S_tmax``, ``S_noise``
            of Algorithm 2; ``churn=0`` (default) is the deterministic ODE.
        denoise: end with the Tweedie step at ``sigmas[-1]`` (one more evaluation).
        generator: ``torch.Generator`` on ``x``'s device for the churn noise.
        callback: called after every score evaluation with ``{"i", "sigma", "x", "step_size",
            "denoised"}`` (``sigma`` the level evaluated, ``step_size`` the factor on that score in
            the update, ``denoised`` the Tweedie estimate of the point evaluated).
        project: applied to the iterate after every change (e.g. re-copying a periodic embedding).

    Returns:
        The final iterate (same shape as ``x``); :func:`edm_evaluations` gives the cost.
    """
    if sigmas.ndim != 1 or len(sigmas) < 2:
        raise ValueError(f"sigmas must be a 1-D tensor of at least 2 levels, got shape {tuple(sigmas.shape)}")
    levels = sigmas.double().tolist()  # host floats once, no per-step syncs
    if any(b >= a for a, b in zip(levels, levels[1:])) or levels[-1] <= 0:
        raise ValueError("sigmas must be positive and decrease strictly")
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}")
    hats = _churn_levels(levels, churn, churn_min, churn_max)
    on_device = torch.tensor(levels + hats, device=x.device, dtype=x.dtype)  # what score_fn is given
    tail = len(levels)
    keep = project if project is not None else (lambda y: y)

    def evaluate(y: torch.Tensor, index: int, level: float, i: int, factor: float) -> torch.Tensor:
        score = score_fn(y, on_device[index])
        if callback is not None:
            callback({"i": i, "sigma": on_device[index], "x": y, "step_size": factor,
                      "denoised": y + level**2 * score})
        return score

    x = x.clone()
    for i in range(len(levels) - 1):
        hat, following = hats[i], levels[i + 1]
        if hat > levels[i]:
            noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            x = keep(x + churn_noise * math.sqrt(hat**2 - levels[i] ** 2) * noise)
        drop = hat - following
        if solver == "euler":
            x = keep(x + drop * hat * evaluate(x, tail + i, hat, i, drop * hat))
            continue
        slope = evaluate(x, tail + i, hat, i, 0.5 * drop * hat)
        predicted = keep(x + drop * hat * slope)
        corrected = evaluate(predicted, i + 1, following, i, 0.5 * drop * following)
        x = keep(x + (0.5 * drop) * (hat * slope + following * corrected))
    if denoise:
        last = levels[-1]
        x = keep(x + last**2 * evaluate(x, tail - 1, last, len(levels) - 1, last**2))
    return x


def probability_flow_ode(score_fn: ScoreFunction, x: torch.Tensor, sigmas: torch.Tensor, *, solver: str = "heun",
                         denoise: bool = False, callback: Callable[[dict], None] | None = None,
                         project: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """The deterministic probability-flow ODE: :func:`edm_sampler` without churn (no generator needed)."""
    return edm_sampler(score_fn, x, sigmas, solver=solver, denoise=denoise, callback=callback, project=project)
