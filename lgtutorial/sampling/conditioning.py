"""Conditioning by wrapping: the volume-fraction posterior score (Eq. (12), Robertson et al. 2023).

Bayes' rule on scores: ``grad log p(m | v) = grad log p(v | m) + grad log p(m)`` (Appendix A). With a
Gaussian likelihood ``v ~ N(vf(m), sigma_mu^2)`` and ``vf(m) = 1^T m / S``, the likelihood adds the
same value ``-(vf(m) - v) / (S sigma_mu^2)`` to every pixel of a channel: a uniform push of the
whole field toward the target volume fraction, on top of the learned prior score.

:func:`volume_fraction_posterior` takes any ``score_fn(x, sigma)`` and returns the posterior's score
function with the same signature, so every sampler accepts it unchanged. The current volume fraction
is estimated as the authors did: the plain mean of each channel (:func:`mean_volume_fractions`) or
the fractions of an argmax segmentation (:func:`segmented_volume_fractions`). The likelihood width
``sigma_mu`` is annealed geometrically with the noise (:func:`likelihood_width`; the authors' values:
:func:`likelihood_widths`), scaled by ``sqrt(256^2 / S)`` so that the pull per pixel does not depend
on the domain size. The posterior's score costs no host synchronisation: what depends on the mask
(its pixels, their count) is worked out once, when it is made.
"""

from __future__ import annotations

import math

import torch

from lgtutorial.sampling.integrators import ScoreFunction
from lgtutorial.score.schedules import SIGMA_MAX, SIGMA_MIN

#: Where the volume fraction of Eq. (12) can be measured: on the iterate (the paper) or on its
#: denoised (Tweedie) estimate; see :func:`volume_fraction_posterior`.
MEASURES = ("iterate", "denoised")

__all__ = [
    "LIKELIHOOD_WIDTHS",
    "likelihood_widths",
    "likelihood_width",
    "mean_volume_fractions",
    "segmented_volume_fractions",
    "volume_fraction_posterior",
]

#: Likelihood widths ``(sigma_mu at sigma_max, sigma_mu at sigma_min)`` for a 256 x 256 domain, by
#: volume-fraction estimate (the authors' sampling code for case study 1).
LIKELIHOOD_WIDTHS = {"segmented": (0.008, 0.0001), "mean": (0.020, 0.0003)}

_REFERENCE_PIXELS = 256**2


def likelihood_widths(n_pixels: int, *, estimate: str = "segmented") -> tuple[float, float]:
    """The authors' ``(sigma_mu start, sigma_mu end)`` scaled to a domain of ``n_pixels`` pixels.

    >>> likelihood_widths(256 * 256, estimate="mean")
    (0.02, 0.0003)
    >>> likelihood_widths(128 * 128)
    (0.016, 0.0002)
    """
    if estimate not in LIKELIHOOD_WIDTHS:
        raise ValueError(f"estimate must be one of {sorted(LIKELIHOOD_WIDTHS)}, got {estimate!r}")
    if not isinstance(n_pixels, int) or n_pixels < 1:
        raise ValueError(f"n_pixels must be a positive integer, got {n_pixels!r}")
    scale = math.sqrt(_REFERENCE_PIXELS / n_pixels)
    start, end = LIKELIHOOD_WIDTHS[estimate]
    return start * scale, end * scale


def likelihood_width(sigma, *, sigma_max: float, sigma_min: float, start: float, end: float) -> torch.Tensor:
    """``sigma_mu`` at noise level ``sigma``: log-linear in ``log sigma``, ``start`` at ``sigma_max``, ``end`` at ``sigma_min``.

    On a geometric noise schedule this is the geometric schedule of ``sigma_mu`` over the same
    levels, whatever number of levels (or truncation) is used. Outside the range it is held.

    >>> round(float(likelihood_width(0.01, sigma_max=20.0, sigma_min=0.01, start=0.008, end=1e-4)), 8)
    0.0001
    """
    sigma = torch.as_tensor(sigma, dtype=torch.float64)
    position = (math.log(sigma_max) - sigma.log()) / (math.log(sigma_max) - math.log(sigma_min))
    position = position.clamp(0.0, 1.0)
    return torch.exp(math.log(start) + position * (math.log(end) - math.log(start)))


def _check_field(x: torch.Tensor, mask: torch.Tensor | None) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"expected model channels of shape (n_samples, channels, H, W), got {shape}")
    if mask is not None and tuple(mask.shape) != tuple(x.shape[-2:]):
        raise ValueError(
            f"the mask has shape {tuple(mask.shape)}; expected the spatial shape {tuple(x.shape[-2:])}"
        )


def _mask_pixels(mask: torch.Tensor | None) -> torch.Tensor | None:
    """The flat indices ``(S,)`` of the pixels of an ``(H, W)`` mask, in row-major order (None: no mask).

    Finding them waits for the device (their number is data); indexing with them does not, and
    picks the same values in the same order as indexing with the mask itself.
    """
    return None if mask is None else mask.flatten().nonzero().squeeze(1)


def _pixel_values(x: torch.Tensor, pixels: torch.Tensor | None) -> torch.Tensor:
    """``x[..., mask]`` of ``(n, C, H, W)`` as ``(n, C, S)``, given the mask's :func:`_mask_pixels` (None: ``x``)."""
    return x if pixels is None else x.flatten(-2)[..., pixels]


def _mean_fractions(x: torch.Tensor, pixels: torch.Tensor | None) -> torch.Tensor:
    if pixels is None:
        return x.mean(dim=(-2, -1))
    return _pixel_values(x, pixels).mean(dim=-1)


def _segmented_fractions(x: torch.Tensor, pixels: torch.Tensor | None) -> torch.Tensor:
    values = _pixel_values(x, pixels)
    if x.shape[1] == 1:
        winners = values > 0.5
        return winners.flatten(2).to(x.dtype).mean(-1)
    uncertain = 1.0 - values.sum(1, keepdim=True)
    labels = torch.cat([values, uncertain], dim=1).argmax(1).flatten(1)  # (n, pixels)
    channels = torch.arange(x.shape[1], device=x.device).view(1, -1, 1)
    return (labels.unsqueeze(1) == channels).to(x.dtype).mean(-1)


def mean_volume_fractions(x: torch.Tensor, *, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Plain mean ``1^T m / S`` of every channel of ``(n, C, H, W)`` (over ``mask`` only if given): ``(n, C)``.

    >>> mean_volume_fractions(torch.tensor([[[[0.0, 1.0], [1.0, 1.0]]]])).tolist()
    [[0.75]]
    """
    _check_field(x, mask)
    return _mean_fractions(x, _mask_pixels(mask))


def segmented_volume_fractions(x: torch.Tensor, *, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Volume fractions of the argmax segmentation of ``(n, C, H, W)`` model channels: ``(n, C)``.

    One channel (2-phase model): the fraction with ``m > 0.5``. Several channels: the argmax over
    the channels and the uncertain channel ``1 - sum_n m_n``; uncertain pixels count in the total
    only. Only pixels inside ``mask`` are counted when it is given.

    >>> segmented_volume_fractions(torch.tensor([[[[0.2, 0.7], [0.9, 0.4]]]])).tolist()
    [[0.5]]
    """
    _check_field(x, mask)
    return _segmented_fractions(x, _mask_pixels(mask))


def volume_fraction_posterior(
    score_fn: ScoreFunction,
    target_volume_fractions,
    *,
    estimate: str = "segmented",
    sigma_max: float = SIGMA_MAX,
    sigma_min: float = SIGMA_MIN,
    widths: tuple[float, float] | None = None,
    mask: torch.Tensor | None = None,
    measure_on: str = "iterate",
) -> ScoreFunction:
    """Wrap a prior score into the volume-fraction posterior score (Eq. (12), Robertson et al. 2023).

    ``posterior(x, sigma) = score_fn(x, sigma) - (vf(x) - v) / (S sigma_mu(sigma)^2)`` added to every
    pixel (of ``mask``) of each channel, with ``S`` the number of counted pixels.

    Args:
        score_fn: prior score ``score_fn(x, sigma)`` on ``(n, C, H, W)`` model channels.
        target_volume_fractions: ``(C,)`` or ``(n, C)`` target fractions of the model channels (for
            a one-channel 2-phase model: the fraction of phase 1).
        estimate: ``"segmented"``: the fractions of an argmax segmentation, the quantity that is
            finally measured (:func:`segmented_volume_fractions`); ``"mean"``: the plain mean of
            each channel (:func:`mean_volume_fractions`).
        sigma_max, sigma_min: the range of the noise schedule over which ``sigma_mu`` is annealed.
        widths: ``(sigma_mu at sigma_max, sigma_mu at sigma_min)``; default
            :func:`likelihood_widths` for ``S`` pixels and this ``estimate``.
        mask: ``(H, W)`` boolean: where the volume fraction is measured and the push applied
            (the interior of a periodic embedding); everywhere when ``None``.
        measure_on: ``"iterate"`` (the paper: the volume fraction of ``x`` itself) or
            ``"denoised"``: of the prior's denoised estimate ``x + sigma^2 score_fn(x, sigma)``
            (Tweedie's formula; the constraint is measured on the estimate of the clean sample, as
            in diffusion posterior sampling, Chung et al. 2023, without its Jacobian). At large
            ``sigma`` the segmented fraction of a noisy iterate drifts towards 1/2 (noise flips
            pixels both ways), so holding it at the target moves the clean structure away from it;
            the denoised estimate does not have that bias. No extra network evaluation.

    Returns:
        ``posterior(x, sigma)`` with the signature of ``score_fn``.
    """
    if estimate not in LIKELIHOOD_WIDTHS:
        raise ValueError(f"estimate must be 'segmented' or 'mean', got {estimate!r}")
    target = torch.as_tensor(target_volume_fractions, dtype=torch.float32)
    if target.ndim not in (1, 2):
        raise ValueError(f"target_volume_fractions must have shape (C,) or (n, C), got {tuple(target.shape)}")
    if not torch.isfinite(target).all() or (target < 0).any() or (target > 1).any():
        raise ValueError(f"target volume fractions must lie in [0, 1], got {target.tolist()}")
    if mask is not None:
        mask = torch.as_tensor(mask, dtype=torch.bool)
        if mask.ndim != 2 or not mask.any():
            raise ValueError("mask must be a non-empty boolean (H, W) tensor")
    if measure_on not in MEASURES:
        raise ValueError(f"measure_on must be 'iterate' or 'denoised', got {measure_on!r}")
    measure = _segmented_fractions if estimate == "segmented" else _mean_fractions
    fixed_widths = widths
    # the mask's pixels and their count, found once (the one wait for the device); the target, the
    # pixels and the mask as a factor, moved to each device and type once
    mask_pixels = _mask_pixels(mask)
    mask_count = None if mask_pixels is None else len(mask_pixels)
    moved: dict = {}

    def on_device(x: torch.Tensor) -> tuple:
        key = (x.device, x.dtype)
        if key not in moved:
            moved[key] = (target.to(x.device, x.dtype),
                          None if mask is None else mask_pixels.to(x.device),
                          None if mask is None else mask.to(x.device, x.dtype))
        return moved[key]

    def posterior(x: torch.Tensor, sigma) -> torch.Tensor:
        _check_field(x, mask)
        if target.shape[-1] != x.shape[1] or (target.ndim == 2 and target.shape[0] != x.shape[0]):
            raise ValueError(
                f"{tuple(target.shape)} target volume fractions do not fit model channels {tuple(x.shape[:2])}"
            )
        goal, pixels, inside = on_device(x)
        n_pixels = mask_count if mask is not None else x.shape[-2] * x.shape[-1]
        start, end = (
            fixed_widths if fixed_widths is not None else likelihood_widths(n_pixels, estimate=estimate)
        )
        width = likelihood_width(sigma, sigma_max=sigma_max, sigma_min=sigma_min, start=start, end=end)
        width = width.to(x.device, x.dtype)
        width = width.view(-1, 1) if width.ndim == 1 else width  # one sigma per sample
        prior = score_fn(x, sigma)
        if measure_on == "denoised":
            level = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
            level = level.view(-1, 1, 1, 1) if level.ndim == 1 else level
            measured = measure(x + level**2 * prior, pixels)
        else:
            measured = measure(x, pixels)
        pull = -(measured - goal) / (n_pixels * width**2)  # (n, C)
        pull = pull.expand(x.shape[0], x.shape[1])[..., None, None]
        if inside is not None:
            pull = pull * inside
        return prior + pull

    posterior.target_volume_fractions = target
    posterior.estimate = estimate
    posterior.measure_on = measure_on
    return posterior

