"""What the hybrid generator returns, and the collapse guard that checks every sample.

:func:`finalize` clamps the last iterate and segments it (Section 3.3, Robertson et al. 2023);
:class:`HybridSamples` holds the samples with their targets. A sampler with large steps can
collapse a sample into one phase or diverge with a weak model: :func:`degenerate_samples` finds
such samples (a non-finite iterate, or a volume fraction off the target by more than the guard)
and :func:`redo_failed` refines them again from the same GRF start with the paper's sampler.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from lgtutorial.sampling.samplers import SAMPLERS
from lgtutorial.score.channels import segment_model_output
from lgtutorial.statistics.two_point import volume_fractions

__all__ = ["DegenerateSamples", "HybridSamples", "finalize", "degenerate_samples", "redo_failed"]


def finalize(x: torch.Tensor, n_phases: int) -> torch.Tensor:
    """Clamp model channels ``(n, C, H, W)`` to ``[-3, 3]`` and segment: one-hot ``(n, N, H, W)``.

    One channel (2-phase model): phase 1 where ``m > 0.5``. Otherwise argmax over the channels.
    (:func:`lgtutorial.score.channels.segment_model_output` with the authors' clamp.)
    """
    return segment_model_output(x, n_phases=n_phases, clamp=3.0)


@dataclass
class HybridSamples:
    """Output of :meth:`HybridGenerator.sample`.

    Attributes:
        microstructures: one-hot ``(n_samples, n_phases, H, W)`` final samples.
        refined: the last iterate in model channels ``(n_samples, C, H, W)``, clamped to [-3, 3].
        grf: the starting iterates as phases ``(n_samples, n_phases, H, W)`` (segmented for 2 phases,
            continuous otherwise), or ``None`` unless asked for.
        target_volume_fractions: ``(n_phases,)`` volume fractions of the statistics.
    """

    microstructures: torch.Tensor
    refined: torch.Tensor
    grf: torch.Tensor | None
    target_volume_fractions: torch.Tensor
    recovered: list = field(default_factory=list)
    """indices of samples that failed with the chosen sampler and were redone with the faithful one"""
    degenerate: list = field(default_factory=list)
    """indices of samples that still failed (non-finite, or volume fraction off by more than the guard)"""

    @property
    def achieved_volume_fractions(self) -> torch.Tensor:
        """``(n_samples, n_phases)`` volume fractions of the final samples."""
        return volume_fractions(self.microstructures)

    def report(self) -> str:
        """One line per phase: target, achieved mean +- std and the largest error over the samples."""
        achieved = self.achieved_volume_fractions.double().cpu()
        lines = ["phase  target   achieved (mean +- std)   largest |error|"]
        for n, target in enumerate(self.target_volume_fractions.tolist()):
            column = achieved[:, n]
            std = float(column.std()) if column.numel() > 1 else 0.0
            error = float((column - target).abs().max())
            lines.append(f"{n:>5}  {target:.4f}   {float(column.mean()):.4f} +- {std:.4f}        {error:.4f}")
        if self.recovered:
            lines.append(f"redone with the faithful sampler after failing: samples {self.recovered}")
        if self.degenerate:
            lines.append(f"DEGENERATE (non-finite or volume fraction far off the target): samples {self.degenerate}")
        return "\n".join(lines)


def degenerate_samples(x: torch.Tensor, final: torch.Tensor, target_volume_fractions: torch.Tensor,
                       guard: float | None) -> torch.Tensor:
    """``(n,)`` True for samples that failed: a non-finite iterate ``x`` ``(n, C, H, W)``, or a final
    one-hot sample ``(n, N, H, W)`` whose volume fraction is off the ``(N,)`` target by more than
    ``guard`` (e.g. a collapse into one phase; ``None``: only non-finite iterates fail)."""
    broken = ~torch.isfinite(x).flatten(1).all(dim=1)
    error = (volume_fractions(final) - target_volume_fractions.to(final.dtype)).abs().amax(dim=1)
    return broken | (error > (guard if guard is not None else math.inf))


def redo_failed(hybrid, start: torch.Tensor, x: torch.Tensor, final: torch.Tensor, generator):
    """Redo the failed samples of a batch with the faithful sampler (the paper's small steps).

    Args:
        hybrid: the :class:`~lgtutorial.sampling.hybrid.HybridGenerator` that refined the batch.
        start: the batch's starting iterates ``(n, C, H, W)``; x: its last iterates; final: its
            one-hot samples.
        generator: the ``torch.Generator`` of the run (the redo draws from it).

    Returns:
        ``(x, final, redone, failed)``: the batch with the redone samples in place, the indices of
        the samples redone successfully and of those that failed again (or that the faithful
        sampler itself produced).
    """
    bad = hybrid.degenerate(x, final)
    if not bad.any():
        return x, final, [], []
    indices = bad.nonzero().flatten().tolist()
    if hybrid.sampler == SAMPLERS["faithful"]:
        return x, final, [], indices
    again = hybrid.fallback().refine(start[bad], generator=generator)
    again_final = finalize(again.nan_to_num(0.0).clamp(-3.0, 3.0), hybrid.n_phases)
    x, final = x.clone(), final.clone()
    x[bad], final[bad] = again, again_final
    still = hybrid.degenerate(again, again_final).tolist()
    return x, final, [k for k, s in zip(indices, still) if not s], [k for k, s in zip(indices, still) if s]


def batch_sizes(n_samples: int, batch_size: int | None) -> list[int]:
    """The sizes of the batches ``n_samples`` are drawn in (``None``: one batch)."""
    batch_size = n_samples if batch_size is None else max(1, min(batch_size, n_samples))
    return [min(batch_size, n_samples - k) for k in range(0, n_samples, batch_size)]


def run_batches(draw, n_samples: int, batch_size: int | None, *, device, seed: int | None = None,
                generator: torch.Generator | None = None, steps_per_batch: int, description: str,
                progress: bool = True, callback=None) -> list:
    """The batch loop of both generators (2D and 3D): ``n_samples`` drawn ``batch_size`` at a time.

    ``draw(size, generator, step, first)`` refines one batch of ``size`` samples whose first has index
    ``first``; ``step(info)`` advances a tqdm bar over the score evaluations (``steps_per_batch`` a
    batch) and hands ``info`` plus ``"batch"`` to ``callback``. Without ``generator`` a fresh one on
    ``device`` is seeded with ``seed`` (0 when None). Returns what ``draw`` returned, batch by batch.

    >>> run_batches(lambda size, generator, step, first: (first, size), 5, 2, device="cpu",
    ...             steps_per_batch=1, description="demo", progress=False)
    [(0, 2), (2, 2), (4, 1)]
    """
    from tqdm.auto import tqdm

    if not isinstance(n_samples, int) or isinstance(n_samples, bool) or n_samples < 1:
        raise ValueError(f"n_samples must be a positive integer, got {n_samples!r}")
    if generator is None:
        generator = torch.Generator(device=device)
        generator.manual_seed(0 if seed is None else seed)
    batches = batch_sizes(n_samples, batch_size)
    bar = tqdm(total=len(batches) * steps_per_batch, desc=description, unit="step", disable=not progress)
    results = []
    try:
        for index, size in enumerate(batches):

            def step(info: dict, index=index) -> None:
                bar.update(1)
                if callback is not None:
                    callback({**info, "batch": index})

            results.append(draw(size, generator, step, sum(batches[:index])))
    finally:
        bar.close()
    return results


class DegenerateSamples(RuntimeError):
    """Some generated samples failed the guard (the command line writes the outputs all the same, then exits with 1)."""
