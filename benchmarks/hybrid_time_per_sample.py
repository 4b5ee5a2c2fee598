"""Hybrid sampling time per sample: the 2-phase case study with the authors' checkpoint.

One 256 x 256 hybrid sample (Section 3.3 of Robertson et al. 2023): a GRF sample of the nbsa-proxy
statistics, refined from sigma_c = 0.75 over the 1000-level schedule (568 network evaluations on a
288 x 288 periodic embedding) with the volume-fraction posterior. The paper reports 1.9 +- 0.6 s
per sample on a V100 GPU. The table also gives the volume fractions reached, since a fast but wrong
sampler is no use.

Run: LGTUTORIAL_DATA=../shared/data python benchmarks/hybrid_time_per_sample.py [--n-samples 2]
     [--batch-size 1] [--size 256] [--levels 1000] [--output benchmarks/results/hybrid_cpu.md]
Prints a Markdown table; timings, not assertions. One CPU sample takes minutes.
"""

from __future__ import annotations

import argparse
import platform
import time

import torch
from _report import emit_table

from lgtutorial import load_reference
from lgtutorial._checks import resolve_device
from lgtutorial.sampling.hybrid import HybridGenerator
from lgtutorial.score.registry import load_score_model

MODEL = "nbsa-authors-checkpoint"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=1, help="samples refined at once")
    parser.add_argument("--size", type=int, default=256, help="side of the square samples (px)")
    parser.add_argument("--levels", type=int, default=1000, help="levels of the full geometric schedule")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default=None, help="also write the table to this Markdown file")
    args = parser.parse_args()

    device = resolve_device(args.device)
    model, sigmas = load_score_model(MODEL, device=device)
    reference, _ = load_reference("nbsa-proxy")
    generator = HybridGenerator.from_reference(
        reference,
        model,
        sigmas=sigmas,
        shape=(args.size, args.size),
        sampler="faithful",
        levels=args.levels,
        device=device,
    )
    side = args.size + 2 * generator.padding
    with torch.no_grad():  # warm-up: one network evaluation at the working size
        generator.model.score(torch.zeros(args.batch_size, 1, side, side, device=device), generator.sigmas[0])
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    samples = generator.sample(args.n_samples, seed=args.seed, batch_size=args.batch_size, progress=True)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - start) / args.n_samples

    target = float(samples.target_volume_fractions[1])
    achieved = samples.achieved_volume_fractions[:, 1].double()
    hardware = (
        f"GPU {torch.cuda.get_device_name()}"
        if device.type == "cuda"
        else (
            f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch thread{'s' if torch.get_num_threads() > 1 else ''}"
        )
    )
    lines = [
        f"Hybrid sampling time per sample ({hardware}, torch {torch.__version__}; the paper: 1.9 +- 0.6 s on a V100)",
        "",
        "| model | domain | levels run | network input | batch | samples | s per sample | s per level "
        "| target vf | achieved vf (each sample) |",
        "|---|---|---|---|---|---|---|---|---|---|",
        f"| {MODEL} | {args.size}x{args.size} | {len(generator.sigmas)} of {args.levels} | {side}x{side} "
        f"| {args.batch_size} | {args.n_samples} | {seconds:.1f} | {seconds / len(generator.sigmas):.3f} "
        f"| {target:.4f} | {', '.join(f'{v:.4f}' for v in achieved.tolist())} |",
        "",
        "Reference statistics: nbsa-proxy (the stand-in for the case-study-1 micrograph); volume-fraction "
        f"posterior with the segmented estimate and the authors' target shift {model.volume_fraction_shift}; "
        "16 px periodic embedding. Timed after one warm-up network evaluation, on a machine shared with other jobs.",
    ]
    emit_table("\n".join(lines), args.output)


if __name__ == "__main__":
    main()
