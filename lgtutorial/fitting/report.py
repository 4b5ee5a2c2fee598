"""The report of a fit: ``report.md`` and ``summary.json`` in its folder.

:func:`_write_report` writes the plan's reasons, the checks (:mod:`lgtutorial.fitting.checks`) as a
list and a table per phase with what each measure means, which phases touch (:func:`_contact_lines`,
three or more phases), what to look at before trusting the samples, the time spent and how to reuse
the bundle; ``summary.json`` holds the same checks, times and plan for scripts.
"""

from __future__ import annotations

import json
from pathlib import Path

from lgtutorial.fitting.checks import REGION_TOLERANCE_DECADES, _judged_by_mean


def _contact_lines(contacts) -> list:
    """The report's section on which phases touch (three or more phases), or nothing."""
    if not contacts or not contacts["lags"]:
        return []
    lags = contacts["lags"]
    pairs = {pair: chances for pair, chances in contacts.items() if pair != "lags"}
    lines = ["", "## Which phases touch", "",
             "| phase -> phase | " + " | ".join(f"{r} px: reference / GRF / hybrid" for r in lags) + " |",
             "|---|" + "---|" * len(lags)]
    for pair, chances in pairs.items():
        lines.append(f"| {pair} | " + " | ".join(" / ".join(f"{chances[m][k]:.3f}" for m in ("reference", "GRF", "hybrid"))
                                              for k in range(len(lags))) + " |")
    apart = [pair for pair, chances in pairs.items() if chances["reference"][0] < 0.005]
    lines += ["", "The chance that the pixel r px from a pixel of the first phase is of the second. "
              + (f"The reference keeps {', '.join(apart)} apart (under 0.005 at {lags[0]} px): a Gaussian random "
                 "field cannot hold such an exclusion, and the hybrid must learn it; compare its column with the "
                 "reference's." if apart else "No pair of phases is kept apart in the reference.")]
    return lines


def _training_line(training: dict) -> str:
    """What the training did: steps, time and measured speed (a budget's steps against its expectation)."""
    speed = training.get("steps_per_second", float("nan"))
    rate = f" ({speed:.2f} steps/s measured over the run)" if speed == speed else ""
    if training.get("budget_minutes") is not None:
        return (f"Training: {training['steps_done']:,} steps in {training['wall_time_s'] / 60:.1f} min of a "
                f"{training['budget_minutes']:g} min budget{rate}; the speed measured when planning promised about "
                f"{training['steps_expected']:,}.")
    return (f"Training: {training['steps_done']:,} of {training['steps_planned']:,} planned steps in "
            f"{training['wall_time_s'] / 60:.1f} min{rate}"
            + (" (the time limit stopped it early: this machine ran slower than measured at the start)."
               if training["stopped_at_time_limit"] else "."))


def _write_report(output, name, micrograph, plan, model_path, checks, seconds, training):
    from lgtutorial._io import atomic_write

    def yes(flag):
        return "yes" if flag else "**no**"

    try:
        shown = model_path.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        shown = model_path
    lines = [f"# lgtutorial fit: {name}", "", f"Micrograph: `{micrograph}`.", "", "## Plan", "", plan.describe(), "",
             *([f"Global layer: **{checks['global_layer']}** ({checks['global_layer_reason']})"
                + ("; the GRF column below is the oriented layer's starts: laths painted into the GRF's colonies"
                   if checks["global_layer"] == "oriented" else ""), ""] if "global_layer" in checks else []),
             "## Checks", "",
             f"- volume fractions of the hybrid samples within 0.01 of the reference's: "
             f"{yes(checks['volume_fractions_within_0.01'])} (largest error {checks['largest_volume_fraction_error']:.4f})",
             f"- chord-length distributions of the hybrid closer to the reference's than the GRF's, for every phase: "
             f"{yes(checks['hybrid_chords_closer_than_grf_for_every_phase'])}" + _judged_by_mean(checks),
             f"- connected regions of the hybrid (cells, networks, particles) as large as the reference's, within "
             f"its halves' spread + {REGION_TOLERANCE_DECADES} decade, for every phase: "
             f"{yes(checks['hybrid_regions_like_reference_for_every_phase'])}",
             f"- no degenerate sample: {yes(checks['no_degenerate_sample'])}"
             + (f" (redone with the faithful sampler: {checks['recovered_samples']})" if checks["recovered_samples"] else ""),
             "", "| phase | CLD distance GRF | CLD distance hybrid | reference's halves | mean chord px x; y: reference "
             "| GRF | hybrid | region size px reference | "
             "GRF | hybrid | region distance GRF | hybrid | reference's halves | coherence reference | GRF | hybrid |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    halves = checks.get("chord_distance_halves", {})
    for phase, d in checks["chord_distances"].items():
        c, r, rd = checks["coherence"][phase], checks["region_sizes"][phase], checks["region_distances"][phase]
        floor = f"{halves[phase]:.3f}" if phase in halves else "-"
        chords = " | ".join(f"{m['x']:.1f}; {m['y']:.1f}" for m in checks["mean_chords"][phase].values())
        lines.append(f"| {phase} | {d['GRF']:.3f} | {d['hybrid']:.3f} | {floor} | {chords} | "
                     f"{r['reference']:.0f} | {r['GRF']:.0f} | "
                     f"{r['hybrid']:.0f} | {rd['GRF']:.2f} | {rd['hybrid']:.2f} | "
                     f"{checks['region_distance_halves'][phase]:.2f} | {c['reference']:.3f} | "
                     f"{c['GRF']:.3f} | {c['hybrid']:.3f} |")
    lines += ["", "CLD distance: total variation between chord-length distributions (the larger of x and y; 0 equal, "
              "1 disjoint). Reference's halves: the same distance between the top and bottom halves of the "
              "micrograph; distances near it are at the measure's resolution for this micrograph (a phase of few, "
              "long chords, such as the matrix around sparse particles, has a large one). Where the GRF's and the "
              "hybrid's distances both lie within it, the check compares the mean chord instead: the phase's pixels "
              "per place where it ends, along x and along y (unbiased on a cut-out micrograph even for chords as "
              "long as the image, which dropping the chords at its edges is not). Region size: the connected "
              "region a pixel of the phase belongs to (median over its pixels); region distance: how far the "
              "distributions of log10 region size lie apart, in decades (0.3: twice as large or small). It tells "
              "closed grains from grains that run into one another through broken boundaries, separate particles "
              "from merged ones, and features from speckle, which chord lengths miss. Coherence: how well "
              "aligned the phase boundaries are (1: parallel laths or lamellae).",
              *_contact_lines(checks.get("phase_contacts")),
              "", "## Before you trust the samples", "",
              "- Look at `samples.png` at full resolution: do the hybrid samples show the reference's kind of "
              "features, or speckle?",
              "- The volume fractions and the chord distances above are necessary, not sufficient; the full table is "
              "`comparison.md`, the figures are beside it.",
              "- A short CPU budget gives a young model: if the features are not there, run again with more "
              "`--minutes` or on a GPU.",
              "", "## Time", "",
              ", ".join(f"{k.replace('_', ' ')} {v / 60:.1f} min" for k, v in seconds.items()) + ".", "",
              _training_line(training), "",
              "## Reuse", "", f"`lgtutorial generate --model {shown.as_posix()}` draws more samples of this material "
              "(the bundle carries the micrograph's statistics); the model card is beside it.", ""]
    with atomic_write(output / "report.md", "w") as handle:
        handle.write("\n".join(lines))
    with atomic_write(output / "summary.json", "w") as handle:
        handle.write(json.dumps({"name": name, "micrograph": str(micrograph), "model": str(model_path),
                                 "checks": checks, "seconds": seconds, "training": training,
                                 "plan": list(plan.reasons)}, indent=2,
                                default=str))
