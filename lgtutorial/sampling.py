"""Annealed Langevin sampling of score models, and the bridge between one-hot phases and model channels.

Samplers share one signature (as in k-diffusion): ``sampler(score_fn, x, sigmas, *, generator=None,
callback=None, ...)`` with ``score_fn(x, sigma) -> score`` of the same shape as ``x``. They run under
``torch.no_grad()`` and do not modify ``x`` in place.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .schedules import langevin_step_sizes

__all__ = ["annealed_langevin", "to_model_channels", "from_model_channels", "ScoreFunction"]

ScoreFunction = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def to_model_channels(microstructure: torch.Tensor, channels: int) -> torch.Tensor:
    """One-hot ``(n, N, H, W)`` -> model input ``(n, C, H, W)``.

    2-phase models use one channel (``C = 1``): the phase with label 1 (the precipitate in case
    study 1); the other is ``1 - m``. Models for N > 2 phases use all N channels.
    """
    n_phases = microstructure.shape[1]
    if channels == n_phases:
        return microstructure
    if channels == 1 and n_phases == 2:
        return microstructure[:, 1:2]
    raise ValueError(f"a {channels}-channel model cannot take a {n_phases}-phase microstructure")


def from_model_channels(x: torch.Tensor, n_phases: int) -> torch.Tensor:
    """Model output ``(n, C, H, W)`` -> continuous phases ``(n, N, H, W)`` (inverse of the above)."""
    if x.shape[1] == n_phases:
        return x
    if x.shape[1] == 1 and n_phases == 2:
        return torch.cat([1.0 - x, x], dim=1)
    raise ValueError(f"a {x.shape[1]}-channel output cannot describe {n_phases} phases")


@torch.no_grad()
def annealed_langevin(
    score_fn: ScoreFunction,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    *,
    step_lr: float = 2e-5,
    steps_per_level: int = 1,
    generator: torch.Generator | None = None,
    callback: Callable[[dict], None] | None = None,
    step_sizes: torch.Tensor | None = None,
    project: Callable[[torch.Tensor], torch.Tensor] | None = None,
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
        callback: called after every step with ``{"i", "sigma", "x", "step_size"}``.
        step_sizes: ``(L,)`` step sizes; default from ``step_lr`` and ``sigmas[-1]``.
        project: applied to ``x`` after every step (e.g. re-copying a periodic embedding).

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
    noise_scales = (2.0 * step_sizes.to(x.device, x.dtype)).sqrt()
    step_sizes = step_sizes.to(x.device, x.dtype)
    for i in range(len(sigmas)):
        for _ in range(steps_per_level):
            score = score_fn(x, sigmas[i])
            noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            x = x + step_sizes[i] * score + noise_scales[i] * noise
            if project is not None:
                x = project(x)
            if callback is not None:
                callback({"i": i, "sigma": sigmas[i], "x": x, "step_size": step_sizes[i]})
    return x
