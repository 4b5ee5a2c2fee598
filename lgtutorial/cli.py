"""The ``lgtutorial`` command line: ``lgtutorial --help`` lists the subcommands.

Each subcommand is a pair of functions here, ``_add_<name>(subparsers)`` and ``_run_<name>(args)``;
options that have defaults in :mod:`lgtutorial.settings` are generated from those dataclasses.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from . import settings as settings_module

OUTPUT_ROOT = Path("lgtutorial-output")


def _save_npy(path: Path, array) -> None:
    from ._io import atomic_write

    with atomic_write(path) as handle:
        np.save(handle, np.asarray(array))


def _save_figure(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    from ._io import atomic_write

    with atomic_write(path) as handle:
        fig.savefig(handle, format=path.suffix.lstrip("."), dpi=120, bbox_inches="tight")
    plt.close(fig)


def _save_text(path: Path, text: str) -> None:
    from ._io import atomic_write

    with atomic_write(path, "w") as handle:
        handle.write(text)


# -- data ---------------------------------------------------------------------------------------
def _add_data(subparsers) -> None:
    parser = subparsers.add_parser("data", help="the reference data registry")
    actions = parser.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="list registered references and where they are found")
    listing.add_argument("--kind", choices=["micrograph", "checkpoint", "config"], default=None)
    fetch = actions.add_parser("fetch", help="find or download a registered file and print its path")
    fetch.add_argument("name")


def _run_data(args) -> int:
    from . import data

    if args.action == "fetch":
        print(data.fetch(args.name))
        return 0
    print(f"searched: {', '.join(str(p) for p in data.data_directories())}")
    print(f"{'name':<30} {'kind':<11} {'licence':<12} {'found':<6} description")
    for entry in data.list_references(args.kind):
        found = any((folder / entry.filename).is_file() for folder in data.data_directories())
        print(f"{entry.name:<30} {entry.kind:<11} {entry.licence:<12} {'yes' if found else 'no':<6} {entry.description}")
    return 0


# -- stats --------------------------------------------------------------------------------------
def _add_stats(subparsers) -> None:
    parser = subparsers.add_parser(
        "stats", help="volume fractions and 2-point statistics of a reference or a micrograph file"
    )
    parser.add_argument("source", help="registry name (see 'lgtutorial data list') or a file path")
    parser.add_argument("--periodic", action=argparse.BooleanOptionalAction, default=None,
                        help="periodic statistics (default: as the registry says; non-periodic for files)")
    parser.add_argument("--output", type=Path, default=None, help="output folder (default: lgtutorial-output/stats-NAME)")


def _run_stats(args) -> int:
    from . import data
    from ._io import fresh_directory
    from .plotting import show_two_point_statistics
    from .statistics import two_point_statistics, volume_fractions

    micro, meta = data.load(args.source)
    periodic = args.periodic if args.periodic is not None else bool(meta.get("periodic", False))
    fractions = volume_fractions(micro)[0].tolist()
    name = meta.get("name", Path(args.source).stem)
    print(f"{name}: {micro.shape[1]} phases, {tuple(micro.shape[2:])} pixels")
    for phase, fraction in zip(meta["phases"], fractions):
        print(f"  volume fraction of {phase}: {fraction:.4f}")
    stats = two_point_statistics(micro.double(), periodic=periodic)[0]
    out = fresh_directory(args.output or OUTPUT_ROOT / f"stats-{name}")
    _save_npy(out / "two_point_statistics.npy", stats.float().numpy())
    summary = {"source": str(args.source), "phases": meta["phases"], "volume_fractions": fractions,
               "periodic": periodic, "lag_order": "FFT order: zero lag at index 0",
               "array": "two_point_statistics.npy (n_phases, n_phases, *lags)"}
    _save_text(out / "summary.json", json.dumps(summary, indent=2))
    cutoff = min(64, min(micro.shape[2:]) // 2)
    _save_figure(show_two_point_statistics(stats, phase_names=meta["phases"], cutoff=cutoff),
                 out / "two_point_statistics.png")
    print(f"wrote {out}/two_point_statistics.npy, .png and summary.json")
    return 0


# -- grf ----------------------------------------------------------------------------------------
def _add_grf(subparsers) -> None:
    parser = subparsers.add_parser("grf", help="sample Gaussian random fields from a reference's 2-point statistics")
    settings_module.add_arguments(parser, settings_module.GRFSettings)
    parser.add_argument("--output", type=Path, default=None, help="output folder (default: lgtutorial-output/grf-REFERENCE)")


def run_grf(settings: settings_module.GRFSettings, output: Path | None = None) -> Path:
    """Sample GRFs as ``settings`` says; write ``samples.npy``, ``samples.png`` and ``summary.json``."""
    import torch

    from . import data
    from ._io import fresh_directory
    from .grf import GaussianRandomField
    from .plotting import show_microstructures

    device = settings_module.resolve_device(settings.device)
    micro, meta = data.load(settings.reference)
    field = GaussianRandomField.from_microstructure(micro, reference_phase=settings.reference_phase, device=device)
    generator = torch.Generator(device=device).manual_seed(settings.seed)
    segmentation = None if settings.segmentation == "none" else settings.segmentation
    samples = field.sample(settings.n_samples, generator=generator, filter_sigma=settings.filter_sigma,
                           segmentation=segmentation)
    result = samples.segmented if samples.segmented is not None else samples.filtered
    name = meta.get("name", Path(settings.reference).stem)
    out = fresh_directory(output or OUTPUT_ROOT / f"grf-{name}")
    _save_npy(out / "samples.npy", result.cpu().numpy())
    if samples.segmented is not None:
        _save_npy(out / "samples_continuous.npy", samples.filtered.cpu().numpy())
    shown = min(4, settings.n_samples)
    fig_axes = show_microstructures([micro[0]] + list(result[:shown].cpu()),
                                    ["reference"] + [f"GRF {k}" for k in range(shown)])
    _save_figure(fig_axes[0].figure, out / "samples.png")
    achieved = samples.achieved_volume_fractions.double()
    summary = {
        "settings": settings.__dict__,
        "device": str(device),
        "phases": meta["phases"],
        "target_volume_fractions": samples.target_volume_fractions.tolist(),
        "achieved_volume_fractions_mean": achieved.mean(0).tolist(),
        "achieved_volume_fractions_std": achieved.std(0).tolist() if len(achieved) > 1 else [0.0] * achieved.shape[1],
        "samples": "samples.npy (n_samples, n_phases, H, W) one-hot" if samples.segmented is not None
        else "samples.npy (n_samples, n_phases, H, W) continuous",
    }
    _save_text(out / "summary.json", json.dumps(summary, indent=2))
    print(samples.report())
    print(f"wrote {settings.n_samples} samples to {out}")
    return out


def _run_grf(args) -> int:
    run_grf(settings_module.from_arguments(settings_module.GRFSettings, args), args.output)
    return 0


# -- demo ---------------------------------------------------------------------------------------
def _add_demo(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo", help="generate two small hybrid microstructures of the default case study (lgtutorial generate "
                     "--n-samples 2 --size 64)")
    parser.add_argument("--output", type=Path, default=None)


#: ``lgtutorial demo`` (``make demo``): the hybrid generator's defaults on a domain small enough for a CPU
#: (seconds on two cores with the default fast sampler; about a minute with ``--sampler faithful``).
DEMO_SETTINGS = dict(n_samples=2, size=64)


def _run_demo(args) -> int:
    run_generate(settings_module.HybridSettings(**DEMO_SETTINGS), args.output or OUTPUT_ROOT / "demo")
    return 0


# -- evaluate -----------------------------------------------------------------------------------
def _add_evaluate(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="compare generated ensembles with a reference: a table (CSV, Markdown) and the figures"
    )
    parser.add_argument("source", help="reference: registry name (see 'lgtutorial data list') or a micrograph file")
    parser.add_argument("--ensemble", action="append", required=True, metavar="NAME=PATH",
                        help="an ensemble saved as .npy: one-hot (n, N, H, W) as 'lgtutorial grf' writes it, "
                             "or labels (n, H, W); repeat the option for several ensembles")
    settings_module.add_arguments(parser, settings_module.EvaluationSettings)
    parser.add_argument("--output", type=Path, default=None,
                        help="output folder (default: lgtutorial-output/evaluate-REFERENCE)")


def _parse_ensembles(specs: list[str]) -> dict[str, Path]:
    ensembles = {}
    for spec in specs:
        name, separator, path = spec.partition("=")
        if not separator or not name.strip() or not path.strip():
            raise ValueError(f"--ensemble expects NAME=PATH (e.g. GRF=samples.npy); got {spec!r}")
        if name in ensembles:
            raise ValueError(f"--ensemble name {name!r} is given twice")
        path = Path(path)
        if path.suffix.lower() != ".npy":
            raise ValueError(f"--ensemble {name}: expected a .npy file, got {path}")
        if not path.is_file():
            raise FileNotFoundError(f"--ensemble {name}: no such file: {path}")
        ensembles[name.strip()] = path
    return ensembles


def run_evaluate(settings: settings_module.EvaluationSettings, source: str, ensembles: dict,
                 output: Path | None = None) -> Path:
    """Compare ``.npy`` ensembles with a reference; write ``comparison.csv``/``.md``, figures, ``summary.json``."""
    from . import data
    from ._io import fresh_directory
    from .comparison import compare

    device = settings_module.resolve_device(settings.device)
    micro, meta = data.load(source)
    periodic = settings.reference_periodic if settings.reference_periodic is not None else bool(meta.get("periodic", False))
    samples = {name: np.load(path, allow_pickle=False) for name, path in ensembles.items()}
    comparison = compare(
        micro, samples, patch_size=settings.patch_size, cutoff=settings.cutoff, reference_periodic=periodic,
        ensemble_periodic=settings.ensemble_periodic, three_point_cutoff=settings.three_point_cutoff,
        n_components=settings.n_components, fit_radius=settings.fit_radius, phase_names=meta["phases"],
        device=device,
    )
    name = meta.get("name", Path(source).stem)
    out = fresh_directory(output or OUTPUT_ROOT / f"evaluate-{name}")
    _save_text(out / "comparison.csv", comparison.to_csv())
    _save_text(out / "comparison.md", comparison.to_markdown())
    figures = comparison.figures()
    for stem, figure in figures.items():
        _save_figure(figure, out / f"{stem}.png")
    summary = {
        "reference": str(source), "phases": meta["phases"], "reference_periodic": periodic,
        "ensembles": {k: str(v) for k, v in ensembles.items()}, "settings": settings.__dict__,
        "device": str(device), "cutoff": comparison.cutoff, "three_point_cutoff": comparison.three_point_cutoff,
        "three_point_explained_variance_ratio": [r.tolist() for r in comparison.three_point_explained],
        "figures": sorted(f"{stem}.png" for stem in figures),
    }
    _save_text(out / "summary.json", json.dumps(summary, indent=2))
    print(comparison.to_markdown())
    print(f"wrote comparison.csv, comparison.md, {len(figures)} figures and summary.json to {out}")
    return out


def _run_evaluate(args) -> int:
    settings = settings_module.from_arguments(settings_module.EvaluationSettings, args)
    run_evaluate(settings, args.source, _parse_ensembles(args.ensemble), args.output)
    return 0


# -- generate -----------------------------------------------------------------------------------
def _add_generate(subparsers) -> None:
    parser = subparsers.add_parser(
        "generate", help="hybrid microstructures: GRF samples refined by a score model (the paper's method)"
    )
    settings_module.add_arguments(parser, settings_module.HybridSettings)
    parser.add_argument("--output", type=Path, default=None,
                        help="output folder (default: lgtutorial-output/generate-REFERENCE)")


def _load_statistics_row(path: str):
    """Row 0 of periodic 2-point statistics saved as .npy: (N, N, H, W) or (N, H, W)."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--statistics: no such file: {path}")
    if path.suffix.lower() != ".npy":
        raise ValueError(f"--statistics: expected a .npy file of 2-point statistics, got {path}")
    array = np.load(path, allow_pickle=False)
    if array.ndim == 4 and array.shape[0] == array.shape[1]:
        array = array[0]
    if array.ndim != 3 or not np.issubdtype(array.dtype, np.floating):
        raise ValueError(
            f"--statistics: expected periodic 2-point statistics of shape (N, N, H, W) or a row (N, H, W), "
            f"floating point, got {array.dtype} {array.shape}"
        )
    return torch.from_numpy(np.ascontiguousarray(array)).double()


def _mean_chord_lengths(microstructures) -> list:
    from .metrics import chord_lengths

    means = [c.mean() for c in chord_lengths(microstructures, axis="x", periodic=True)]
    return [None if mean != mean else round(mean, 3) for mean in means]  # None: a phase without chords


#: The model ``generate`` and ``demo`` use when neither a model nor statistics are given: it carries
#: the statistics of its training micrograph, so the default needs no data files.
DEFAULT_MODEL = "lgtutorial-case1"


def _model_statistics(model_name: str):
    """The statistics a model carries, else those of its training micrograph when that can be loaded."""
    from .pretrained import statistics_for_model

    material = statistics_for_model(model_name)
    if material is None:
        raise ValueError(f"the score model {model_name!r} carries no statistics of its training micrograph and "
                         "that micrograph could not be loaded; pass --reference (a registry name or a micrograph "
                         "file) or --statistics (a .npy of 2-point statistics)")
    return material


class DegenerateSamples(RuntimeError):
    """Some generated samples failed the guard; the outputs were written all the same."""


def _check_model_material(model_name: str, row, name: str, *, force: bool) -> None:
    """Warn when the model was trained on another material; refuse gross mismatches unless ``force``."""
    from .material import compare_with_training_material
    from .pretrained import statistics_for_model

    material = statistics_for_model(model_name)
    if material is None:
        print(f"warning: cannot tell which material the score model {model_name!r} was trained on", file=sys.stderr)
        return
    message, gross = compare_with_training_material(material, row, name)
    if message is None:
        return
    if gross and not force:
        raise ValueError(f"{message}; it has not seen features like these. Train a model on this micrograph "
                         "('lgtutorial fit'), or pass --force to generate anyway")
    print(f"warning: {message}", file=sys.stderr)


def run_generate(settings: settings_module.HybridSettings, output: Path | None = None) -> Path:
    """Sample hybrid microstructures as ``settings`` says; write ``samples.npy``, ``grf.npy``, a PNG and ``summary.json``."""
    import time

    from . import data
    from ._io import fresh_directory
    from .extrapolation import statistics_row
    from .hybrid import HybridGenerator, default_volume_fraction_shift, load_score_model
    from .plotting import show_microstructures
    from .pretrained import default_model

    if settings.size is not None and settings.size < 2:
        raise ValueError(f"--size must be at least 2 pixels, got {settings.size}")
    device = settings_module.resolve_device(settings.device)
    reference, material = None, None
    if settings.statistics:
        row, name, phases = _load_statistics_row(settings.statistics), Path(settings.statistics).stem, None
    elif settings.reference:
        reference, meta = data.load(settings.reference)
        row, name, phases = statistics_row(reference), meta.get("name", Path(settings.reference).stem), meta["phases"]
    else:  # the statistics the model carries: those of the micrograph it was trained on
        model_name = settings.model or DEFAULT_MODEL
        model, sigmas = load_score_model(model_name, device=device)
        material = _model_statistics(model_name)
        row, name, phases = material.statistics_row(), material.name, material.phases
    phases = phases or [f"phase {n}" for n in range(row.shape[0])]
    shape = (settings.size, settings.size) if settings.size else tuple(row.shape[1:])
    if material is None:
        model_name = settings.model or default_model(row.shape[0])
        model, sigmas = load_score_model(model_name, device=device)
        _check_model_material(model_name, row, name, force=settings.force)
    shift = settings.volume_fraction_shift
    shift = default_volume_fraction_shift(model_name, settings.sampler) if shift is None else shift
    generator = HybridGenerator.from_statistics(
        row, model, shape=shape, device=device, sigmas=sigmas, n_levels=settings.levels, sigma_c=settings.sigma_c,
        step_lr=settings.step_lr, condition_volume_fraction=settings.condition_volume_fraction,
        volume_fraction_estimate=settings.volume_fraction_estimate, volume_fraction_shift=shift,
        periodic=settings.periodic, padding=settings.padding, sampler=settings.sampler, guard=settings.guard,
    )
    out = fresh_directory(output or OUTPUT_ROOT / f"generate-{name}")
    print(f"{settings.n_samples} hybrid samples of {shape[0]}x{shape[1]} px, {len(generator.sigmas)} levels "
          f"from sigma {float(generator.sigmas[0]):.3g} ({settings.sampler} sampler, "
          f"{generator.evaluations_per_sample} network evaluations per sample), score model {model_name}, on {device}")
    started = time.perf_counter()
    samples = generator.sample(settings.n_samples, seed=settings.seed, batch_size=settings.batch_size,
                               return_grf=True)
    seconds = time.perf_counter() - started
    final, grf = samples.microstructures.cpu(), samples.grf.cpu()
    _save_npy(out / "samples.npy", final.numpy())
    _save_npy(out / "grf.npy", grf.numpy())
    shown = min(4, settings.n_samples)
    pictures = list(grf[:shown]) + list(final[:shown])
    titles = [f"GRF {k}" for k in range(shown)] + [f"hybrid {k}" for k in range(shown)]
    if reference is not None and tuple(reference.shape[2:]) == shape:
        pictures, titles = [reference[0]] + pictures, ["reference"] + titles
    figure_axes = show_microstructures(pictures, titles)
    _save_figure(figure_axes[0].figure, out / "samples.png")
    achieved = samples.achieved_volume_fractions.double().cpu()
    target = samples.target_volume_fractions.double().cpu()
    grf_segmented = generator.segment_grf
    summary = {
        "settings": settings.__dict__,
        "device": str(device),
        "phases": phases,
        "shape": list(shape),
        "statistics_moved_to_shape": shape != tuple(row.shape[1:]),
        "model": model_name,
        "levels_run": len(generator.sigmas),
        "network_evaluations_per_sample": generator.evaluations_per_sample,
        "volume_fraction_shift": shift,
        "target_volume_fractions": target.tolist(),
        "achieved_volume_fractions_mean": achieved.mean(0).tolist(),
        "achieved_volume_fractions_std": achieved.std(0).tolist() if len(achieved) > 1 else [0.0] * len(target),
        "largest_volume_fraction_error": float((achieved - target).abs().max()),
        "mean_x_chord_lengths_px": {"hybrid": _mean_chord_lengths(final),
                                    **({"GRF": _mean_chord_lengths(grf)} if grf_segmented else {})},
        "seconds_per_sample": seconds / settings.n_samples,
        "recovered_samples": samples.recovered,
        "degenerate_samples": samples.degenerate,
        "samples": "samples.npy (n_samples, n_phases, H, W) one-hot",
        "grf": "grf.npy: the GRF inputs, " + ("segmented one-hot" if grf_segmented else "continuous"),
    }
    if reference is not None:
        summary["mean_x_chord_lengths_px"]["reference"] = _mean_chord_lengths(reference)
    elif material is not None:
        summary["mean_x_chord_lengths_px"]["reference"] = material.mean_chord_lengths["x"]
        summary["statistics_source"] = {"carried_by_model": model_name, "micrograph": material.name,
                                        **material.provenance}
    _save_text(out / "summary.json", json.dumps(summary, indent=2))
    print(samples.report())
    print(f"{seconds / settings.n_samples:.1f} s per sample; wrote samples.npy, grf.npy, samples.png and "
          f"summary.json to {out}")
    if samples.degenerate:
        message = (f"{len(samples.degenerate)} of {settings.n_samples} samples are degenerate (non-finite, or a volume "
                   f"fraction off the target by more than {settings.guard}) even with the faithful sampler: samples "
                   f"{samples.degenerate} (listed in summary.json); the score model may not fit these statistics")
        if not settings.keep_going:
            raise DegenerateSamples(message + "; pass --keep-going to accept them")
        print(f"warning: {message}", file=sys.stderr)
    return out


def _run_generate(args) -> int:
    run_generate(settings_module.from_arguments(settings_module.HybridSettings, args), args.output)
    return 0


# -- train --------------------------------------------------------------------------------------
def _add_train(subparsers) -> None:
    parser = subparsers.add_parser(
        "train", help="train a score U-Net on patches of one micrograph (resumable)",
        description="Presets: case1 / case2 are the paper's settings (GPU: 500 k / 750 k steps at batch "
                    "128); case1-cpu / case2-cpu fit two CPU cores (batch 32, 20 k / 10 k steps, case2-cpu "
                    "with L_c = 48, D = 2 and 48 px patches).")
    parser.add_argument("reference", help="registry name (see 'lgtutorial data list') or a micrograph file")
    parser.add_argument("--preset", choices=list(settings_module.TRAINING_PRESETS), default="case1-cpu",
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

    from ._io import fresh_directory
    from .plotting import show_microstructures
    from .training import shortened_schedule, train_score_model, training_report

    model_settings = settings_module.UNetSettings.preset(preset)
    settings = dataclasses.replace(settings_module.TrainingSettings.preset(preset),
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
    _save_text(out / "summary.json", json.dumps(summary, indent=2, default=str))
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
        _save_text(out / "report.md", report.markdown() + "\n")
        _save_text(out / "report.json", json.dumps(report.summary, indent=2))
        shown = min(4, report_samples)
        titles = [f"patch {k}" for k in range(shown)] + [f"sample {k}" for k in range(shown)]
        axes = show_microstructures(list(run.patches.train.one_hot(range(shown)).cpu()) + list(report.samples[:shown]),
                                    titles)
        _save_figure(axes[0].figure, out / "samples.png")
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
    from . import pretrained

    if args.action == "export":
        path = pretrained.export_pretrained(args.checkpoint, args.name, directory=args.directory, overwrite=args.force)
        print(f"wrote {path}, {path.with_suffix('.md').name} and {pretrained.INDEX_NAME} in {path.parent}")
        return 0
    index = pretrained._read_index(pretrained.pretrained_directory())
    print(f"shipped models in {pretrained.pretrained_directory()}:")
    for name, entry in sorted(index.items()):
        print(f"{name:<20} {entry['channels']} channel(s), {entry['reference']:<14} preset {entry['preset']:<10} "
              f"{entry['steps_done']:>7,} of {entry['steps_planned']:,} steps; card: {entry['card']}")
    return 0


# -- fit ----------------------------------------------------------------------------------------
def _add_fit(subparsers) -> None:
    from .samplers import DEFAULT_SAMPLER, sampler_help

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
    parser.add_argument("--sampler", default=DEFAULT_SAMPLER,
                        help=f"the hybrid's sampler ({sampler_help()}; default: {DEFAULT_SAMPLER})")
    parser.add_argument("--patch-size", type=int, default=None, help="override the chosen patch size (px)")
    parser.add_argument("--periodic", action=argparse.BooleanOptionalAction, default=None,
                        help="override the periodicity check")
    parser.add_argument("--device", default="auto", help="'auto', 'cpu', 'cuda', ... (default: auto)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resume", action="store_true", help="continue the training in --output")
    parser.add_argument("--output", type=Path, default=None, help="folder (default: lgtutorial-output/fit-NAME)")


def _run_fit(args) -> int:
    from .fitting import fit

    if args.samples < 1:
        raise ValueError(f"--samples must be a positive integer, got {args.samples}")
    result = fit(args.micrograph, name=args.name, minutes=args.minutes, output=args.output, resume=args.resume,
                 n_samples=args.samples, size=args.size, sampler=args.sampler, device=args.device, seed=args.seed,
                 periodic=args.periodic, patch_size=args.patch_size)
    checks = result.checks
    print(f"wrote {result.output}/report.md; model bundle {result.model_path}")
    print(f"largest volume-fraction error {checks['largest_volume_fraction_error']:.4f}; hybrid chord distributions "
          f"closer than the GRF's for every phase: {checks['hybrid_chords_closer_than_grf_for_every_phase']}; "
          f"degenerate samples: {checks['degenerate_samples'] or 'none'}")
    return 0 if checks["no_degenerate_sample"] else 1


COMMANDS = {
    "data": (_add_data, _run_data),
    "stats": (_add_stats, _run_stats),
    "grf": (_add_grf, _run_grf),
    "demo": (_add_demo, _run_demo),
    "evaluate": (_add_evaluate, _run_evaluate),
    "generate": (_add_generate, _run_generate),
    "train": (_add_train, _run_train),
    "pretrained": (_add_pretrained, _run_pretrained),
    "fit": (_add_fit, _run_fit),
}


# -- sweep --------------------------------------------------------------------------------------
def _add_sweep(subparsers) -> None:
    parser = subparsers.add_parser(
        "sweep", help="generate a dataset: a YAML design of GRF/hybrid samples run on dask, written to one "
                      "resumable Zarr store", description="See examples/sweep_small.yaml for the design format.")
    parser.add_argument("design", type=Path, help="YAML design file")
    parser.add_argument("--output", type=Path, default=None,
                        help="Zarr store to write (default: lgtutorial-output/sweep-NAME.zarr)")
    parser.add_argument("--scheduler", default=None, metavar="ADDRESS",
                        help="address of a running dask scheduler, e.g. tcp://host:8786 (dask-jobqueue on a "
                             "cluster); default: a local cluster")
    parser.add_argument("--workers", type=int, default=None,
                        help="workers of the local cluster (default: one per GPU, else 2)")
    parser.add_argument("--resume", action="store_true",
                        help="continue an existing store of the same design: only samples not done are generated")
    parser.add_argument("--retries", type=int, default=2, help="retries of a failed sample (default: 2)")


def _run_sweep(args) -> int:
    from .sweep import load_design, run_sweep

    if args.workers is not None and args.workers < 1:
        raise ValueError(f"--workers must be a positive integer, got {args.workers}")
    design = load_design(args.design)
    output = args.output or OUTPUT_ROOT / f"sweep-{design.name}.zarr"
    result = run_sweep(design, output, scheduler=args.scheduler, n_workers=args.workers, resume=args.resume,
                       retries=args.retries)
    return 0 if result.complete else 1


COMMANDS["sweep"] = (_add_sweep, _run_sweep)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lgtutorial",
        description="Local-global decompositions for conditional microstructure generation.",
    )
    parser.add_argument("--debug", action="store_true", help="show Python tracebacks instead of one-line errors")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for add, _ in COMMANDS.values():
        add(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand. Exit codes: 0 done, 1 a run that failed (degenerate samples, an unwritable
    output, an interrupted training: the message says what was kept), 2 a usage error (bad option
    values, missing or unreadable input), 130 interrupted. ``--debug`` shows tracebacks."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.debug:
        return COMMANDS[args.command][1](args)
    try:
        return COMMANDS[args.command][1](args)
    except DegenerateSamples as error:
        print(f"lgtutorial {args.command}: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as error:
        from .training import TrainingInterrupted

        if isinstance(error, TrainingInterrupted):
            print(f"lgtutorial {args.command}: interrupted at step {error.step}; the checkpoint {error.checkpoint} "
                  "holds it: run the same command with --resume to continue", file=sys.stderr)
        else:
            print(f"lgtutorial {args.command}: interrupted; nothing was written after the last completed file",
                  file=sys.stderr)
        return 130
    except (ValueError, KeyError, FileNotFoundError, NotADirectoryError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"lgtutorial {args.command}: error: {message}", file=sys.stderr)
        return 2
    except OSError as error:  # e.g. a read-only output folder, a full disk
        where = f" ({error.filename})" if getattr(error, "filename", None) else ""
        print(f"lgtutorial {args.command}: error: {error.strerror or error}{where}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
