"""Your own micrograph, end to end: check it, plan and train a score model, generate, report.

``lgtutorial fit MICROGRAPH`` (or :func:`fit`) takes one segmented micrograph (a file or a registry
name) and

1. checks it: phases, size, whether it looks periodic (:func:`inspect_micrograph`);
2. plans the training from its feature sizes and the time budget (:func:`plan_fit`), and says why:
   the patch side from the mean chord lengths, the model from the number of phases, the steps from
   the throughput measured on this machine (:func:`lgtutorial.score.training.steps_for_budget`), the
   hybrid-range recipe (only the noise levels the hybrid visits are trained on);
3. trains (checkpointed, resumable with ``resume=True`` / ``--resume``, a progress bar with ETA);
4. ships the result as a reusable bundle ``model/<name>.pt`` (weights, the micrograph's statistics,
   a model card): ``lgtutorial generate --model .../model/<name>.pt`` or
   ``HybridGenerator`` via :func:`lgtutorial.score.registry.load_score_model`;
5. generates GRF and hybrid samples from the same starts and writes one report (``report.md`` and
   figures): reference beside samples, volume fractions, 2-point slices, chord-length
   distributions and their distances, boundary coherence, checks, time spent.

>>> from lgtutorial.synthetic import blobs
>>> plan = plan_fit(blobs(64, 2.0), minutes=1.0, device="cpu", measure_speed=False)
>>> plan.patch_size, plan.model_settings.channels, plan.periodic, plan.training_settings.train_sigma_max
(32, 1, True, 1.5)
>>> plan_fit(blobs(64, 2.0)[..., :40, :40], minutes=1.0, device="cpu", measure_speed=False).periodic
False
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from lgtutorial._checks import resolve_device
from lgtutorial.sampling.samplers import DEFAULT_SAMPLER
from lgtutorial.score.schedules import (
    HYBRID_TRAIN_SIGMA_MAX,
    SIGMA_C,
    SIGMA_MAX,
    SIGMA_MAX_THREE_PHASE,
    SIGMA_MIN,
)
from lgtutorial.score.settings import TrainingSettings, UNetSettings
from lgtutorial.score.unet import receptive_field

__all__ = ["FitPlan", "FitResult", "fit", "inspect_micrograph", "plan_fit"]

#: the noise levels a fitted model is trained on: up to twice the hybrid's sigma_c
HYBRID_TOP = HYBRID_TRAIN_SIGMA_MAX
#: Below this finest mean chord (px) the plan samples a 2-phase micrograph with ``"fast-fine"``
#: (:data:`lgtutorial.sampling.samplers.SAMPLERS`; ``benchmarks/results/fit_sampler_fine_cpu.md``: with the
#: 30-minute alloy model two of four samples drew mostly continuous lines where three of four were dotted,
#: and it changed little elsewhere; on the 3-phase
#: composite one phase came out further from the reference, so three phases keep ``"fast"``).
FINE_FEATURE_PX = 4.0


def inspect_micrograph(micro: torch.Tensor) -> dict:
    """Phases, size, volume fractions, mean chord lengths and a periodicity check of ``(1, N, H, W)``.

    A micrograph is taken as periodic when its phases change across the wrap-around seam (last
    row/column to first) closer to as often as between neighbouring rows/columns inside than to as
    often as between two far-apart pixels (``1 - sum_a v_a^2``): a cut-out of a larger specimen
    joins unrelated pixels at the seam.
    """
    from lgtutorial.statistics.chords import chord_lengths

    labels = micro[0].argmax(0)
    seams, insides = [], []
    for axis in (0, 1):
        inside = (labels.diff(dim=axis) != 0).double().mean()
        seam = (labels.select(axis, 0) != labels.select(axis, -1)).double().mean()
        seams.append(float(seam))
        insides.append(float(inside))
    fractions = micro.double().mean(dim=(0, 2, 3))
    unrelated = float(1.0 - (fractions**2).sum())  # change rate between independent pixels
    periodic = all(seam <= (inside + unrelated) / 2 for seam, inside in zip(seams, insides))
    # a uniform frame (e.g. a one-pixel border of one phase) makes the seam look seamless
    n_phases = micro.shape[1]
    edges = [labels[0], labels[-1], labels[:, 0], labels[:, -1]]
    framed = any(float(torch.bincount(e, minlength=n_phases).max()) >= 0.98 * e.numel() for e in edges) and \
        max(fractions.tolist()) < 0.9
    periodic = periodic and not framed
    chords = {axis: [c.mean() for c in chord_lengths(micro, axis=axis, periodic=periodic)] for axis in ("x", "y")}
    return {"n_phases": int(micro.shape[1]), "shape": tuple(int(s) for s in micro.shape[2:]),
            "volume_fractions": fractions.tolist(), "periodic": periodic, "unrelated_changes": unrelated, "framed": framed,
            "seam_changes": seams, "inside_changes": insides, "mean_chords": chords}


def finest_mean_chord(info: dict) -> float:
    """The smallest mean chord (px) over phases and axes of :func:`inspect_micrograph`'s ``info`` (4 px if
    no phase has a chord inside the image)."""
    chords = [c for axis in ("x", "y") for c in info["mean_chords"][axis] if c == c]
    return min(chords) if chords else 4.0


@dataclass(frozen=True)
class FitPlan:
    """What :func:`fit` will do, and why (``describe()``)."""

    info: dict
    periodic: bool
    patch_size: int
    model_settings: UNetSettings
    training_settings: TrainingSettings
    minutes: float
    reasons: tuple
    sampler: str = DEFAULT_SAMPLER

    def describe(self) -> str:
        return "\n".join(f"- {reason}" for reason in self.reasons)


def plan_fit(micro: torch.Tensor, *, minutes: float = 15.0, device="auto", periodic: bool | None = None,
             patch_size: int | None = None, measure_speed: bool = True, steps: int | None = None,
             batch_size: int | None = None, sampler: str | None = None, depth: int | None = None) -> FitPlan:
    """Choose the patch size, the model, the training length and the sampler for one micrograph (see :func:`fit`).

    ``depth`` overrides the network's number of levels (a resumed fit passes the one it planned).
    """
    if not (isinstance(minutes, (int, float)) and math.isfinite(minutes) and minutes > 0):
        raise ValueError(f"minutes must be a positive number, got {minutes!r}")
    if depth is not None and not (isinstance(depth, int) and not isinstance(depth, bool) and 0 <= depth <= 6):
        raise ValueError(f"depth must be an integer from 0 to 6, got {depth!r}")
    info = inspect_micrograph(micro)
    n_phases, (height, width) = info["n_phases"], info["shape"]
    reasons = [f"{n_phases} phases, {height}x{width} px, volume fractions "
               + ", ".join(f"{v:.3f}" for v in info["volume_fractions"])]
    if periodic is None:
        periodic = info["periodic"]
        reasons.append("not periodic: a uniform frame of one phase runs along its edge" if info["framed"] else
                       f"{'periodic' if periodic else 'not periodic'}: phases change across the wrap-around seam at "
                       f"{max(info['seam_changes']):.3f} of the pixels against {max(info['inside_changes']):.3f} "
                       "between neighbouring lines inside" + ("" if periodic else " (patches are cut inside the image)"))
    else:
        reasons.append(f"periodic={periodic} as asked")
    finest = finest_mean_chord(info)
    if patch_size is None:
        # about 8 of the finest features across (the paper: 40 px for ~5 px precipitates), a multiple of
        # 8, between 32 and 64 px, and at most half the micrograph so that patches differ
        patch_size = int(min(64, max(32, 8 * round(8 * finest / 8)), 8 * (min(height, width) // 16)))
        reasons.append(f"patches of {patch_size} px: the finest mean chord is {finest:.1f} px, and a patch should "
                       "hold several of the features the local layer must learn")
    if patch_size < 8 or patch_size > min(height, width):
        raise ValueError(f"the patch size must be between 8 px and the micrograph's smaller side "
                         f"({min(height, width)} px), got {patch_size}")
    if sampler is None:
        if finest < FINE_FEATURE_PX and n_phases == 2:
            sampler = "fast-fine"
            reasons.append(f"the sampler 'fast-fine' (88 network evaluations a sample, not 49): the finest mean chord "
                           f"is {finest:.1f} px, under {FINE_FEATURE_PX:g}; 'fast' stops at sigma = 0.1, where lines one "
                           "or two pixels wide can still be grey, and breaks them into dots")
        else:
            sampler = DEFAULT_SAMPLER
    else:
        reasons.append(f"the sampler {sampler!r} as asked")
    device = resolve_device(device)
    gpu = device.type == "cuda"
    asked = depth is not None
    if n_phases == 2:
        # the network must see a feature and as much again around it to draw it whole: the shallowest depth whose
        # receptive field spans twice the finest mean chord (ngrf-two-phase-dense-circles, 12 px discs: with
        # D = 1, an 18 px window, the hybrid merged them into worms; D = 2 kept most of them round,
        # benchmarks/results/fit_registered_cpu.md), and no wider than a patch (the paper saw fields larger
        # than the patch make the model unstable)
        windows = {d: receptive_field(UNetSettings(depth=d)) for d in (1, 2, 3)}
        allowed = [d for d, window in windows.items() if d == 1 or window <= patch_size]
        feature_depth = next((d for d in allowed if windows[d] >= 2 * finest), allowed[-1])
        model = UNetSettings(channels=1, latent_channels=40, depth=int(depth) if asked else feature_depth,
                             num_blocks=1)
        window = receptive_field(model)
        if asked:
            reasons.append(f"the paper's 2-phase network (one channel, L_c = 40) with the depth given, D = "
                           f"{model.depth} ({window} px receptive field)")
        elif model.depth == 1:
            reasons.append(f"the paper's 2-phase network (one channel, L_c = 40, D = 1, about 105 k parameters): its "
                           f"{window} px receptive field spans twice the finest mean chord ({finest:.1f} px)")
        else:
            reasons.append(f"the paper's 2-phase network one level deeper per doubling (one channel, L_c = 40, D = "
                           f"{model.depth}): a {window} px receptive field, so that the network sees a feature of the "
                           f"finest mean chord ({finest:.1f} px) and as much again around it (D = 1 sees "
                           f"{windows[1]} px)")
    else:
        # three or more phases keep the CPU variant's D = 2 whatever the features: one level deeper (52 px) measured
        # no better on ngrf-three-phase-simple at 30 min, chords of two phases further, the rarest phase's regions
        # alike (benchmarks/results/fit_registered_cpu_3phase_depth3.md)
        model = UNetSettings(channels=n_phases, latent_channels=100 if gpu else 48,
                             depth=int(depth) if asked else (3 if gpu else 2), num_blocks=1)
        window = receptive_field(model)
        reasons.append(f"a network of {n_phases} channels: " + (
            f"L_c = {model.latent_channels}, the depth given, D = {model.depth}" if asked else
            "the paper's (L_c = 100, D = 3)" if gpu else
            "the CPU variant L_c = 48, D = 2 (the paper's L_c = 100, D = 3 is 7x slower here)")
            + f": a {window} px receptive field")
        if not gpu and minutes < 60:
            reasons.append(f"warning: {minutes:g} min on a CPU is likely too short for {n_phases} phases: in this "
                           "project's measurements 8-30 CPU minutes brought the chord lengths of three-phase "
                           "micrographs closer than the GRF's, not yet the sizes of their connected regions "
                           "(benchmarks/results/fit_registered_cpu.md); give it an hour, or a GPU")
    if patch_size % (2 ** model.depth):
        raise ValueError(f"the patch size must be a multiple of {2 ** model.depth} for this network, got {patch_size}")
    if batch_size is None:
        if gpu:
            batch_size = 128
        else:
            # on a CPU the budget buys few steps: a batch holds as many pixels as 32 patches of 32 px, so a
            # larger patch (more context) does not cost steps (li2018-ceramics and the 64 px synthetic
            # micrographs, fitted for 8 minutes: benchmarks/results/fit_registered_cpu.md)
            batch_size = max(8, round(32 * (32 / patch_size) ** 2))
            if batch_size != 32:
                reasons.append(f"batches of {batch_size} patches of {patch_size} px: as many pixels per step as "
                               "32 patches of 32 px, so that the larger patch does not cost steps")
    training = TrainingSettings(patch_size=patch_size, n_patches=4000 if n_phases == 2 else 8000,
                                batch_size=int(batch_size), steps=1,
                                sigma_max=SIGMA_MAX if n_phases == 2 else SIGMA_MAX_THREE_PHASE,
                                sigma_min=SIGMA_MIN, train_sigma_max=HYBRID_TOP, device=str(device))
    reasons.append(f"the hybrid-range recipe: noise levels up to sigma = {HYBRID_TOP} only (the hybrid starts at "
                   f"{SIGMA_C}), so every step trains what the hybrid uses")
    if steps is None:
        steps = (_steps_for(model, training, minutes) if measure_speed else max(1, int(minutes * 60)))
        how = "throughput measured just now" if measure_speed else "assuming one step per second"
        reasons.append(f"{steps:,} optimizer steps of {training.batch_size} patches: what fits in {minutes:g} min on "
                       f"{device} ({how})")
    else:
        reasons.append(f"{steps:,} optimizer steps of {training.batch_size} patches (as planned before)")
    # a test-loss evaluation and a checkpoint cost several steps each: not more often than every 25 steps
    # (and checkpoints also every few minutes, whatever the count)
    training = dataclasses.replace(training, steps=int(steps), eval_every=max(25, steps // 10),
                                   checkpoint_every=max(25, min(250, steps // 10)))
    return FitPlan(info=info, periodic=bool(periodic), patch_size=int(patch_size), model_settings=model,
                   training_settings=training, minutes=float(minutes), reasons=tuple(reasons), sampler=sampler)


_SECONDS_PER_STEP: dict = {}


def _steps_for(model: UNetSettings, training: TrainingSettings, minutes: float) -> int:
    """Steps that fit in ``minutes``; the throughput is measured once per network, batch and thread count."""
    from lgtutorial.score.training import steps_for_budget

    key = (model, training.patch_size, training.batch_size, training.device, torch.get_num_threads())
    if key not in _SECONDS_PER_STEP:
        _SECONDS_PER_STEP[key] = 60.0 / steps_for_budget(model, training, 1.0, share=1.0)
    return max(1, int(minutes * 60 * 0.93 / _SECONDS_PER_STEP[key]))


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


def fit(micrograph, *, name: str | None = None, minutes: float = 15.0, output=None, resume: bool = False,
        n_samples: int = 4, size: int | None = None, sampler: str | None = None, device="auto", seed: int = 0,
        periodic: bool | None = None, patch_size: int | None = None, progress: bool = True) -> FitResult:
    """From one segmented micrograph to a trained generator and a report (see the module docstring).

    Args:
        micrograph: a file (``.png``, ``.tif``, ``.npy``, ``.pt``; one grey level or colour per phase)
            or a registry name.
        name: the model's name (default: from the file name).
        minutes: training budget on this machine (the steps are measured to fit it).
        output: the folder (default ``lgtutorial-output/fit-NAME``; a new numbered one unless ``resume``).
        resume: continue the training checkpoint in ``output`` (the plan saved there is reused) for
            what is left of its budget, then generate and report.
        n_samples: GRF and hybrid samples for the report.
        size: side of the square samples (default: the micrograph's own size).
        sampler: the hybrid's sampler (default: chosen by the plan, ``"fast"``, or ``"fast-fine"`` for features
            under :data:`FINE_FEATURE_PX` wide; failed samples are redone with ``"faithful"``).
        periodic: override the periodicity check; patch_size: override the chosen patch size.

    Example (three lines in a notebook)::

        import lgtutorial as lg
        result = lg.fit("my_micrograph.png", minutes=15)
        print(result.output / "report.md")
    """
    from lgtutorial import data
    from lgtutorial._io import atomic_write, fresh_directory
    from lgtutorial.grf.material import MaterialStatistics
    from lgtutorial.score.checkpoints import CHECKPOINT_NAME, read_checkpoint
    from lgtutorial.score.export import export_pretrained
    from lgtutorial.score.training import train_score_model

    started = time.perf_counter()
    micro, meta = data.load(micrograph)
    name = _name_of(name or micrograph)
    if output is None:
        output = Path("lgtutorial-output") / f"fit-{name}"
    output = Path(output)
    plan_path = output / "plan.json"
    if resume:
        if not plan_path.is_file():
            raise FileNotFoundError(f"nothing to resume in {output}: no plan.json there (start without --resume)")
        saved = json.loads(plan_path.read_text())
        gpu = resolve_device(device).type == "cuda"  # older plans lack batch size and depth: their defaults then
        plan = plan_fit(micro, minutes=saved["minutes"], device=device, periodic=saved["periodic"],
                        patch_size=saved["patch_size"], steps=saved["steps"],
                        batch_size=saved.get("batch_size", 128 if gpu else 32), sampler=sampler,
                        depth=saved.get("depth", 1 if micro.shape[1] == 2 else 3 if gpu else 2))
    else:
        output = fresh_directory(output)
        plan = plan_fit(micro, minutes=minutes, device=device, periodic=periodic, patch_size=patch_size, sampler=sampler)
        with atomic_write(plan_path, "w") as handle:
            handle.write(json.dumps({"minutes": plan.minutes, "periodic": plan.periodic, "patch_size": plan.patch_size,
                                     "steps": plan.training_settings.steps, "batch_size": plan.training_settings.batch_size,
                                     "depth": plan.model_settings.depth, "sampler": plan.sampler,
                                     "reasons": list(plan.reasons)}, indent=2))
    if progress:
        print(f"fitting {name}:\n{plan.describe()}", flush=True)
    planned = time.perf_counter() - started
    # the planned steps fill 93 % of the budget; the time limit holds it should the machine slow down
    # (another job, thermal throttling). A resumed fit trains on only for what is left of its budget
    # (the checkpoint records the time already spent): an interruption costs no more than its budget.
    spent = 0.0
    if resume and (output / CHECKPOINT_NAME).is_file():
        spent = float(read_checkpoint(output / CHECKPOINT_NAME)["provenance"]["wall_time_s"])
    run = train_score_model(micrograph, model_settings=plan.model_settings, training_settings=plan.training_settings,
                            output=output, resume="if-present" if resume else False, periodic=plan.periodic,
                            progress=progress, time_limit_s=max(60 * plan.minutes - spent, 1e-3))
    trained = time.perf_counter() - started - planned
    statistics = MaterialStatistics.from_microstructure(
        micro, name=meta.get("name", name), phases=meta["phases"], periodic=plan.periodic,
        provenance={"source": str(micrograph), "source_licence": meta.get("licence", "as its owner says")})
    model_path = export_pretrained(output / CHECKPOINT_NAME, name, directory=output / "model", preset="fit",
                                   statistics=statistics, overwrite=True)
    checks, generated = _generate_and_report(micro, meta, plan, model_path, output, n_samples=n_samples, size=size,
                                             seed=seed, device=device, progress=progress)
    seconds = {"planning": planned, "training": trained, "generating_and_report": generated,
               "total": time.perf_counter() - started}
    steps_done = run.history["step"][-1] if run.history["step"] else 0
    training = {"steps_planned": plan.training_settings.steps, "steps_done": int(steps_done),
                "stopped_at_time_limit": bool(run.stopped_at_time_limit),
                # over every run that trained this checkpoint (a resumed fit's own "training" time is its part)
                "wall_time_s": run.wall_time_s}
    _write_report(output, name, micrograph, plan, model_path, checks, seconds, training)
    return FitResult(output=output, model_path=model_path, plan=plan, checks=checks, seconds=seconds,
                     training=training)


def _generate_and_report(micro, meta, plan, model_path, output, *, n_samples, size, seed, device, progress):
    import matplotlib.pyplot as plt
    import numpy as np

    from lgtutorial._io import atomic_write
    from lgtutorial.evaluation.compare import compare
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
    samples = generator.sample(n_samples, seed=seed, return_grf=True, progress=progress)
    hybrid, grf = samples.microstructures.cpu(), samples.grf.cpu()
    if not bool(((grf == 0) | (grf == 1)).all()):
        # a sampler that refines the continuous fields (N > 2 phases, e.g. 'faithful'): the GRF baseline of
        # the report is the GRF layer alone, segmented by its own rule
        from lgtutorial.grf.field import segment_preserving_fractions

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


def mean_chords(micro, ensembles: dict, phases, *, periodic: bool) -> dict:
    """Per phase, model (``"reference"`` and each ensemble) and axis, the mean chord length from boundary
    counts (:func:`lgtutorial.statistics.chords.boundary_mean_chord`): unbiased on a non-periodic micrograph even for
    chords as long as the image. Ensembles are periodic samples."""
    from lgtutorial.statistics.chords import boundary_mean_chord

    measured = {"reference": (micro, periodic), **{name: (e, True) for name, e in ensembles.items()}}
    per_axis = {name: {axis: boundary_mean_chord(m, axis=axis, periodic=p) for axis in ("x", "y")}
                for name, (m, p) in measured.items()}
    return {phase: {name: {axis: values[axis][a] for axis in ("x", "y")} for name, values in per_axis.items()}
            for a, phase in enumerate(phases)}


def mean_chord_error(means: dict, model: str) -> float:
    """The larger over x and y of ``model``'s relative error of the mean chord against the reference's (for one
    phase of :func:`mean_chords`); NaN where the phase is missing."""
    errors = [abs(means[model][axis] / means["reference"][axis] - 1.0) for axis in ("x", "y")]
    return math.nan if any(e != e for e in errors) else max(errors)


def chord_verdicts(distances: dict, halves: dict, means: dict) -> dict:
    """Per phase, whether the hybrid's chords are closer to the reference's than the GRF's, and by which measure.

    The chord-length-distribution distance decides where it can: where the GRF's or the hybrid's distance
    exceeds what the reference's own top and bottom halves differ by (``halves``). Where both lie within it,
    the distributions of this micrograph cannot tell either ensemble from another piece of the material (a
    phase of a few hundred chords spread over the image width, such as the matrix around sparse particles,
    where two ensembles' distances differ by noise); the mean chord from boundary counts (``means``, of
    :func:`mean_chords`, resolvable there) decides instead.

    >>> means = {"reference": {"x": 110.0, "y": 118.0}, "GRF": {"x": 86.0, "y": 90.0},
    ...          "hybrid": {"x": 100.0, "y": 108.0}}
    >>> chord_verdicts({"matrix": {"GRF": 0.45, "hybrid": 0.48}}, {"matrix": 0.69}, {"matrix": means})["matrix"]
    {'resolved': False, 'judged_by': 'mean chord', 'closer': True}
    >>> chord_verdicts({"matrix": {"GRF": 0.45, "hybrid": 0.48}}, {"matrix": 0.30}, {"matrix": means})["matrix"]
    {'resolved': True, 'judged_by': 'distribution', 'closer': False}
    """
    verdicts = {}
    for phase, d in distances.items():
        resolved = phase not in halves or max(d["GRF"], d["hybrid"]) > halves[phase]
        if resolved:
            closer = d["hybrid"] < d["GRF"]
        else:
            closer = mean_chord_error(means[phase], "hybrid") < mean_chord_error(means[phase], "GRF")
        verdicts[phase] = {"resolved": resolved, "judged_by": "distribution" if resolved else "mean chord",
                           "closer": bool(closer)}
    return verdicts


#: Lags (px) at which the report says which phases touch (:func:`phase_contacts`).
CONTACT_LAGS = (1, 4)


def phase_contacts(micro, ensembles: dict, phases, *, periodic: bool, lags=CONTACT_LAGS) -> dict:
    """Which phases touch, reference against each ensemble: per ordered pair ``"a -> b"`` of distinct phases the
    chance that the pixel ``r`` px from a pixel of ``a`` is of ``b`` (:func:`lgtutorial.statistics.two_point.contact_chances`)
    at each of ``lags``. A reference that keeps two phases apart shows zeros; a GRF cannot hold that."""
    from lgtutorial.statistics.two_point import contact_chances

    side = min(min(micro.shape[2:]), *(min(e.shape[2:]) for e in ensembles.values()))
    lags = [r for r in lags if r <= (side - 1) // 2]
    measured = {"reference": contact_chances(micro, periodic=periodic, lags=lags),
                **{name: contact_chances(e, periodic=True, lags=lags) for name, e in ensembles.items()}}
    return {"lags": lags, **{f"{phases[a]} -> {phases[b]}": {name: m[(a, b)] for name, m in measured.items()}
                             for (a, b) in measured["reference"]}}


#: How far (in decades of region size) the hybrid's connected regions may lie from the reference's
#: beyond what the reference's own halves differ by: 0.1 decade is about 26 % larger or smaller.
REGION_TOLERANCE_DECADES = 0.1


def region_checks(micro, ensembles: dict, phases) -> dict:
    """The connected-region entries of a fit's checks (:mod:`lgtutorial.statistics.clusters`): per phase the median region
    size of the reference and each ensemble, each ensemble's region-size distance to the reference, the
    reference's halves' distance, and whether the hybrid's regions are like the reference's
    (:func:`regions_like_reference`). Every image is cut into windows of the smallest one's size."""
    from lgtutorial.statistics.clusters import (
        cluster_size_distance,
        common_window,
        halves_cluster_distance,
        median_cluster_size,
    )

    window = common_window(micro, *ensembles.values())
    checks = {
        "region_sizes": {p: {"reference": median_cluster_size(micro, a, window=window),
                             **{m: median_cluster_size(e, a, window=window) for m, e in ensembles.items()}}
                         for a, p in enumerate(phases)},
        "region_distances": {p: {m: cluster_size_distance(e, micro, a, window=window) for m, e in ensembles.items()}
                             for a, p in enumerate(phases)},
        "region_distance_halves": dict(zip(phases, halves_cluster_distance(micro))),
        "region_window": list(window),
    }
    checks["hybrid_regions_like_reference_for_every_phase"] = regions_like_reference(
        checks["region_distances"], checks["region_distance_halves"])
    return checks


def regions_like_reference(distances: dict, halves: dict, tolerance: float = REGION_TOLERANCE_DECADES) -> bool:
    """Whether, for every phase, the hybrid's region-size distance to the reference
    (:func:`lgtutorial.statistics.clusters.cluster_size_distance`) is within the reference's own halves' distance plus
    ``tolerance`` decades. A phase missing from the samples (nan) fails.

    >>> regions_like_reference({"grains": {"hybrid": 0.9}}, {"grains": 0.15})  # cells run into one another
    False
    >>> regions_like_reference({"grains": {"hybrid": 0.2}}, {"grains": 0.15})
    True
    """
    return all(d["hybrid"] <= halves[p] + tolerance for p, d in distances.items())


def _judged_by_mean(checks) -> str:
    """The report's note on the phases whose chord check the mean chord decided (:func:`chord_verdicts`)."""
    unresolved = [p for p, v in checks["chord_verdicts"].items() if not v["resolved"]]
    if not unresolved:
        return ""
    return (f" ({', '.join(unresolved)}: the distributions cannot tell GRF and hybrid from the reference's own halves; "
            "judged by the mean chord, below)")


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


def _write_report(output, name, micrograph, plan, model_path, checks, seconds, training):
    from lgtutorial._io import atomic_write

    def yes(flag):
        return "yes" if flag else "**no**"

    try:
        shown = model_path.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        shown = model_path
    lines = [f"# lgtutorial fit: {name}", "", f"Micrograph: `{micrograph}`.", "", "## Plan", "", plan.describe(), "",
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
              f"Training: {training['steps_done']:,} of {training['steps_planned']:,} planned steps in "
              f"{training['wall_time_s'] / 60:.1f} min"
              + (" (the time limit stopped it early: this machine ran slower than measured at the start)."
                 if training["stopped_at_time_limit"] else "."), "",
              "## Reuse", "", f"`lgtutorial generate --model {shown.as_posix()}` draws more samples of this material "
              "(the bundle carries the micrograph's statistics); the model card is beside it.", ""]
    with atomic_write(output / "report.md", "w") as handle:
        handle.write("\n".join(lines))
    with atomic_write(output / "summary.json", "w") as handle:
        handle.write(json.dumps({"name": name, "micrograph": str(micrograph), "model": str(model_path),
                                 "checks": checks, "seconds": seconds, "training": training,
                                 "plan": list(plan.reasons)}, indent=2,
                                default=str))
