"""Chord lengths: the maximal runs of one phase along a line (Section 5.2, Robertson et al. 2023).

A Gaussian random field matches the 1- and 2-point statistics but not the shapes that make up a
phase; the chord length distributions (CLD) per phase along x (the width axis) and y (the height
axis) show the difference, and the local (denoising) layer restores it. Every row or column of a
batch of samples is run-length encoded at once; :func:`chord_distribution_distance` compares two
whole distributions (not just their means).

Inputs are one-hot (or continuous, argmax-segmented) ``(n_samples, n_phases, H, W)`` arrays or
tensors; the work runs on the input's device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from lgtutorial.microstructure import float_microstructure, one_hot_to_labels, top_and_bottom_halves

__all__ = ["ChordLengths", "chord_lengths", "chord_distribution_distance", "halves_chord_distance",
           "boundary_mean_chord"]


@dataclass
class ChordLengths:
    """All chords of one phase along one axis of an ensemble (output of :func:`chord_lengths`).

    Attributes:
        lengths: ``(n_chords,)`` int64 chord lengths in pixels.
        samples: ``(n_chords,)`` int64 index of the sample each chord belongs to.
        n_samples: number of samples in the ensemble.
        phase: the phase index.
        axis: ``"x"`` (along rows, the width axis) or ``"y"`` (along columns).
        periodic: ``True`` if chords wrap around the edges, ``False`` if edge chords were dropped.
        line_length: pixels per line (the longest possible chord).
    """

    lengths: torch.Tensor
    samples: torch.Tensor
    n_samples: int
    phase: int
    axis: str
    periodic: bool
    line_length: int

    def mean(self) -> float:
        """Mean chord length in pixels over all chords (NaN if there are none)."""
        return float(self.lengths.double().mean()) if self.lengths.numel() else math.nan

    def std(self) -> float:
        """Standard deviation of the chord lengths (population; NaN if there are none)."""
        return float(self.lengths.double().std(unbiased=False)) if self.lengths.numel() else math.nan

    def per_sample_mean(self) -> torch.Tensor:
        """``(n_samples,)`` float64 mean chord length of every sample (NaN for a sample without chords)."""
        device = self.lengths.device
        total = torch.zeros(self.n_samples, dtype=torch.float64, device=device)
        total.index_add_(0, self.samples, self.lengths.double())
        count = torch.bincount(self.samples, minlength=self.n_samples).double()
        return torch.where(count > 0, total / count.clamp_min(1), torch.full_like(total, math.nan))

    def distribution(self, max_length: int | None = None, *, per_sample: bool = False) -> torch.Tensor:
        """Chord length distribution: the fraction of chords with length ``1, 2, ..., max_length``.

        Args:
            max_length: longest length shown (default: the line length). Longer chords count in
                the normalisation but get no bin, so the result then sums to less than one.
            per_sample: one distribution per sample instead of one for the pooled ensemble.

        Returns:
            ``(max_length,)`` or ``(n_samples, max_length)`` float64; entry ``k`` is length ``k + 1``.
        """
        max_length = self.line_length if max_length is None else int(max_length)
        if max_length < 1:
            raise ValueError(f"max_length must be at least 1 pixel, got {max_length}")
        rows = self.samples if per_sample else torch.zeros_like(self.samples)
        n_rows = self.n_samples if per_sample else 1
        counts = torch.zeros(n_rows, max_length + 1, dtype=torch.float64, device=self.lengths.device)
        bins = self.lengths.clamp_max(max_length + 1) - 1  # chords beyond max_length land in the last bin
        counts.index_put_((rows, bins), torch.ones_like(bins, dtype=torch.float64), accumulate=True)
        totals = counts.sum(1, keepdim=True)
        pmf = (counts / totals.clamp_min(1))[:, :max_length]
        return pmf if per_sample else pmf[0]


def _runs(binary: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Run-length encode the ``True`` runs of every line of a ``(n_lines, L)`` boolean tensor.

    Returns lengths, the line of every run and whether the run touches either end of its line.
    """
    length = binary.shape[1]
    padded = torch.nn.functional.pad(binary.to(torch.int8), (1, 1))
    change = padded[:, 1:] - padded[:, :-1]  # +1 where a run starts, -1 just after it ends
    start_line, start = (change == 1).nonzero(as_tuple=True)
    _, end = (change == -1).nonzero(as_tuple=True)  # row-major order pairs every end with its start
    touches = (start == 0) | (end == length)
    return end - start, start_line, touches


def _line_runs(lines: torch.Tensor, phase: int, periodic: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Lengths and line indices of the chords of ``phase`` in ``(n_lines, L)`` label lines."""
    binary = lines == phase
    if periodic:
        # rotate every line to start at a pixel of another phase, so no chord crosses the seam
        first_other = (~binary).to(torch.int8).argmax(dim=1, keepdim=True)
        index = (torch.arange(lines.shape[1], device=lines.device) + first_other) % lines.shape[1]
        binary = binary.gather(1, index)
    run_lengths, run_lines, touches = _runs(binary)
    if not periodic:
        run_lengths, run_lines = run_lengths[~touches], run_lines[~touches]
    return run_lengths.to(torch.int64), run_lines.to(torch.int64)


def _check_axis_and_periodic(axis: str, periodic: bool) -> None:
    if axis not in ("x", "y"):
        raise ValueError(f"axis must be 'x' or 'y', got {axis!r}")
    if not isinstance(periodic, bool):
        raise TypeError(f"periodic must be True or False, got {periodic!r}")


def chord_lengths(
    microstructure, *, axis: str, periodic: bool, phases=None, batch_size: int = 64
) -> list[ChordLengths]:
    """Chords (maximal runs of one phase along a line) of every phase along x or y (Section 5.2).

    Every row (``axis="x"``) or column (``axis="y"``) of a batch of samples is run-length encoded at
    once. On a non-periodic image (a micrograph) a chord that touches the image edge is truncated
    and is dropped. On a periodic sample chords wrap around the edges; a line made of a single
    phase counts as one chord as long as the line.

    Args:
        microstructure: ``(n_samples, n_phases, H, W)``, one-hot (continuous fields are segmented by
            argmax).
        axis: ``"x"`` (chords along the width, within rows) or ``"y"`` (along the height).
        periodic: whether chords wrap around (generated samples) or edge chords are dropped.
        phases: phase indices to measure (default: all).
        batch_size: samples encoded at once (bounds memory).

    Returns:
        One :class:`ChordLengths` per requested phase.

    >>> from lgtutorial.microstructure import labels_to_one_hot
    >>> m = labels_to_one_hot([[0, 1, 1, 0, 1, 0]])  # one row of six pixels
    >>> chord_lengths(m, axis="x", periodic=False)[0].lengths.tolist()  # both edge chords dropped
    [1]
    >>> chord_lengths(m, axis="x", periodic=True)[0].lengths.tolist()  # the last and first pixel join
    [1, 2]
    """
    _check_axis_and_periodic(axis, periodic)
    m = float_microstructure(microstructure)
    n_samples, n_phases = m.shape[:2]
    phases = list(range(n_phases)) if phases is None else [int(p) for p in phases]
    for phase in phases:
        if not 0 <= phase < n_phases:
            raise ValueError(f"phase {phase} is out of range for a microstructure with {n_phases} phases")
    lines_per_sample, length = (m.shape[2], m.shape[3]) if axis == "x" else (m.shape[3], m.shape[2])
    lengths = {phase: [] for phase in phases}
    samples = {phase: [] for phase in phases}
    for start in range(0, n_samples, batch_size):
        labels = one_hot_to_labels(m[start : start + batch_size])  # (b, H, W)
        lines = (labels if axis == "x" else labels.transpose(1, 2)).reshape(-1, length)
        for phase in phases:
            run_lengths, run_lines = _line_runs(lines, phase, periodic)
            lengths[phase].append(run_lengths)
            samples[phase].append(run_lines // lines_per_sample + start)
    return [
        ChordLengths(
            lengths=torch.cat(lengths[phase]),
            samples=torch.cat(samples[phase]),
            n_samples=n_samples,
            phase=phase,
            axis=axis,
            periodic=periodic,
            line_length=length,
        )
        for phase in phases
    ]


def chord_distribution_distance(a: ChordLengths, b: ChordLengths, *, per_sample: bool = False):
    """Total-variation distance between two chord-length distributions: 0 equal, 1 disjoint.

    With ``per_sample`` the distribution of every sample of ``a`` is compared with the pooled
    distribution of ``b``: an ``(n_samples,)`` float64 tensor (on ``a``'s device) instead of one number.
    ``a`` and ``b`` may come from two devices (a GPU sample against a CPU micrograph).

    Whole distributions, not their means: a speckle of one-pixel chords and a set of laths of mixed
    widths can share a mean chord length, but not a distribution.

    >>> from lgtutorial.microstructure import labels_to_one_hot
    >>> stripes = labels_to_one_hot([[0, 0, 1, 1] * 4])
    >>> dots = labels_to_one_hot([[0, 1] * 8])
    >>> x = lambda m: chord_lengths(m, axis="x", periodic=True)[1]
    >>> chord_distribution_distance(x(stripes), x(stripes)), chord_distribution_distance(x(stripes), x(dots))
    (0.0, 1.0)
    >>> chord_distribution_distance(x(torch.cat([stripes, dots])), x(stripes), per_sample=True).tolist()
    [0.0, 1.0]
    """
    if a.axis != b.axis:
        raise ValueError(f"chords along {a.axis} and {b.axis} are not comparable")
    longest = max(a.line_length, b.line_length)
    theirs = b.distribution(longest).to(a.lengths.device)  # the two may have been measured on two devices
    if per_sample:
        return 0.5 * (a.distribution(longest, per_sample=True) - theirs).abs().sum(-1)
    return 0.5 * float((a.distribution(longest) - theirs).abs().sum())


def halves_chord_distance(microstructure) -> list[float]:
    """Per phase, the chord-distribution distance between the top and bottom halves of a micrograph
    (the larger of x and y; chords touching a half's edge are dropped).

    Two pieces of the same material already differ by this much: a generator whose distance to the
    whole micrograph is near it is at the resolution of the measure for this micrograph (few long
    chords, e.g. the matrix around sparse particles, make it large).

    >>> from lgtutorial.microstructure import labels_to_one_hot
    >>> stripes = labels_to_one_hot(torch.tensor([[0, 0, 1, 1, 1] * 4] * 8))
    >>> halves_chord_distance(stripes)
    [0.0, 0.0]
    """
    top, bottom = top_and_bottom_halves(microstructure, min_height=4)
    return [max(chord_distribution_distance(chord_lengths(top, axis=axis, periodic=False, phases=[p])[0],
                                            chord_lengths(bottom, axis=axis, periodic=False, phases=[p])[0])
                for axis in ("x", "y")) for p in range(top.shape[1])]


def boundary_mean_chord(microstructure, *, axis: str, periodic: bool) -> list[float]:
    """Per phase, the mean chord length along ``axis`` from boundary counts, pooled over the samples.

    Along every line, the pixels of the phase divided by the places where the phase ends (a pixel of
    the phase followed by one of another phase): the lineal analysis of stereology, ``L_L / P_L``.
    It needs no whole chord, so a non-periodic micrograph gives an unbiased value even for a phase
    whose chords are as long as the image (the matrix around sparse particles), where dropping the
    chords that touch the edge keeps mostly the short ones. On a non-periodic image only the pairs
    of neighbours inside a line count; on a periodic one the pair across the seam counts too.
    Infinite for a phase that never ends (a line of a single phase everywhere), NaN for an absent one.

    >>> from lgtutorial.microstructure import labels_to_one_hot
    >>> m = labels_to_one_hot([[0, 0, 1, 1, 1, 0, 0, 0, 1, 1, 0, 0]])
    >>> boundary_mean_chord(m, axis="x", periodic=True)  # phase 0: chords of 3 and 4 (across the seam)
    [3.5, 2.5]
    >>> boundary_mean_chord(m, axis="x", periodic=False)  # 6 of the first 11 pixels are phase 0, it ends twice
    [3.0, 2.5]
    """
    _check_axis_and_periodic(axis, periodic)
    m = float_microstructure(microstructure)
    labels = one_hot_to_labels(m)  # (n, H, W)
    lines = labels if axis == "x" else labels.transpose(1, 2)
    if periodic:
        here, after = lines, lines.roll(-1, dims=-1)
    else:
        here, after = lines[..., :-1], lines[..., 1:]
    means = []
    for phase in range(m.shape[1]):
        inside = here == phase
        pixels, ends = int(inside.sum()), int((inside & (after != phase)).sum())
        means.append(math.nan if pixels == 0 else math.inf if ends == 0 else pixels / ends)
    return means
