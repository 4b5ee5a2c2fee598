"""Render case study 1 (two phases) at full size for chapter 7: figures, a table and a summary.

The chapter executes at cheap parameters on every build (64 x 64 px, a few samples); this script
draws the full ensembles once and writes, into `book/figures/case1/` (or --output):

* `samples.png`: reference, an unconditional SBG sample, and GRF samples next to the same samples
  after refinement (the hybrid);
* the figures of `lgtutorial.compare(...).figures()` (volume fractions, x/y chord lengths, 2-point
  slices and error maps with the patch box, 3-point PCA), one PNG each;
* `table.md`: our numbers next to the paper's, the Table-1-style chord lengths, the done criterion
  and the full comparison table; `summary.json`: the same numbers for the chapter to read.

    LGTUTORIAL_DATA=../shared/data python book/figures/make_case_study_1.py --samples 32 --sbg-samples 8
    python book/figures/make_case_study_1.py --size 64 --samples 4 --sbg-samples 2 --output /tmp/case1
    python book/figures/make_case_study_1.py --sampler faithful ...   # the paper's 568 Langevin steps

Hybrid and SBG use this project's model `lgtutorial-case1` (``--model``); ``--authors`` adds a
column refined by the authors' published checkpoint (with their +0.0073 likelihood shift).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import torch  # noqa: E402

from lgtutorial import HybridGenerator, compare, load_reference  # noqa: E402
from lgtutorial._checks import resolve_device  # noqa: E402
from lgtutorial._io import save_figure, save_text  # noqa: E402
from lgtutorial.evaluation.criteria import chord_table, chords_closer, fine_phases  # noqa: E402
from lgtutorial.grf.field import statistics_row  # noqa: E402
from lgtutorial.plotting import show_microstructures  # noqa: E402
from lgtutorial.score.registry import load_score_model  # noqa: E402

#: Case study 1 as the paper reports it (Robertson et al. 2023, Section 5.1.1 and Appendix B; SPEC section 6).
PAPER = {
    "reference_volume_fraction": 0.379, "n_samples": 200, "patch_size": 40,
    "hybrid": (0.379, 0.001), "SBG (vf term)": (0.377, 0.004), "SBG (no vf term)": (0.370, 0.007),
    "hybrid (no vf term)": (0.341, 0.009), "hybrid_seconds_per_sample_V100": (1.9, 0.6),
}


def generator_options(sigmas, levels, sampler) -> dict:
    """Schedule options for HybridGenerator: the sampler, and ``levels`` when given (else the sampler's)."""
    options = {"sigmas": sigmas, "sampler": sampler}
    if levels:
        options["levels"] = levels
    return options


def done_criterion(comparison, *, patch_size: int, paper_spread: float) -> dict:
    """The issue's check: the hybrid's chord lengths closer to the reference's than the GRF's for every
    fine phase (:func:`lgtutorial.evaluation.criteria.fine_phases`: reference mean chord at most half the patch)
    along x and y, measured as the total-variation distance between the distributions
    (:func:`lgtutorial.evaluation.criteria.chords_closer`; the mean chord of a periodic 2-phase structure is
    fixed by its 1- and 2-point statistics, which the GRF matches), and the hybrid's mean volume
    fraction within the paper's reported spread (1 sigma) of the reference's."""
    rows = {(r["model"], r["phase"]): r for r in comparison.rows}
    fine = fine_phases(comparison, patch_size)
    checks = chords_closer(comparison, "hybrid", "GRF")["checks"]
    phases, chords_ok = {}, True
    for index, phase in enumerate(comparison.phase_names):
        reference = rows[("reference", phase)]
        result = {"fine": index in fine}
        for axis in ("x", "y"):
            check = checks[phase, axis]
            result[f"{axis}_distribution_distance"] = {m: check[m] for m in ("GRF", "hybrid")}
            result[f"{axis}_mean_error_px"] = {m: rows[(m, phase)][f"chord_{axis}_mean"] - reference[f"chord_{axis}_mean"]
                                               for m in ("GRF", "hybrid")}
            result[f"{axis}_hybrid_closer"] = check["closer"]
            chords_ok &= (not result["fine"]) or check["closer"]
        phases[phase] = result
    last = comparison.phase_names[-1]
    error = rows[("hybrid", last)]["volume_fraction_error"]
    vf_ok = abs(error) <= paper_spread
    return {"phases": phases, "chords_closer_for_every_fine_phase": bool(chords_ok),
            "volume_fraction_error": error, "volume_fraction_std": rows[("hybrid", last)]["volume_fraction_std"],
            "paper_spread": paper_spread, "volume_fraction_within_paper_spread": bool(vf_ok),
            "holds": bool(chords_ok and vf_ok)}


def criterion_table(check: dict) -> str:
    """One line per phase and axis: distribution distances and mean-chord errors of GRF and hybrid."""
    lines = ["| phase | axis | TV distance GRF | TV distance hybrid | mean error GRF (px) | mean error hybrid (px) |",
             "|---|---|---|---|---|---|"]
    for phase, result in check["phases"].items():
        for axis in ("x", "y"):
            tv, mean = result[f"{axis}_distribution_distance"], result[f"{axis}_mean_error_px"]
            lines.append(f"| {phase}{'' if result['fine'] else ' (coarse)'} | {axis} | {tv['GRF']:.3f} | "
                         f"{tv['hybrid']:.3f} | {mean['GRF']:+.2f} | {mean['hybrid']:+.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256, help="side of the samples (px); the paper: 256")
    parser.add_argument("--samples", type=int, default=32, help="GRF and hybrid samples (the paper: 200)")
    parser.add_argument("--sbg-samples", type=int, default=8, help="unconditional SBG samples")
    parser.add_argument("--sampler", default="fast",
                        help="'fast' (reverse-SDE, about 50 network evaluations from sigma_c) or 'faithful' (the "
                             "paper's annealed Langevin over the 1000-level schedule, 568)")
    parser.add_argument("--levels", type=int, default=None, help="levels of the noise schedule (default: the sampler's)")
    parser.add_argument("--model", default="lgtutorial-case1", help="score model for hybrid and SBG")
    parser.add_argument("--authors", action="store_true", help="add a hybrid column refined by the authors' model")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--output", type=Path, default=Path(__file__).with_name("case1"))
    args = parser.parse_args()

    device = resolve_device(args.device)
    reference, meta = load_reference("nbsa-proxy")
    row, shape = statistics_row(reference), (args.size, args.size)
    model, sigmas = load_score_model(args.model, device=device)
    options = generator_options(sigmas, args.levels, args.sampler)
    # the model carries its volume-fraction shift (the authors': 0.0073 under iterate-measuring samplers)
    hybrid = HybridGenerator.from_statistics(row, model, shape=shape, device=device, **options)
    # from noise the generator runs the sampler's from-noise variant (samplers.FROM_NOISE)
    sbg = HybridGenerator.from_statistics(row, model, shape=shape, device=device, sigma_c=None,
                                          volume_fraction_estimate="mean", **options)
    seconds, ensembles = {}, {}

    started = time.perf_counter()
    hybrid.field.sample(args.samples, generator=torch.Generator(device=device).manual_seed(args.seed),
                        segmentation="preserve")
    seconds["GRF"] = (time.perf_counter() - started) / args.samples
    started = time.perf_counter()
    result = hybrid.sample(args.samples, seed=args.seed, batch_size=args.batch_size, return_grf=True)
    seconds["hybrid"] = (time.perf_counter() - started) / args.samples
    ensembles["GRF"], ensembles["hybrid"] = result.grf.cpu(), result.microstructures.cpu()
    started = time.perf_counter()
    ensembles["SBG"] = sbg.sample(args.sbg_samples, seed=args.seed + 1, batch_size=args.batch_size).microstructures.cpu()
    seconds["SBG"] = (time.perf_counter() - started) / args.sbg_samples
    if args.authors:
        authors, authors_sigmas = load_score_model("nbsa-authors-checkpoint", device=device)
        other = HybridGenerator.from_statistics(
            row, authors, shape=shape, device=device, **generator_options(authors_sigmas, args.levels, args.sampler))
        started = time.perf_counter()
        ensembles["hybrid (authors' model)"] = other.sample(args.samples, seed=args.seed,
                                                            batch_size=args.batch_size).microstructures.cpu()
        seconds["hybrid (authors' model)"] = (time.perf_counter() - started) / args.samples

    comparison = compare(reference, ensembles, patch_size=PAPER["patch_size"], reference_periodic=meta["periodic"],
                         phase_names=meta["phases"])
    args.output.mkdir(parents=True, exist_ok=True)
    shown = min(3, args.samples)
    pictures = [reference[0, :, : args.size, : args.size], ensembles["SBG"][0]]
    titles = ["reference" + (" (crop)" if args.size < reference.shape[-1] else ""), "SBG (unconditional)"]
    for k in range(shown):
        pictures += [ensembles["GRF"][k], ensembles["hybrid"][k]]
        titles += [f"GRF {k}", f"hybrid {k} (GRF {k} refined)"]
    fig_axes = show_microstructures(pictures, titles, size=3.0)
    figure = fig_axes[0].figure
    save_figure(figure, args.output / "samples.png", dpi=80)
    for stem, figure in comparison.figures().items():
        save_figure(figure, args.output / f"{stem}.png", dpi=80)

    check = done_criterion(comparison, patch_size=PAPER["patch_size"], paper_spread=PAPER["hybrid"][1])
    provenance = getattr(model, "provenance", {})
    schedule = (f"{args.sampler} sampler, {hybrid.evaluations_per_sample} network evaluations per hybrid sample, "
                f"{sbg.evaluations_per_sample} per SBG sample")
    heading = (f"{args.size}x{args.size} px; {args.samples} GRF and hybrid samples, {args.sbg_samples} SBG samples; "
               f"score model {args.model}" + (f" ({provenance['steps_done']:,} of {provenance['steps_planned']:,} "
                                             "training steps)" if provenance else "") + f"; {schedule}; on {device}")
    ours = {name: (float(comparison.volume_fractions[name][:, 1].mean()), float(comparison.volume_fractions[name][:, 1].std()))
            for name in ensembles}
    reference_vf = float(comparison.volume_fractions["reference"][0, 1])
    vf_lines = ["| | ours: γ′ volume fraction | paper |", "|---|---|---|",
                f"| reference | {reference_vf:.4f} (the stand-in) | {PAPER['reference_volume_fraction']} |",
                f"| GRF | {ours['GRF'][0]:.4f} ± {ours['GRF'][1]:.4f} | exact by construction |",
                f"| hybrid | {ours['hybrid'][0]:.4f} ± {ours['hybrid'][1]:.4f} | {PAPER['hybrid'][0]} ± {PAPER['hybrid'][1]} |",
                f"| SBG (vf term) | {ours['SBG'][0]:.4f} ± {ours['SBG'][1]:.4f} | {PAPER['SBG (vf term)'][0]} ± "
                f"{PAPER['SBG (vf term)'][1]} |"]
    if "hybrid (authors' model)" in ours:
        mean, std = ours["hybrid (authors' model)"]
        vf_lines.append(f"| hybrid (authors' model) | {mean:.4f} ± {std:.4f} | {PAPER['hybrid'][0]} ± {PAPER['hybrid'][1]} |")
    verdict = "holds" if check["holds"] else "does not hold"
    text = "\n\n".join([
        f"# Case study 1: hybrid, GRF and SBG ensembles\n\n{heading}.",
        "## Volume fractions (the paper: 200 samples, V100)\n\n" + "\n".join(vf_lines),
        "## Chord lengths and feature size (Table-1 style)\n\n" + chord_table(comparison, ["reference", "GRF", "hybrid"], volume_fraction=True),
        f"## Done criterion: {verdict}\n\nHybrid chord length distributions closer to the reference's than the GRF's "
        f"(total variation, x and y) for every fine phase: {check['chords_closer_for_every_fine_phase']}; hybrid mean "
        f"volume fraction within ±{check['paper_spread']} of the reference: "
        f"{check['volume_fraction_within_paper_spread']} (error {check['volume_fraction_error']:+.4f}).\n\n"
        + criterion_table(check),
        f"## Seconds per sample on {device}\n\n" + ", ".join(f"{k}: {v:.2f}" for k, v in seconds.items()),
        "## Every statistic\n\n" + comparison.to_markdown(),
    ])
    save_text(args.output / "table.md", text + "\n")
    summary = {"settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
               "device": str(device), "heading": heading, "levels_run": len(hybrid.sigmas),
               "network_evaluations_per_sample": {"hybrid": hybrid.evaluations_per_sample, "SBG": sbg.evaluations_per_sample},
               "model_provenance": {k: provenance[k] for k in ("name", "preset", "steps_done", "steps_planned",
                                                                "wall_time_s", "device") if k in provenance},
               "seconds_per_sample": seconds, "volume_fraction_phase1": ours, "reference_volume_fraction": reference_vf,
               "rows": comparison.rows, "criterion": check, "paper": PAPER}
    save_text(args.output / "summary.json", json.dumps(summary, indent=2, default=float) + "\n")
    print(text)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
