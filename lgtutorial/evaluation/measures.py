"""What :func:`lgtutorial.evaluation.compare.compare` measures on each ensemble, and how two are compared.

:func:`measure_ensemble` computes every statistic of the comparison table for one ensemble in
batches (volume fractions, autocorrelations, chord lengths, feature sizes, boundary coherence, the
3-point subset); the other functions turn two measurements into the table's errors. Robertson et al.
2023, Section 5.
"""

from __future__ import annotations

import math

import torch

from lgtutorial.statistics.chords import chord_lengths
from lgtutorial.statistics.higher_order import boundary_coherence, feature_size, three_point_statistics
from lgtutorial.statistics.two_point import two_point_statistics

__all__ = ["largest_lag", "measure_ensemble", "relative_norm_error", "relative_error", "finite_mean",
           "finite_std", "pca_offset"]


def largest_lag(shape, periodic: bool) -> int:
    side = min(shape[-2:])
    return (side - 1) // 2 if periodic else side // 2


def measure_ensemble(
    m: torch.Tensor,
    *,
    periodic: bool,
    cutoff: int,
    three_point_cutoff: int,
    fit_radius: int,
    batch_size: int,
    dtype,
    coherence_exclude: int | None = None,
) -> dict:
    """Every statistic of one ensemble, computed in ``dtype`` batches of ``batch_size`` samples."""
    n_phases = m.shape[1]
    fractions, slices_x, slices_y, sizes, triples, coherence = [], [], [], [], [], []
    auto_sum = 0.0
    for chunk in m.split(batch_size):
        chunk = chunk.to(dtype)
        fractions.append(chunk.flatten(2).mean(-1))
        auto = torch.stack(
            [
                two_point_statistics(chunk[:, a : a + 1], periodic=periodic, cutoff=cutoff)[:, 0, 0]
                for a in range(n_phases)
            ],
            dim=1,
        )  # (b, N, L, L): autocorrelations only
        auto_sum = auto_sum + auto.sum(0)
        slices_x.append(auto[:, :, 0, :])
        slices_y.append(auto[:, :, :, 0])
        sizes.append(feature_size(chunk, periodic=periodic, fit_radius=fit_radius))
        triples.append(three_point_statistics(chunk, periodic=periodic, cutoff=three_point_cutoff).flatten(2))
        coherence.append(torch.stack([
            boundary_coherence(chunk, a, periodic=periodic, exclude_phase=None if a == coherence_exclude else coherence_exclude)
            for a in range(n_phases)], dim=1))
    return {
        "volume_fractions": torch.cat(fractions),
        "autocorrelation_mean": auto_sum / len(m),
        "autocorrelation_slices": {"x": torch.cat(slices_x), "y": torch.cat(slices_y)},
        "feature_sizes": torch.cat(sizes),
        "three_point": torch.cat(triples),
        "coherence": torch.cat(coherence),
        "chords": {
            axis: chord_lengths(m, axis=axis, periodic=periodic, batch_size=batch_size) for axis in ("x", "y")
        },
    }


def relative_norm_error(model: torch.Tensor, reference: torch.Tensor, where: torch.Tensor | None = None):
    if where is not None:
        if not bool(where.any()):
            return math.nan
        model, reference = model[where], reference[where]
    denominator = float(torch.linalg.vector_norm(reference))
    return float(torch.linalg.vector_norm(model - reference)) / denominator if denominator > 0 else math.nan


def relative_error(value: float, reference: float) -> float:
    return (value - reference) / reference if reference and not math.isnan(reference) else math.nan


def finite_std(values: torch.Tensor) -> float:
    values = values[torch.isfinite(values)]
    return float(values.std()) if values.numel() > 1 else 0.0


def finite_mean(values: torch.Tensor) -> float:
    values = values[torch.isfinite(values)]
    return float(values.mean()) if values.numel() else math.nan


def pca_offset(scores: torch.Tensor, reference_scores: torch.Tensor, reference_norm: float) -> float:
    """Distance of the reference from the ensemble mean over the first 3 PCs, each PC in units of the
    ensemble's standard deviation along it (0 when they coincide)."""
    k = min(3, scores.shape[1])
    distance = float(torch.linalg.vector_norm(scores[:, :k].mean(0) - reference_scores[:, :k].mean(0)))
    if distance <= 1e-9 * max(reference_norm, 1e-300):
        return 0.0
    if scores.shape[0] < 2:
        return math.nan
    gap = scores[:, :k].mean(0) - reference_scores[:, :k].mean(0)
    spread = scores[:, :k].std(0)
    if bool((spread <= 0).any()):
        return math.inf
    return float(torch.linalg.vector_norm(gap / spread))
