"""Integrators for score models, and the tools the hybrid sampler wraps around them.

Integrators share one signature (as in k-diffusion): ``sampler(score_fn, x, sigmas, *, generator=None,
callback=None, ...)`` with ``score_fn(x, sigma) -> score`` of the same shape as ``x``. They run under
``torch.no_grad()`` and do not modify ``x`` in place: :func:`annealed_langevin` (the paper's) and
:func:`reverse_diffusion` (the reverse variance-exploding SDE with optional Langevin correctors).

Also here: the truncated schedule that starts refinement at ``sigma_c`` (:func:`truncated_schedule`;
Section 3.2 of Robertson et al. 2023, after Meng et al.'s SDEdit), the periodic embedding that keeps
a periodic GRF sample periodic while a network trained on non-periodic patches refines it
(:func:`periodic_embed` and its helpers; Section 3.3), and the alternative of circular convolutions
(:func:`with_circular_padding`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch

from lgtutorial.score.schedules import (
    STEP_LR,
    langevin_step_sizes,
)

ScoreFunction = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@torch.no_grad()
def annealed_langevin(
    score_fn: ScoreFunction,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    *,
    step_lr: float = STEP_LR,
    steps_per_level: int = 1,
    generator: torch.Generator | None = None,
    callback: Callable[[dict], None] | None = None,
    step_sizes: torch.Tensor | None = None,
    project: Callable[[torch.Tensor], torch.Tensor] | None = None,
    noise_scale: float = 1.0,
) -> torch.Tensor:
    """Annealed Langevin dynamics over the levels ``sigmas`` (Eq. (5), Robertson et al. 2023).

    At every level ``i`` and for ``steps_per_level`` steps:
    ``x <- x + eps_i * score_fn(x, sigma_i) + sqrt(2 eps_i) z`` with
    ``eps_i = step_lr * (sigma_i / sigma_L)^2`` (``sigma_L`` the last level of the full schedule;
    pass ``step_sizes`` to override, e.g. when ``sigmas`` is a truncated schedule).

    Args:
        score_fn: ``score_fn(x, sigma)`` with ``sigma`` a 0-d tensor.
        x: initial iterate (noise at ``sigmas[0]`` or a GRF sample), any shape.
        sigmas: ``(L,)`` decreasing noise levels.
        step_lr: base step size.
        steps_per_level: Langevin steps at each level.
        generator: ``torch.Generator`` on ``x``'s device for reproducible noise.
        callback: called after every step with ``{"i", "sigma", "x", "step_size", "denoised"}``
            (as k-diffusion's samplers: ``denoised`` is the Tweedie estimate ``x + sigma^2 score`` of
            the iterate the score was evaluated at).
        step_sizes: ``(L,)`` step sizes; default from ``step_lr`` and ``sigmas[-1]``.
        project: applied to ``x`` after every step (e.g. re-copying a periodic embedding).
        noise_scale: factor on the injected noise; 1 is Langevin dynamics, 0 plain score ascent
            (deterministic; used by tests and for inspecting the drift alone).

    Returns:
        The final iterate (same shape as ``x``); no clamping or segmentation.
    """
    if sigmas.ndim != 1 or len(sigmas) == 0:
        raise ValueError(f"sigmas must be a non-empty 1-D tensor, got shape {tuple(sigmas.shape)}")
    if step_sizes is None:
        step_sizes = langevin_step_sizes(sigmas, step_lr)
    if len(step_sizes) != len(sigmas):
        raise ValueError("step_sizes and sigmas must have the same length")
    x = x.clone()
    sigmas = sigmas.to(x.device, x.dtype)
    noise_scales = noise_scale * (2.0 * step_sizes.to(x.device, x.dtype)).sqrt()
    step_sizes = step_sizes.to(x.device, x.dtype)
    for i in range(len(sigmas)):
        for _ in range(steps_per_level):
            score = score_fn(x, sigmas[i])
            denoised = x + sigmas[i] ** 2 * score if callback is not None else None
            noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            x = x + step_sizes[i] * score + noise_scales[i] * noise
            if project is not None:
                x = project(x)
            if callback is not None:
                callback({"i": i, "sigma": sigmas[i], "x": x, "step_size": step_sizes[i], "denoised": denoised})
    return x


def reverse_diffusion_evaluations(
    n_levels: int, *, corrector_steps: int = 0, denoise: bool = True, initial_correctors: int = 0
) -> int:
    """Score evaluations of :func:`reverse_diffusion` over ``n_levels`` levels (per sample).

    >>> reverse_diffusion_evaluations(50)
    50
    >>> reverse_diffusion_evaluations(26, corrector_steps=1)
    51
    >>> reverse_diffusion_evaluations(12, corrector_steps=1, initial_correctors=20)
    43
    """
    return initial_correctors + (n_levels - 1) * (1 + corrector_steps) + (1 if denoise else 0)


@torch.no_grad()
def reverse_diffusion(
    score_fn: ScoreFunction,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    *,
    generator: torch.Generator | None = None,
    callback: Callable[[dict], None] | None = None,
    project: Callable[[torch.Tensor], torch.Tensor] | None = None,
    corrector_steps: int = 0,
    corrector_ratio: float = 0.2,
    denoise: bool = True,
    noise_scale: float = 1.0,
    initial_correctors: int = 0,
) -> torch.Tensor:
    """Euler-Maruyama on the reverse variance-exploding SDE, with optional Langevin corrector steps.

    The forward VE process adds noise of variance ``sigma^2`` (Song et al. 2021, Eq. (9)); its reverse
    runs ``dx = -d(sigma^2) score(x, sigma) + sqrt(d(sigma^2)) dw`` backwards in sigma. Between two
    levels ``sigma_i > sigma_{i+1}`` the predictor step is
    ``x <- x + (sigma_i^2 - sigma_{i+1}^2) score(x, sigma_i) + sqrt(sigma_i^2 - sigma_{i+1}^2) z``
    (the "reverse diffusion" predictor of Song et al. 2021). Each predictor may be followed by
    ``corrector_steps`` Langevin steps at ``sigma_{i+1}`` with ``eps = corrector_ratio sigma_{i+1}^2``
    (Eq. (5) of Robertson et al. 2023 with that step; the faithful sampler's ratio is
    ``step_lr / sigma_L^2 = 0.2``). With ``denoise`` a last, noise-free step at ``sigma_L`` moves the
    iterate to the posterior mean ``x + sigma_L^2 score(x, sigma_L)`` (Tweedie's formula).
    ``initial_correctors`` Langevin steps at ``sigmas[0]`` (same ratio) come before the first
    predictor: where the run starts from a sample that is not noise (the hybrid's GRF), they give the
    network time at the top level, where the paper's annealed Langevin run spends most of its steps.

    Unlike annealed Langevin, each level is visited once and the step sizes follow from the
    levels alone, so a coarse geometric schedule of a few dozen levels covers the same range of
    sigma as the paper's hundreds of Langevin steps: :func:`reverse_diffusion_evaluations` gives
    the count, ``(L - 1)(1 + corrector_steps) + denoise``.

    Args:
        score_fn: ``score_fn(x, sigma)`` with ``sigma`` a 0-d tensor.
        x: initial iterate (noise at ``sigmas[0]`` or a GRF sample), any shape.
        sigmas: ``(L,)`` decreasing noise levels, ``L >= 2``.
        generator: ``torch.Generator`` on ``x``'s device for reproducible noise.
        callback: called after every score evaluation with ``{"i", "sigma", "x", "step_size",
            "denoised"}`` (``x`` is the live iterate: clone what you keep; ``denoised`` the Tweedie
            estimate ``x + sigma^2 score`` of the iterate the score was evaluated at).
        project: applied to ``x`` after every step (e.g. re-copying a periodic embedding).
        corrector_steps: Langevin corrector steps after each predictor step.
        corrector_ratio: corrector step size over ``sigma^2``.
        denoise: end with the Tweedie step at ``sigmas[-1]`` (one more evaluation).
        noise_scale: factor on the injected noise (0: deterministic; used by tests).
        initial_correctors: Langevin steps at ``sigmas[0]`` before the first predictor step.

    Returns:
        The final iterate (same shape as ``x``); no clamping or segmentation.
    """
    if sigmas.ndim != 1 or len(sigmas) < 2:
        raise ValueError(f"sigmas must be a 1-D tensor of at least 2 levels, got shape {tuple(sigmas.shape)}")
    if bool((sigmas[1:] >= sigmas[:-1]).any()):
        raise ValueError("sigmas must decrease strictly")
    if not isinstance(corrector_steps, int) or corrector_steps < 0:
        raise ValueError(f"corrector_steps must be a non-negative integer, got {corrector_steps!r}")
    if not isinstance(initial_correctors, int) or initial_correctors < 0:
        raise ValueError(f"initial_correctors must be a non-negative integer, got {initial_correctors!r}")
    if not corrector_ratio > 0:
        raise ValueError(f"corrector_ratio must be positive, got {corrector_ratio!r}")
    x = x.clone()
    sigmas = sigmas.to(x.device, x.dtype)
    variances = sigmas.double() ** 2
    drops = (variances[:-1] - variances[1:]).tolist()  # host floats once, no per-step syncs
    corrector_sizes = (corrector_ratio * variances).tolist()
    noise = torch.empty_like(x)

    def tweedie(i: int, score: torch.Tensor) -> torch.Tensor | None:
        return x + float(variances[i]) * score if callback is not None else None

    def report(i: int, step_size: float, denoised: torch.Tensor | None) -> None:
        if callback is not None:
            callback({"i": i, "sigma": sigmas[i], "x": x, "step_size": step_size, "denoised": denoised})

    def correct(i: int) -> None:
        nonlocal x
        score = score_fn(x, sigmas[i])
        denoised = tweedie(i, score)
        noise.normal_(generator=generator)
        step = corrector_sizes[i]
        x.add_(score, alpha=step).add_(noise, alpha=noise_scale * (2.0 * step) ** 0.5)
        if project is not None:
            x = project(x)
        report(i, step, denoised)

    for _ in range(initial_correctors):
        correct(0)
    for i in range(len(sigmas) - 1):
        score = score_fn(x, sigmas[i])
        denoised = tweedie(i, score)
        noise.normal_(generator=generator)
        x.add_(score, alpha=drops[i]).add_(noise, alpha=noise_scale * drops[i] ** 0.5)
        if project is not None:
            x = project(x)
        report(i, drops[i], denoised)
        for _ in range(corrector_steps):
            correct(i + 1)
    if denoise:
        last = float(variances[-1])
        x.add_(score_fn(x, sigmas[-1]), alpha=last)
        if project is not None:
            x = project(x)
        report(len(sigmas) - 1, last, x)  # the Tweedie step's result is its own denoised estimate
    return x


def _check_width(x: torch.Tensor, width: int) -> None:
    if x.ndim != 4:
        raise ValueError(f"expected a tensor of shape (n_samples, channels, H, W), got {tuple(x.shape)}")
    if not isinstance(width, int) or width < 0:
        raise ValueError(f"the embedding width must be a non-negative integer, got {width!r}")


def periodic_embed(x: torch.Tensor, width: int) -> torch.Tensor:
    """Surround a periodic ``(n, C, H, W)`` domain by ``width`` pixels of periodic copies of itself.

    Returns ``(n, C, H + 2 width, W + 2 width)``: the interior is ``x``; the frame holds what lies
    across each edge of the periodic domain (Section 3.3, Robertson et al. 2023). ``width`` may not
    exceed ``H`` or ``W``.

    >>> periodic_embed(torch.arange(3.0).view(1, 1, 1, 3), 1)[0, 0, 1].tolist()
    [2.0, 0.0, 1.0, 2.0, 0.0]
    """
    _check_width(x, width)
    if width == 0:
        return x
    if width > min(x.shape[-2:]):
        raise ValueError(f"the embedding width {width} exceeds the domain {tuple(x.shape[-2:])}")
    return torch.nn.functional.pad(x, (width, width, width, width), mode="circular")


def crop_embedding(x: torch.Tensor, width: int) -> torch.Tensor:
    """The interior ``(n, C, H, W)`` of an embedded ``(n, C, H + 2 width, W + 2 width)`` tensor."""
    _check_width(x, width)
    if width == 0:
        return x
    return x[..., width:-width, width:-width]


def refresh_embedding(x: torch.Tensor, width: int) -> torch.Tensor:
    """Overwrite the frame of an embedded tensor with fresh periodic copies of its interior.

    Called after every Langevin step so that the frame always continues the interior across the
    periodic boundary; the interior itself is returned unchanged.
    """
    return periodic_embed(crop_embedding(x, width), width)


def interior_mask(shape: tuple[int, int], width: int, *, device=None) -> torch.Tensor:
    """Boolean ``(H + 2 width, W + 2 width)`` mask, true on the ``(H, W)`` interior of an embedding."""
    height, breadth = shape
    mask = torch.zeros(height + 2 * width, breadth + 2 * width, dtype=torch.bool, device=device)
    mask[width : width + height, width : width + breadth] = True
    return mask


def with_circular_padding(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``model`` whose padded ``Conv2d`` layers wrap around (``padding_mode='circular'``).

    The alternative to the periodic embedding: the network then sees a periodic domain directly.
    The original model is left unchanged. Transposed and unpadded convolutions are not affected.
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"expected a torch.nn.Module, got {type(model).__name__}")
    periodic = copy.deepcopy(model)
    for module in periodic.modules():
        if type(module) is not torch.nn.Conv2d:
            continue
        padded = (
            module.padding != "valid"
            if isinstance(module.padding, str)
            else any(p > 0 for p in module.padding)
        )
        if padded:
            module.padding_mode = "circular"
    return periodic
