"""``lgtutorial fit`` on every registered micrograph that the case studies do not use.

For each one: fit with a fixed training budget on this machine (the default sampler, the default
ensemble), then collect what its report checks: volume-fraction error of the hybrid samples, the
chord-length-distribution distance of GRF and hybrid per phase, degenerate (collapsed) samples, the
steps trained and the wall-clock time of each stage. One row per micrograph, written after each
micrograph (atomically), so an interrupted run resumes where it stopped (``--resume``), and a
picture per micrograph (reference, GRF, hybrid) in ``fit_registered_cpu/`` beside the table.

    OMP_NUM_THREADS=2 python benchmarks/fit_registered.py --minutes 8 \
        --output benchmarks/results/fit_registered_cpu.md --work lgtutorial-output/fit-registered

Needs the registered files (``LGTUTORIAL_DATA`` or the cache). The fitted folders stay in ``--work``
(not committed: the weights and figures are large; the table, its JSON and the pictures are).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
import traceback
from collections import Counter
from pathlib import Path

import torch
from _report import emit_table

CASE_STUDY_SOURCES = ("nbsa", "nbsa-proxy", "nbsa-standin", "ti-alpha-beta")

#: What a row must pass, all of it, for the table's last column.
PASS_CHECKS = ("volume_fractions_within_0.01", "hybrid_chords_closer_than_grf_for_every_phase",
               "hybrid_regions_like_reference_for_every_phase", "no_degenerate_sample")


def registered_micrographs() -> list[str]:
    from lgtutorial.data import registry

    return [name for name, entry in registry().items()
            if entry.kind == "micrograph" and name not in CASE_STUDY_SOURCES and not entry.shipped]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=8.0, help="training budget per micrograph")
    parser.add_argument("--only", nargs="*", help="these registry names only")
    parser.add_argument("--work", default="lgtutorial-output/fit-registered")
    parser.add_argument("--output", default=None, help="Markdown table (a .json of the same name is written beside)")
    parser.add_argument("--resume", action="store_true", help="keep the micrographs already done in the .json")
    parser.add_argument("--redo", nargs="*", default=[], help="fit these again (with this --minutes) although done")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--samples", type=int, default=4, help="GRF and hybrid samples per report")
    parser.add_argument("--remeasure", action="store_true",
                        help="measure the connected regions of rows kept from before the fit's checks had them, "
                             "from the samples saved in their --work folders")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    import lgtutorial as lg

    names = args.only or registered_micrographs()
    json_path = Path(args.output).with_suffix(".json") if args.output else None
    rows = {}
    if args.resume and json_path is not None and json_path.exists():
        saved = json.loads(json_path.read_text())
        rows = {row["micrograph"]: {"minutes": saved["minutes"], **row} for row in saved["rows"]}
        migrated = [row for row in rows.values() if row.get("status") == "done"
                    and ("chord_distance_halves" not in row["checks"] or "noise_floor" in row)]
        for row in migrated:  # rows fitted before the fit's report carried the halves' distance: measured once
            floor = row.pop("noise_floor", None)
            if "chord_distance_halves" not in row["checks"]:
                phases = list(row["checks"]["chord_distances"])
                row["checks"]["chord_distance_halves"] = dict(zip(phases, floor or _noise_floor(row["micrograph"])))
        if migrated:
            _write(rows, names, args, json_path)
    work = Path(args.work)
    for name in names:
        if name in rows and rows[name].get("status") == "done" and name not in args.redo:
            print(f"{name}: done before, kept", flush=True)
            if args.remeasure and "region_distances" not in rows[name]["checks"]:
                rows[name]["checks"].update(_region_checks(name, rows[name]))
                rows[name]["regions_measured_after_the_fit"] = True
                print(f"{name}: connected regions measured from the saved samples", flush=True)
                _write(rows, names, args, json_path)
            continue
        started = time.perf_counter()
        try:
            # a folder with a checkpoint and no report is a fit that stopped after (or during) training
            folder = work / f"{name}-{args.minutes:g}min"
            resume = (folder / "plan.json").is_file() and (folder / "checkpoint.pt").is_file()
            result = lg.fit(name, minutes=args.minutes, output=folder, resume=resume, progress=False,
                            n_samples=args.samples)
            rows[name] = {"micrograph": name, "status": "done", "output": str(result.output),
                          "checks": result.checks, "seconds": result.seconds, "training": result.training,
                          "patch_size": result.plan.patch_size, "batch_size": result.plan.training_settings.batch_size,
                          "sampler": result.plan.sampler, "depth": result.plan.model_settings.depth,
                          "minutes": args.minutes}
        except Exception as error:  # a failure is a row of the table, not the end of the run
            rows[name] = {"micrograph": name, "status": f"failed: {type(error).__name__}: {error}",
                          "seconds": {"total": time.perf_counter() - started}}
            traceback.print_exc()
        print(f"{name}: {rows[name]['status']} in {(time.perf_counter() - started) / 60:.1f} min", flush=True)
        if rows[name]["status"] == "done":
            _panel(name, rows[name], args.output)
        _write(rows, names, args, json_path)


def _region_checks(name: str, row: dict) -> dict:
    """The fit's connected-region checks (:func:`lgtutorial.fitting.checks.region_checks`) for a row fitted before
    the fit measured them, from the GRF and hybrid samples saved in its folder."""
    import numpy as np

    from lgtutorial import data
    from lgtutorial.fitting.checks import region_checks

    folder = Path(row["output"])
    reference, meta = data.load(name)
    ensembles = {"GRF": torch.from_numpy(np.load(folder / "grf.npy")),
                 "hybrid": torch.from_numpy(np.load(folder / "samples.npy"))}
    return region_checks(reference, ensembles, list(row["checks"]["chord_distances"]))


def _noise_floor(name: str) -> list[float]:
    """Per phase: the chord distance between the reference's top and bottom halves (what two pieces of the
    same material already differ by; :func:`lgtutorial.statistics.chords.halves_chord_distance`), for rows whose fit
    report did not carry it yet (measured once, when the table is loaded)."""
    from lgtutorial import data
    from lgtutorial.statistics.chords import halves_chord_distance

    return halves_chord_distance(data.load(name)[0])


def _table(rows: dict, names: list[str], minutes: float, samples: int) -> str:
    from lgtutorial.fitting.plan import FINE_FEATURE_PX

    lines = [f"`lgtutorial fit MICROGRAPH --minutes M` on each registered micrograph the case studies do "
             f"not use; {torch.get_num_threads()} CPU thread(s), {platform.processor() or platform.machine()}, "
             f"torch {torch.__version__}. The plan's sampler (with the collapse guard): "
             + ", ".join(f"'{name}' in {count} row(s)" for name, count in sorted(Counter(
                 row.get("sampler", "fast") for row in rows.values() if row.get("status") == "done").items()))
             + " (rows without a recorded sampler were fitted before the plan chose 'fast-fine' for two-phase "
             f"micrographs with features under {FINE_FEATURE_PX:g} px, fit_sampler_fine_cpu.md: 'fast'), {samples} "
             "samples at the "
             "micrograph's own size. CLD: chord-length-distribution distance to the reference (total variation, "
             "larger of x and y), per phase GRF -> hybrid; regions: the connected-region-size distance to the reference "
             "(earth mover's, in decades of log10 size), per phase GRF -> hybrid, with the reference's halves' in brackets; "
             "like: the hybrid's within the halves' + 0.1 for every phase; patch x batch, D: the plan's patch side, patches per step and network depth (rows without a recorded depth: the 2-phase D = 1 and 3-phase D = 2 the plan chose before it matched the depth to the feature size); halves: the same distance between the reference's top "
             "and bottom halves (what two pieces of the same material already differ by); where the GRF's and the "
             "hybrid's CLD distances both lie within it, the fit's check compares the mean chord from boundary counts "
             "instead (the phase's pixels per place where it ends; unbiased on a cut-out micrograph), shown in the "
             "closer column as reference / GRF / hybrid px along x; y (rows without it were fitted before the check "
             "had it and were judged by the distances alone).", "",
             "| micrograph | phases | patch x batch, D | budget min (M) | steps | train min | total min | vf error (max) | CLD GRF -> hybrid "
             "per phase | CLD halves | hybrid closer for every phase | regions GRF -> hybrid (halves) | regions like | "
             "degenerate samples | coherence ref / GRF / hybrid (per phase) | every check |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name in names:
        row = rows.get(name)
        if row is None:
            continue
        if row["status"] != "done":
            lines.append(f"| {name} | | | | | | {row['seconds']['total'] / 60:.1f} | {row['status']} | | | | | | | | |")
            continue
        checks, seconds, training = row["checks"], row["seconds"], row["training"]
        cld = "; ".join(f"{d['GRF']:.3f} -> {d['hybrid']:.3f}" for d in checks["chord_distances"].values())
        coherence = "; ".join(f"{c['reference']:.2f} / {c['GRF']:.2f} / {c['hybrid']:.2f}"
                              for c in checks["coherence"].values())
        steps = f"{training['steps_done']:,}" + ("" if training["steps_done"] == training["steps_planned"]
                                                 else f" of {training['steps_planned']:,} (time limit)")
        degenerate = len(checks.get("degenerate_samples", [])) if "degenerate_samples" in checks else (
            0 if checks["no_degenerate_sample"] else "some")
        floor = checks["chord_distance_halves"].values()
        if "region_distances" in checks:
            regions = "; ".join(f"{d['GRF']:.2f} -> {d['hybrid']:.2f} ({checks['region_distance_halves'][p]:.2f})"
                                for p, d in checks["region_distances"].items())
            like = "yes" if checks["hybrid_regions_like_reference_for_every_phase"] else "**no**"
        else:
            regions, like = "not measured", ""
        every = all(checks.get(check, False) for check in PASS_CHECKS)
        lines.append(
            f"| {name} | {len(checks['chord_distances'])} | {row['patch_size']} x {row.get('batch_size', 32)}, "
            f"{row.get('depth', 1 if len(checks['chord_distances']) == 2 else 2)} | "
            f"{row.get('minutes', minutes):g} | {steps} | "
            f"{training['wall_time_s'] / 60:.1f} | {(seconds['total'] - seconds['training']) / 60 + training['wall_time_s'] / 60:.1f} | "
            f"{checks['largest_volume_fraction_error']:.4f} | {cld} | {'; '.join(f'{f:.3f}' for f in floor)} | "
            f"{'yes' if checks['hybrid_chords_closer_than_grf_for_every_phase'] else '**no**'}{_by_mean(checks)} | "
            f"{regions} | {like} | "
            f"{degenerate}{' (recovered: ' + str(checks['recovered_samples']) + ')' if checks['recovered_samples'] else ''} | "
            f"{coherence} | {'yes' if every else '**no**'} |")
    return "\n".join(lines)


def _by_mean(checks: dict) -> str:
    """The phases whose chord check the mean chord decided, with the means (reference / GRF / hybrid, x; y)."""
    decided = [(p, checks["mean_chords"][p]) for p, v in checks.get("chord_verdicts", {}).items() if not v["resolved"]]
    return "".join(f" ({p} by mean chord: " + " / ".join(f"{m[k]['x']:.0f}; {m[k]['y']:.0f}"
                                                            for k in ("reference", "GRF", "hybrid")) + ")"
                   for p, m in decided)


def _write(rows, names, args, json_path) -> None:
    from lgtutorial._io import atomic_write

    # rows of micrographs outside --only, kept from the saved table, stay in it (in the registry's order)
    order = registered_micrographs()
    names = [n for n in order if n in names or n in rows] + [n for n in names if n not in order]
    emit_table(_table(rows, names, args.minutes, args.samples), args.output)
    if json_path is not None:
        with atomic_write(json_path, "w") as handle:
            handle.write(json.dumps({"minutes": args.minutes, "samples": args.samples, "threads": torch.get_num_threads(),
                                     "torch": str(torch.__version__), "rows": [rows[n] for n in names if n in rows]},
                                    indent=2, default=str))


def _panel(name: str, row: dict, output: str | None) -> None:
    """Reference, first GRF and first hybrid sample of one fitted micrograph, beside the table
    (``fit_registered/NAME.png``): written when its row is done, so a run spread over several
    sessions keeps every picture although the fitted folders are not committed."""
    if not output:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from lgtutorial import data
    from lgtutorial._io import atomic_write
    from lgtutorial.plotting import show_microstructures

    folder = Path(row["output"])
    reference, _ = data.load(name)
    grf, hybrid = np.load(folder / "grf.npy"), np.load(folder / "samples.npy")
    fig, axes = plt.subplots(1, 3, figsize=(9.0, 3.2))
    show_microstructures([reference[0], torch.from_numpy(grf[0]), torch.from_numpy(hybrid[0])],
                         [f"{name}: reference", "GRF", f"hybrid ({row['training']['steps_done']:,} steps)"],
                         axes=axes, n_phases=reference.shape[1])
    for ax in axes:
        ax.title.set_fontsize(9)
    fig.tight_layout()
    target = Path(output).with_suffix("") / f"{name}.png"
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(target) as handle:
        fig.savefig(handle, format="png", dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()
