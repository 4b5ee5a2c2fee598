"""What a micrograph is, before fitting: phases, size, volume fractions, mean chords, periodicity.

:func:`inspect_micrograph` measures one ``(1, N, H, W)`` micrograph and decides whether it is a
periodic tile or a cut-out of a larger specimen (by how often the phases change across the
wrap-around seam; see its docstring). :func:`finest_mean_chord` is the feature size that the plan
(:mod:`lgtutorial.fitting.plan`) sizes the patches, the network and the sampler by.
"""

from __future__ import annotations

import torch

__all__ = ["finest_mean_chord", "inspect_micrograph"]


def inspect_micrograph(micro: torch.Tensor) -> dict:
    """Phases, size, volume fractions, mean chord lengths and a periodicity check of ``(1, N, H, W)``.

    A micrograph is taken as periodic when its phases change across the wrap-around seam (last
    row/column to first) closer to as often as between neighbouring rows/columns inside than to as
    often as between two far-apart pixels (``1 - sum_a v_a^2``): a cut-out of a larger specimen
    joins unrelated pixels at the seam.
    """
    from lgtutorial.statistics.chords import chord_lengths

    labels = micro[0].argmax(0)
    seams, insides = [], []
    for axis in (0, 1):
        inside = (labels.diff(dim=axis) != 0).double().mean()
        seam = (labels.select(axis, 0) != labels.select(axis, -1)).double().mean()
        seams.append(float(seam))
        insides.append(float(inside))
    fractions = micro.double().mean(dim=(0, 2, 3))
    unrelated = float(1.0 - (fractions**2).sum())  # change rate between independent pixels
    periodic = all(seam <= (inside + unrelated) / 2 for seam, inside in zip(seams, insides))
    # a uniform frame (e.g. a one-pixel border of one phase) makes the seam look seamless
    n_phases = micro.shape[1]
    edges = [labels[0], labels[-1], labels[:, 0], labels[:, -1]]
    framed = any(float(torch.bincount(e, minlength=n_phases).max()) >= 0.98 * e.numel() for e in edges) and \
        max(fractions.tolist()) < 0.9
    periodic = periodic and not framed
    chords = {axis: [c.mean() for c in chord_lengths(micro, axis=axis, periodic=periodic)] for axis in ("x", "y")}
    return {"n_phases": int(micro.shape[1]), "shape": tuple(int(s) for s in micro.shape[2:]),
            "volume_fractions": fractions.tolist(), "periodic": periodic, "unrelated_changes": unrelated, "framed": framed,
            "seam_changes": seams, "inside_changes": insides, "mean_chords": chords}


def finest_mean_chord(info: dict) -> float:
    """The smallest mean chord (px) over phases and axes of :func:`inspect_micrograph`'s ``info`` (4 px if
    no phase has a chord inside the image)."""
    chords = [c for axis in ("x", "y") for c in info["mean_chords"][axis] if c == c]
    return min(chords) if chords else 4.0
