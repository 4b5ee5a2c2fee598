"""3D volumes against the 2D hybrid: are the slices of a volume as good as 2D samples of the same size?

For case study 1 (``lgtutorial-case1`` on the nbsa-proxy statistics under isotropy): ``n`` volumes of
``side^3`` voxels (:class:`lgtutorial.volume.generator.VolumeGenerator`), measured by their slices in each
orthogonal orientation (:func:`lgtutorial.volume.slices.slice_statistics`), beside

- the 3D GRF the volumes started from (the same volumes before refinement), and
- the 2D hybrid: ``side x side`` samples (32 by default) of the same model, sampler and statistics
  (windowed onto the ``side`` grid), measured the same way (periodic chords along x and y against
  the reference's).

Per orientation and phase: the slices' volume fraction against the reference's and the chord-length-
distribution distance (total variation, mean of the two in-slice axes) of GRF, hybrid volume and 2D
hybrid. The issue's bar: every orientation's volume fraction within 0.005, every chord distance at most
1.5x the 2D hybrid's and clearly below the 3D GRF's.

Run: OMP_NUM_THREADS=2 LGTUTORIAL_DATA=../shared/data python benchmarks/volume_quality.py --side 64 \
         --n-volumes 2 --output benchmarks/results/volume_quality_cpu.md
(``--annealed --output benchmarks/results/volume_quality_cpu_annealed.md``: the annealed passes.)
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch
from _report import emit_table

MODEL = "lgtutorial-case1"
REFERENCE = "nbsa-proxy"


def two_d_chord_distances(samples: torch.Tensor, reference: torch.Tensor, reference_periodic: bool) -> torch.Tensor:
    """``(N_phases,)`` chord-distribution distances of 2D periodic samples (all samples' chords pooled per
    phase), mean of the x and y axes (as for slices)."""
    from lgtutorial.statistics.chords import chord_distribution_distance, chord_lengths

    per_axis = []
    for axis in ("x", "y"):
        mine = chord_lengths(samples, axis=axis, periodic=True)
        theirs = chord_lengths(reference, axis=axis, periodic=reference_periodic)
        per_axis.append(torch.tensor([chord_distribution_distance(a, b) for a, b in zip(mine, theirs)]))
    return torch.stack(per_axis).mean(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=64)
    parser.add_argument("--n-volumes", type=int, default=2)
    parser.add_argument("--sampler", default="fast")
    parser.add_argument("--scheme", default="passes", choices=["passes", "mean"])
    parser.add_argument("--annealed", action="store_true",
                        help="annealed passes (lgtutorial.volume.settings.ANNEALED_PASSES) instead of two rounds at VolumeSettings.sigma_pass")
    parser.add_argument("--levels", default=None, metavar="START:END:COUNT",
                        help="annealed passes with COUNT geometric levels from START to END (instead of ANNEALED_PASSES)")
    parser.add_argument("--final-sigma", type=float, default=None,
                        help="end with one denoising step of all three orientations from this noise level")
    parser.add_argument("--final-draws", type=int, default=None,
                        help="noise draws averaged in the final step (default: lgtutorial.volume.settings.FINAL_DRAWS)")
    parser.add_argument("--save-volumes", default=None, metavar="PATH", help="also save the volumes (torch.save)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-2d", type=int, default=32, help="2D hybrid samples of side x side")
    parser.add_argument("--output", default=None, help="Markdown table (a .json of the same name is written beside)")
    args = parser.parse_args()

    from lgtutorial import data
    from lgtutorial._checks import resolve_device
    from lgtutorial.grf.field import statistics_row
    from lgtutorial.sampling.hybrid import HybridGenerator
    from lgtutorial.score import registry as pretrained
    from lgtutorial.score.schedules import annealed_levels
    from lgtutorial.statistics.two_point import volume_fractions
    from lgtutorial.volume.generator import VolumeGenerator
    from lgtutorial.volume.settings import ANNEALED_PASSES, FINAL_DRAWS, VolumeSettings
    from lgtutorial.volume.slices import slice_statistics
    from lgtutorial.volume.statistics import ORIENTATIONS, isotropic_statistics

    device = resolve_device(args.device)
    micrograph, meta = data.load(REFERENCE)
    periodic = bool(meta.get("periodic", False))
    model, sigmas = pretrained.load_with_sigmas(MODEL, device=device)
    side = args.side

    started = time.perf_counter()
    statistics = isotropic_statistics(micrograph, (side, side, side))
    sigma_pass = ANNEALED_PASSES if args.annealed else VolumeSettings.sigma_pass
    args.final_draws = FINAL_DRAWS if args.final_draws is None else args.final_draws
    if args.levels:
        try:
            top, end, count = (float(v) for v in args.levels.split(":"))
        except ValueError:
            parser.error(f"--levels: expected START:END:COUNT (e.g. 0.6:0.15:11), got {args.levels!r}")
        if count < 1 or count != int(count):
            parser.error(f"--levels: COUNT must be a positive integer, got {count:g}")
        sigma_pass = annealed_levels(top, end, int(count))
        args.annealed = True
    volumes_generator = VolumeGenerator.from_statistics(statistics, model, sigmas=sigmas, sampler=args.sampler,
                                                        scheme=args.scheme, sigma_pass=sigma_pass, device=device,
                                                        final_sigma=args.final_sigma, final_draws=args.final_draws)
    samples = volumes_generator.sample(args.n_volumes, seed=args.seed, return_grf=True, progress=True)
    volume_seconds = (time.perf_counter() - started) / args.n_volumes
    volumes, grf = samples.volumes.cpu(), samples.grf.cpu()
    if args.save_volumes:
        from lgtutorial._io import atomic_write

        with atomic_write(args.save_volumes) as handle:
            torch.save({"volumes": volumes, "grf": grf}, handle)
    measured = {"hybrid volume": slice_statistics(volumes, micrograph, reference_periodic=periodic),
                "3D GRF": slice_statistics(grf, micrograph, reference_periodic=periodic)}

    started = time.perf_counter()
    n_2d = args.n_2d
    flat = HybridGenerator.from_statistics(statistics_row(micrograph), model, shape=(side, side), sigmas=sigmas,
                                           sampler=args.sampler, device=device)
    flat_samples = flat.sample(n_2d, seed=args.seed, progress=True).microstructures.cpu()
    flat_seconds = (time.perf_counter() - started) / n_2d
    flat_chords = two_d_chord_distances(flat_samples, micrograph, periodic)
    flat_vf = volume_fractions(flat_samples.double()).mean(0)

    reference_vf = measured["hybrid volume"].reference_volume_fractions
    n_phases = micrograph.shape[1]
    rows, passed = [], True
    for o in ORIENTATIONS:
        for p in range(n_phases):
            volume_chord = float(torch.stack([measured["hybrid volume"].chord_distances[o][a][p] for a in "xy"]).mean())
            grf_chord = float(torch.stack([measured["3D GRF"].chord_distances[o][a][p] for a in "xy"]).mean())
            vf_error = float(measured["hybrid volume"].volume_fractions[o][p] - reference_vf[p])
            ok = abs(vf_error) <= 0.005 and volume_chord <= 1.5 * float(flat_chords[p]) and volume_chord < 0.75 * grf_chord
            passed &= ok
            rows.append({"orientation": o, "phase": p, "vf": float(measured["hybrid volume"].volume_fractions[o][p]),
                         "vf_reference": float(reference_vf[p]), "vf_error": vf_error,
                         "vf_2d": float(flat_vf[p]), "chord_grf": grf_chord, "chord_volume": volume_chord,
                         "chord_2d": float(flat_chords[p]), "ratio_to_2d": volume_chord / float(flat_chords[p]),
                         "passes": ok})

    # the noise of this measurement: each volume alone against the 2D samples' two halves (fewer chords give
    # larger distances, so these are wider than the pooled rows' spread, not an interval for them)
    per_volume = []
    for i in range(volumes.shape[0]) if volumes.shape[0] > 1 else ():
        alone = slice_statistics(volumes[i:i + 1], micrograph, reference_periodic=periodic)
        per_volume.append({o: [float(torch.stack([alone.chord_distances[o][a][p] for a in "xy"]).mean())
                               for p in range(n_phases)] for o in ORIENTATIONS})
    halves = [two_d_chord_distances(part, micrograph, periodic).tolist()
              for part in (flat_samples[: n_2d // 2], flat_samples[n_2d // 2:])] if n_2d > 1 else []

    # along each axis of the volume (x, y in xy and xz / yz slices; z in xz and yz): an isotropic volume has
    # three alike; a worse z shows the passes favour the orientations that contain the first pass's slices
    along = {p: measured["hybrid volume"].axis_chord_distances(phase=p) for p in range(n_phases)}
    hardware = (f"GPU {torch.cuda.get_device_name()}" if device.type == "cuda" else
                f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch thread(s)")
    lines = [f"3D against 2D, case study 1 ({MODEL} on {REFERENCE} statistics under isotropy; {args.n_volumes} "
             f"volume(s) of {side}^3, {args.sampler} sampler, scheme '{args.scheme}'"
             + (f", annealed passes from {sigma_pass[0]} to {sigma_pass[-1]} ({len(sigma_pass) + 1} passes)"
                if args.annealed else "")
             + (f", a final denoising step of all three orientations from {args.final_sigma} ({args.final_draws} draws)" if args.final_sigma else "")
             + f"; 2D hybrid: {n_2d} samples of "
             f"{side}x{side}, same model, sampler and statistics; {hardware}, torch {torch.__version__}). "
             f"{volume_seconds:.0f} s per volume, {flat_seconds:.1f} s per 2D sample.", "",
             "| orientation | phase | vf of the slices (reference) | vf error | chord distance 3D GRF | hybrid volume "
             "| 2D hybrid | volume / 2D | passes |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['orientation']} | {r['phase']} | {r['vf']:.4f} ({r['vf_reference']:.4f}) | "
                     f"{r['vf_error']:+.4f} | {r['chord_grf']:.3f} | {r['chord_volume']:.3f} | {r['chord_2d']:.3f} | "
                     f"{r['ratio_to_2d']:.2f} | {'yes' if r['passes'] else '**no**'} |")
    lines += ["", "Chord distance: total-variation distance between the chord-length distributions (mean of the two "
              "in-slice axes) and the reference's. Passes: vf error at most 0.005, chord distance at most 1.5x the 2D "
              "hybrid's and below 0.75x the 3D GRF's. " + ("Every row passes." if passed else "Not every row passes."),
              "", "Along each axis of the volume (chords along x, y and z, from the two slice orientations that "
              "contain the axis): " + "; ".join(f"phase {p}: " + " / ".join(f"{a} {v:.3f}" for a, v in along[p].items())
                                                for p in range(n_phases)) + "."]
    if per_volume:
        lines += ["", "Each volume alone (chord distance per orientation xy / xz / yz): " + "; ".join(
            f"volume {i}: " + ", ".join(f"phase {p} " + " / ".join(f"{v[o][p]:.3f}" for o in ORIENTATIONS)
                                        for p in range(n_phases)) for i, v in enumerate(per_volume))
            + (". The 2D hybrid's two halves: " + "; ".join(
                f"phase {p} {halves[0][p]:.3f} / {halves[1][p]:.3f}" for p in range(n_phases)) + "." if halves else ".")]
    emit_table("\n".join(lines), args.output)
    if args.output:
        from lgtutorial._io import atomic_write

        with atomic_write(Path(args.output).with_suffix(".json"), "w") as handle:
            handle.write(json.dumps({"side": side, "n_volumes": args.n_volumes, "sampler": args.sampler,
                                     "sigma_pass": list(sigma_pass) if args.annealed else sigma_pass,
                                     "final_sigma": args.final_sigma, "final_draws": args.final_draws,
                                     "seconds_per_volume": volume_seconds, "seconds_per_2d_sample": flat_seconds,
                                     "rows": rows, "along_axes": along, "per_volume": per_volume,
                                     "two_d_halves": halves, "passed": passed}, indent=2))


if __name__ == "__main__":
    main()
