"""Extrapolation: GRFs from convex combinations of two references' 2-point statistics.

Section 5.2 of Robertson et al. 2023: ``f_theta = (1 - theta) f_A + theta f_B`` is a valid set of
2-point statistics for every ``theta`` in [0, 1], so the global layer can move between (and
beyond the training data of) two materials without retraining; the local layer stays the one
trained on reference A.

Both references must have the same phases. When their grids differ, reference B is resized to
A's grid by nearest-neighbour sampling (:func:`resize_microstructure`), which keeps it one-hot and
scales its features by the ratio of the grid sizes (e.g. 256 / 201 = 1.27 for the 201 x 201 GRF
paper examples on the 256 x 256 case-study grid).
"""

from __future__ import annotations

import torch

from .grf import GaussianRandomField, interpolate_statistics
from .microstructure import check_microstructure
from .statistics import two_point_statistics

__all__ = ["resize_microstructure", "statistics_row", "interpolated_field"]


def resize_microstructure(microstructure, shape: tuple[int, ...]) -> torch.Tensor:
    """Nearest-neighbour resize of one-hot ``(n, N, *spatial)`` to ``(n, N, *shape)`` (stays one-hot)."""
    m = check_microstructure(microstructure)
    if len(shape) != m.ndim - 2:
        raise ValueError(f"shape must have {m.ndim - 2} entries for this microstructure, got {tuple(shape)}")
    if tuple(shape) == tuple(m.shape[2:]):
        return m
    return torch.nn.functional.interpolate(m, size=tuple(shape), mode="nearest-exact")


def statistics_row(microstructure, *, reference_phase: int = 0) -> torch.Tensor:
    """Periodic 2-point statistics row ``f_pn`` averaged over samples, ``(N, *spatial)``, float64."""
    m = check_microstructure(microstructure).to(torch.float64)
    return two_point_statistics(m)[:, reference_phase].mean(0)


def interpolated_field(
    reference_a,
    reference_b,
    theta: float,
    *,
    reference_phase: int = 0,
    device=None,
    dtype: torch.dtype = torch.float32,
) -> GaussianRandomField:
    """The GRF of ``(1 - theta) f_A + theta f_B`` on reference A's grid.

    Args:
        reference_a: one-hot ``(n, N, H, W)``: the reference the score model was trained on.
        reference_b: one-hot ``(m, N, H', W')`` with the same phases; resized to ``(H, W)``.
        theta: weight of reference B, in [0, 1].
        reference_phase: the phase whose statistics row defines the field.

    Returns:
        A :class:`~lgtutorial.grf.GaussianRandomField` sampling ``(H, W)`` periodic fields.
    """
    a = check_microstructure(reference_a, name="reference_a")
    b = check_microstructure(reference_b, name="reference_b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(
            f"both references need the same phases; reference_a has {a.shape[1]}, reference_b {b.shape[1]}"
        )
    b = resize_microstructure(b, tuple(a.shape[2:]))
    row = interpolate_statistics(
        statistics_row(a, reference_phase=reference_phase),
        statistics_row(b, reference_phase=reference_phase),
        theta,
    )
    return GaussianRandomField(row, reference_phase=reference_phase, device=device, dtype=dtype)
