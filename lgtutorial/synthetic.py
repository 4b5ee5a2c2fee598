"""Synthetic micrographs for tests, benchmarks and examples: periodic, seeded, any number of phases.

:func:`blobs` thresholds Gaussian-smoothed white noise (equiaxed features of a chosen width);
:func:`lamellae` draws parallel bands at an angle (laths, rolled or eutectic structures). Both
return one-hot float tensors ``(1, N, H, W)`` ready for every function of the package.

>>> blobs(32, 2.0).shape
torch.Size([1, 2, 32, 32])
>>> float(blobs(64, 2.0).mean((0, 2, 3))[1])
0.5
>>> lamellae(16, period=4).argmax(1)[0, 0, :8].tolist()
[0, 0, 1, 1, 0, 0, 1, 1]
"""

from __future__ import annotations

import math

import torch

from lgtutorial.microstructure import labels_to_one_hot

__all__ = ["smooth_noise", "blobs", "lamellae"]


def smooth_noise(size: int, width: float, *, seed: int = 0) -> torch.Tensor:
    """Periodic white noise ``(size, size)`` low-passed by a Gaussian of ``width`` px (float64)."""
    if not (isinstance(size, int) and size >= 2):
        raise ValueError(f"size: expected an integer of at least 2 pixels, got {size!r}")
    if not (isinstance(width, (int, float)) and math.isfinite(width) and width >= 0):
        raise ValueError(f"width: expected a non-negative number of pixels, got {width!r}")
    k = torch.fft.fftfreq(size, dtype=torch.float64)
    low = torch.exp(-2 * math.pi**2 * width**2 * (k[:, None] ** 2 + k[None, :] ** 2))
    noise = torch.randn(size, size, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return torch.fft.ifft2(torch.fft.fft2(noise) * low).real


def blobs(size: int, width: float, seed: int = 0, *, fractions=None) -> torch.Tensor:
    """A periodic micrograph of equiaxed features: smoothed noise cut into phases.

    Two phases without ``fractions`` are cut at the median (half and half); otherwise
    ``fractions`` (one per phase, summing to 1) sets the quantiles, phase 0 lowest.
    """
    field = smooth_noise(size, width, seed=seed)
    if fractions is None:
        return labels_to_one_hot((field > field.median()).long()[None]).float()
    fractions = torch.as_tensor(fractions, dtype=torch.float64)
    if fractions.ndim != 1 or len(fractions) < 2 or (fractions <= 0).any() or abs(float(fractions.sum()) - 1) > 1e-6:
        raise ValueError(f"fractions: expected two or more positive shares summing to 1, got {fractions.tolist()}")
    cuts = torch.quantile(field.flatten(), fractions.cumsum(0)[:-1])
    labels = torch.bucketize(field, cuts, right=True)
    return labels_to_one_hot(labels[None], n_phases=len(fractions)).float()


def lamellae(size: int, *, period: int = 8, angle: float = 0.0, share: float = 0.5, roughness: float = 0.0,
             seed: int = 0) -> torch.Tensor:
    """Parallel bands of two phases, ``period`` px apart, at ``angle`` degrees from the image's x axis.

    ``share`` is phase 1's part of each period; ``roughness`` (in periods) shifts the bands by smoothed
    noise, so that they wander and break as real laths do.
    """
    if not (isinstance(period, int) and period >= 2):
        raise ValueError(f"period: expected an integer of at least 2 pixels, got {period!r}")
    if not 0 < share < 1:
        raise ValueError(f"share: expected a number in (0, 1), got {share!r}")
    y, x = torch.meshgrid(torch.arange(size, dtype=torch.float64), torch.arange(size, dtype=torch.float64),
                          indexing="ij")
    theta = math.radians(angle)
    phase = (x * math.cos(theta) + y * math.sin(theta)) / period
    if roughness:
        noise = smooth_noise(size, period, seed=seed)
        phase = phase + roughness * noise / noise.std()
    labels = ((phase % 1.0) >= 1 - share).long()
    return labels_to_one_hot(labels[None], n_phases=2).float()
