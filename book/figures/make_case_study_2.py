"""Render the full-size results of case study 2 (three phases, Ti-6Al-4V) shown in chapter 8.

The chapter executes at CI parameters on every build (64 x 64 samples, two of them); this script
draws a larger ensemble with the project's 3-phase score model and writes, into `book/figures/case2/`:

* `samples.png` (reference crop, unconditional SBG, the GRF sample, its segmentation, the hybrid
  refined from it) and `pairs.png` (GRF samples above the hybrid samples refined from them);
* every figure of `lgtutorial.compare(...).figures()`: volume fraction histograms, 2-point slices
  and error maps with the patch box, x/y chord length distributions, 3-point PCA;
* `table.md` (Table-1-style chord lengths next to the paper's, and the full comparison table) and
  `summary.json` (settings, timings, volume fractions, chord lengths, the done-criterion).

    LGTUTORIAL_DATA=../shared/data python book/figures/make_case_study_2.py --overwrite \\
        [--model lgtutorial-case2] [--sampler fast] [--samples 8] [--size 400 512] [--device auto]

The defaults (8 hybrid samples and 1 SBG sample on the full 400 x 512 grid, the fast sampler: 43
network evaluations per hybrid sample on the 50 -> 0.01 schedule, 72 per SBG sample) take about 10-15 minutes on two idle CPU
cores (one 400 x 512 evaluation of the L_c = 48, D = 2 model costs about a second there); far less on
a GPU. On a CPU shared with other jobs, OMP_NUM_THREADS=1 avoids oversubscription.

Sides plus twice the 16 px periodic padding must be multiples of 2**depth (4 for the D = 2 model):
400 x 512, 256 x 256 and 64 x 64 all are. The hybrid refines the segmented GRF sample, the
project's default for the fast sampler; the paper refines the continuous field for three phases
(Robertson et al. 2023, Section 5.3). With the interim weights the two starts ended within 0.011 in
chord-length-distribution distance (benchmarks/results/three_phase_start_cpu_ti.md); with the finished
model the continuous start turned one of four full-size samples into a single phase and left the
matrix chords no closer than the GRF's (three_phase_start_cpu_ti_shipped.md), so the segmented start
is used and the GRF ensemble in the comparison is exactly the starts the hybrid refined.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from lgtutorial import HybridGenerator, compare, load_reference  # noqa: E402
from lgtutorial._checks import resolve_device  # noqa: E402
from lgtutorial._io import fresh_directory, save_figure, save_text  # noqa: E402
from lgtutorial.evaluation.criteria import chord_table_by_phase, chords_closer  # noqa: E402
from lgtutorial.grf.field import statistics_row  # noqa: E402
from lgtutorial.plotting import full_resolution_dpi, show_microstructures  # noqa: E402
from lgtutorial.sampling.samplers import SAMPLERS  # noqa: E402
from lgtutorial.score.checkpoints import load_checkpoint  # noqa: E402
from lgtutorial.score.registry import load_score_model  # noqa: E402

#: Names of the phases in the paper's figures, in the reference's channel order.
PHASE_NAMES = ("yellow", "teal", "dark blue")
#: The fine (lath) phases; the teal matrix is the coarse one.
FINE_PHASES = (0, 2)
#: Robertson et al. 2023, Section 5.3 and Table 1 (x-chord lengths in pixels, mean and std).
PAPER = {
    "reference_volume_fractions": (0.254, 0.564, 0.189),
    "hybrid_volume_fraction_error": ((-0.008, 0.008), (0.007, 0.01), (0.002, 0.005)),
    "x_chord": {
        "reference": ((3.1, 2.8), (48.0, 52.0), (2.0, 1.5)),
        "GRF": ((5.7, 5.3), (13.0, 20.0), (5.3, 5.9)),
        "hybrid": ((3.0, 2.8), (53.0, 46.0), (2.1, 1.6)),
    },
    "seconds_per_hybrid_sample": (16.3, 0.6),
    "n_samples": 200,
    "device": "V100 GPU",
}
DEFAULT_MODEL = "lgtutorial-case2"


def load_model(name_or_path: str, *, device):
    """``(model, sigmas, description)`` from a registry name or a training checkpoint path."""
    path = Path(name_or_path)
    if path.exists():
        model, sigmas, state = load_checkpoint(path, device=device)
        return model, sigmas, f"{path} (step {state.get('step')})"
    model, sigmas = load_score_model(name_or_path, device=device)
    return model, sigmas, name_or_path


def sampling_options(sampler: str, levels: int | None) -> dict:
    """Keyword arguments of the hybrid generator that choose the sampler (and, optionally, its
    number of levels over the model's whole noise range)."""
    return {"sampler": sampler} if levels is None else {"sampler": sampler, "levels": int(levels)}


def rows_by_model(comparison) -> dict:
    """``{(model, phase index): row}`` of a comparison's tidy table."""
    index = {name: k for k, name in enumerate(comparison.phase_names)}
    return {(row["model"], index[row["phase"]]): row for row in comparison.rows}


def chord_table(comparison, *, axis: str = "x") -> str:
    """Table 1 of the paper (mean +- std chord lengths, px) with this ensemble's rows beside it
    (:func:`lgtutorial.evaluation.criteria.chord_table_by_phase`, the paper's column order and, along x, its rows)."""
    order = (0, 2, 1)  # the paper's columns: yellow, dark blue, teal
    paper = ({f"{model}, paper": [PAPER["x_chord"][model][k] for k in order] for model in ("reference", "GRF", "hybrid")}
             if axis == "x" else None)
    return chord_table_by_phase(comparison, axis, order=order, corner="structures", label="{model}, ours (n = {n})",
                                extra_rows=paper) + "\n"


def done_criterion(comparison) -> dict:
    """The issue's check: for every fine phase the hybrid's mean x and y chord lengths are closer to
    the reference's than the GRF's (:func:`lgtutorial.evaluation.criteria.chords_closer` by mean), and every
    phase's mean volume fraction error is no larger than the paper's (|mean error| + std of the
    paper's hybrid ensemble)."""
    rows = rows_by_model(comparison)
    checks = chords_closer(comparison, "hybrid", "GRF", phases=FINE_PHASES, measure="mean")["checks"]
    chords = {}
    for phase in FINE_PHASES:
        for axis in ("x", "y"):
            key = f"chord_{axis}_mean"
            chords[f"{comparison.phase_names[phase]} {axis}"] = {
                "reference": rows["reference", phase][key], "GRF": rows["GRF", phase][key],
                "hybrid": rows["hybrid", phase][key],
                "hybrid_closer": checks[comparison.phase_names[phase], axis]["closer"],
            }
    fractions = {}
    for phase, (mean, std) in enumerate(PAPER["hybrid_volume_fraction_error"]):
        error = rows["hybrid", phase]["volume_fraction_error"]
        fractions[comparison.phase_names[phase]] = {
            "error": error, "allowed": abs(mean) + std, "within": bool(abs(error) <= abs(mean) + std),
        }
    return {
        "chords": chords,
        "volume_fractions": fractions,
        "hybrid_chords_closer_for_every_fine_phase": all(c["hybrid_closer"] for c in chords.values()),
        "volume_fractions_within_paper_spread": all(f["within"] for f in fractions.values()),
    }


def centre_crop(microstructure: torch.Tensor, shape) -> torch.Tensor:
    """The central ``shape`` window of ``(n, N, H, W)`` (the whole image when it is smaller)."""
    height, width = microstructure.shape[-2:]
    h, w = min(shape[0], height), min(shape[1], width)
    top, left = (height - h) // 2, (width - w) // 2
    return microstructure[..., top : top + h, left : left + w]


def parse_arguments(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL, help="registry name or training checkpoint path")
    parser.add_argument("--sampler", default="fast", choices=sorted(SAMPLERS),
                        help="sampler of the hybrid generator (lgtutorial.sampling.samplers.SAMPLERS)")
    parser.add_argument("--levels", type=int, default=None,
                        help="levels of the sampler's schedule over 50 -> 0.01 (default: the sampler's own)")
    parser.add_argument("--samples", type=int, default=8, help="hybrid (and paired GRF) samples")
    parser.add_argument("--sbg-samples", type=int, default=1, help="unconditional SBG samples (shown only)")
    parser.add_argument("--size", type=int, nargs=2, default=(400, 512), metavar=("H", "W"))
    parser.add_argument("--patch-size", type=int, default=48, help="side of the model's training patches (px)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--output", type=Path, default=Path(__file__).with_name("case2"))
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the files in --output (otherwise a non-empty folder gets a numbered sibling)")
    args = parser.parse_args(argv)
    if args.samples < 2:
        parser.error("--samples must be at least 2 (an ensemble needs a spread)")
    if args.sbg_samples < 0:
        parser.error("--sbg-samples must be non-negative")
    return args


def main(argv=None) -> Path:
    args = parse_arguments(argv)
    device = resolve_device(args.device)
    shape = tuple(args.size)
    reference, meta = load_reference("ti-alpha-beta")
    model, sigmas, model_description = load_model(args.model, device=device)
    row = statistics_row(reference)
    options = dict(shape=shape, sigmas=sigmas, device=device, **sampling_options(args.sampler, args.levels))
    # the segmented start (see above); checks the size against 2**depth
    hybrid = HybridGenerator.from_statistics(row, model, segment_grf=True, **options)
    sbg = HybridGenerator.from_statistics(row, model, sigma_c=None, condition_volume_fraction=False, **options)  # the generator runs the sampler's from-noise variant
    output = fresh_directory(args.output, overwrite=args.overwrite)

    started = time.perf_counter()
    samples = hybrid.sample(args.samples, seed=args.seed, batch_size=args.batch_size, return_grf=True)
    seconds_hybrid = (time.perf_counter() - started) / args.samples
    unconditional = None
    if args.sbg_samples:
        started = time.perf_counter()
        unconditional = sbg.sample(args.sbg_samples, seed=args.seed + 1, batch_size=args.batch_size)
        seconds_sbg = (time.perf_counter() - started) / args.sbg_samples
    # the GRF ensemble of the comparison: the segmented starts the hybrid refined
    hybrid_samples, grf = samples.microstructures.cpu(), samples.grf.cpu()

    comparison = compare(reference, {"GRF": grf, "hybrid": hybrid_samples}, patch_size=args.patch_size,
                         phase_names=list(PHASE_NAMES))
    for stem, figure in comparison.figures().items():
        save_figure(figure, output / f"{stem}.png", dpi=100)

    panels = [centre_crop(reference, shape)[0]]
    titles = ["reference (centre crop)" if shape != tuple(reference.shape[-2:]) else "reference"]
    if unconditional is not None:
        panels.append(unconditional.microstructures[0].cpu())
        titles.append("SBG alone (from noise)")
    panels += [grf[0], hybrid_samples[0]]
    titles += ["GRF start (segmented)", "hybrid (that start refined)"]
    axes = show_microstructures(panels, titles, size=3.2)
    axes[0].figure.suptitle(f"{shape[0]} x {shape[1]} px, seed {args.seed}", fontsize=9)
    # every pixel of the samples drawn (the laths are 2-3 px wide): about 200 dpi for 512 px
    save_figure(axes[0].figure, output / "samples.png", dpi=full_resolution_dpi(axes[0].figure))
    count = min(3, args.samples)
    fig, grid = plt.subplots(2, count, figsize=(3.2 * count, 6.6), squeeze=False)
    show_microstructures([grf[k] for k in range(count)], [f"GRF {k + 1}" for k in range(count)], axes=grid[0])
    show_microstructures([hybrid_samples[k] for k in range(count)], [f"hybrid {k + 1}" for k in range(count)],
                         axes=grid[1])
    fig.tight_layout()
    save_figure(fig, output / "pairs.png", dpi=full_resolution_dpi(fig))

    criterion = done_criterion(comparison)
    evaluations = hybrid.evaluations_per_sample
    save_text(output / "table.md", (
        f"x-chord lengths (px), mean ± std over all chords; ours: {args.samples} samples of "
        f"{shape[0]} x {shape[1]} px (periodic), the reference non-periodic (edge chords dropped)\n\n"
        + chord_table(comparison, axis="x")
        + "\ny-chord lengths (px)\n\n" + chord_table(comparison, axis="y")
        + "\n" + comparison.to_markdown()
    ))
    rows = rows_by_model(comparison)
    summary = {
        "model": model_description,
        "model_settings": dataclasses.asdict(model.settings),
        "n_parameters": int(sum(p.numel() for p in model.parameters())),
        "sampling": {"start": "segmented GRF sample", "sampler": args.sampler, "levels": args.levels,
                     "levels_run": len(hybrid.sigmas),
                     "evaluations_per_sample": evaluations, "sbg_evaluations_per_sample": sbg.evaluations_per_sample,
                     "sigma_c": hybrid.sigma_c},
        "size": list(shape), "n_samples": args.samples, "n_sbg_samples": args.sbg_samples, "seed": args.seed,
        "patch_size": args.patch_size, "device": str(device), "torch_threads": torch.get_num_threads(),
        "seconds_per_sample": {"hybrid": seconds_hybrid, "sbg": seconds_sbg if args.sbg_samples else None},
        "phases": list(PHASE_NAMES),
        "reference_volume_fractions": [rows["reference", k]["volume_fraction_mean"] for k in range(3)],
        "target_volume_fractions": samples.target_volume_fractions.tolist(),
        "volume_fractions": {model_name: {"mean": [rows[model_name, k]["volume_fraction_mean"] for k in range(3)],
                                          "std": [rows[model_name, k]["volume_fraction_std"] for k in range(3)]}
                             for model_name in ("GRF", "hybrid")},
        "sbg_volume_fractions": (unconditional.achieved_volume_fractions.double().mean(0).tolist()
                                 if unconditional is not None else None),
        "chords": {axis: {model_name: {"mean": [rows[model_name, k][f"chord_{axis}_mean"] for k in range(3)],
                                       "std": [rows[model_name, k][f"chord_{axis}_std"] for k in range(3)]}
                          for model_name in ("reference", "GRF", "hybrid")} for axis in ("x", "y")},
        "feature_size": {model_name: [rows[model_name, k]["feature_size_mean"] for k in range(3)]
                         for model_name in ("reference", "GRF", "hybrid")},
        "done_criterion": criterion,
        "paper": PAPER,
    }
    save_text(output / "summary.json", json.dumps(summary, indent=2, default=_plain))
    print(chord_table(comparison))
    print(samples.report())
    print(f"hybrid: {seconds_hybrid:.1f} s per sample ({evaluations} network evaluations, {device}); "
          f"hybrid chords closer for every fine phase: {criterion['hybrid_chords_closer_for_every_fine_phase']}; "
          f"volume fractions within the paper's spread: {criterion['volume_fractions_within_paper_spread']}")
    print(f"wrote {output}")
    return output


def _plain(value):
    """JSON fallback for tensors."""
    if isinstance(value, torch.Tensor):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


if __name__ == "__main__":
    main()
