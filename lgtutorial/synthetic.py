"""Synthetic micrographs for tests, benchmarks and examples: periodic, seeded, any number of phases.

:func:`blobs` thresholds Gaussian-smoothed white noise (equiaxed features of a chosen width, or
elongated ones with a width per axis); :func:`ring_lamellae` thresholds noise whose spectrum is a
ring (fingerprint-like lamellae of one period, every orientation); :func:`lamellae` draws straight
parallel bands at an angle (laths, rolled or eutectic structures). All return one-hot float32
tensors ``(1, N, *shape)`` ready for every function of the package, periodic on their grid
(:func:`lamellae` where its bands fit the grid). The noise is drawn on the CPU from
``torch.Generator().manual_seed(seed)``: the same arguments give the same picture, bit for bit.

>>> blobs(32, 2.0).shape
torch.Size([1, 2, 32, 32])
>>> float(blobs(64, 2.0).mean((0, 2, 3))[1])
0.5
>>> [round(v, 3) for v in blobs(64, 3.0, fractions=[0.2, 0.3, 0.5]).mean((0, 2, 3)).tolist()]
[0.2, 0.3, 0.5]
>>> blobs((12, 16, 20), 1.5).shape  # a shape instead of a side: (H, W) or a volume (D, H, W)
torch.Size([1, 2, 12, 16, 20])
>>> lamellae(16, period=4).argmax(1)[0, 0, :8].tolist()
[0, 0, 1, 1, 0, 0, 1, 1]
"""

from __future__ import annotations

import math
import numbers

import torch

from lgtutorial.microstructure import labels_to_one_hot

__all__ = ["smooth_noise", "ring_noise", "blobs", "ring_lamellae", "lamellae"]


def smooth_noise(size, width, *, seed: int = 0) -> torch.Tensor:
    """Periodic white noise low-passed by a Gaussian of standard deviation ``width`` px (float64).

    Args:
        size: the side of a square, or a shape ``(H, W)`` or ``(D, H, W)``; at least 2 px each.
        width: the Gaussian's standard deviation in pixels, one number or one per axis (features
            longer along the axis of the larger width).
        seed: seed of the noise.

    >>> noise = smooth_noise((16, 64), (8.0, 1.0))  # long along the height, short along the width
    >>> noise.shape, bool(noise.diff(dim=0).abs().mean() < noise.diff(dim=1).abs().mean())
    (torch.Size([16, 64]), True)
    """
    shape = _shape(size)
    widths = _widths(width, len(shape))
    frequencies = _frequencies(shape)
    if len(set(widths)) == 1:  # isotropic: -2 pi^2 w^2 |k|^2
        exponent = -2 * math.pi**2 * widths[0] ** 2 * sum(k**2 for k in frequencies)
    else:
        exponent = -2 * math.pi**2 * sum(w**2 * k**2 for w, k in zip(widths, frequencies))
    return _filtered_noise(shape, torch.exp(exponent), seed)


def ring_noise(size, period: float, *, seed: int = 0) -> torch.Tensor:
    """Periodic white noise band-passed around the frequency ``1 / period`` in every direction (float64).

    The pass band is a Gaussian ring of relative width 0.12: the field's crests lie about ``period``
    px apart, in patches of every orientation (a fingerprint). ``size`` and ``seed`` as in
    :func:`smooth_noise`.

    >>> ring_noise(32, 4.0).shape
    torch.Size([32, 32])
    """
    shape = _shape(size)
    if not (_is_number(period) and period >= 2):
        raise ValueError(f"period: expected a number of at least 2 pixels, got {period!r}")
    radius = sum(k**2 for k in _frequencies(shape)).sqrt()
    ring = torch.exp(-0.5 * ((radius - 1.0 / period) / (0.12 / period)) ** 2)
    return _filtered_noise(shape, ring, seed)


def blobs(size, width, seed: int = 0, *, fractions=None) -> torch.Tensor:
    """A periodic micrograph of equiaxed (or, with a width per axis, elongated) features.

    :func:`smooth_noise` cut into phases: two phases without ``fractions``, cut at the median (half
    and half); otherwise ``fractions`` (one share per phase, summing to 1) sets the quantiles, phase
    0 the lowest values. Each phase's share is the asked one to within a pixel.

    >>> round(float(blobs((64, 48), (6.0, 2.0), fractions=[0.7, 0.3]).mean((0, 2, 3))[1]), 3)  # long along y
    0.3
    """
    return _phases(smooth_noise(size, width, seed=seed), fractions)


def ring_lamellae(size, period: float, seed: int = 0, *, fractions=None) -> torch.Tensor:
    """Fingerprint-like lamellae: :func:`ring_noise` cut into phases (as :func:`blobs` cuts its noise).

    Bands about ``period / 2`` px wide (two phases at half and half) that bend and branch, in patches
    of every orientation; a period near 3 px is where a 3x3 local mean erases them.

    >>> micrograph = ring_lamellae(64, 6.0)
    >>> micrograph.shape, float(micrograph.mean((0, 2, 3))[0])
    (torch.Size([1, 2, 64, 64]), 0.5)
    """
    return _phases(ring_noise(size, period, seed=seed), fractions)


def lamellae(size, *, period: int = 8, angle: float = 0.0, share: float = 0.5, roughness: float = 0.0,
             seed: int = 0) -> torch.Tensor:
    """Straight parallel bands of two phases, one every ``period`` px across them.

    ``angle`` (degrees) is the direction across the bands, from the image's x axis (the width) toward
    its y axis: at 0 the bands run along y, at 90 along x; a band of phase 1 then crosses a row in
    ``period * share / |cos(angle)|`` px. ``share`` is phase 1's part of each period; ``roughness``
    (in periods) shifts the bands by :func:`smooth_noise` of width ``period``, so that they wander
    and break as real laths do. ``size`` is a side or a shape ``(H, W)``. The picture is periodic
    when the bands fit the grid (at 0 or 90 degrees with a side that is a multiple of ``period``).

    >>> lamellae(8, period=4, angle=90).argmax(1)[0, :, 0].tolist()  # along a column at 90 degrees
    [0, 0, 1, 1, 0, 0, 1, 1]
    >>> lamellae(8, period=4, share=0.25).argmax(1)[0, 0].tolist()
    [0, 0, 0, 1, 0, 0, 0, 1]
    """
    shape = _shape(size, dims=(2,))
    if not (_is_int(period) and period >= 2):
        raise ValueError(f"period: expected an integer of at least 2 pixels, got {period!r}")
    if not _is_number(angle):
        raise ValueError(f"angle: expected a finite number of degrees, got {angle!r}")
    if not (_is_number(share) and 0 < share < 1):
        raise ValueError(f"share: expected a number in (0, 1), got {share!r}")
    if not (_is_number(roughness) and roughness >= 0):
        raise ValueError(f"roughness: expected a non-negative number of periods, got {roughness!r}")
    y, x = torch.meshgrid(torch.arange(shape[0], dtype=torch.float64), torch.arange(shape[1], dtype=torch.float64),
                          indexing="ij")
    theta = math.radians(angle)
    phase = (x * math.cos(theta) + y * math.sin(theta)) / period
    if roughness:
        noise = smooth_noise(shape, period, seed=seed)
        phase = phase + roughness * noise / noise.std()
    labels = ((phase % 1.0) >= 1 - share).long()
    return labels_to_one_hot(labels[None], n_phases=2).float()


# -- helpers ---------------------------------------------------------------------------------------
def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _shape(size, dims=(2, 3)) -> tuple[int, ...]:
    """``size`` as a shape: a side (a square) or a tuple of ``dims`` sides, each at least 2 px."""
    shape = (size, size) if _is_int(size) else tuple(size) if isinstance(size, (tuple, list, torch.Size)) else ()
    if len(shape) not in dims or not all(_is_int(n) and n >= 2 for n in shape):
        axes = " or ".join(f"{n} such integers" for n in dims)
        raise ValueError(f"size: expected an integer of at least 2 pixels or a shape of {axes}, got {size!r}")
    return tuple(int(n) for n in shape)


def _widths(width, n_axes: int) -> tuple[float, ...]:
    widths = tuple(width) if isinstance(width, (tuple, list)) else (width,) * n_axes
    if len(widths) != n_axes or not all(_is_number(w) and w >= 0 for w in widths):
        raise ValueError(f"width: expected a non-negative number of pixels, or {n_axes} of them (one per axis), "
                         f"got {width!r}")
    return tuple(float(w) for w in widths)


def _frequencies(shape: tuple[int, ...]) -> list[torch.Tensor]:
    """The FFT frequencies (cycles per pixel) of every axis, broadcast to ``shape``."""
    return list(torch.meshgrid(*[torch.fft.fftfreq(n, dtype=torch.float64) for n in shape], indexing="ij"))


def _filtered_noise(shape: tuple[int, ...], transfer: torch.Tensor, seed: int) -> torch.Tensor:
    if not _is_int(seed):
        raise ValueError(f"seed: expected an integer, got {seed!r}")
    noise = torch.randn(shape, generator=torch.Generator().manual_seed(int(seed)), dtype=torch.float64)
    return torch.fft.ifftn(torch.fft.fftn(noise) * transfer).real.contiguous()


def _phases(field: torch.Tensor, fractions) -> torch.Tensor:
    """One-hot phases of ``field``: above its median, or between the quantiles of ``fractions``.

    A pixel equal to a cut goes to the lower phase (as ``field > median`` does).
    """
    spatial_dims = field.ndim
    if fractions is None:
        labels = (field > field.median()).long()
        return labels_to_one_hot(labels[None], n_phases=2, spatial_dims=spatial_dims).float()
    try:
        shares = torch.as_tensor(fractions, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        shares = None
    if (shares is None or shares.ndim != 1 or len(shares) < 2 or not bool((shares > 0).all())
            or abs(float(shares.sum()) - 1) > 1e-6):
        raise ValueError(f"fractions: expected two or more positive shares summing to 1, got {fractions!r}")
    cuts = torch.quantile(field.flatten(), shares.cumsum(0)[:-1])
    labels = torch.bucketize(field, cuts)
    return labels_to_one_hot(labels[None], n_phases=len(shares), spatial_dims=spatial_dims).float()
