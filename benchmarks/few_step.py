"""Few-step samplers (ten network evaluations or fewer) against ``fast`` and ``faithful``, on identical GRF starts.

For each case (a score model and the micrograph whose statistics the GRF follows) one seeded draw of
segmented GRF starts is refined by every arm with :meth:`HybridGenerator.refine` (the sampler alone:
no collapse guard, no redo), each arm with its own seeded noise:

* ``case1-authors``: the authors' case-study-1 model (``nbsa-authors-checkpoint``), nbsa-proxy, 128 px;
* ``case1``: this project's ``lgtutorial-case1``, nbsa-proxy, 128 px;
* ``case2``: ``lgtutorial-case2`` (3 phases), ti-alpha-beta, 160 px.

Per arm: network evaluations per sample (counted by the generator), seconds per sample (after a
warm-up evaluation), the volume-fraction error (largest over the phases of |mean over the samples -
target|, and the mean over samples of each sample's largest error), the total-variation distance of
each sample's chord-length distribution from the reference's for every phase along x and y (mean over
samples), the RMS error of each phase's autocorrelation inside the 40 px patch box over v(1 - v)
(mean over phases), and the pixels kept from the GRF start. An arm "passes" the issue-41 row when its
volume-fraction error is at most 0.002 and each chord distance at most 1.25 x the ``fast`` arm's.

Run (each case a separate run of a few minutes on two threads):

    OMP_NUM_THREADS=2 python benchmarks/few_step.py --case case1 --samples 8 --faithful-samples 2 \\
        --output benchmarks/results/few_step_cpu

which writes (and merges into) ``few_step_cpu.md`` and ``few_step_cpu.json`` (``--case case1-authors``, ``case1``,
``case2`` each; the 256 px timing: ``--case case1-authors --label "case1-authors, 256 px: time per sample" --size 256
--samples 3 --faithful-samples 1 --arms faithful,fast,few-step,few-step-ode``; the lath check:
``benchmarks/lath_diagnosis.py --models lgtutorial-case2 --sampler few-step --sigmas 0.5 --starts 0.75:1 --samples 2
--refine-from 0.53 --output benchmarks/results/few_step_lath_few-step_cpu``). Numbers, not assertions.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from lgtutorial import data
from lgtutorial._io import atomic_write
from lgtutorial.grf.field import statistics_row
from lgtutorial.sampling.hybrid import HybridGenerator
from lgtutorial.sampling.samplers import SAMPLERS, with_options
from lgtutorial.sampling.samples import finalize
from lgtutorial.score.registry import load_score_model
from lgtutorial.statistics.chords import chord_distribution_distance, chord_lengths
from lgtutorial.statistics.two_point import two_point_statistics

CASES = {
    "case1-authors": ("nbsa-authors-checkpoint", "nbsa-proxy", 128),
    "case1": ("lgtutorial-case1", "nbsa-proxy", 128),
    "case2": ("lgtutorial-case2", "ti-alpha-beta", 160),
}
PATCH = 40
FEW = {"start_noise": 1.0, "denoise": True, "likelihood_on": "denoised", "likelihood_scale": 0.5, "channels_last": True,
       "segment_start": True}
#: Arms beyond the named samplers: candidates tried on the way to the named few-step ones (all down to the model's
#: smallest level, 0.01; the named ones stop at 0.1). Likelihood scales 0.125-4 and where the volume fraction is
#: measured were scanned for each on 3-4 starts; x0.5 on the denoised estimate was the best or near it for all.
CANDIDATES = {
    "ode-euler-9": with_options(SAMPLERS["faithful"], method="ode", solver="euler", steps=9, **FEW),
    "ode-heun-4": with_options(SAMPLERS["faithful"], method="ode", solver="heun", steps=4, **FEW),
    "ode-heun-4-edm": with_options(SAMPLERS["faithful"], method="ode", solver="heun", steps=4, spacing="edm", **FEW),
    "edm-heun-4-churn": with_options(SAMPLERS["faithful"], method="edm", solver="heun", steps=4, churn=2.0, **FEW),
    "edm-euler-9-churn": with_options(SAMPLERS["faithful"], method="edm", solver="euler", steps=9, churn=4.0, **FEW),
    "edm-heun-4-churn1": with_options(SAMPLERS["faithful"], method="edm", solver="heun", steps=4, churn=1.0, **FEW),
    "pc-3x3": with_options(SAMPLERS["fast"], levels=12),
    "pc-2x4": with_options(SAMPLERS["fast"], levels=8, corrector_steps=3),
}


def arm_configurations() -> dict:
    return {**SAMPLERS, **CANDIDATES}


def run_arm(configuration, row, model, sigmas, starts, *, seed: int, batch_size: int) -> dict:
    """Refine ``starts`` (model channels) with one configuration: one-hot samples, evaluations, seconds."""
    generator = HybridGenerator.from_statistics(row, model, shape=tuple(starts.shape[-2:]), sigmas=sigmas,
                                                sampler=configuration)
    side = (starts.shape[-2] + 2 * generator.padding, starts.shape[-1] + 2 * generator.padding)
    with torch.no_grad():
        generator.prior_score(torch.zeros(batch_size, starts.shape[1], *side), generator.sigmas[0])
    if generator.evaluations_per_sample <= 100:  # a whole untimed run first (one-off allocations), not for faithful
        generator.refine(starts[:batch_size], generator=torch.Generator().manual_seed(seed + 2))
    before, noise = generator.evaluations, torch.Generator().manual_seed(seed + 1)
    finals, started = [], time.perf_counter()
    for batch in starts.split(batch_size):
        finals.append(finalize(generator.refine(batch, generator=noise).nan_to_num(0.0), generator.n_phases))
    seconds = time.perf_counter() - started
    return {"samples": torch.cat(finals), "seconds": seconds / len(starts), "levels": len(generator.sigmas),
            "evaluations": (generator.evaluations - before) / len(starts), "claimed": generator.evaluations_per_sample}


def statistics(samples: torch.Tensor, reference: torch.Tensor, start: torch.Tensor) -> dict:
    """Per-arm statistics of one-hot ``(n, N, H, W)`` samples against the reference (see the module docstring)."""
    samples, reference = samples.double(), reference.double()
    target = reference.mean((0, 2, 3))
    errors = (samples.mean((2, 3)) - target).abs()  # (n, N)
    values = {"vf_error": float((samples.mean((0, 2, 3)) - target).abs().max()),
              "vf_error_per_sample": float(errors.max(1).values.mean()),
              "kept": float((samples.argmax(1) == start.argmax(1)).double().mean())}
    for axis in ("x", "y"):
        ours, theirs = (chord_lengths(m, axis=axis, periodic=True) for m in (samples, reference))
        for phase, chords in enumerate(ours):
            values[f"tv_{axis}_{phase}"] = float(chord_distribution_distance(chords, theirs[phase], per_sample=True).mean())
    cutoff = (min(samples.shape[-1], reference.shape[-1]) - 1) // 2
    lags = torch.fft.fftfreq(2 * cutoff + 1, d=1.0 / (2 * cutoff + 1)).abs()
    inside = torch.maximum(lags[:, None], lags[None, :]) <= PATCH // 2
    errors = []
    for phase in range(samples.shape[1]):
        auto = two_point_statistics(samples[:, phase:phase + 1], cutoff=cutoff)[:, 0, 0]
        ref = two_point_statistics(reference[:, phase:phase + 1], cutoff=cutoff)[0, 0, 0]
        v = float(target[phase])
        errors.append(float(((auto - ref) ** 2)[:, inside].mean(-1).sqrt().mean()) / (v * (1 - v)))
    values["two_point"] = sum(errors) / len(errors)
    return values


def table(case: str, rows: dict, header: str) -> str:
    phases = sorted({key.split("_")[2] for row in rows.values() for key in row if key.startswith("tv_")})
    chord_keys = [f"tv_{axis}_{p}" for p in phases for axis in ("x", "y")]
    fast = rows.get("fast")
    lines = [f"## {case}", "", header, "",
             "| arm | evaluations | s / sample | vf error (mean / per sample) | chord distances "
             f"({', '.join(f'phase {p} x, y' for p in phases)}) | 2-pt error | pixels kept | issue-41 row |",
             "|---|---|---|---|---|---|---|---|"]
    for name, row in rows.items():
        verdict = ""
        if fast is not None and name != "fast" and "tv_x_0" in row:
            close = all(row[k] <= 1.25 * fast[k] for k in chord_keys)
            verdict = "pass" if close and row["vf_error"] <= 0.002 and row["evaluations"] <= 10 else "no"
        chords = " ".join(f"{row[k]:.3f}" for k in chord_keys)
        timing = f"{row['seconds']:.2f}" if "seconds" in row else "-"
        vf = f"{row['vf_error']:.4f} / {row['vf_error_per_sample']:.4f}"
        lines.append(f"| {name} | {row.get('evaluations', 0):g} | {timing} | {vf} | {chords} | {row['two_point']:.4f} "
                     f"| {row['kept']:.3f} | {verdict} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=CASES, required=True)
    parser.add_argument("--label", default=None, help="key of this run in the results (default: the case)")
    parser.add_argument("--arms", default="faithful,fast,few-step,few-step-ode,ode-euler-9,edm-euler-9-churn",
                        help=f"comma-separated; of {', '.join(arm_configurations())}")
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--faithful-samples", type=int, default=2)
    parser.add_argument("--size", type=int, default=None, help="side of the samples (default: the case's)")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default=None, help="stem of the .md and .json to merge this case into")
    args = parser.parse_args(argv)
    arms = arm_configurations()
    names = [name.strip() for name in args.arms.split(",") if name.strip()]
    unknown = [name for name in names if name not in arms]
    if unknown:
        parser.error(f"unknown arms {unknown}; expected some of {', '.join(arms)}")
    model_name, reference_name, size = CASES[args.case]
    size = args.size or size
    model, sigmas = load_score_model(model_name)
    reference, _ = data.load(reference_name)
    row = statistics_row(reference)
    drawer = HybridGenerator.from_statistics(row, model, shape=(size, size), sigmas=sigmas, sampler="fast")
    starts = drawer.starting_points(args.samples, generator=torch.Generator().manual_seed(args.seed))
    start_one_hot = finalize(starts, drawer.n_phases)
    rows = {"GRF start": {**statistics(start_one_hot, reference, start_one_hot), "evaluations": 0}}
    for name in names:
        count = args.faithful_samples if name == "faithful" else args.samples
        result = run_arm(arms[name], row, model, sigmas, starts[:count], seed=args.seed, batch_size=args.batch_size)
        rows[name] = {**statistics(result["samples"], reference, start_one_hot[:count]),
                      **{k: v for k, v in result.items() if k != "samples"}, "n": count}
        print(name, {k: round(v, 4) if isinstance(v, float) else v for k, v in rows[name].items()}, flush=True)
    header = (f"{model_name}, {reference_name} statistics, {size} x {size} px, sigma_c = 0.75, {args.samples} GRF starts "
              f"(faithful: the first {args.faithful_samples}), seed {args.seed}, batch {args.batch_size} "
              f"({platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}). 'GRF start': the "
              "segmented starts themselves. Run: `python benchmarks/few_step.py "
              + " ".join(argv if argv is not None else __import__("sys").argv[1:]) + "`")
    print(table(args.label or args.case, rows, header))
    if args.output:
        stem = Path(args.output)
        stored = json.loads(stem.with_suffix(".json").read_text()) if stem.with_suffix(".json").exists() else {}
        stored[args.label or args.case] = {"header": header, "rows": rows}
        with atomic_write(stem.with_suffix(".json"), "w") as handle:
            handle.write(json.dumps(stored, indent=1))
        body = "\n\n".join(table(case, entry["rows"], entry["header"]) for case, entry in stored.items())
        with atomic_write(stem.with_suffix(".md"), "w") as handle:
            handle.write("# Few-step samplers on identical GRF starts (issue #41)\n\nMade by `benchmarks/few_step.py`; "
                         "see its docstring for the statistics.\n\n" + body + "\n")


if __name__ == "__main__":
    main()
