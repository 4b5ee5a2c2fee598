"""``lgtutorial generate``: hybrid microstructures from a model and statistics, written with figures.

:func:`run_generate` (behind the subcommand and ``lgtutorial demo``) is a thin shell over the library
function :func:`lgtutorial.generate` (:mod:`lgtutorial.generation`), which picks the statistics, the
model and the generator's settings and draws the samples; this module only writes ``samples.npy``,
``grf.npy``, ``samples.png`` and ``summary.json`` and applies ``--keep-going``. With ``--dims 3`` the
subcommand hands over to :func:`lgtutorial.cli.volume.run_generate_volume` (volumes from the 2D statistics).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from lgtutorial._io import OUTPUT_ROOT, save_figure, save_npy, save_text
from lgtutorial.cli.options import add_arguments, from_arguments
from lgtutorial.generation import DEFAULT_MODEL, check_model_material, generate, model_statistics  # noqa: F401
from lgtutorial.grf.interpolation import load_statistics_row  # noqa: F401 (re-exported: its old home)
from lgtutorial.sampling.samples import DegenerateSamples
from lgtutorial.sampling.settings import HybridSettings
from lgtutorial.statistics.two_point import volume_fraction_summary
from lgtutorial.volume.settings import VolumeSettings

__all__ = ["run_generate"]


def _add_generate(subparsers) -> None:
    parser = subparsers.add_parser(
        "generate", help="hybrid microstructures: GRF samples refined by a score model (the paper's method); "
                         "--dims 3 for volumes"
    )
    add_arguments(parser, HybridSettings)
    parser.add_argument("--output", type=Path, default=None,
                        help="output folder (default: lgtutorial-output/generate-REFERENCE)")
    volumes = parser.add_argument_group(
        "3D volumes", "the options above apply to volumes too, except --statistics, --periodic and --padding "
                      "(volumes are periodic along all three axes)")
    add_arguments(volumes, VolumeSettings)


def _mean_chord_lengths(microstructures) -> list:
    from lgtutorial.statistics.chords import chord_lengths

    means = [c.mean() for c in chord_lengths(microstructures, axis="x", periodic=True)]
    return [None if mean != mean else round(mean, 3) for mean in means]  # None: a phase without chords


def run_generate(settings: HybridSettings, output: Path | None = None) -> Path:
    """Sample hybrid microstructures as ``settings`` says; write ``samples.npy``, ``grf.npy``, a PNG and ``summary.json``."""
    from lgtutorial._io import fresh_directory
    from lgtutorial.plotting import show_microstructures

    out = None

    def announce(generator, model_name, name):
        nonlocal out  # the folder is made once everything is checked and loaded, before the long part
        out = fresh_directory(output or OUTPUT_ROOT / f"generate-{name}")
        shape = generator.shape
        print(f"{settings.n_samples} hybrid samples of {shape[0]}x{shape[1]} px, {len(generator.sigmas)} levels "
              f"from sigma {float(generator.sigmas[0]):.3g} ({generator.options.sampler} sampler, "
              f"{generator.evaluations_per_sample} network evaluations per sample), score model {model_name}, "
              f"on {generator.device}", flush=True)

    result = generate(settings, progress=True, on_ready=announce)
    samples, generator, reference, material = result.samples, result.generator, result.reference, result.material
    shape, row, model_name, phases, device = (result.shape, result.statistics_row, result.model, result.phases,
                                              result.device)
    shift = generator.volume_fraction_shift
    seconds = result.seconds
    final, grf = samples.microstructures.cpu(), samples.grf.cpu()
    save_npy(out / "samples.npy", final.numpy())
    save_npy(out / "grf.npy", grf.numpy())
    shown = min(4, settings.n_samples)
    pictures = list(grf[:shown]) + list(final[:shown])
    titles = [f"GRF {k}" for k in range(shown)] + [f"hybrid {k}" for k in range(shown)]
    if reference is not None and tuple(reference.shape[2:]) == shape:
        pictures, titles = [reference[0]] + pictures, ["reference"] + titles
    figure_axes = show_microstructures(pictures, titles)
    save_figure(figure_axes[0].figure, out / "samples.png")
    achieved = samples.achieved_volume_fractions.double().cpu()
    target = samples.target_volume_fractions.double().cpu()
    grf_segmented = generator.segment_grf
    summary = {
        "settings": result.settings.__dict__,
        "global_layer": result.global_layer,
        "global_layer_reason": result.global_layer_reason,
        "device": str(device),
        "phases": phases,
        "shape": list(shape),
        "statistics_moved_to_shape": shape != tuple(row.shape[1:]),
        "model": model_name,
        "levels_run": len(generator.sigmas),
        "network_evaluations_per_sample": generator.evaluations_per_sample,
        "volume_fraction_shift": shift,
        **volume_fraction_summary(achieved, target),
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
    save_text(out / "summary.json", json.dumps(summary, indent=2))
    print(f"global layer: {result.global_layer} ({result.global_layer_reason})")
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


_model_statistics, _check_model_material = model_statistics, check_model_material  # the old private names


def _run_generate(args) -> int:
    settings = from_arguments(HybridSettings, args)
    volume = from_arguments(VolumeSettings, args)  # refuses 3D options without --dims 3
    if volume.dims == 3:
        from lgtutorial.cli.volume import run_generate_volume

        run_generate_volume(settings, volume, args.output)
    else:
        run_generate(settings, args.output)
    return 0


#: The subcommand this module adds to ``lgtutorial`` (:data:`lgtutorial.cli.main.COMMANDS`).
COMMANDS = {"generate": (_add_generate, _run_generate)}
