"""Where do case study 2's laths get lost: in the score model or in the hybrid's start?

Two measurements per model, both on the Ti reference (``ti-alpha-beta``):

1. **Denoising.** Noise of level sigma is added to the reference itself and removed with one Tweedie
   step, ``x + sigma^2 * score(x, sigma)``; the argmax of the estimate is compared with the reference
   pixel by pixel, and the coherence of its lath boundaries (``metrics.boundary_coherence``, inside the
   colonies) with the reference's. A model that keeps the laths here has learned what laths look like
   at that noise level.
2. **Starting higher.** The hybrid refines the GRF's field from a level sigma_c with ``start_noise``
   extra noise (``SamplerConfiguration.start_noise``, in units of sigma_c); the table gives the
   coherence of the samples. If the model could draw laths from noise, more noise and a higher start
   would give it room to; if it cannot, they only remove the GRF's layout.
3. **Refining the noised reference.** The sampler itself (its schedule, correctors and final Tweedie
   step, without the volume-fraction term) is run on the reference noised to sigma_0, as the hybrid
   runs on a GRF sample noised to sigma_c. Unlike the one step of (1), the sampler adds fresh noise at
   every level: a model that has learned the laths' law keeps them (coherence near the reference's),
   one that has learned only their local mixture turns them into speckle on the way down. This is the
   hybrid with a perfect global layer, so it bounds what the model can do from a GRF start.

Numbers, not assertions. Run (about 15 min on two threads):

    OMP_NUM_THREADS=2 python benchmarks/lath_diagnosis.py --models lgtutorial-case2 \\
        --output benchmarks/results/case2_lath_diagnosis_cpu
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace

import torch
from _report import emit_table

from lgtutorial import data
from lgtutorial._io import atomic_write
from lgtutorial.grf.field import statistics_row
from lgtutorial.grf.segmentation import segment_argmax
from lgtutorial.sampling.hybrid import HybridGenerator
from lgtutorial.sampling.samplers import SAMPLERS, sampler_schedule
from lgtutorial.score.registry import load_score_model
from lgtutorial.statistics.higher_order import boundary_coherence


def _pairs(text: str) -> list[tuple[float, float]]:
    """``"0.75:0,1.5:1"`` -> [(0.75, 0.0), (1.5, 1.0)]"""
    try:
        return [(float(a), float(b)) for a, b in (item.split(":") for item in text.split(","))]
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"expected SIGMA_C:START_NOISE pairs separated by commas, got {text!r}") from error


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reference", default="ti-alpha-beta")
    parser.add_argument("--models", required=True, help="comma-separated model names or checkpoint paths")
    parser.add_argument("--sigmas", default="0.1,0.3,0.5,0.75", help="noise levels of the denoising test")
    parser.add_argument("--starts", type=_pairs, default=_pairs("0.75:0,0.75:1,1.5:1"),
                        help="SIGMA_C:START_NOISE pairs of the hybrid test")
    parser.add_argument("--refine-from", default="0.3,0.5,0.75",
                        help="noise levels sigma_0 of the refinement of the noised reference (empty: skip it)")
    parser.add_argument("--size", type=int, default=160, help="side of the hybrid samples")
    parser.add_argument("--samples", type=int, default=2)
    parser.add_argument("--sampler", default="fast")
    parser.add_argument("--lath-phases", default="0,2")
    parser.add_argument("--exclude-phase", type=int, default=1, help="colonies: leave out this phase's regions")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", required=True, help="stem of the results (.md and .json)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    reference, _ = data.load(args.reference)
    lath_phases = [int(p) for p in args.lath_phases.split(",")]

    def coherence(micro, periodic):
        return [float(boundary_coherence(micro, p, periodic=periodic, exclude_phase=args.exclude_phase).mean())
                for p in lath_phases]

    def fmt(values):
        return " / ".join(f"{v:.3f}" for v in values)

    reference_coherence = coherence(reference, False)
    denoising, starts, refining = [], [], []
    for source in args.models.split(","):
        model, sigmas = load_score_model(source)
        generator = torch.Generator().manual_seed(args.seed)
        with torch.no_grad():
            for sigma in (float(s) for s in args.sigmas.split(",")):
                noisy = reference + sigma * torch.randn(reference.shape, generator=generator)
                estimate = noisy + sigma**2 * model.score(noisy, sigma)
                one_hot = segment_argmax(estimate)
                labels = one_hot.argmax(1)
                denoising.append({"model": source, "sigma": sigma,
                                  "accuracy_noisy": float((noisy.argmax(1) == reference.argmax(1)).float().mean()),
                                  "accuracy_denoised": float((labels == reference.argmax(1)).float().mean()),
                                  "coherence": coherence(one_hot, False)})
                print(denoising[-1], flush=True)
        configuration = SAMPLERS[args.sampler]
        for sigma_0 in (float(v) for v in args.refine_from.split(",") if v.strip()):
            levels = sampler_schedule(configuration, float(sigmas.max()), float(sigmas.min()),
                                      configuration.levels or len(sigmas), sigma_0)
            noisy = reference + float(levels[0]) * torch.randn(reference.shape, generator=generator)
            with torch.no_grad():  # the sampler's own integrator, without the hybrid's volume-fraction term
                refined = configuration.run(model.score, noisy, levels, generator=generator)
            one_hot = segment_argmax(refined)
            refining.append({"model": source, "sigma_0": float(levels[0]), "levels": len(levels),
                             "accuracy": float((one_hot.argmax(1) == reference.argmax(1)).float().mean()),
                             "coherence": coherence(one_hot, False)})
            print(refining[-1], flush=True)
        row = statistics_row(reference)
        for sigma_c, start_noise in args.starts:
            started = time.perf_counter()
            try:
                hybrid = HybridGenerator.from_statistics(
                    row, model, shape=(args.size, args.size), sigmas=sigmas, sigma_c=sigma_c,
                    sampler=replace(SAMPLERS[args.sampler], start_noise=start_noise))
                out = hybrid.sample(args.samples, seed=args.seed, progress=False)
            except ValueError as error:  # e.g. a hybrid-range model asked to start above its trained top
                print(f"{source}: sigma_c {sigma_c}: {error}")
                continue
            micro = out.microstructures
            starts.append({"model": source, "sigma_c": sigma_c, "start_noise": start_noise,
                           "volume_fractions": [float(v) for v in micro.mean((0, 2, 3))],
                           "coherence": coherence(micro, True),
                           "recovered": list(out.recovered), "degenerate": list(out.degenerate),
                           "seconds_per_sample": (time.perf_counter() - started) / args.samples})
            print(starts[-1], flush=True)
    names = [f"phase {p}" for p in lath_phases]
    lines = [f"# Where the laths get lost: {args.reference}", "",
             f"Lath phases {lath_phases}; coherence = boundary structure-tensor coherence inside the colonies "
             f"(phase {args.exclude_phase} regions left out), per lath phase ({' / '.join(names)}); the "
             f"reference's: {fmt(reference_coherence)}. Made by `benchmarks/lath_diagnosis.py`, seed {args.seed}.",
             "", "## 1. One Tweedie step from the noised reference", "",
             "| model | sigma | pixels right, noisy argmax | pixels right, denoised | coherence of the denoised |",
             "|---|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['sigma']:g} | {r['accuracy_noisy']:.3f} | {r['accuracy_denoised']:.3f} | "
              f"{fmt(r['coherence'])} |" for r in denoising]
    lines += ["", f"## 2. Hybrid samples ({args.samples} of {args.size} x {args.size} px, '{args.sampler}' sampler) "
              "from higher starts", "",
              "| model | sigma_c | start noise (x sigma_c) | volume fractions | coherence | redone by the guard "
              "| s per sample |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['sigma_c']:g} | {r['start_noise']:g} | "
              f"{' / '.join(f'{v:.3f}' for v in r['volume_fractions'])} | {fmt(r['coherence'])} | "
              f"{r['recovered'] or 'none'} | {r['seconds_per_sample']:.0f} |" for r in starts]
    if refining:
        lines += ["", f"## 3. The '{args.sampler}' sampler run on the noised reference", "",
                  "| model | sigma_0 | levels | pixels right | coherence |", "|---|---|---|---|---|"]
        lines += [f"| {r['model']} | {r['sigma_0']:.3g} | {r['levels']} | {r['accuracy']:.3f} | {fmt(r['coherence'])} |"
                  for r in refining]
    emit_table("\n".join(lines), f"{args.output}.md")
    with atomic_write(f"{args.output}.json", "w") as handle:
        handle.write(json.dumps({"arguments": vars(args),
                                 "reference_coherence": reference_coherence,
                                 "denoising": denoising, "starts": starts, "refining": refining}, indent=2))


if __name__ == "__main__":
    main()
