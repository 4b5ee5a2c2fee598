"""The ``lgtutorial`` command line: ``lgtutorial --help`` lists the subcommands.

Each subcommand is a pair of functions, ``_add_<name>(subparsers)`` and ``_run_<name>(args)``, here
or in :mod:`lgtutorial.cli.generate` (``generate``) and :mod:`lgtutorial.cli.train` (``train``,
``pretrained``, ``fit``); every option with a default is generated from the job's options dataclass
(:mod:`lgtutorial.cli.options`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from lgtutorial._checks import resolve_device
from lgtutorial._io import OUTPUT_ROOT, output_claims, save_figure, save_npy, save_text
from lgtutorial.cli import generate as cli_generate
from lgtutorial.cli import train as cli_train
from lgtutorial.cli.generate import run_generate
from lgtutorial.cli.options import add_arguments, from_arguments
from lgtutorial.evaluation.settings import EvaluationSettings
from lgtutorial.grf.settings import GRFSettings
from lgtutorial.sampling.samples import DegenerateSamples
from lgtutorial.sampling.settings import HybridSettings

__all__ = ["main", "build_parser", "COMMANDS", "run_grf", "run_evaluate"]


# -- data ---------------------------------------------------------------------------------------
def _add_data(subparsers) -> None:
    parser = subparsers.add_parser("data", help="the reference data registry")
    actions = parser.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="list registered references and where they are found")
    listing.add_argument("--kind", choices=["micrograph", "checkpoint", "config"], default=None)
    fetch = actions.add_parser("fetch", help="find or download a registered file and print its path")
    fetch.add_argument("name")


def _run_data(args) -> int:
    from lgtutorial import data

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
    from lgtutorial import data
    from lgtutorial._io import fresh_directory
    from lgtutorial.plotting import show_two_point_statistics
    from lgtutorial.statistics.two_point import two_point_statistics, volume_fractions

    micro, meta = data.load(args.source)
    periodic = args.periodic if args.periodic is not None else bool(meta.get("periodic", False))
    fractions = volume_fractions(micro)[0].tolist()
    name = meta.get("name", Path(args.source).stem)
    print(f"{name}: {micro.shape[1]} phases, {tuple(micro.shape[2:])} pixels")
    for phase, fraction in zip(meta["phases"], fractions):
        print(f"  volume fraction of {phase}: {fraction:.4f}")
    stats = two_point_statistics(micro.double(), periodic=periodic)[0]
    out = fresh_directory(args.output or OUTPUT_ROOT / f"stats-{name}")
    save_npy(out / "two_point_statistics.npy", stats.float().numpy())
    summary = {"source": str(args.source), "phases": meta["phases"], "volume_fractions": fractions,
               "periodic": periodic, "lag_order": "FFT order: zero lag at index 0",
               "array": "two_point_statistics.npy (n_phases, n_phases, *lags)"}
    save_text(out / "summary.json", json.dumps(summary, indent=2))
    cutoff = min(64, min(micro.shape[2:]) // 2)
    save_figure(show_two_point_statistics(stats, phase_names=meta["phases"], cutoff=cutoff),
                 out / "two_point_statistics.png")
    print(f"wrote {out}/two_point_statistics.npy, .png and summary.json")
    return 0


# -- grf ----------------------------------------------------------------------------------------
def _add_grf(subparsers) -> None:
    parser = subparsers.add_parser("grf", help="sample Gaussian random fields from a reference's 2-point statistics")
    add_arguments(parser, GRFSettings)
    parser.add_argument("--output", type=Path, default=None, help="output folder (default: lgtutorial-output/grf-REFERENCE)")


def run_grf(settings: GRFSettings, output: Path | None = None) -> Path:
    """Sample GRFs as ``settings`` says; write ``samples.npy``, ``samples.png`` and ``summary.json``."""
    import torch

    from lgtutorial import data
    from lgtutorial._io import fresh_directory
    from lgtutorial.grf.field import GaussianRandomField
    from lgtutorial.plotting import show_microstructures

    device = resolve_device(settings.device)
    micro, meta = data.load(settings.reference)
    field = GaussianRandomField.from_microstructure(micro, reference_phase=settings.reference_phase, device=device)
    generator = torch.Generator(device=device).manual_seed(settings.seed)
    segmentation = None if settings.segmentation == "none" else settings.segmentation
    samples = field.sample(settings.n_samples, generator=generator, filter_sigma=settings.filter_sigma,
                           segmentation=segmentation)
    result = samples.segmented if samples.segmented is not None else samples.filtered
    name = meta.get("name", Path(settings.reference).stem)
    out = fresh_directory(output or OUTPUT_ROOT / f"grf-{name}")
    save_npy(out / "samples.npy", result.cpu().numpy())
    if samples.segmented is not None:
        save_npy(out / "samples_continuous.npy", samples.filtered.cpu().numpy())
    shown = min(4, settings.n_samples)
    fig_axes = show_microstructures([micro[0]] + list(result[:shown].cpu()),
                                    ["reference"] + [f"GRF {k}" for k in range(shown)])
    save_figure(fig_axes[0].figure, out / "samples.png")
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
    save_text(out / "summary.json", json.dumps(summary, indent=2))
    print(samples.report())
    print(f"wrote {settings.n_samples} samples to {out}")
    return out


def _run_grf(args) -> int:
    run_grf(from_arguments(GRFSettings, args), args.output)
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
    run_generate(HybridSettings(**DEMO_SETTINGS), args.output or OUTPUT_ROOT / "demo")
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
    add_arguments(parser, EvaluationSettings)
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


def run_evaluate(settings: EvaluationSettings, source: str, ensembles: dict,
                 output: Path | None = None) -> Path:
    """Compare ``.npy`` ensembles with a reference; write ``comparison.csv``/``.md``, figures, ``summary.json``."""
    from lgtutorial import data
    from lgtutorial._io import fresh_directory
    from lgtutorial.evaluation.compare import compare

    device = resolve_device(settings.device)
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
    save_text(out / "comparison.csv", comparison.to_csv())
    save_text(out / "comparison.md", comparison.to_markdown())
    figures = comparison.figures()
    for stem, figure in figures.items():
        save_figure(figure, out / f"{stem}.png")
    summary = {
        "reference": str(source), "phases": meta["phases"], "reference_periodic": periodic,
        "ensembles": {k: str(v) for k, v in ensembles.items()}, "settings": settings.__dict__,
        "device": str(device), "cutoff": comparison.cutoff, "three_point_cutoff": comparison.three_point_cutoff,
        "three_point_explained_variance_ratio": [r.tolist() for r in comparison.three_point_explained],
        "figures": sorted(f"{stem}.png" for stem in figures),
    }
    save_text(out / "summary.json", json.dumps(summary, indent=2))
    print(comparison.to_markdown())
    print(f"wrote comparison.csv, comparison.md, {len(figures)} figures and summary.json to {out}")
    return out


def _run_evaluate(args) -> int:
    settings = from_arguments(EvaluationSettings, args)
    run_evaluate(settings, args.source, _parse_ensembles(args.ensemble), args.output)
    return 0



COMMANDS = {
    "data": (_add_data, _run_data),
    "stats": (_add_stats, _run_stats),
    "grf": (_add_grf, _run_grf),
    "demo": (_add_demo, _run_demo),
    "evaluate": (_add_evaluate, _run_evaluate),
    **cli_generate.COMMANDS,  # generate
    **cli_train.COMMANDS,  # train, pretrained, fit
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
    from lgtutorial.sweep.parsing import load_design
    from lgtutorial.sweep.run import run_sweep

    if args.workers is not None and args.workers < 1:
        raise ValueError(f"--workers must be a positive integer, got {args.workers}")
    design = load_design(args.design)
    output = args.output or OUTPUT_ROOT / f"sweep-{design.name}.zarr"
    result = run_sweep(design, output, scheduler=args.scheduler, n_workers=args.workers, resume=args.resume,
                       retries=args.retries)
    return 0 if result.complete else 1


COMMANDS["sweep"] = (_add_sweep, _run_sweep)


class _KeepHyphenatedNames(argparse.HelpFormatter):
    """Wraps help text between words only, never inside a hyphenated name ('few-step', 'fast-v1')."""

    def _split_lines(self, text, width):
        import textwrap

        return textwrap.wrap(self._whitespace_matcher.sub(" ", text).strip(), width, break_on_hyphens=False)


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _KeepHyphenatedNames)
        super().__init__(*args, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="lgtutorial",
        description="Local-global decompositions for conditional microstructure generation.",
    )
    parser.add_argument("--debug", action="store_true", help="show Python tracebacks instead of one-line errors")
    subparsers = parser.add_subparsers(dest="command", required=True)  # sub-parsers are _Parsers too
    for add, _ in COMMANDS.values():
        add(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand. Exit codes: 0 done, 1 a run that failed (degenerate samples, an unwritable
    output or one another run holds, an interrupted training: the message says what was kept), 2 a
    usage error (bad option values, missing or unreadable input), 130 interrupted. ``--debug`` shows
    tracebacks. The command's output folders are its own until it returns (:func:`lgtutorial._io.output_claims`)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.debug:
        with output_claims():  # a command's output folders are its own until it ends
            return COMMANDS[args.command][1](args)
    try:
        with output_claims():
            return COMMANDS[args.command][1](args)
    except DegenerateSamples as error:
        print(f"lgtutorial {args.command}: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as error:
        from lgtutorial.score.training import TrainingInterrupted

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
