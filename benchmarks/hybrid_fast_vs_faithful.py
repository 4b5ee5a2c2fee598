"""The fast hybrid sampler against the paper-faithful one: cost and statistics, side by side.

One run draws GRF starting points of the nbsa-proxy statistics (case study 1, 2 phases) once and
refines them with each sampler configuration ("arm") on the same model (the authors' case-study-1
checkpoint), domain and seeds:

* ``faithful``: the paper's sampler (annealed Langevin on the 1000-level schedule below
  sigma_c = 0.75, one step per level: 568 network evaluations, float32, eager);
* ``fast``: :data:`lgtutorial.sampling.samplers.SAMPLERS` ``["fast"]`` (what ``lgtutorial generate`` uses);
* ``fast-compiled``: the same with ``torch.compile``;
* optionally the other named samplers (``--arms``; see ``ARMS``); the levers tried on the way to
  ``fast`` and what they measured are the table "What was tried" of chapter 5.

Cost: seconds per sample (after a warm-up evaluation; one-off set-up such as ``torch.compile`` is
timed separately), score evaluations per sample (counted by the generator, ``HybridGenerator.evaluations``,
not assumed), peak resident memory (Linux ``VmHWM``, reset before each arm) or peak CUDA memory.
Statistics, each per sample (mean +- std over the arm's samples) against the reference micrograph:
the gamma-prime volume fraction, mean x and y chord lengths of both phases, the total-variation
distance of each sample's x and y chord length distributions from the reference's (means are fixed
by the 2-point statistics, so only the distributions show whether the refinement reshaped the
features), and the RMS difference
of the gamma-prime autocorrelation from the reference's inside the patch box (|r_x|, |r_y| <= 20 px,
what the 40 px training patches shape) and outside it (the long range), in units of the
reference's lag-zero variance v(1 - v). A fast statistic passes when its distance from the
reference is at most the faithful arm's distance plus the faithful arm's sample spread.

Run: LGTUTORIAL_DATA=../shared/data python benchmarks/hybrid_fast_vs_faithful.py --size 256 \\
     --samples 8 --faithful-samples 3 [--arms faithful,fast,fast-compiled] [--threads 1] [--output FILE]
Prints Markdown tables (also written to --output; by default nothing is written, so the committed
benchmarks/results/hybrid_fast_vs_faithful_cpu*.md stay as they are); timings, not assertions.
Faithful 256 x 256 samples take minutes each on a CPU.
"""

from __future__ import annotations

import argparse
import math
import platform
import sys
import time

import torch
from _report import emit_table

from lgtutorial import load_reference
from lgtutorial._checks import resolve_device
from lgtutorial.grf.field import statistics_row
from lgtutorial.sampling.hybrid import HybridGenerator
from lgtutorial.sampling.samplers import SAMPLERS
from lgtutorial.sampling.samples import finalize
from lgtutorial.score.registry import load_score_model
from lgtutorial.statistics.chords import chord_distribution_distance, chord_lengths
from lgtutorial.statistics.two_point import two_point_statistics

MODEL = "nbsa-authors-checkpoint"
REFERENCE = "nbsa-proxy"
PATCH = 40  # side of the model's training patches (px)

#: Configurations that can be timed (``--arms``): the named samplers of :data:`lgtutorial.sampling.samplers.SAMPLERS`
#: (``faithful``, ``fast``, ``fast-compiled``, ``fast-sharp``, ``fast-v1``, ``fast-predictor-only``). The other
#: levers tried on the way to ``fast``, their evaluation counts and what the committed tables measured for
#: them are listed in chapter 5 (book/05_conditional_sampling.ipynb, "What was tried"); any of them can be
#: timed again by adding ``lgtutorial.sampling.samplers.with_options(SAMPLERS[...], ...)`` here.
ARMS = dict(SAMPLERS)


def peak_memory_reset(device: torch.device) -> float:
    """Reset the peak-memory counter; return the current use in MiB."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return torch.cuda.memory_allocated(device) / 2**20
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")  # resets VmHWM (Linux)
    except OSError:
        pass
    return _proc_status("VmRSS")


def peak_memory(device: torch.device) -> float:
    """Peak memory (MiB) since the last reset: CUDA allocations or the process's resident set."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return _proc_status("VmHWM")


def _proc_status(key: str) -> float:
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith(key + ":"):
                    return float(line.split()[1]) / 1024
    except OSError:
        pass
    return math.nan


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_arm(name, configuration, row, model, sigmas, starts, *, seed, batch_size, device) -> dict:
    """Refine ``starts`` with one configuration; time it, count evaluations, track memory."""
    setup_started = time.perf_counter()
    generator = HybridGenerator.from_statistics(
        row, model, shape=tuple(starts.shape[-2:]), sigmas=sigmas, sampler=configuration, device=device,
    )
    side = (starts.shape[-2] + 2 * generator.padding, starts.shape[-1] + 2 * generator.padding)
    with torch.no_grad():  # warm-up (and compilation) at the working size
        generator.prior_score(torch.zeros(batch_size, 1, *side, device=device), generator.sigmas[0])
    synchronize(device)
    setup = time.perf_counter() - setup_started
    counted = {"evaluations": -generator.evaluations}  # the generator counts one evaluation per sample in a batch
    noise = torch.Generator(device=device).manual_seed(seed + 1)
    baseline = peak_memory_reset(device)
    finals, started = [], time.perf_counter()
    for batch in starts.split(batch_size):
        x = generator.refine(batch.to(device), generator=noise).clamp(-3.0, 3.0)
        finals.append(finalize(x, generator.n_phases).cpu())
    synchronize(device)
    seconds = time.perf_counter() - started
    counted["evaluations"] += generator.evaluations
    samples = torch.cat(finals)
    print(f"{name}: {seconds / len(starts):.2f} s per sample, {counted['evaluations'] / len(starts):g} evaluations per sample",
          flush=True)
    return {
        "name": name,
        "configuration": configuration,
        "levels": len(generator.sigmas),
        "claimed": generator.evaluations_per_sample,
        "evaluations": counted["evaluations"] / len(starts),
        "seconds": seconds / len(starts),
        "setup": setup,
        "peak": peak_memory(device),
        "baseline": baseline,
        "samples": samples,
        "n": len(starts),
        "network_input": side,
    }


def per_sample_statistics(samples: torch.Tensor, reference: torch.Tensor, grf: torch.Tensor) -> dict:
    """``{statistic: (n,) float64}`` of one-hot ``(n, 2, H, W)`` samples against the reference."""
    samples = samples.double()
    stats = {"vf": samples[:, 1].mean((-2, -1))}
    for axis in ("x", "y"):
        reference_chords = chord_lengths(reference.double(), axis=axis, periodic=True)
        for phase, chords in enumerate(chord_lengths(samples, axis=axis, periodic=True)):
            stats[f"cld_{axis}_{phase}"] = chords.per_sample_mean()
            # total-variation distance of each sample's chord length distribution from the reference's
            stats[f"tv_{axis}_{phase}"] = chord_distribution_distance(chords, reference_chords[phase], per_sample=True)
    cutoff = (min(samples.shape[-1], reference.shape[-1]) - 1) // 2
    auto = two_point_statistics(samples[:, 1:2], cutoff=cutoff)[:, 0, 0]  # (n, L, L), FFT order
    ref = two_point_statistics(reference.double()[:, 1:2], cutoff=cutoff)[0, 0, 0]
    v = float(reference[:, 1].double().mean())
    lags = torch.fft.fftfreq(2 * cutoff + 1, d=1.0 / (2 * cutoff + 1)).abs()
    inside = torch.maximum(lags[:, None], lags[None, :]) <= PATCH // 2
    squared = (auto - ref) ** 2
    stats["two_point_inside"] = squared[:, inside].mean(-1).sqrt() / (v * (1 - v))
    stats["two_point_outside"] = squared[:, ~inside].mean(-1).sqrt() / (v * (1 - v))
    stats["kept"] = (samples.argmax(1) == grf.argmax(1)).double().flatten(1).mean(-1)
    return stats


def reference_statistics(reference: torch.Tensor) -> dict:
    ref = reference.double()
    values = {"vf": float(ref[:, 1].mean()), "two_point_inside": 0.0, "two_point_outside": 0.0, "kept": math.nan}
    values.update({f"tv_{axis}_{phase}": 0.0 for axis in ("x", "y") for phase in (0, 1)})
    for axis in ("x", "y"):
        for phase, chords in enumerate(chord_lengths(ref, axis=axis, periodic=True)):
            values[f"cld_{axis}_{phase}"] = chords.mean()
    return values


LABELS = {
    "vf": "gamma' volume fraction",
    "cld_x_0": "mean x chord, gamma (px)",
    "cld_y_0": "mean y chord, gamma (px)",
    "cld_x_1": "mean x chord, gamma' (px)",
    "cld_y_1": "mean y chord, gamma' (px)",
    "tv_x_0": "x chord distribution, gamma: TV distance",
    "tv_y_0": "y chord distribution, gamma: TV distance",
    "tv_x_1": "x chord distribution, gamma': TV distance",
    "tv_y_1": "y chord distribution, gamma': TV distance",
    "two_point_inside": "2-pt error inside the patch box",
    "two_point_outside": "2-pt error outside the patch box",
    "kept": "pixels kept from the GRF start",
}


def _pm(values: torch.Tensor, digits: int) -> str:
    std = float(values.std()) if len(values) > 1 else 0.0
    return f"{float(values.mean()):.{digits}f} +- {std:.{digits}f}"


def tables(arms: list[dict], reference_values: dict, statistics: dict, starts: dict, header: str) -> str:
    base = arms[0]
    cost = [
        "| configuration | levels run | score evaluations per sample (counted) | s per sample | one-off set-up (s) "
        "| peak memory (MiB) | network input | samples |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for arm in arms:
        cost.append(
            f"| {arm['name']} | {arm['levels']} | {arm['evaluations']:g} | {arm['seconds']:.2f} | {arm['setup']:.1f} "
            f"| {arm['peak']:.0f} (+{arm['peak'] - arm['baseline']:.0f}) | {arm['network_input'][0]}x{arm['network_input'][1]} "
            f"| {arm['n']} |"
        )
    for arm in arms[1:]:
        cost.append(
            f"| **{base['name']} / {arm['name']}** | | **{base['evaluations'] / arm['evaluations']:.1f}x** "
            f"| **{base['seconds'] / arm['seconds']:.1f}x** | | {base['peak'] / arm['peak']:.2f}x | | |"
        )
    names = [arm["name"] for arm in arms]
    quality = [
        "| statistic | reference | GRF starts | " + " | ".join(names) + " |",
        "|---|---|---|" + "---|" * len(names),
    ]
    for key, label in LABELS.items():
        digits = 4 if key in ("vf", "two_point_inside", "two_point_outside") else (
            3 if key == "kept" or key.startswith("tv_") else 2)
        reference_value = reference_values[key]
        cells = []
        base_values = statistics[base["name"]][key]
        base_std = float(base_values.std()) if len(base_values) > 1 else 0.0
        base_distance = abs(float(base_values.mean()) - reference_value) if key != "kept" else None
        for arm in arms:
            values = statistics[arm["name"]][key]
            cell = _pm(values, digits) if bool(torch.isfinite(values).all()) else "n/a"
            if arm is not base and base_distance is not None and math.isfinite(reference_value + base_distance):
                distance = abs(float(values.mean()) - reference_value)
                cell += " ok" if distance <= base_distance + base_std else " **worse**"
            cells.append(cell)
        shown = "" if math.isnan(reference_value) else f"{reference_value:.{digits}f}"
        start = "" if key == "kept" else (_pm(starts[key], digits) if bool(torch.isfinite(starts[key]).all()) else "n/a")
        quality.append(f"| {label} | {shown} | {start} | " + " | ".join(cells) + " |")
    notes = (
        f"Each arm refines the same GRF starting points (the first n of one seeded draw; 'GRF starts': all "
        f"{len(next(iter(starts.values())))} of them, unrefined) with its own seeded noise. "
        f"'ok': the arm's distance from the reference is at most the {base['name']} arm's distance plus its sample "
        "standard deviation ('worse' otherwise); the pixels kept from the GRF are reported, not judged. 2-point "
        "errors: RMS difference of the gamma' autocorrelation from the reference's, over lags inside "
        f"|r_x|, |r_y| <= {PATCH // 2} px (the training patch box) and outside it, over v(1 - v) of the reference. "
        "Peak memory: the process's peak resident set during the arm (in brackets: above the resident set when the "
        "arm started) or peak CUDA allocations. Timed on a machine shared with other jobs; run with "
        f"`{' '.join(['python', 'benchmarks/hybrid_fast_vs_faithful.py', *sys.argv[1:]])}`."
    )
    return "\n".join([header, "", *cost, "", *quality, "", notes])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256, help="side of the square samples (px)")
    parser.add_argument("--samples", type=int, default=8, help="samples of every arm but the faithful one")
    parser.add_argument("--faithful-samples", type=int, default=2, help="samples of the faithful arm")
    parser.add_argument("--arms", default="faithful,fast,fast-compiled", help=f"comma-separated, first is the baseline; of {', '.join(ARMS)}")
    parser.add_argument("--batch-size", type=int, default=1, help="samples refined at once (1 is fastest on a CPU)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default=None,
                        help="also write the tables to this Markdown file (default: print only)")
    args = parser.parse_args()
    names = [name.strip() for name in args.arms.split(",") if name.strip()]
    unknown = [name for name in names if name not in ARMS]
    if unknown or len(names) < 2:
        parser.error(f"--arms needs at least two of {', '.join(ARMS)}; got {args.arms!r}")
    if args.threads:
        torch.set_num_threads(args.threads)

    device = resolve_device(args.device)
    model, sigmas = load_score_model(MODEL, device=device)
    reference, _ = load_reference(REFERENCE)
    row = statistics_row(reference)
    counts = {name: args.faithful_samples if name == "faithful" else args.samples for name in names}
    drawer = HybridGenerator.from_statistics(row, model, shape=(args.size, args.size), sigmas=sigmas, sampler="faithful",
                                             device=device)
    starts = drawer.starting_points(max(counts.values()), generator=torch.Generator(device=device).manual_seed(args.seed))
    grf = torch.cat([1.0 - starts, starts], dim=1).cpu()

    arms, statistics = [], {}
    for name in names:
        arm = run_arm(name, ARMS[name], row, model, sigmas, starts[: counts[name]], seed=args.seed,
                      batch_size=args.batch_size, device=device)
        arms.append(arm)
        statistics[name] = per_sample_statistics(arm["samples"], reference, grf[: counts[name]])

    hardware = (
        f"GPU {torch.cuda.get_device_name(device)}" if device.type == "cuda"
        else f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch thread(s)"
    )
    header = (
        f"Fast vs faithful hybrid sampling: {MODEL}, {REFERENCE} statistics, {args.size}x{args.size} px, 2 phases, "
        f"sigma_c = 0.75, batch {args.batch_size} ({hardware}, torch {torch.__version__})"
    )
    starting = per_sample_statistics(grf, reference, grf)
    emit_table(tables(arms, reference_statistics(reference), statistics, starting, header), args.output or None)


if __name__ == "__main__":
    main()
