"""Do the hybrid samples of a 3-phase model draw laths? Models side by side on identical GRF starts.

For the Ti reference (case study 2) the colonies are stacks of thin parallel laths. Chord lengths
alone cannot tell laths from a speckle of the same fractions; the boundary coherence (structure
tensor, measured inside the colonies: pixels whose 15 px neighbourhood is under half teal) can.
Every model refines the same GRF starts with the same sampler; the script writes a table
(``.md``/``.json``), every sample at full resolution (``_samples.png``) and a magnified crop
(``_crop.png``). Numbers, not assertions.

Run: python benchmarks/lath_check.py --models lgtutorial-case2,lgtutorial-output/train-case2-hybrid \\
        --samples 2 --output benchmarks/results/case2_laths_cpu
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from _report import emit_table  # noqa: E402

from lgtutorial import data  # noqa: E402
from lgtutorial._io import atomic_write  # noqa: E402
from lgtutorial.evaluation.compare import compare  # noqa: E402
from lgtutorial.grf.field import statistics_row  # noqa: E402
from lgtutorial.grf.segmentation import segment_preserving_fractions  # noqa: E402
from lgtutorial.plotting import show_microstructures  # noqa: E402
from lgtutorial.sampling.hybrid import HybridGenerator
from lgtutorial.score.registry import load_score_model  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reference", default="ti-alpha-beta")
    parser.add_argument("--models", required=True, help="comma-separated model names or checkpoint paths")
    parser.add_argument("--samples", type=int, default=2)
    parser.add_argument("--sampler", default="fast")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--exclude-phase", type=int, default=1, help="colonies: leave out this phase's regions")
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--size", type=int, default=None, help="square samples of this side (default: the reference's)")
    parser.add_argument("--guard", type=float, default=None,
                        help="redo failed samples with the faithful sampler (default: off, failures are shown as they are)")
    parser.add_argument("--output", required=True, help="stem of the results")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    reference, meta = data.load(args.reference)
    row, phases = statistics_row(reference), meta["phases"]
    ensembles, seconds, grf = {}, {}, None
    for source in args.models.split(","):
        model, sigmas = load_score_model(source)
        shape = (args.size, args.size) if args.size else None
        generator = HybridGenerator.from_statistics(row, model, shape=shape, sigmas=sigmas, sampler=args.sampler,
                                                    guard=args.guard)
        started = time.perf_counter()
        out = generator.sample(args.samples, seed=args.seed, return_grf=True, progress=False)
        seconds[source] = (time.perf_counter() - started) / args.samples
        if grf is None:
            grf = out.grf
            if generator.segment_grf:  # the GRF ensemble is the starts themselves (segmenting them again smooths them)
                ensembles["GRF"] = grf
            else:  # a continuous start, segmented as a GRF sample would be
                field = generator.field
                ensembles["GRF"] = segment_preserving_fractions(grf, field.target_volume_fractions.to(grf.device),
                                                                smooth=field.choose_segmentation() == "preserve")
        elif not torch.equal(out.grf, grf):
            raise RuntimeError(f"{source} refined other GRF starts than the first model; the comparison would not be fair")
        ensembles[source] = out.microstructures
        print(f"{source}: {seconds[source]:.0f} s per sample; recovered {out.recovered}, degenerate {out.degenerate}",
              flush=True)
    comparison = compare(reference, ensembles, reference_periodic=False, coherence_exclude=args.exclude_phase,
                         phase_names=phases, three_point_cutoff=4)
    rows = {(r["model"], r["phase"]): r for r in comparison.rows}
    lines = [f"# Laths or speckle: {args.reference}, {args.samples} samples per model from the same GRF starts",
             "", f"'{args.sampler}' sampler, seed {args.seed}; CLD distance = total variation between chord-length "
             "distributions (0 equal); coherence = boundary structure-tensor coherence inside the colonies "
             f"(phase {args.exclude_phase} regions left out). Made by `benchmarks/lath_check.py`.", "",
             "| model | phase | vf error | x-CLD dist | y-CLD dist | coherence | coherence error | s per sample |",
             "|---|---|---|---|---|---|---|---|"]
    records = []
    for name in ["reference", *ensembles]:
        for phase in phases:
            r = rows[(name, phase)]

            def cell(value, digits=3):
                return "" if value is None else f"{value:+.{digits}f}" if digits == 4 else f"{value:.{digits}f}"

            error = r["coherence_relative_error"]
            lines.append(f"| {name} | {phase} | {cell(r['volume_fraction_error'], 4)} | {cell(r['chord_x_distance'])} "
                         f"| {cell(r['chord_y_distance'])} | {cell(r['coherence_mean'])} | "
                         f"{'' if error is None else f'{100 * error:+.0f} %'} | {seconds.get(name, float('nan')):.0f} |")
            records.append({"model": name, "phase": phase, **{k: r[k] for k in (
                "volume_fraction_mean", "volume_fraction_error", "chord_x_distance", "chord_y_distance",
                "coherence_mean", "coherence_relative_error")}, "seconds_per_sample": seconds.get(name)})
    emit_table("\n".join(lines), f"{args.output}.md")
    with atomic_write(f"{args.output}.json", "w") as handle:
        handle.write(json.dumps({"arguments": vars(args), "records": records}, indent=2))
    names = list(ensembles)
    pictures = [reference[0]] + [ensembles[n][k] if n != "GRF" else grf[k] for k in range(args.samples) for n in names]
    titles = ["reference"] + [f"{Path(n).name} {k}" for k in range(args.samples) for n in names]
    axes = show_microstructures(pictures, titles, size=5.0)
    with atomic_write(f"{args.output}_samples.png") as handle:
        axes[0].figure.savefig(handle, format="png", dpi=110, bbox_inches="tight")
    plt.close(axes[0].figure)
    c = min(args.crop, *grf.shape[2:])
    top = min(100, grf.shape[2] - c)
    crops = [reference[0, :, top:top + c, top:top + c]] + [
        (grf[0] if n == "GRF" else ensembles[n][0])[:, top:top + c, top:top + c] for n in names]
    axes = show_microstructures(crops, ["reference (crop)"] + [f"{Path(n).name} (crop)" for n in names], size=3.5)
    with atomic_write(f"{args.output}_crop.png") as handle:
        axes[0].figure.savefig(handle, format="png", dpi=150, bbox_inches="tight")
    plt.close(axes[0].figure)


if __name__ == "__main__":
    main()
