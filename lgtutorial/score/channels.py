"""Annealed Langevin sampling of score models, and the tools the hybrid sampler wraps around it.

Samplers share one signature (as in k-diffusion): ``sampler(score_fn, x, sigmas, *, generator=None,
callback=None, ...)`` with ``score_fn(x, sigma) -> score`` of the same shape as ``x``. They run under
``torch.no_grad()`` and do not modify ``x`` in place.

Also here: the truncated schedule that starts refinement at ``sigma_c`` (Section 3.2 of Robertson et
al. 2023, after Meng et al.'s SDEdit), the periodic embedding that keeps a periodic GRF sample
periodic while a network trained on non-periodic patches refines it (Section 3.3), and the
alternative of circular convolutions.
"""

from __future__ import annotations

import torch

from lgtutorial.grf.field import segment_argmax


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


def segment_model_output(x: torch.Tensor, *, n_phases: int | None = None, clamp: float | None = 3.0) -> torch.Tensor:
    """Model-channel samples ``(n, C, H, W)`` -> one-hot ``(n, N, H, W)`` (Section 3.3).

    Values are clamped to ``[-clamp, clamp]`` first (as the authors do). A 1-channel output is the
    second phase of a 2-phase structure (threshold 0.5); C > 1 channels are segmented by argmax.
    """
    if x.ndim != 4:
        raise ValueError(f"expected model output of shape (n_samples, C, H, W), got {tuple(x.shape)}")
    n_phases = n_phases if n_phases is not None else (2 if x.shape[1] == 1 else x.shape[1])
    if clamp is not None:
        x = x.clamp(-clamp, clamp)
    return segment_argmax(from_model_channels(x, n_phases))
