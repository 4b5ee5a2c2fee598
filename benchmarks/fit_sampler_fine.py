"""The fit's samples again, from the same fitted models and GRF seed, with a finer sampler: does running the
fast sampler on to sigma = 0.02 (``"fast-fine"``) help micrographs with thin features?

For each fitted folder of ``benchmarks/fit_registered.py`` named: its model and plan as they are (no
training), the report's generation step (:func:`lgtutorial.fitting.fit._generate_and_report`, 4 samples, seed 0)
with ``--sampler`` (the plan's sampler), beside what the fit itself measured with ``"fast"`` (the folder's ``summary.json``; the
connected-region distances from its saved samples where the summary predates them). Per micrograph: the
finest mean chord, the largest volume-fraction error, the chord-distribution distance per phase and the
connected-region distance per phase (GRF, fast, the finer sampler), and the per-sample fraction of the
thinnest phase.

    OMP_NUM_THREADS=2 LGTUTORIAL_DATA=../shared/data python benchmarks/fit_sampler_fine.py \
        li2018-alloy-30min li2018-alloy li2018-sandstone li2018-pmma-15min li2018-composite-15min \
        --work lgtutorial-output/fit-registered --output benchmarks/results/fit_sampler_fine_cpu.md

Needs the fitted folders (not committed) and the registered micrographs.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import time
from pathlib import Path

import torch
from _report import emit_table


def _baseline(folder: Path, reference, phases) -> dict:
    """What the fit measured with its own sampler, plus the region distances if its summary lacks them."""
    import numpy as np

    from lgtutorial.fitting.checks import region_checks

    checks = json.loads((folder / "summary.json").read_text())["checks"]
    if "region_distances" not in checks:
        ensembles = {"GRF": torch.from_numpy(np.load(folder / "grf.npy")),
                     "hybrid": torch.from_numpy(np.load(folder / "samples.npy"))}
        checks.update(region_checks(reference, ensembles, phases))
    checks["per_sample_fractions"] = _per_sample(torch.from_numpy(np.load(folder / "samples.npy")))
    return checks


def _per_sample(samples: torch.Tensor) -> list[list[float]]:
    from lgtutorial.statistics.two_point import volume_fractions

    return volume_fractions(samples.double()).tolist()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", help="fitted folders under --work (NAME or NAME-Mmin)")
    parser.add_argument("--work", default="lgtutorial-output/fit-registered")
    parser.add_argument("--sampler", default="fast-fine")
    parser.add_argument("--output", default=None, help="Markdown table (a .json of the same name is written beside)")
    args = parser.parse_args()

    import numpy as np

    from lgtutorial import data
    from lgtutorial.fitting.fit import _generate_and_report
    from lgtutorial.fitting.inspect import finest_mean_chord
    from lgtutorial.fitting.plan import plan_fit

    rows = []
    for name in args.folders:
        folder = Path(args.work) / name
        micrograph = re.sub(r"-\d+min$", "", name)
        reference, meta = data.load(micrograph)
        phases = meta["phases"]
        saved = json.loads((folder / "plan.json").read_text())
        plan = plan_fit(reference, minutes=saved["minutes"], periodic=saved["periodic"], patch_size=saved["patch_size"],
                        steps=saved["steps"], batch_size=saved.get("batch_size", 32), measure_speed=False,
                        sampler=args.sampler)
        model = next((folder / "model").glob("*.pt"))
        target = Path(args.work).parent / "fit-sampler-fine" / name  # the samples and figures (not committed)
        started = time.perf_counter()
        checks, _ = _generate_and_report(reference, meta, plan, model, target, n_samples=4, size=None, seed=0,
                                         device="cpu", progress=False)
        seconds = time.perf_counter() - started
        checks["per_sample_fractions"] = _per_sample(torch.from_numpy(np.load(target / "samples.npy")))
        rows.append({"folder": name, "micrograph": micrograph, "phases": phases,
                     "finest_mean_chord": finest_mean_chord(plan.info),
                     "reference_fractions": plan.info["volume_fractions"],
                     "minutes": saved["minutes"], "fast": _baseline(folder, reference, phases), "fine": checks,
                     "seconds_fine": seconds})
        print(f"{name}: {seconds:.0f} s", flush=True)

    def per_phase(row, key):
        return "; ".join(f"{row['fast'][key][p]['GRF']:.3f} / {row['fast'][key][p]['hybrid']:.3f} / "
                         f"{row['fine'][key][p]['hybrid']:.3f}" for p in row["phases"])

    def thinnest(row, which):
        phase = min(range(len(row["phases"])), key=lambda k: sum(s[k] for s in row[which]["per_sample_fractions"]))
        return ", ".join(f"{s[phase]:.3f}" for s in row[which]["per_sample_fractions"])

    lines = [f"The fit's generation step again with `{args.sampler}` (same fitted model, plan, GRF seed, 4 samples) "
             f"beside the fit's own `fast` run; {platform.processor() or platform.machine()}, "
             f"{torch.get_num_threads()} thread(s), torch {torch.__version__}.", "",
             "| fitted folder | phases | finest mean chord (px) | vf error fast / fine | CLD GRF / fast / fine per phase "
             "| regions GRF / fast / fine per phase (decades) | thinnest phase per sample: fast | fine | s (fine) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        reference_fraction = min(row["reference_fractions"])
        lines.append(
            f"| {row['folder']} ({row['minutes']:g} min) | {len(row['phases'])} | {row['finest_mean_chord']:.1f} | "
            f"{row['fast']['largest_volume_fraction_error']:.4f} / {row['fine']['largest_volume_fraction_error']:.4f} | "
            f"{per_phase(row, 'chord_distances')} | {per_phase(row, 'region_distances')} | "
            f"{thinnest(row, 'fast')} (ref {reference_fraction:.3f}) | {thinnest(row, 'fine')} | {row['seconds_fine']:.0f} |")
    lines += ["", "CLD: chord-length-distribution distance to the reference (larger of x and y); regions: connected-"
              "region-size distance (earth mover's, decades of log10 size); both as in `lgtutorial fit`'s report."]
    emit_table("\n".join(lines), args.output)
    if args.output:
        from lgtutorial._io import atomic_write

        with atomic_write(Path(args.output).with_suffix(".json"), "w") as handle:
            handle.write(json.dumps({"sampler": args.sampler, "rows": rows}, indent=1, default=float))


if __name__ == "__main__":
    main()
