"""Quality per CPU-minute: train for fixed wall-clock budgets, then refine the same GRF starts.

For each training preset (recipe) and each budget, a score model is trained for that many minutes
(:func:`lgtutorial.score.step.steps_for_budget` turns minutes into steps on this machine, so the
learning-rate cycle spans the budget), then the hybrid generator refines the *same* GRF starts
(same statistics, same seed, same sampler) with it. Reported per model and phase: volume-fraction
error, total-variation distances between the chord-length distributions along x and y (whole
distributions, not means) and the boundary coherence (structure tensor; laths and lamellae score
high, speckle low), all against the reference; an optional fixed model (e.g. the authors'
published one) runs on the same starts as the reference line. Timings are recorded, never asserted.

Run (from the repository root; each training run resumes from its checkpoint if interrupted):

    python benchmarks/training_to_quality.py --reference nbsa-proxy \\
        --presets case1-cpu,case1-hybrid-cpu --minutes 5,20 --threads 2 \\
        --baseline nbsa-authors-checkpoint --output benchmarks/results/training_to_quality_case1_cpu
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import time
from pathlib import Path

import torch
from _report import emit_table

from lgtutorial import data
from lgtutorial._checks import resolve_device
from lgtutorial._io import atomic_write
from lgtutorial.evaluation.compare import compare
from lgtutorial.grf.field import statistics_row
from lgtutorial.sampling.hybrid import HybridGenerator
from lgtutorial.score.checkpoints import load_checkpoint
from lgtutorial.score.registry import load_score_model
from lgtutorial.score.settings import TRAINING_PRESETS, UNET_PRESETS
from lgtutorial.score.step import steps_for_budget
from lgtutorial.score.training import train_score_model


def refine(model, sigmas, row, *, size, n_samples, sampler, seed, device):
    """Hybrid samples and their GRF starts: the same starts for every model (same field, same seed)."""
    generator = HybridGenerator.from_statistics(row, model, shape=(size, size), sigmas=sigmas, sampler=sampler,
                                                device=device)
    started = time.perf_counter()
    out = generator.sample(n_samples, seed=seed, return_grf=True)
    return out.microstructures.cpu(), out.grf.cpu(), (time.perf_counter() - started) / n_samples


def measure(reference, ensembles, *, periodic, coherence_exclude, phases):
    comparison = compare(reference, ensembles, reference_periodic=periodic, coherence_exclude=coherence_exclude,
                         phase_names=phases, three_point_cutoff=4)
    return {(r["model"], r["phase"]): r for r in comparison.rows}


def plot(records: list[dict], path: str) -> None:
    """Chord-length-distribution distance (larger of x and y) and coherence against training minutes, one
    line per recipe and a column per phase; the GRF, any fixed model and the reference as horizontal lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lgtutorial._io import save_figure

    phases = list(dict.fromkeys(r["phase"] for r in records))
    fig, axes = plt.subplots(2, len(phases), figsize=(4 * len(phases), 6.5), squeeze=False)
    for column, phase in enumerate(phases):
        mine = [r for r in records if r["phase"] == phase]
        for row, (label, value) in enumerate((("CLD distance", lambda r: max(r["x_distance"], r["y_distance"])),
                                              ("coherence", lambda r: r["coherence"]))):
            ax = axes[row, column]
            for preset in dict.fromkeys(r["model"].rsplit(" ", 2)[0] for r in mine if r["train_minutes"] is not None):
                runs = sorted((r for r in mine if r["model"].startswith(preset + " ") and r["steps"]),
                              key=lambda r: r["train_minutes"])
                ax.plot([r["train_minutes"] for r in runs], [value(r) for r in runs], "o-", label=preset)
            for r in mine:
                if r["train_minutes"] is None and (r["model"] != "reference" or row == 1):
                    ls, colour = {"GRF": ("--", "0.4"), "reference": ("-", "tab:red")}.get(r["model"], (":", "k"))
                    ax.axhline(value(r), ls=ls, color=colour, lw=1, label=r["model"])
            ax.set_xlabel("training (min)")
            ax.set_ylabel(label)
            ax.set_title(phase, fontsize=9)
    axes[0, 0].legend(fontsize=7)
    axes[1, 0].legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path, dpi=100)  # atomically, then closed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reference", default="nbsa-proxy")
    parser.add_argument("--presets", default="case1-cpu,case1-hybrid-cpu")
    parser.add_argument("--minutes", default="5,20", help="comma-separated training budgets (minutes)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--baseline", default=None, help="a fixed model on the same starts (e.g. nbsa-authors-checkpoint)")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--sampler", default="fast")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--coherence-exclude", type=int, default=None)
    parser.add_argument("--work", type=Path, default=Path("lgtutorial-output/training-to-quality"))
    parser.add_argument("--output", default=None, help="stem of the .md/.json/.png results")
    parser.add_argument("--replot", default=None, help="only redraw the .png of this committed .json")
    args = parser.parse_args()
    if args.replot:
        plot(json.loads(Path(args.replot).read_text())["records"], str(Path(args.replot).with_suffix(".png")))
        return

    torch.set_num_threads(args.threads)
    device = resolve_device("auto")
    reference, meta = data.load(args.reference)
    periodic, phases = bool(meta.get("periodic", False)), meta["phases"]
    row = statistics_row(reference)
    results, ensembles = [], {}

    if args.baseline:
        model, sigmas = load_score_model(args.baseline, device=device)
        samples, grf, seconds = refine(model, sigmas, row, size=args.size, n_samples=args.samples,
                                       sampler=args.sampler, seed=args.seed, device=device)
        ensembles["GRF"], ensembles[args.baseline] = grf, samples
        results.append({"model": args.baseline, "preset": "baseline", "minutes": None, "steps": None,
                        "train_seconds": None, "sample_seconds": seconds})

    for preset in args.presets.split(","):
        for minutes in [float(m) for m in args.minutes.split(",")]:
            folder = args.work / f"{Path(args.reference).stem}-{preset}-{minutes:g}min-t{args.threads}"
            settings = TRAINING_PRESETS[preset]
            plan = folder / "plan.json"
            if plan.is_file():  # a resumed run keeps the steps it planned
                steps = json.loads(plan.read_text())["steps"]
            else:
                steps = steps_for_budget(UNET_PRESETS[preset], settings, minutes)
                folder.mkdir(parents=True, exist_ok=True)
                with atomic_write(plan, "w") as handle:
                    handle.write(json.dumps({"steps": steps, "minutes": minutes, "threads": args.threads}))
            settings = dataclasses.replace(settings, steps=steps, eval_every=max(1, steps // 4),
                                           checkpoint_every=max(1, steps // 8), device=str(device))
            print(f"== {preset}, {minutes:g} min: {steps} steps", flush=True)
            run = train_score_model(args.reference, model_settings=UNET_PRESETS[preset], training_settings=settings,
                                    output=folder, resume="if-present", progress=False)
            model, sigmas, state = load_checkpoint(folder, device=device)
            samples, grf, seconds = refine(model, sigmas, row, size=args.size, n_samples=args.samples,
                                           sampler=args.sampler, seed=args.seed, device=device)
            name = f"{preset} {minutes:g} min"
            ensembles.setdefault("GRF", grf)
            if not torch.equal(ensembles["GRF"], grf):
                raise RuntimeError("the GRF starts differ between models; the comparison would not be fair")
            ensembles[name] = samples
            results.append({"model": name, "preset": preset, "minutes": minutes, "steps": steps,
                            "train_seconds": state["provenance"]["wall_time_s"], "sample_seconds": seconds,
                            "test_loss": run.history["test_loss"][-1]})

    rows = measure(reference, ensembles, periodic=periodic, coherence_exclude=args.coherence_exclude, phases=phases)
    lines = [f"# Quality per CPU-minute: {args.reference}", "",
             f"{platform.processor() or platform.machine()}, {args.threads} torch threads, load average "
             f"{os.getloadavg()[0]:.1f}; {args.samples} samples of {args.size}x{args.size} px refined from the same GRF "
             f"starts (seed {args.seed}) with the '{args.sampler}' sampler; distances are total variation between "
             "chord-length distributions (0 equal, 1 disjoint); coherence is the boundary structure-tensor "
             "coherence (reference value in the reference row).", "",
             "| model | steps | train (min) | phase | vf error | x-CLD dist | y-CLD dist | coherence |",
             "|---|---|---|---|---|---|---|---|"]
    records = []
    for name in ["reference", "GRF"] + [r["model"] for r in results]:
        info = next((r for r in results if r["model"] == name), {})
        for phase in phases:
            r = rows[(name, phase)]
            record = {"model": name, "phase": phase, "steps": info.get("steps"),
                      "train_minutes": None if info.get("train_seconds") is None else info["train_seconds"] / 60,
                      "vf_error": r["volume_fraction_error"], "x_distance": r["chord_x_distance"],
                      "y_distance": r["chord_y_distance"], "coherence": r["coherence_mean"],
                      "sample_seconds": info.get("sample_seconds"), "test_loss": info.get("test_loss")}
            records.append(record)

            def cell(value, digits=3):
                return "" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"

            lines.append(f"| {name} | {record['steps'] or ''} | {cell(record['train_minutes'], 1)} | {phase} | "
                         f"{cell(record['vf_error'], 4)} | {cell(record['x_distance'])} | {cell(record['y_distance'])} | "
                         f"{cell(record['coherence'])} |")
    table = "\n".join(lines)
    emit_table(table, f"{args.output}.md" if args.output else None)
    if args.output:
        with atomic_write(f"{args.output}.json", "w") as handle:
            handle.write(json.dumps({"arguments": vars(args) | {"work": str(args.work)}, "records": records}, indent=2))
        plot(records, f"{args.output}.png")


if __name__ == "__main__":
    main()
