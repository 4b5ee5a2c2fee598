"""``lgtutorial train``, ``pretrained`` and ``fit``: score models from a micrograph, and shipping them.

:func:`run_train` trains as a :class:`TrainSettings` says and writes the checkpoint, ``summary.json``
and the training report; ``pretrained`` lists and exports shipped models (:mod:`lgtutorial.score.registry`);
``fit`` is :func:`lgtutorial.fitting.fit.fit` on the command line. The options of ``train`` and ``fit``
are generated from :class:`TrainSettings` and :class:`lgtutorial.fitting.settings.FitSettings`
(:mod:`lgtutorial.cli.options`), which check every option when the object is made, before any work.

>>> TrainSettings("nbsa-proxy", steps=2).training_settings().steps
2
>>> TrainSettings("nbsa-proxy", report_levels=1)
Traceback (most recent call last):
...
ValueError: --report-levels (report_levels): expected an integer from 2 to 1000 (the preset's noise levels), or none (all), got 1
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from lgtutorial._checks import (
    check_settings,
    is_int,
    non_negative_int,
    optional,
    positive_int,
    positive_number,
)
from lgtutorial._io import OUTPUT_ROOT, output_claims, save_figure, save_text
from lgtutorial.cli.options import add_arguments, from_arguments
from lgtutorial.fitting.settings import FitSettings
from lgtutorial.score.settings import BUDGET_STEP_CAP, TRAINING_PRESETS, TrainingSettings, UNetSettings

__all__ = ["TrainSettings", "run_train"]


@dataclass(frozen=True)
class TrainSettings:
    """Training a score U-Net on patches of one micrograph, then its training report (``lgtutorial train``).

    The preset gives the model and the training (:data:`lgtutorial.score.settings.TRAINING_PRESETS`);
    ``steps``, ``batch_size``, ``seed`` and ``device`` override its fields. Everything is checked when the
    object is made, before any training: the report's options too.
    """

    reference: str | Path
    """registry name (see 'lgtutorial data list') or a micrograph file"""
    preset: str = "case1-cpu"
    """model and training settings (see the description above)"""
    steps: int | None = None
    """optimizer steps; none: the preset's (with --minutes: no cap)"""
    minutes: float | None = None
    """train until this many minutes of wall time are spent, the learning rate following the share spent (--steps then caps the steps); none: train --steps steps"""
    batch_size: int | None = None
    """patches per step; none: the preset's"""
    seed: int | None = None
    """seed of the patches, the weights and the training; none: the preset's, 0"""
    device: str | None = None
    """'auto' (GPU when there is one), 'cpu', 'cuda', ...; none: the preset's, auto"""
    resume: bool = False
    """continue the checkpoint in --output (the same settings are required)"""
    output: Path | None = None
    """output folder; none: lgtutorial-output/train-REFERENCE-PRESET"""
    report_samples: int = 16
    """unconditional samples for the training report; 0 skips it"""
    report_levels: int | None = None
    """noise levels used to draw them (fewer take larger steps); none: all of the preset's"""

    def __post_init__(self):
        check_settings(self, {
            "reference": (lambda v: isinstance(v, (str, Path)) and str(v) != "", "a registry name or a file"),
            "preset": (lambda v: v in TRAINING_PRESETS, "one of " + ", ".join(TRAINING_PRESETS)),
            "steps": (optional(positive_int), "a positive integer, or none (the preset's)"),
            "minutes": (optional(positive_number), "a positive finite number of minutes, or none (train --steps)"),
            "batch_size": (optional(positive_int), "a positive integer, or none (the preset's)"),
            "seed": (optional(non_negative_int), "a non-negative integer, or none (the preset's)"),
            "resume": (lambda v: isinstance(v, bool), "true or false"),
            "output": (optional(lambda v: isinstance(v, (str, Path)) and str(v) != ""), "a folder, or none"),
            "report_samples": (non_negative_int, "a non-negative integer (0 skips the report)"),
        })
        levels = self.training_settings().n_levels  # the preset's with the overrides: checks those too
        check_settings(self, {
            "report_levels": (optional(lambda v: is_int(v) and 2 <= v <= levels),
                              f"an integer from 2 to {levels} (the preset's noise levels), or none (all)"),
        })

    def model_settings(self) -> UNetSettings:
        """The preset's network."""
        return UNetSettings.preset(self.preset)

    def training_settings(self) -> TrainingSettings:
        """The preset's training with this job's overrides (``steps``, ``minutes``, ``batch_size``, ``seed``,
        ``device``); a budget (``minutes``) without ``steps`` lifts the preset's step count."""
        steps = self.steps if self.steps is not None or self.minutes is None else BUDGET_STEP_CAP
        overrides = {"steps": steps, "minutes": self.minutes, "batch_size": self.batch_size, "seed": self.seed,
                     "device": self.device}
        return dataclasses.replace(TrainingSettings.preset(self.preset),
                                   **{key: value for key, value in overrides.items() if value is not None})


def _add_train(subparsers) -> None:
    parser = subparsers.add_parser(
        "train", help="train a score U-Net on patches of one micrograph (resumable)",
        description="Presets: case1 / case2 are the paper's settings (GPU: 500 k / 750 k steps at batch "
                    "128); case1-cpu / case2-cpu fit two CPU cores (batch 32, 20 k / 10 k steps, case2-cpu "
                    "with L_c = 48, D = 2 and 48 px patches); case1-hybrid-cpu / case2-hybrid-cpu train only the "
                    "noise levels the hybrid visits (they cannot sample from pure noise). All: "
                    + ", ".join(TRAINING_PRESETS) + ".")
    parser.add_argument("reference", help="registry name (see 'lgtutorial data list') or a micrograph file")
    add_arguments(parser, TrainSettings, skip=("reference",))


@output_claims()
def run_train(settings: TrainSettings) -> Path:
    """Train as ``settings`` say; write the checkpoint, ``summary.json`` and the training report."""
    import torch

    from lgtutorial._io import fresh_directory
    from lgtutorial.evaluation.training_report import training_report
    from lgtutorial.plotting import show_microstructures
    from lgtutorial.score.schedules import shortened_schedule
    from lgtutorial.score.training import train_score_model

    preset, reference = settings.preset, settings.reference
    model_settings, training = settings.model_settings(), settings.training_settings()
    default = OUTPUT_ROOT / f"train-{Path(str(reference)).stem}-{preset}"
    # the run's own folder until it ends; --resume: this very folder, refused while another run holds it
    out = fresh_directory(settings.output or default, overwrite=settings.resume)
    run = train_score_model(reference, model_settings=model_settings, training_settings=training, output=out,
                            resume=settings.resume)
    state = torch.load(run.checkpoint, map_location="cpu", weights_only=True)
    summary = {"checkpoint": str(run.checkpoint), "preset": preset, "model_settings": state["model_settings"],
               "training_settings": state["training_settings"], "provenance": state["provenance"],
               "n_parameters": run.model.n_parameters, "history": run.history}
    summary["steps_per_second"] = run.steps_per_second
    save_text(out / "summary.json", json.dumps(summary, indent=2, default=str))
    budget = f" in {run.wall_time_s / 60:.1f} min of a {training.minutes:g} min budget" if training.minutes else ""
    print(f"trained {run.history['step'][-1]} steps{budget} ({run.steps_per_second:.2f} steps/s); test loss "
          f"{run.history['test_loss'][0]:.2f} -> {run.history['test_loss'][-1]:.2f}; wrote {run.checkpoint}")
    report_samples, report_levels = settings.report_samples, settings.report_levels
    if report_samples > 0 and training.train_sigma_max is not None:
        print(f"no unconditional training report: the model was trained on sigma <= {training.train_sigma_max} only "
              "(hybrid range) and cannot sample from pure noise; judge it by 'lgtutorial generate --model'")
    elif report_samples > 0:
        levels, step_sizes = (run.sigmas, None) if not report_levels else shortened_schedule(run.sigmas, report_levels)
        generator = torch.Generator(device=run.sigmas.device).manual_seed(training.seed)
        report = training_report(run.model, run.patches.train, sigmas=levels, step_sizes=step_sizes,
                                 n_samples=report_samples, test_patches=run.patches.test, generator=generator)
        save_text(out / "report.md", report.markdown() + "\n")
        save_text(out / "report.json", json.dumps(report.summary, indent=2))
        shown = min(4, report_samples)
        titles = [f"patch {k}" for k in range(shown)] + [f"sample {k}" for k in range(shown)]
        axes = show_microstructures(list(run.patches.train.one_hot(range(shown)).cpu()) + list(report.samples[:shown]),
                                    titles)
        save_figure(axes[0].figure, out / "samples.png")
        print(report.markdown())
    return out


def _run_train(args) -> int:
    run_train(from_arguments(TrainSettings, args))
    return 0


# -- pretrained ---------------------------------------------------------------------------------
def _add_pretrained(subparsers) -> None:
    parser = subparsers.add_parser("pretrained", help="this project's shipped score models: list them, export new ones")
    actions = parser.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="list the shipped models with their training steps and model cards")
    export = actions.add_parser("export", help="bundle the EMA weights of a training checkpoint with its micrograph's "
                                               "statistics and a model card (NAME.pt, NAME.md, index.toml)")
    export.add_argument("checkpoint", type=Path, help="checkpoint.pt written by 'lgtutorial train' (or its folder)")
    export.add_argument("name", help="model name, e.g. my-alloy")
    export.add_argument("--directory", type=Path, default=None,
                        help="where to write (default: lgtutorial-output/models; never the installed package unless "
                             "named here)")
    export.add_argument("--force", action="store_true", help="replace an existing model of that name there")


def _run_pretrained(args) -> int:
    from lgtutorial.score import registry as pretrained
    from lgtutorial.score.export import export_pretrained

    if args.action == "export":
        path = export_pretrained(args.checkpoint, args.name, directory=args.directory, overwrite=args.force)
        print(f"wrote {path}, {path.with_suffix('.md').name} and {pretrained.INDEX_NAME} in {path.parent}")
        return 0
    index = pretrained.read_index(pretrained.pretrained_directory())
    print(f"shipped models in {pretrained.pretrained_directory()}:")
    for name, entry in sorted(index.items()):
        print(f"{name:<20} {entry['channels']} channel(s), {entry['reference']:<14} preset {entry['preset']:<10} "
              f"{entry['steps_done']:>7,} of {entry['steps_planned']:,} steps; card: {entry['card']}")
    return 0


# -- fit ----------------------------------------------------------------------------------------
def _add_fit(subparsers) -> None:
    parser = subparsers.add_parser(
        "fit", help="your own micrograph: check it, train a score model within a time budget, generate, report",
        description="Checks the micrograph (phases, size, periodicity), picks a patch size and a network from its "
                    "feature sizes and says why, trains for --minutes (measured on this machine; resumable), ships "
                    "the model with the micrograph's statistics as a bundle, then generates GRF and hybrid samples "
                    "and writes report.md with figures.")
    parser.add_argument("micrograph", help="a segmented image (.png, .tif, .npy, .pt; one grey level or colour per "
                                           "phase) or a registry name")
    add_arguments(parser, FitSettings)


def _run_fit(args) -> int:
    from lgtutorial.fitting.fit import fit

    options = dataclasses.asdict(from_arguments(FitSettings, args))  # checked here, before anything is loaded
    options["n_samples"] = options.pop("samples")
    result = fit(args.micrograph, **options)
    checks = result.checks
    print(f"wrote {result.output}/report.md; model bundle {result.model_path}")
    print(f"largest volume-fraction error {checks['largest_volume_fraction_error']:.4f}; hybrid chord distributions "
          f"closer than the GRF's for every phase: {checks['hybrid_chords_closer_than_grf_for_every_phase']}; "
          f"connected regions as large as the reference's for every phase: "
          f"{checks['hybrid_regions_like_reference_for_every_phase']}; degenerate samples: {checks['degenerate_samples'] or 'none'}")
    return 0 if checks["no_degenerate_sample"] else 1


#: The subcommands this module adds to ``lgtutorial`` (:data:`lgtutorial.cli.main.COMMANDS`).
COMMANDS = {"train": (_add_train, _run_train), "pretrained": (_add_pretrained, _run_pretrained),
            "fit": (_add_fit, _run_fit)}
