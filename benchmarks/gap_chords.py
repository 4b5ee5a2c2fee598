"""The matrix's chords around sparse particles: why a fitted row can fail the chord check there.

For a fitted folder (``samples.npy``, ``grf.npy`` from ``lgtutorial fit``) and its micrograph, per
phase and axis: the chord-length-distribution distance of the GRF and hybrid samples to the
reference as ``fit`` measures it (samples periodic, the non-periodic reference's edge chords
dropped), measured the same way on both sides (the samples' edge chords dropped too: they have the
micrograph's size), and against the reference with the Miles-Lantuejoul edge correction (every
interior chord of length l on a line of L px weighted by 1 / (L - l - 1)); then, per ensemble, the
share of lines without a pixel of the phase and the number of its chords per line. The last two
say how the particles sit along lines without binning hundreds of gap lengths one pixel apart.

    OMP_NUM_THREADS=2 python benchmarks/gap_chords.py li2018-pmma \
        lgtutorial-output/fit-registered/li2018-pmma-15min --output benchmarks/results/gap_chords_pmma.md
"""

from __future__ import annotations

from pathlib import Path

import torch
from _report import emit_table, load_fitted


def _pmf(lengths: torch.Tensor, longest: int, weights: torch.Tensor | None = None) -> torch.Tensor:
    weights = torch.ones(lengths.shape, dtype=torch.float64) if weights is None else weights
    counts = torch.zeros(longest + 2, dtype=torch.float64)
    counts.index_add_(0, lengths.clamp_max(longest + 1), weights)
    return counts / counts.sum().clamp_min(1e-300)


def _tv(a: torch.Tensor, b: torch.Tensor) -> float:
    return 0.5 * float((a - b).abs().sum())


def main(argv=None) -> None:
    from lgtutorial.statistics.chords import chord_lengths

    args, micro, meta, ensembles = load_fitted(__doc__.splitlines()[0], argv)
    folder = Path(args.folder)
    phases = meta["phases"]
    lines = [f"# Chords of every phase, three ways: {args.micrograph}", "",
             f"`{folder}`: {len(ensembles['hybrid'])} GRF and hybrid samples of "
             f"{tuple(ensembles['hybrid'].shape[-2:])} px; the reference {tuple(micro.shape[-2:])} px, not periodic. "
             "Distances are total variation between chord-length distributions in 1 px bins (0 equal, 1 disjoint). "
             "*as fit*: samples periodic, the reference's edge chords dropped; *same cut*: the samples' edge chords "
             "dropped too; *edge-corrected*: the reference's interior chords weighted by 1 / (L - l - 1) "
             "(Miles-Lantuejoul). Empty lines: share of rows (x) or columns (y) without the phase; chords per line: "
             "the phase's runs per row or column. Made by `benchmarks/gap_chords.py`.", "",
             "| phase | axis | reference chords | GRF as fit / same cut / edge-corrected | hybrid as fit / same cut / "
             "edge-corrected | empty lines ref / GRF / hybrid | chords per line ref / GRF / hybrid |",
             "|---|---|---|---|---|---|---|"]
    labels = {"reference": micro.argmax(1), **{name: e.argmax(1) for name, e in ensembles.items()}}
    for p, phase in enumerate(phases):
        for axis in ("x", "y"):
            reference = chord_lengths(micro, axis=axis, periodic=False, phases=[p])[0]
            longest = reference.line_length
            interior = 1.0 / (longest - reference.lengths.double() - 1).clamp_min(1)
            ref_pmf, corrected = _pmf(reference.lengths, longest), _pmf(reference.lengths, longest, interior)
            cells = []
            for ensemble in ensembles.values():
                periodic = chord_lengths(ensemble, axis=axis, periodic=True, phases=[p])[0]
                cut = chord_lengths(ensemble, axis=axis, periodic=False, phases=[p])[0]
                periodic_pmf = _pmf(periodic.lengths, longest)
                cells.append(f"{_tv(ref_pmf, periodic_pmf):.3f} / {_tv(ref_pmf, _pmf(cut.lengths, longest)):.3f} / "
                             f"{_tv(corrected, periodic_pmf):.3f}")
            empty, per_line = [], []
            for label in labels.values():
                present = label == p
                along = present if axis == "x" else present.transpose(-1, -2)  # rows of (n, lines, length)
                empty.append(f"{float((~along.any(-1)).double().mean()):.3f}")
                starts = (along[..., 1:] & ~along[..., :-1]).sum(-1) + along[..., 0].long()
                per_line.append(f"{float(starts.double().mean()):.2f}")
            lines.append(f"| {phase} | {axis} | {reference.lengths.numel()} | {cells[0]} | {cells[1]} | "
                         f"{' / '.join(empty)} | {' / '.join(per_line)} |")
    emit_table("\n".join(lines), args.output)


if __name__ == "__main__":
    main()
