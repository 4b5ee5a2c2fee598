"""Segmentation rules: continuous N-phase fields (GRF samples, refined iterates) to one-hot microstructures.

:func:`segment_argmax` gives every pixel its largest phase. :func:`segment_preserving_fractions` (the
"N-maximum" rule) hits the target volume fractions exactly, after a periodic 3x3 local mean
(``"preserve"``, the paper's rule) or on the field itself (``"quantile"``); :data:`SEGMENTATIONS`
names these two, and :meth:`lgtutorial.grf.field.GaussianRandomField.choose_segmentation` picks the
one that keeps a field's 2-point statistics better.
"""

from __future__ import annotations

import torch

from lgtutorial.microstructure import as_tensor

__all__ = ["SEGMENTATIONS", "segment_argmax", "segment_preserving_fractions"]

#: Volume-fraction-preserving segmentations: ``"preserve"`` (3x3 local mean first) and ``"quantile"`` (none).
SEGMENTATIONS = ("preserve", "quantile")


def segment_argmax(fields: torch.Tensor) -> torch.Tensor:
    """One-hot segmentation that gives every pixel its largest phase."""
    fields = as_tensor(fields)
    labels = fields.argmax(1)
    return torch.nn.functional.one_hot(labels, fields.shape[1]).movedim(-1, 1).to(fields.dtype)


def _local_mean(fields: torch.Tensor) -> torch.Tensor:
    """Periodic 3x3 (or 3x3x3) box mean of every phase."""
    n_spatial = fields.ndim - 2
    pad = (1, 1) * n_spatial
    flat = fields.reshape(-1, 1, *fields.shape[2:])
    padded = torch.nn.functional.pad(flat, pad, mode="circular")
    pool = torch.nn.functional.avg_pool2d if n_spatial == 2 else torch.nn.functional.avg_pool3d
    return pool(padded, 3, stride=1).reshape(fields.shape)


def segment_preserving_fractions(fields: torch.Tensor, target_volume_fractions, *, smooth: bool = True) -> torch.Tensor:
    """Segmentation that hits the target volume fractions exactly (the "N-maximum" rule).

    After a periodic 3x3 local mean (``smooth``; off: a plain quantile threshold of the field),
    phases are visited from the smallest target fraction up; each takes the ``round(v_n S)``
    still-unassigned pixels where its value is highest, and the largest phase takes what is left.

    The 3x3 mean removes speckle but is a low-pass filter whose first zero lies at 1/3 cycles per
    pixel: it erases features with a period near 3 px (fine lamellae), so the quantile rule keeps
    the 2-point statistics of fine-featured materials better (``benchmarks/segmentation_spectra.py``).

    Args:
        fields: ``(n, N, *spatial)`` continuous fields.
        target_volume_fractions: ``(N,)`` fractions summing to 1.
        smooth: take the 3x3 local mean first.

    Returns:
        One-hot ``(n, N, *spatial)`` with exactly ``round(v_n S)`` pixels of every phase but the
        largest.
    """
    fields = as_tensor(fields)
    target = as_tensor(target_volume_fractions).to("cpu", torch.float64).flatten()
    n, n_phases = fields.shape[:2]
    if target.numel() != n_phases:
        raise ValueError(f"expected {n_phases} target volume fractions, got {target.numel()}")
    if (target < 0).any() or abs(float(target.sum()) - 1.0) > 1e-4:
        raise ValueError(f"target volume fractions must be non-negative and sum to 1; got {target.tolist()}")
    smooth = (_local_mean(fields) if smooth else fields).flatten(2)  # (n, N, S)
    size = smooth.shape[-1]
    order = torch.argsort(target).tolist()
    labels = torch.full((n, size), order[-1], dtype=torch.int64, device=fields.device)
    free = torch.ones((n, size), dtype=torch.bool, device=fields.device)
    lowest = torch.finfo(smooth.dtype).min
    for phase in order[:-1]:
        count = int(round(float(target[phase]) * size))
        if count == 0:
            continue
        scores = torch.where(free, smooth[:, phase], torch.full_like(smooth[:, phase], lowest))
        chosen = scores.topk(count, dim=-1).indices
        labels.scatter_(1, chosen, phase)
        free.scatter_(1, chosen, False)
    one_hot = torch.nn.functional.one_hot(labels, n_phases).movedim(-1, 1)
    return one_hot.reshape(fields.shape).to(fields.dtype)
