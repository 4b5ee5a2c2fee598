"""3D generation cost: time and peak memory per volume at several sides, fast vs faithful sampler.

One volume of the nbsa-proxy statistics under isotropy (:func:`lgtutorial.volume.statistics.isotropic_statistics`),
refined by the shipped 2-phase model ``lgtutorial-case1`` on its slices (:class:`lgtutorial.volume.generator.VolumeGenerator`)
for every side and sampler asked. Each configuration runs in a fresh subprocess, so its peak memory is its own:
on a CPU the growth of the process's peak resident set (``getrusage`` maxrss) over what it held after loading
the model and the reference; on CUDA ``torch.cuda.max_memory_allocated``. The table also gives the cost in
network work (score evaluations, 2D slices through the network) and what it bought: the volume fraction and
the slices' mean chord-distribution distance to the reference, the hybrid's against the GRF start's.

Run: LGTUTORIAL_DATA=../shared/data python benchmarks/volume_cost.py [SIDE ...] (default 32 48 64)
     [--samplers fast faithful] [--faithful-sides SIDE ...] [--annealed-sides SIDE ...] [--scheme passes]
     [--n-volumes 1] [--device auto] [--output FILE.md]
``--faithful-sides`` runs the faithful sampler at those sides only (it costs about fifteen times the fast one);
``--annealed-sides`` adds a row per side for the fast sampler with annealed passes and the final
all-orientation step (``lgtutorial generate --dims 3 --annealed``).
Prints a Markdown table; timings, not assertions. On two CPU threads a 32^3 volume took 14 s with the
fast sampler and fifteen times that with the faithful one (its evaluations' ratio); the cost grows about
as the voxel count (results/volume_cost_cpu.md; its 128^3 row is a rerun after the first one collapsed).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time

import torch
from _report import emit_table

MODEL = "lgtutorial-case1"
REFERENCE = "nbsa-proxy"


def measure(side: int, sampler: str, scheme: str, n_volumes: int, device_name: str, seed: int,
            annealed: bool = False) -> dict:
    """One configuration, in this process: seconds and peak memory per volume, cost and quality."""
    from lgtutorial import data
    from lgtutorial._checks import resolve_device
    from lgtutorial.score import registry as pretrained
    from lgtutorial.volume.generator import VolumeGenerator
    from lgtutorial.volume.settings import ANNEALED_PASSES, FINAL_SIGMA
    from lgtutorial.volume.slices import slice_statistics
    from lgtutorial.volume.statistics import isotropic_statistics

    device = resolve_device(device_name)
    micrograph, _ = data.load(REFERENCE)
    model, sigmas = pretrained.load_with_sigmas(MODEL, device=device)
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    statistics = isotropic_statistics(micrograph, (side, side, side))
    statistics_seconds = time.perf_counter() - start
    passes = dict(sigma_pass=ANNEALED_PASSES, final_sigma=FINAL_SIGMA) if annealed else {}
    generator = VolumeGenerator.from_statistics(statistics, model, sigmas=sigmas, sampler=sampler, scheme=scheme,
                                                device=device, **passes)
    start = time.perf_counter()
    samples = generator.sample(n_volumes, seed=seed, return_grf=True, progress=False)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - start) / n_volumes
    if device.type == "cuda":
        peak_mib = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - baseline) / 1024
    volumes, grf = samples.volumes.cpu(), samples.grf.cpu()
    hybrid, start_stats = slice_statistics(volumes, micrograph, reference_periodic=True), \
        slice_statistics(grf, micrograph, reference_periodic=True)
    return {
        "side": side, "sampler": sampler + (", annealed + final" if annealed else ""), "scheme": scheme,
        "n_volumes": n_volumes, "seconds": seconds,
        "statistics_seconds": statistics_seconds, "peak_mib": peak_mib,
        "evaluations": samples.evaluations // n_volumes, "slices": samples.slice_evaluations // n_volumes,
        "clipped": statistics.clipped_fraction, "target_vf": float(samples.target_volume_fractions[1]),
        "vf": samples.achieved_volume_fractions[:, 1].tolist(),
        "chord_hybrid": hybrid.chord_distance(), "chord_grf": start_stats.chord_distance(),
        "two_point_hybrid": max(hybrid.two_point_errors.values()),
        "two_point_grf": max(start_stats.two_point_errors.values()),
        "degenerate": samples.degenerate,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sides", nargs="*", type=int, default=[32, 48, 64], help="cube sides in voxels (even)")
    parser.add_argument("--samplers", nargs="+", default=["fast", "faithful"])
    parser.add_argument("--faithful-sides", nargs="+", type=int, default=None,
                        help="run the faithful sampler at these sides only (default: every side)")
    parser.add_argument("--annealed-sides", nargs="+", type=int, default=[],
                        help="also run the fast sampler with annealed passes and the final step at these sides")
    parser.add_argument("--annealed", action="store_true", help=argparse.SUPPRESS)  # worker: the annealed row
    parser.add_argument("--scheme", default="passes", choices=["passes", "mean"])
    parser.add_argument("--n-volumes", type=int, default=1)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default=None, help="also write the table to this Markdown file")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)  # one configuration, JSON out
    args = parser.parse_args()

    if args.worker:
        print(json.dumps(measure(args.sides[0], args.samplers[0], args.scheme, args.n_volumes, args.device,
                                 args.seed, annealed=args.annealed)))
        return
    if args.annealed_sides and args.scheme != "passes":
        parser.error("--annealed-sides needs --scheme passes")
    configurations = [(side, sampler, False) for side in args.sides for sampler in args.samplers
                      if sampler != "faithful" or args.faithful_sides is None or side in args.faithful_sides]
    configurations += [(side, "fast", True) for side in args.annealed_sides]
    rows = []
    for side, sampler, annealed in configurations:
        command = [sys.executable, __file__, str(side), "--samplers", sampler, "--scheme", args.scheme,
                   "--n-volumes", str(args.n_volumes), "--device", args.device, "--seed", str(args.seed),
                   "--worker"] + (["--annealed"] if annealed else [])
        print(f"side {side}, {sampler}{' annealed' if annealed else ''} ...", file=sys.stderr, flush=True)
        started = time.perf_counter()
        finished = subprocess.run(command, check=True, capture_output=True, text=True)
        rows.append(json.loads(finished.stdout.strip().splitlines()[-1]))
        print(f"  {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)

    from lgtutorial._checks import resolve_device

    device = resolve_device(args.device)
    hardware = (f"GPU {torch.cuda.get_device_name()}" if device.type == "cuda" else
                f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch thread(s)")
    memory = "peak CUDA memory allocated" if device.type == "cuda" else "peak RSS growth over the loaded model"
    lines = [
        f"3D generation cost per volume ({hardware}, torch {torch.__version__}; {MODEL} on {REFERENCE} statistics "
        f"under isotropy, scheme '{args.scheme}', {args.n_volumes} volume(s) per configuration)",
        "",
        f"| side | sampler | s per volume | {memory} (MiB) | score evaluations | 2D slices | s for the 3D statistics "
        "| clipped spectral weight | vf (target) | chord distance GRF -> hybrid | 2-point error GRF -> hybrid |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        vf = ", ".join(f"{v:.4f}" for v in r["vf"])
        flag = f" (degenerate: {r['degenerate']})" if r["degenerate"] else ""
        lines.append(
            f"| {r['side']}^3 | {r['sampler']} | {r['seconds']:.1f} | {r['peak_mib']:.0f} | {r['evaluations']} "
            f"| {r['slices']} | {r['statistics_seconds']:.2f} | {100 * r['clipped']:.2f} % | {vf} ({r['target_vf']:.4f}){flag} "
            f"| {r['chord_grf']:.3f} -> {r['chord_hybrid']:.3f} | {r['two_point_grf']:.3f} -> {r['two_point_hybrid']:.3f} |")
    lines += ["", "Chord distance: total-variation distance between the chord-length distributions of the volumes' slices "
              "(all three orientations, both in-slice axes, both phases) and the reference's; 2-point error: the "
              "worst orientation's relative error of the slices' radially averaged 2-point row."]
    emit_table("\n".join(lines), args.output)


if __name__ == "__main__":
    main()
