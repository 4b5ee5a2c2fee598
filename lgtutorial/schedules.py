"""Variance-exploding noise schedules and Langevin step sizes, as plain functions.

Song & Ermon (2019) "Generative modeling by estimating gradients of the data distribution"; the
settings of Robertson et al. 2023, Section 3.2: ``L = 1000`` geometric levels from ``sigma_1``
(20 for the 2-phase case study, 50 for the 3-phase one) down to ``sigma_L = 0.01``.
"""

from __future__ import annotations

import math

import torch

__all__ = ["geometric_sigmas", "langevin_step_sizes", "truncation_index", "truncate", "subsample"]


def geometric_sigmas(
    sigma_max: float = 20.0,
    sigma_min: float = 0.01,
    n_levels: int = 1000,
    *,
    device=None,
    dtype=torch.float32,
) -> torch.Tensor:
    """Noise levels ``sigma_1 > ... > sigma_L`` spaced evenly in log, as a ``(n_levels,)`` tensor.

    >>> geometric_sigmas(20.0, 0.01, 1000)[[0, -1]].tolist()
    [20.0, 0.009999999776482582]
    """
    if not sigma_max > sigma_min > 0:
        raise ValueError(f"need sigma_max > sigma_min > 0, got {sigma_max} and {sigma_min}")
    if n_levels < 2:
        raise ValueError(f"n_levels must be at least 2, got {n_levels}")
    logs = torch.linspace(math.log(sigma_max), math.log(sigma_min), n_levels, dtype=torch.float64)
    return logs.exp().to(device=device, dtype=dtype)


def langevin_step_sizes(sigmas: torch.Tensor, step_lr: float = 2e-5) -> torch.Tensor:
    """Step sizes ``eps_i = step_lr * (sigma_i / sigma_L)^2`` of annealed Langevin dynamics.

    The update is ``x <- x + eps_i * score + sqrt(2 eps_i) z`` (the NCSN paper writes the same
    update with ``alpha_i = 2 eps_i``).
    """
    return step_lr * (sigmas / sigmas[-1]) ** 2


def truncation_index(sigmas: torch.Tensor, sigma_c: float) -> int:
    """Index of the level whose sigma is closest (in log) to ``sigma_c``.

    For the 2-phase schedule (20 -> 0.01, 1000 levels) and ``sigma_c = 0.75`` this is 432, so a
    truncated run uses 568 levels.
    """
    lo, hi = float(sigmas.min()), float(sigmas.max())
    if not lo <= sigma_c <= hi:
        raise ValueError(f"sigma_c={sigma_c} lies outside the schedule [{lo:.4g}, {hi:.4g}]")
    return int((sigmas.double().log() - math.log(sigma_c)).abs().argmin())


def truncate(sigmas: torch.Tensor, sigma_c: float) -> torch.Tensor:
    """The tail of the schedule that starts at the level closest to ``sigma_c``."""
    return sigmas[truncation_index(sigmas, sigma_c) :]


def subsample(sigmas: torch.Tensor, n_levels: int) -> torch.Tensor:
    """``n_levels`` levels of ``sigmas`` evenly spaced in index (first and last kept)."""
    if not 2 <= n_levels <= len(sigmas):
        raise ValueError(f"n_levels must be in 2..{len(sigmas)}, got {n_levels}")
    index = torch.linspace(0, len(sigmas) - 1, n_levels).round().long().to(sigmas.device)
    return sigmas[index]
