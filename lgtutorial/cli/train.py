"""``lgtutorial train``, ``pretrained`` and ``fit``: score models from a micrograph, and shipping them.

:func:`run_train` trains as a preset says and writes the checkpoint, ``summary.json`` and the
training report; ``pretrained`` lists and exports shipped models (:mod:`lgtutorial.score.registry`);
``fit`` is :func:`lgtutorial.fitting.fit` on the command line.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from lgtutorial._io import OUTPUT_ROOT, save_figure, save_text
from lgtutorial.score.settings import TRAINING_PRESETS, TrainingSettings, UNetSettings

__all__ = ["run_train"]


def _add_train(subparsers) -> None:
    parser = subparsers.add_parser(
        "train", help="train a score U-Net on patches of one micrograph (resumable)",
        description="Presets: case1 / case2 are the paper's settings (GPU: 500 k / 750 k steps at batch "
                    "128); case1-cpu / case2-cpu fit two CPU cores (batch 32, 20 k / 10 k steps, case2-cpu "
                    "with L_c = 48, D = 2 and 48 px patches).")
    parser.add_argument("reference", help="registry name (see 'lgtutorial data list') or a micrograph file")
    parser.add_argument("--preset", choices=list(TRAINING_PRESETS), default="case1-cpu",
                        help="model and training settings (default: case1-cpu)")
    parser.add_argument("--steps", type=int, default=None, help="optimizer steps (default: the preset's)")
    parser.add_argument("--batch-size", type=int, default=None, help="patches per step (default: the preset's)")
    parser.add_argument("--seed", type=int, default=None, help="seed (default: the preset's, 0)")
    parser.add_argument("--device", default=None, help="'auto', 'cpu', 'cuda', ... (default: auto)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the checkpoint in --output (the same settings are required)")
    parser.add_argument("--output", type=Path, default=None,
                        help="output folder (default: lgtutorial-output/train-REFERENCE-PRESET)")
    parser.add_argument("--report-samples", type=int, default=16,
                        help="unconditional samples for the training report; 0 skips it (default: 16)")
    parser.add_argument("--report-levels", type=int, default=None,
                        help="noise levels used to draw them (default: all; fewer take larger steps)")


def run_train(reference: str, preset: str, *, overrides: dict | None = None, output: Path | None = None,
              resume: bool = False, report_samples: int = 16, report_levels: int | None = None) -> Path:
    """Train as the preset says (with ``overrides`` of TrainingSettings fields); write checkpoint and report."""
    import dataclasses

    import torch

    from lgtutorial._io import fresh_directory
    from lgtutorial.evaluation.training_report import shortened_schedule, training_report
    from lgtutorial.plotting import show_microstructures
    from lgtutorial.score.training import train_score_model

    model_settings = UNetSettings.preset(preset)
    settings = dataclasses.replace(TrainingSettings.preset(preset),
                                   **{k: v for k, v in (overrides or {}).items() if v is not None})
    default = OUTPUT_ROOT / f"train-{Path(str(reference)).stem}-{preset}"
    if resume:
        out = Path(output or default)
        out.mkdir(parents=True, exist_ok=True)
    else:
        out = fresh_directory(output or default)
    run = train_score_model(reference, model_settings=model_settings, training_settings=settings, output=out,
                            resume=resume)
    state = torch.load(run.checkpoint, map_location="cpu", weights_only=True)
    summary = {"checkpoint": str(run.checkpoint), "preset": preset, "model_settings": state["model_settings"],
               "training_settings": state["training_settings"], "provenance": state["provenance"],
               "n_parameters": run.model.n_parameters, "history": run.history}
    save_text(out / "summary.json", json.dumps(summary, indent=2, default=str))
    print(f"trained {run.history['step'][-1]} steps; test loss {run.history['test_loss'][0]:.2f} -> "
          f"{run.history['test_loss'][-1]:.2f}; wrote {run.checkpoint}")
    if report_samples > 0 and settings.train_sigma_max is not None:
        print(f"no unconditional training report: the model was trained on sigma <= {settings.train_sigma_max} only "
              "(hybrid range) and cannot sample from pure noise; judge it by 'lgtutorial generate --model'")
    elif report_samples > 0:
        levels, step_sizes = (run.sigmas, None) if not report_levels else shortened_schedule(run.sigmas, report_levels)
        generator = torch.Generator(device=run.sigmas.device).manual_seed(settings.seed)
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
    overrides = {"steps": args.steps, "batch_size": args.batch_size, "seed": args.seed, "device": args.device}
    run_train(args.reference, args.preset, overrides=overrides, output=args.output, resume=args.resume,
              report_samples=args.report_samples, report_levels=args.report_levels)
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
    from lgtutorial.fitting.fit import FINE_FEATURE_PX
    from lgtutorial.sampling.samplers import DEFAULT_SAMPLER, sampler_help

    parser = subparsers.add_parser(
        "fit", help="your own micrograph: check it, train a score model within a time budget, generate, report",
        description="Checks the micrograph (phases, size, periodicity), picks a patch size and a network from its "
                    "feature sizes and says why, trains for --minutes (measured on this machine; resumable), ships "
                    "the model with the micrograph's statistics as a bundle, then generates GRF and hybrid samples "
                    "and writes report.md with figures.")
    parser.add_argument("micrograph", help="a segmented image (.png, .tif, .npy, .pt; one grey level or colour per "
                                           "phase) or a registry name")
    parser.add_argument("--minutes", type=float, default=15.0,
                        help="training budget on this machine (default: 15; on a GPU the same minutes go much further)")
    parser.add_argument("--name", default=None, help="the model's name (default: from the file name)")
    parser.add_argument("--samples", type=int, default=4, help="GRF and hybrid samples for the report (default: 4)")
    parser.add_argument("--size", type=int, default=None, help="side of the samples (default: the micrograph's size)")
    parser.add_argument("--sampler", default=None,
                        help=f"the hybrid's sampler ({sampler_help()}; default: chosen from the feature sizes, "
                             f"{DEFAULT_SAMPLER}, or fast-fine for two phases with features under {FINE_FEATURE_PX:g} px)")
    parser.add_argument("--patch-size", type=int, default=None, help="override the chosen patch size (px)")
    parser.add_argument("--periodic", action=argparse.BooleanOptionalAction, default=None,
                        help="override the periodicity check")
    parser.add_argument("--device", default="auto", help="'auto', 'cpu', 'cuda', ... (default: auto)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resume", action="store_true", help="continue the training in --output")
    parser.add_argument("--output", type=Path, default=None, help="folder (default: lgtutorial-output/fit-NAME)")


def _run_fit(args) -> int:
    from lgtutorial.fitting.fit import fit

    if args.samples < 1:
        raise ValueError(f"--samples must be a positive integer, got {args.samples}")
    result = fit(args.micrograph, name=args.name, minutes=args.minutes, output=args.output, resume=args.resume,
                 n_samples=args.samples, size=args.size, sampler=args.sampler, device=args.device, seed=args.seed,
                 periodic=args.periodic, patch_size=args.patch_size)
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
