"""Case study 2 with the oriented global layer against the GRF-start hybrid and the reference (issue #42).

Both through :func:`lgtutorial.generate` with the shipped ``lgtutorial-case2`` model and the default settings
for ``ti-alpha-beta`` (``--global-layer auto`` chooses the oriented layer there; ``grf`` is the paper's layer
with the ``fast`` sampler). Per ensemble: lath coherence of yellow and dark blue inside the colonies (teal
windows left out, as ``benchmarks/lath_diagnosis.py`` measures), volume fractions, chord-length distribution
distances to the reference along x and y, and the 2-point statistics of the starts against the reference's
(relative error of the radially averaged autocorrelations of the three phases, out to 32 px).

    OMP_NUM_THREADS=2 python benchmarks/case2_oriented.py --size 256 --n-samples 8 \\
        --output benchmarks/results/case2_oriented_cpu
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import emit_table  # noqa: E402

import lgtutorial as lg  # noqa: E402
from lgtutorial._io import save_text  # noqa: E402
from lgtutorial.plotting import show_microstructures  # noqa: E402
from lgtutorial.statistics.chords import chord_distribution_distance, chord_lengths  # noqa: E402
from lgtutorial.statistics.higher_order import boundary_coherence, radial_average  # noqa: E402
from lgtutorial.statistics.two_point import two_point_statistics  # noqa: E402

LATHS, MATRIX = (0, 2), 1


def _radial(micro, periodic: bool) -> torch.Tensor:
    f = two_point_statistics(micro.double(), periodic=periodic)
    auto = torch.stack([f[:, p, p] for p in range(micro.shape[1])], 1).mean(0)  # (N, H, W)
    return radial_average(auto, max_radius=32)[1]


def measure(ensemble, reference, reference_radial) -> dict:
    coherence = [float(boundary_coherence(ensemble, p, periodic=True, exclude_phase=MATRIX).nanmean()) for p in LATHS]
    chords = {f"{p}{axis}": float(chord_distribution_distance(
        chord_lengths(ensemble, axis=axis, periodic=True, phases=[p])[0],
        chord_lengths(reference, axis=axis, periodic=False, phases=[p])[0])) for p in LATHS for axis in "xy"}
    radial = _radial(ensemble, periodic=True)
    error = float((radial - reference_radial).norm() / reference_radial.norm())
    return {"coherence": coherence, "volume_fractions": ensemble.double().mean((0, 2, 3)).tolist(), "chords": chords,
            "two_point_relative_error": error}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--n-samples", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default=None, help="path stem of the .md and .json to write")
    args = parser.parse_args(argv)
    reference, _ = lg.data.load("ti-alpha-beta")
    reference_radial = _radial(reference, periodic=False)
    rows, record = {}, {"size": args.size, "n_samples": args.n_samples, "seed": args.seed}
    rows["reference"] = measure(reference, reference, reference_radial)
    for layer in ("grf", "auto"):
        started = time.perf_counter()
        result = lg.generate(reference="ti-alpha-beta", size=args.size, n_samples=args.n_samples, seed=args.seed,
                             global_layer=layer, device="cpu", progress=False)
        seconds = (time.perf_counter() - started) / args.n_samples
        label = f"{result.global_layer} layer, {result.settings.sampler} sampler"
        rows[f"{label}: start"] = measure(result.samples.grf.cpu(), reference, reference_radial)
        rows[label] = {**measure(result.samples.microstructures.cpu(), reference, reference_radial),
                       "evaluations": result.generator.evaluations_per_sample, "seconds_per_sample": seconds,
                       "redone": result.samples.recovered, "degenerate": result.samples.degenerate,
                       "reason": result.global_layer_reason}
        if args.output and layer == "auto":
            show_microstructures([reference[0, :, :args.size, :args.size]]
                                             + list(result.samples.microstructures[:3].cpu()),
                                             ["reference (crop)"] + [f"oriented hybrid {k}" for k in range(3)])[0] \
                .figure.savefig(f"{args.output}_samples.png", dpi=300, bbox_inches="tight")
    record["rows"] = rows
    target = rows["reference"]["volume_fractions"]
    lines = [f"# Case study 2: the oriented global layer ({args.n_samples} samples of {args.size} px, seed {args.seed})",
             "", "Measured by `benchmarks/case2_oriented.py` with the shipped `lgtutorial-case2` model on two CPU "
             "threads. Coherence: yellow / dark blue boundaries inside the colonies. Chords: total-variation distance "
             "of the chord-length distributions to the reference's. 2-point error: relative error of the radially "
             "averaged autocorrelations (to 32 px) against the reference's.", "",
             "| ensemble | coherence yellow / dark blue | volume fractions yellow / teal / dark blue (largest error) | "
             "chords yellow x / y, dark blue x / y | 2-point error | evaluations | s / sample |",
             "|---|---|---|---|---|---|---|"]
    for name, row in rows.items():
        vf = row["volume_fractions"]
        worst = max(abs(a - b) for a, b in zip(vf, target))
        lines.append(f"| {name} | {row['coherence'][0]:.3f} / {row['coherence'][1]:.3f} | "
                     f"{' / '.join(f'{v:.4f}' for v in vf)} ({worst:.4f}) | "
                     f"{' '.join(f'{v:.3f}' for v in row['chords'].values())} | {row['two_point_relative_error']:.3f} | "
                     f"{row.get('evaluations', '')} | {row.get('seconds_per_sample', 0):.1f} |")
    notes = [f"- {name}: redone with the faithful sampler {row['redone']}, degenerate {row['degenerate']}; "
             f"{row['reason']}" for name, row in rows.items() if "reason" in row]
    emit_table("\n".join(lines + [""] + notes), f"{args.output}.md" if args.output else None)
    if args.output:
        save_text(Path(f"{args.output}.json"), json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
