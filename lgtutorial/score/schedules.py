"""Variance-exploding noise schedules and Langevin step sizes, as plain functions.

Song & Ermon (2019) "Generative modeling by estimating gradients of the data distribution"; the
settings of Robertson et al. 2023, Section 3.2: ``L = 1000`` geometric levels from ``sigma_1``
(20 for the 2-phase case study, 50 for the 3-phase one) down to ``sigma_L = 0.01``.
"""

from __future__ import annotations

import math

import torch

__all__ = ["geometric_sigmas", "rho_spaced_sigmas", "langevin_step_sizes", "truncation_index", "truncate", "subsample",
           "truncated_schedule", "shortened_schedule", "annealed_levels", "one_cycle_learning_rate",
           "SIGMA_MAX", "SIGMA_MAX_THREE_PHASE", "SIGMA_MIN", "N_LEVELS", "STEP_LR", "SIGMA_C",
           "HYBRID_TRAIN_SIGMA_MAX"]

# -- the paper's numbers, each written once (Robertson et al. 2023, Sections 3.2 and 3.3) ------------
#: Largest noise level ``sigma_1`` of the 2-phase case study (just above the largest patch distance).
SIGMA_MAX = 20.0
#: Largest noise level of the 3-phase case study.
SIGMA_MAX_THREE_PHASE = 50.0
#: Smallest noise level ``sigma_L`` of both case studies.
SIGMA_MIN = 0.01
#: Number of geometric levels ``L`` of both case studies' schedules.
N_LEVELS = 1000
#: Base step of annealed Langevin dynamics: ``eps_i = STEP_LR (sigma_i / sigma_L)^2`` (Eq. (5)).
STEP_LR = 2e-5
#: Noise level at which the hybrid starts refining the GRF sample.
SIGMA_C = 0.75
#: Largest level the hybrid-range training recipe trains on: twice ``SIGMA_C`` (this project's recipe).
HYBRID_TRAIN_SIGMA_MAX = 2 * SIGMA_C


def geometric_sigmas(
    sigma_max: float = SIGMA_MAX,
    sigma_min: float = SIGMA_MIN,
    n_levels: int = N_LEVELS,
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


def rho_spaced_sigmas(
    sigma_max: float, sigma_min: float, n_levels: int, *, rho: float = 7.0, device=None, dtype=torch.float32
) -> torch.Tensor:
    """``n_levels`` noise levels evenly spaced in ``sigma^(1/rho)`` (Karras et al. 2022, Eq. (5)).

    ``rho = 1`` spaces them evenly in sigma; larger ``rho`` crowds them towards ``sigma_min`` (the
    geometric spacing is the limit ``rho -> infinity``). Karras et al. use ``rho = 7``.

    >>> [round(s, 4) for s in rho_spaced_sigmas(1.0, 0.01, 3, rho=1.0).tolist()]
    [1.0, 0.505, 0.01]
    """
    if not sigma_max > sigma_min > 0:
        raise ValueError(f"need sigma_max > sigma_min > 0, got {sigma_max} and {sigma_min}")
    if not isinstance(n_levels, int) or n_levels < 2:
        raise ValueError(f"n_levels must be an integer of at least 2, got {n_levels!r}")
    if not rho > 0:
        raise ValueError(f"rho must be positive, got {rho!r}")
    ramp = torch.linspace(0.0, 1.0, n_levels, dtype=torch.float64)
    top, bottom = sigma_max ** (1.0 / rho), sigma_min ** (1.0 / rho)
    return ((top + ramp * (bottom - top)) ** rho).to(device=device, dtype=dtype)


def langevin_step_sizes(sigmas: torch.Tensor, step_lr: float = STEP_LR) -> torch.Tensor:
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


def truncated_schedule(
    sigma_max: float = SIGMA_MAX,
    sigma_min: float = SIGMA_MIN,
    *,
    n_levels: int = N_LEVELS,
    sigma_c: float | None = SIGMA_C,
    device=None,
) -> torch.Tensor:
    """The noise levels of GRF-conditioned refinement (Section 3.2, Robertson et al. 2023).

    A geometric schedule of ``n_levels`` levels from ``sigma_max`` to ``sigma_min`` (the one the
    model was trained on when ``n_levels`` is the training value, 1000 in the paper), cut so that
    it starts at the level closest to ``sigma_c``. Fewer ``n_levels`` give a cheaper, coarser run
    over the same range of sigma. ``sigma_c=None`` keeps the whole schedule (sampling from noise).

    >>> len(truncated_schedule(20.0, 0.01, n_levels=1000, sigma_c=0.75))
    568
    >>> len(truncated_schedule(20.0, 0.01, n_levels=100, sigma_c=0.75))
    57

    Raises:
        ValueError: ``sigma_c`` outside ``[sigma_min, sigma_max]`` or fewer than 2 levels.
    """
    sigmas = geometric_sigmas(sigma_max, sigma_min, n_levels, device=device)
    if sigma_c is None:
        return sigmas
    if not sigma_min <= sigma_c <= sigma_max:
        raise ValueError(
            f"sigma_c={sigma_c} lies outside the model's noise schedule [{sigma_min:.4g}, {sigma_max:.4g}]; "
            f"choose a starting level inside it (the paper uses {SIGMA_C})"
        )
    return truncate(sigmas, sigma_c)


def shortened_schedule(sigmas: torch.Tensor, n_levels: int, *, step_lr: float = STEP_LR,
                       max_ratio: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """A cheaper sampling schedule: ``n_levels`` of ``sigmas`` with proportionally larger steps.

    Every kept level gets ``len(sigmas) / n_levels`` times the paper's step
    ``step_lr (sigma_i / sigma_L)^2``, capped so that ``eps_i / sigma_i^2 <= max_ratio`` (larger
    ratios overshoot). For the paper's schedule (20 -> 0.01, step_lr 2e-5) the cap is a factor 5.

    Returns:
        ``(levels, step_sizes)``, both ``(n_levels,)``.
    """
    levels = subsample(sigmas, n_levels)
    ratio = step_lr / float(sigmas[-1]) ** 2
    factor = min(len(sigmas) / n_levels, max_ratio / ratio) if n_levels < len(sigmas) else 1.0
    return levels, langevin_step_sizes(levels, step_lr) * max(factor, 1.0)


def annealed_levels(top: float, end: float, count: int) -> tuple[float, ...]:
    """``count`` noise levels falling geometrically from ``top`` to ``end`` (one per later pass).

    >>> annealed_levels(0.6, 0.15, 3)
    (0.6, 0.3, 0.15)
    """
    if not (isinstance(count, int) and count >= 1) or not 0 < end <= top:
        raise ValueError(f"annealed_levels: expected 0 < end <= top and a positive count, got {top}, {end}, {count}")
    if count == 1:
        return (float(top),)
    return tuple(round(top * (end / top) ** (k / (count - 1)), 4) for k in range(count))


def one_cycle_learning_rate(fraction: float, *, initial_lr: float, peak_lr: float, final_lr: float,
                            warmup_fraction: float) -> float:
    """The one-cycle learning rate at ``fraction`` (0 to 1) of a run: a cosine rise from ``initial_lr`` to
    ``peak_lr`` over the first ``warmup_fraction``, then a cosine fall to ``final_lr``.

    The shape of ``torch.optim.lr_scheduler.OneCycleLR`` (``anneal_strategy="cos"``), as a function of the
    share of a budget spent rather than of a step count: a run given minutes instead of steps
    (``TrainingSettings.minutes``) follows it by the elapsed share of its time. Fractions outside [0, 1]
    are clipped.

    >>> rates = dict(initial_lr=1e-3, peak_lr=1e-2, final_lr=1e-5, warmup_fraction=0.3)
    >>> [round(one_cycle_learning_rate(f, **rates), 6) for f in (0.0, 0.15, 0.3, 1.0, 2.0)]
    [0.001, 0.0055, 0.01, 1e-05, 1e-05]
    """
    fraction = min(max(float(fraction), 0.0), 1.0)
    if fraction < warmup_fraction:
        start, end, along = initial_lr, peak_lr, fraction / warmup_fraction
    else:
        start, end, along = peak_lr, final_lr, (fraction - warmup_fraction) / (1.0 - warmup_fraction)
    return end + (start - end) * (1.0 + math.cos(math.pi * along)) / 2.0
