"""Your own micrograph, end to end: check it, plan and train a score model, generate, report.

``lgtutorial fit MICROGRAPH`` (or :func:`fit`) takes one segmented micrograph (a file or a registry
name) and

1. checks it: phases, size, whether it looks periodic (:mod:`lgtutorial.fitting.inspect`);
2. plans the training from its feature sizes and the time budget, and says why (:mod:`lgtutorial.fitting.plan`);
3. trains (checkpointed, resumable with ``resume=True`` / ``--resume``, a progress bar with ETA);
4. ships the result as a reusable bundle ``model/<name>.pt`` (weights, the micrograph's statistics,
   a model card): ``lgtutorial generate --model .../model/<name>.pt`` or
   ``HybridGenerator`` via :func:`lgtutorial.score.registry.load_score_model`;
5. generates GRF and hybrid samples from the same starts and writes one report (``report.md`` and
   figures): reference beside samples, volume fractions, 2-point slices, chord-length distributions
   and their distances, boundary coherence, the checks (:mod:`lgtutorial.fitting.checks`), time spent
   (:mod:`lgtutorial.fitting.report`).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from lgtutorial._checks import resolve_device
from lgtutorial._io import output_claims
from lgtutorial.fitting.checks import chord_verdicts, mean_chords, phase_contacts, region_checks
from lgtutorial.fitting.plan import FitPlan, plan_fit
from lgtutorial.fitting.report import _write_report
from lgtutorial.fitting.settings import FitSettings

__all__ = ["FitResult", "fit"]


@dataclass
class FitResult:
    """What :func:`fit` made: the folder, the shipped bundle, the samples and the report's checks."""

    output: Path
    model_path: Path
    plan: FitPlan
    checks: dict
    seconds: dict
    training: dict = None
    """steps planned and done, and whether the time limit stopped the training early"""


def _name_of(micrograph) -> str:
    import re

    stem = Path(str(micrograph)).stem.lower()
    return re.sub(r"[^a-z0-9._-]+", "-", stem).strip("-._") or "micrograph"


@output_claims()
def fit(micrograph, *, name: str | None = FitSettings.name, minutes: float = FitSettings.minutes,
        output=FitSettings.output, resume: bool = FitSettings.resume, n_samples: int = FitSettings.samples,
        size: int | None = FitSettings.size, sampler: str | None = FitSettings.sampler, device=FitSettings.device,
        seed: int = FitSettings.seed, periodic: bool | None = FitSettings.periodic,
        patch_size: int | None = FitSettings.patch_size, global_layer: str = FitSettings.global_layer,
        progress: bool = True) -> FitResult:
    """From one segmented micrograph to a trained generator and a report (see the module docstring).

    The arguments are :class:`~lgtutorial.fitting.settings.FitSettings` (``n_samples`` is its ``samples``),
    checked before anything is loaded, planned, trained or written: a bad one raises ``ValueError`` at
    once, naming the command-line option.

    Args:
        micrograph: a file (``.png``, ``.tif``, ``.npy``, ``.pt``; one grey level or colour per phase)
            or a registry name.
        name: the model's name (default: from the file name).
        minutes: training budget on this machine (the steps are measured to fit it).
        output: the folder (default ``lgtutorial-output/fit-NAME``; a new numbered one unless ``resume``),
            held by this call: a second fit given it writes to a numbered one, or is refused when resuming.
        resume: continue the training checkpoint in ``output`` (the plan saved there is reused) for
            what is left of its budget, then generate and report.
        n_samples: GRF and hybrid samples for the report.
        size: side of the square samples (default: the micrograph's own size).
        sampler: the hybrid's sampler (default: chosen by the plan, ``"fast"``, or ``"fast-fine"`` for features
            under :data:`lgtutorial.fitting.plan.FINE_FEATURE_PX` wide; failed samples are redone with ``"faithful"``).
        periodic: override the periodicity check; patch_size: override the chosen patch size.
        global_layer: ``"grf"``, ``"oriented"`` or ``"auto"`` (see :func:`lgtutorial.generation.choose_global_layer`).

    Example (three lines in a notebook)::

        import lgtutorial as lg
        result = lg.fit("my_micrograph.png", minutes=15)
        print(result.output / "report.md")
    """
    from lgtutorial import data
    from lgtutorial._io import atomic_write, claim_output, fresh_directory
    from lgtutorial.grf.material import MaterialStatistics
    from lgtutorial.score.checkpoints import CHECKPOINT_NAME, read_checkpoint
    from lgtutorial.score.export import export_pretrained
    from lgtutorial.score.training import train_score_model

    settings = FitSettings(name=name, minutes=minutes, samples=n_samples, size=size, sampler=sampler,
                           patch_size=patch_size, periodic=periodic, device=device, seed=seed, resume=resume,
                           output=output, global_layer=global_layer)
    started = time.perf_counter()
    micro, meta = data.load(micrograph)
    name = _name_of(name or micrograph)
    if output is None:
        output = Path("lgtutorial-output") / f"fit-{name}"
    output = Path(output)
    plan_path = output / "plan.json"
    if resume:
        claim_output(output)  # this very folder, refused while another run holds it; released when fit ends
        if not plan_path.is_file():
            raise FileNotFoundError(f"nothing to resume in {output}: no plan.json there (start without --resume)")
        saved = json.loads(plan_path.read_text())
        # the network and batch are the plan's, not this device's (a fit begun on a CPU may resume on a GPU);
        # older plans lack batch size, depth or width: the defaults of this device kind then
        gpu = resolve_device(device).type == "cuda"
        plan = plan_fit(micro, minutes=saved["minutes"], device=device, periodic=saved["periodic"],
                        patch_size=saved["patch_size"], steps=saved["steps"],
                        batch_size=saved.get("batch_size", 128 if gpu else 32), sampler=sampler,
                        depth=saved.get("depth", 1 if micro.shape[1] == 2 else 3 if gpu else 2),
                        latent_channels=saved.get("latent_channels"), time_budget=saved.get("time_budget", False))
    else:
        plan = plan_fit(micro, minutes=minutes, device=device, periodic=periodic, patch_size=patch_size, sampler=sampler)
    _check_size(settings.size, plan)
    if not resume:
        # once everything is checked (a refused fit leaves no folder behind): a new folder, this run's until it ends
        output = fresh_directory(output)
        plan_path = output / "plan.json"
        with atomic_write(plan_path, "w") as handle:
            handle.write(json.dumps({"minutes": plan.minutes, "periodic": plan.periodic, "patch_size": plan.patch_size,
                                     "steps": plan.expected_steps, "time_budget": plan.training_settings.minutes is not None,
                                     "batch_size": plan.training_settings.batch_size,
                                     "depth": plan.model_settings.depth,
                                     "latent_channels": plan.model_settings.latent_channels, "sampler": plan.sampler,
                                     "reasons": list(plan.reasons)}, indent=2))
    if progress:
        print(f"fitting {name}:\n{plan.describe()}", flush=True)
    planned = time.perf_counter() - started
    # the run trains until its minutes are spent, however busy the machine (the learning rate follows the share of
    # the time spent). A resumed fit trains on only for what is left of its budget (the checkpoint records the time
    # already spent): an interruption costs no more than its budget. A plan from before budgets trains its measured
    # steps with the minutes as a hard limit.
    limit = None  # a budget: the trainer counts the time spent before from its checkpoint
    if plan.training_settings.minutes is None:
        spent = 0.0
        if resume and (output / CHECKPOINT_NAME).is_file():
            spent = float(read_checkpoint(output / CHECKPOINT_NAME)["provenance"]["wall_time_s"])
        limit = max(60 * plan.minutes - spent, 1e-3)
    run = train_score_model(micrograph, model_settings=plan.model_settings, training_settings=plan.training_settings,
                            output=output, resume="if-present" if resume else False, periodic=plan.periodic,
                            progress=progress, time_limit_s=limit)
    trained = time.perf_counter() - started - planned
    statistics = MaterialStatistics.from_microstructure(
        micro, name=meta.get("name", name), phases=meta["phases"], periodic=plan.periodic,
        provenance={"source": str(micrograph), "source_licence": meta.get("licence", "as its owner says")})
    model_path = export_pretrained(output / CHECKPOINT_NAME, name, directory=output / "model", preset="fit",
                                   statistics=statistics, overwrite=True)
    checks, generated = _generate_and_report(micro, meta, plan, model_path, output, n_samples=n_samples, size=size,
                                             seed=seed, device=device, progress=progress,
                                             global_layer=global_layer, sampler_asked=sampler is not None)
    seconds = {"planning": planned, "training": trained, "generating_and_report": generated,
               "total": time.perf_counter() - started}
    steps_done = run.history["step"][-1] if run.history["step"] else 0
    budgeted = plan.training_settings.minutes is not None
    training = {"steps_planned": int(steps_done) if budgeted else plan.training_settings.steps,
                "steps_expected": plan.expected_steps, "steps_done": int(steps_done),
                "budget_minutes": plan.minutes if budgeted else None, "steps_per_second": run.steps_per_second,
                "stopped_at_time_limit": bool(run.stopped_at_time_limit),
                # over every run that trained this checkpoint (a resumed fit's own "training" time is its part)
                "wall_time_s": run.wall_time_s}
    _write_report(output, name, micrograph, plan, model_path, checks, seconds, training)
    return FitResult(output=output, model_path=model_path, plan=plan, checks=checks, seconds=seconds,
                     training=training)


def _check_size(size: int | None, plan: FitPlan) -> None:
    """Refuse, before training, a sample side the planned network cannot take (it halves the image ``depth`` times)."""
    multiple = 2 ** plan.model_settings.depth
    if size is not None and size < multiple:
        raise ValueError(f"--size (size): expected a side of at least {multiple} pixels for this network "
                         f"(D = {plan.model_settings.depth} halves the image {plan.model_settings.depth} times), "
                         f"got {size}")


def _generate_and_report(micro, meta, plan, model_path, output, *, n_samples, size, seed, device, progress,
                         global_layer="auto", sampler_asked=False):
    import matplotlib.pyplot as plt
    import numpy as np

    from lgtutorial._io import atomic_write
    from lgtutorial.evaluation.compare import compare
    from lgtutorial.generation import ORIENTED_SIGMA_C, choose_global_layer
    from lgtutorial.grf.field import statistics_row
    from lgtutorial.plotting import show_microstructures
    from lgtutorial.sampling.hybrid import HybridGenerator
    from lgtutorial.score.registry import load_score_model
    from lgtutorial.statistics.chords import halves_chord_distance

    started = time.perf_counter()
    device = resolve_device(device)
    model, sigmas = load_score_model(str(model_path), device=device)
    shape = (size, size) if size else tuple(micro.shape[2:])
    # the network halves the image `depth` times: each side must be a multiple of 2**depth (the periodic
    # frame adds an even 2 x 16 px); a micrograph of odd size (201 x 201) gives samples a pixel smaller
    multiple = int(getattr(model, "size_multiple", 1))
    if any(side % multiple for side in shape):
        fitted = tuple(side - side % multiple for side in shape)
        if progress:
            print(f"samples of {fitted[0]}x{fitted[1]} px instead of {shape[0]}x{shape[1]}: the network takes "
                  f"sides that are multiples of {multiple}", flush=True)
        shape = fitted
    generator = HybridGenerator.from_statistics(statistics_row(micro), model, shape=shape, sigmas=sigmas,
                                                sampler=plan.sampler, device=device)
    layer, layer_reason = choose_global_layer(global_layer, micro, generator, seed=seed)
    if layer is not None:  # laths painted into the GRF's colonies, refined by the sampler that keeps them
        generator = HybridGenerator(generator.field, model, sigmas=sigmas, sampler=plan.sampler if sampler_asked else
                                    "oriented", sigma_c=ORIENTED_SIGMA_C, device=device, oriented=layer)
        if progress:
            print(f"global layer: oriented ({layer_reason})", flush=True)
    samples = generator.sample(n_samples, seed=seed, return_grf=True, progress=progress)
    hybrid, grf = samples.microstructures.cpu(), samples.grf.cpu()
    if not bool(((grf == 0) | (grf == 1)).all()):
        # a sampler that refines the continuous fields (N > 2 phases, e.g. 'faithful'): the GRF baseline of
        # the report is the GRF layer alone, segmented by its own rule
        from lgtutorial.grf.segmentation import segment_preserving_fractions

        rule = generator.field.choose_segmentation()
        grf = segment_preserving_fractions(grf, generator.field.target_volume_fractions.cpu(),
                                           smooth=rule == "preserve")
    for file, array in (("samples.npy", hybrid), ("grf.npy", grf)):
        with atomic_write(output / file) as handle:
            np.save(handle, array.numpy())
    comparison = compare(micro, {"GRF": grf, "hybrid": hybrid}, reference_periodic=plan.periodic,
                         patch_size=plan.patch_size, phase_names=meta["phases"], three_point_cutoff=6)
    with atomic_write(output / "comparison.md", "w") as handle:
        handle.write(comparison.to_markdown())
    with atomic_write(output / "comparison.csv", "w") as handle:
        handle.write(comparison.to_csv())
    figures = dict(comparison.figures())
    shown = min(3, n_samples)
    axes = show_microstructures([micro[0]] + list(grf[:shown]) + list(hybrid[:shown]),
                                ["reference"] + [f"GRF {k}" for k in range(shown)] + [f"hybrid {k}" for k in range(shown)])
    figures["samples"] = axes[0].figure
    for stem, figure in figures.items():
        with atomic_write(output / f"{stem}.png") as handle:
            figure.savefig(handle, format="png", dpi=110, bbox_inches="tight")
        plt.close(figure)
    rows = {(r["model"], r["phase"]): r for r in comparison.rows}
    phases = meta["phases"]
    checks = {
        "largest_volume_fraction_error": max(abs(rows[("hybrid", p)]["volume_fraction_error"]) for p in phases),
        "chord_distances": {p: {m: max(rows[(m, p)]["chord_x_distance"], rows[(m, p)]["chord_y_distance"])
                                for m in ("GRF", "hybrid")} for p in phases},
        "coherence": {p: {m: rows[(m, p)]["coherence_mean"] for m in ("reference", "GRF", "hybrid")} for p in phases},
        # what the reference's own top and bottom halves differ by: the measure's resolution here
        "chord_distance_halves": dict(zip(phases, halves_chord_distance(micro))),
        "recovered_samples": samples.recovered,
        "degenerate_samples": samples.degenerate,
        "evaluations_per_sample": generator.evaluations_per_sample,
        "shape": list(shape),
        "global_layer": "grf" if layer is None else "oriented",
        "global_layer_reason": layer_reason,
    }
    checks["volume_fractions_within_0.01"] = checks["largest_volume_fraction_error"] <= 0.01
    checks["mean_chords"] = mean_chords(micro, {"GRF": grf, "hybrid": hybrid}, phases, periodic=plan.periodic)
    checks["chord_verdicts"] = chord_verdicts(checks["chord_distances"], checks["chord_distance_halves"],
                                              checks["mean_chords"])
    checks["hybrid_chords_closer_than_grf_for_every_phase"] = all(
        v["closer"] for v in checks["chord_verdicts"].values())
    checks.update(region_checks(micro, {"GRF": grf, "hybrid": hybrid}, phases))
    if len(phases) > 2:
        checks["phase_contacts"] = phase_contacts(micro, {"GRF": grf, "hybrid": hybrid}, phases, periodic=plan.periodic)
    checks["no_degenerate_sample"] = not samples.degenerate
    return checks, time.perf_counter() - started
