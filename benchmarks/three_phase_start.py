"""What should a 3-phase hybrid refine: the continuous GRF field (the paper) or the segmented one?

The paper refines the continuous output of the GRF for three phases (its footnote 24) and a
segmented sample for two. This benchmark refines the same GRF draws both ways, with the fast
sampler and with the paper's, for each (micrograph, model) pair, with the collapse guard off so
that a failure shows as it is. Per variant: the largest volume-fraction error of the average
sample, the samples off by more than 0.1 in some phase (collapsed), the chord-length-distribution
distance to the reference per phase (total variation, larger of x and y), the boundary coherence per
phase and the seconds per sample. Numbers, not assertions; every sample is drawn in ``_samples.png``.

Run (the elongated model is what ``benchmarks/fit_registered.py --minutes 60 --only
ngrf-three-phase-elongated`` leaves in its work folder):

    python benchmarks/three_phase_start.py --samples 4 --output benchmarks/results/three_phase_start_cpu \\
        --cases ngrf-three-phase-elongated=lgtutorial-output/fit-registered/ngrf-three-phase-elongated-60min/model/ngrf-three-phase-elongated.pt \\
                ti-alpha-beta=lgtutorial-case2
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
from lgtutorial.fitting.inspect import inspect_micrograph  # noqa: E402
from lgtutorial.grf.field import statistics_row  # noqa: E402
from lgtutorial.plotting import show_microstructures  # noqa: E402
from lgtutorial.sampling.hybrid import HybridGenerator
from lgtutorial.score.registry import load_score_model  # noqa: E402
from lgtutorial.statistics.two_point import volume_fractions  # noqa: E402

#: (label, sampler, segment the start?)
VARIANTS = (("fast, continuous start", "fast", False), ("fast, segmented start", "fast", True),
            ("faithful, continuous start (the paper)", "faithful", False),
            ("faithful, segmented start", "faithful", True))
COLLAPSE = 0.1


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", nargs="+", required=True, metavar="MICROGRAPH=MODEL",
                        help="registry name of a 3-phase micrograph = model name or path")
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--size", type=int, default=None, help="square samples of this side (default: the micrograph's)")
    parser.add_argument("--variants", default=None, help="comma-separated labels' first words, e.g. 'fast' (default: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", required=True, help="stem of the results (.md, .json, _samples.png)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    variants = [v for v in VARIANTS if args.variants is None or v[1] in args.variants.split(",")]

    records, pictures = [], []
    for case in args.cases:
        name, _, model_name = case.partition("=")
        if not model_name:
            raise SystemExit(f"expected MICROGRAPH=MODEL, got {case!r}")
        reference, meta = data.load(name)
        if reference.shape[1] < 3:
            raise SystemExit(f"{name} has {reference.shape[1]} phases; this benchmark is about three or more")
        model, sigmas = load_score_model(model_name)
        multiple = int(getattr(model, "size_multiple", 1))
        shape = (args.size, args.size) if args.size else tuple(s - s % multiple for s in reference.shape[2:])
        row = statistics_row(reference)
        ensembles, seconds = {}, {}
        for label, sampler, segmented in variants:
            generator = HybridGenerator.from_statistics(row, model, shape=shape, sigmas=sigmas, sampler=sampler,
                                                        segment_grf=segmented, guard=None)
            started = time.perf_counter()
            samples = generator.sample(args.samples, seed=args.seed, return_grf=segmented, progress=False)
            seconds[label] = (time.perf_counter() - started) / args.samples
            ensembles[label] = samples.microstructures.cpu()
            if segmented and "GRF (segmented)" not in ensembles:
                ensembles["GRF (segmented)"] = samples.grf.cpu()
            print(f"{name}: {label}: {seconds[label]:.1f} s a sample", flush=True)
        periodic = inspect_micrograph(reference)["periodic"]  # as fit decides it
        comparison = compare(reference, ensembles, reference_periodic=periodic, phase_names=meta["phases"],
                             three_point_cutoff=2)
        rows = {(r["model"], r["phase"]): r for r in comparison.rows}
        for label, ensemble in ensembles.items():
            errors = (volume_fractions(ensemble) - volume_fractions(reference)).abs()  # (n, N)
            records.append({
                "micrograph": name, "model": model_name, "variant": label, "shape": list(shape),
                "samples": args.samples, "seconds_per_sample": seconds.get(label),
                "largest_vf_error": max(abs(rows[(label, p)]["volume_fraction_error"]) for p in meta["phases"]),
                "collapsed": int((errors.amax(1) > COLLAPSE).sum()),
                "chord_distance": [max(rows[(label, p)]["chord_x_distance"], rows[(label, p)]["chord_y_distance"])
                                   for p in meta["phases"]],
                "coherence": [rows[(label, p)]["coherence_mean"] for p in meta["phases"]],
                "reference_coherence": [rows[("reference", p)]["coherence_mean"] for p in meta["phases"]],
            })
        pictures.append((name, reference, ensembles))

    header = ("| micrograph | start | samples | largest vf error | collapsed (> 0.1) | CLD per phase | "
              "coherence per phase (reference) | s / sample |\n|---|---|---|---|---|---|---|---|")
    lines = [f"| {r['micrograph']} | {r['variant']} | {r['samples']} of {r['shape'][0]}x{r['shape'][1]} | "
             f"{r['largest_vf_error']:.4f} | {r['collapsed']} | {'; '.join(f'{d:.3f}' for d in r['chord_distance'])} | "
             + "; ".join(f"{c:.2f} ({q:.2f})" for c, q in zip(r["coherence"], r["reference_coherence"]))
             + f" | {'' if r['seconds_per_sample'] is None else format(r['seconds_per_sample'], '.1f')} |"
             for r in records]
    intro = (f"Continuous against segmented GRF starts for 3-phase hybrids, guard off, seed {args.seed}, "
             f"{torch.get_num_threads()} CPU thread(s). CLD: chord-length-distribution distance to the reference "
             "(total variation, larger of x and y); coherence: boundary coherence of each phase "
             "(the reference's in brackets). `benchmarks/three_phase_start.py`.")
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    emit_table(intro + "\n\n" + header + "\n" + "\n".join(lines) + "\n", output.with_suffix(".md"))
    with atomic_write(output.with_suffix(".json"), "w") as handle:
        json.dump({"records": records}, handle, indent=1)
    shown = min(args.samples, 2)
    for name, reference, ensembles in pictures:  # one row per variant, the reference first
        height, width = next(iter(ensembles.values())).shape[-2:]  # one figure pixel per sample pixel at dpi 100
        fig, axes = plt.subplots(len(ensembles) + 1, shown, squeeze=False,
                                 figsize=(1.1 * shown * width / 100, (len(ensembles) + 1) * (height / 100 + 0.4)))
        show_microstructures([reference[0]], [f"{name}: reference"], axes=[axes[0, 0]])
        for ax in axes[0, 1:]:
            ax.axis("off")
        for row, (label, ensemble) in enumerate(ensembles.items(), start=1):
            show_microstructures(list(ensemble[:shown]), [f"{label} {k}" for k in range(shown)], axes=list(axes[row]))
        for ax in axes.flat:
            ax.title.set_fontsize(9)
        fig.tight_layout()
        with atomic_write(Path(f"{output}_{name}.png")) as handle:
            fig.savefig(handle, format="png", dpi=100)
        plt.close(fig)

if __name__ == "__main__":
    main()
