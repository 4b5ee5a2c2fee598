"""``lgtutorial generate --dims 3``: volumes from one 2D micrograph, written with slice figures and TIFF stacks.

:func:`run_generate_volume` is the library function behind the option. It takes the 2D statistics of
a reference (``--reference``, or the micrograph the model was trained on), extends them to a cubic
grid under isotropy (:func:`lgtutorial.volume.statistics.isotropic_statistics`), refines 3D GRF
volumes with the 2D score model on their slices (:class:`lgtutorial.volume.generator.VolumeGenerator`) and
measures the result by its sections in each orientation against the reference
(:func:`lgtutorial.volume.slices.slice_statistics`). It writes ``samples.npy`` and ``grf.npy`` (one-hot
``(n_samples, n_phases, D, H, W)`` float32: the refined volumes and their GRF starts), ``sample_K.tif``
(one phase-label TIFF stack per volume for Fiji or ParaView, slices along z), ``sample_K_slices.png`` and
``grf_0_slices.png`` (three orthogonal sections through the centre) and ``summary.json`` (the settings,
the 3D statistics' ``clipped_fraction``, volume fractions, cost and the slice statistics of the volumes
and their GRF starts per orientation, also printed as a table). Only two-phase materials: the refinement
has been checked on them (book chapter 10), and the one shipped three-phase model (Ti-6Al-4V laths) is
a material the isotropy assumption does not fit.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from lgtutorial._checks import resolve_device
from lgtutorial._io import OUTPUT_ROOT, save_npy, save_text
from lgtutorial.generation import DEFAULT_MODEL, check_model_material, model_statistics
from lgtutorial.sampling.samples import DegenerateSamples
from lgtutorial.sampling.settings import HybridSettings
from lgtutorial.sampling.sizes import MIN_SIDE, check_memory
from lgtutorial.statistics.two_point import volume_fraction_summary
from lgtutorial.volume.settings import VolumeSettings

__all__ = ["run_generate_volume", "DEFAULT_SIDE", "CHECKED_SIDE", "size_warning", "slice_table"]

#: Side (voxels) of the volumes when ``--size`` is not given: a 64^3 volume takes minutes on a CPU.
DEFAULT_SIDE = 64
#: The largest side whose volumes have been checked slice by slice against the 2D hybrid
#: (``benchmarks/results/volume_quality_cpu*.md``); above it one 128^3 volume was measured
#: (``benchmarks/results/volume_cost_cpu.md``), which collapsed until the likelihood widths were held
#: (:data:`lgtutorial.volume.generator.WIDTH_VOXELS`).
CHECKED_SIDE = 64


def size_warning(side: int) -> str | None:
    """The warning ``generate --dims 3`` prints for sides above :data:`CHECKED_SIDE` (``None`` up to it)."""
    if side <= CHECKED_SIDE:
        return None
    return (f"--size {side}: volumes above {CHECKED_SIDE}^3 are checked less than {CHECKED_SIDE}^3 ones (one 128^3 volume, "
            "which collapsed into a single phase before a fix; benchmarks/results/volume_cost_cpu.md); check the "
            "degenerate flag and the slice table below before using these volumes")


def _reference(settings: HybridSettings, model_name: str, loaded):
    """``(micrograph or None, name, phases, periodic, carried statistics or None)``: ``--reference``, else the
    micrograph the model was trained on (``None`` with the statistics the model carries when it cannot be loaded)."""
    from lgtutorial import data

    if loaded is not None:  # data.load(settings.reference)
        micrograph, meta = loaded
        name = meta.get("name", Path(settings.reference).stem)
        return micrograph, name, meta["phases"], bool(meta.get("periodic", False)), None
    material = model_statistics(model_name)
    try:  # the micrograph the model was trained on, to measure the slices against
        micrograph, meta = data.load(material.name)
    except (ValueError, FileNotFoundError):
        return None, material.name, material.phases, material.periodic, material
    return micrograph, material.name, material.phases, bool(meta.get("periodic", material.periodic)), material


def _slice_summary(measured) -> dict:
    from lgtutorial.volume.statistics import ORIENTATIONS

    return {
        "orientations": {o: {"volume_fractions_mean": measured.volume_fractions[o].tolist(),
                             "volume_fractions_std_over_slices": measured.volume_fraction_std[o].tolist(),
                             "chord_distance": measured.chord_distance(o),
                             "chord_distances_by_slice_axis": {axis: t.tolist()
                                                               for axis, t in measured.chord_distances[o].items()},
                             "two_point_error": measured.two_point_errors[o]} for o in ORIENTATIONS},
        "chord_distance": measured.chord_distance(),
        "axis_chord_distances": measured.axis_chord_distances(),
        "isotropy_error": measured.isotropy_error,
    }


def slice_table(hybrid, grf, phases) -> str:
    """A Markdown table, one row per orientation: volume fractions of the volumes' slices, and the chord
    distance and 2-point error of the GRF starts' slices and the refined volumes' slices against the reference."""
    from lgtutorial.volume.statistics import ORIENTATIONS

    reference = hybrid.reference_volume_fractions.tolist()
    lines = ["| slices | " + " | ".join(f"vf {phase}" for phase in phases)
             + " | chord distance: GRF -> hybrid | 2-point error: GRF -> hybrid |",
             "|---|" + "---|" * (len(phases) + 2),
             "| reference | " + " | ".join(f"{v:.4f}" for v in reference) + " | 0 | 0 |"]
    for o in ORIENTATIONS:
        fractions = " | ".join(f"{m:.4f} +- {s:.4f}" for m, s in zip(hybrid.volume_fractions[o].tolist(),
                                                                    hybrid.volume_fraction_std[o].tolist()))
        lines.append(f"| {o} | {fractions} | {grf.chord_distance(o):.3f} -> {hybrid.chord_distance(o):.3f} "
                     f"| {grf.two_point_errors[o]:.3f} -> {hybrid.two_point_errors[o]:.3f} |")
    return "\n".join(lines)


def run_generate_volume(settings: HybridSettings, volume: VolumeSettings,
                        output: Path | None = None) -> Path:
    """Generate ``settings.n_samples`` cubic volumes as ``settings`` and ``volume`` say; write the files listed above.

    Raises:
        ValueError: options that do not fit volumes (``--statistics``, ``--periodic none``, ``--padding``),
            a material of more than two phases, a side below MIN_SIDE or one the network cannot take, a request
            whose estimated memory (VolumeGenerator.memory_estimate) exceeds what is free here.
        DegenerateSamples: some volumes failed the guard (the files are written first).
    """
    import matplotlib.pyplot as plt

    from lgtutorial import data
    from lgtutorial._io import fresh_directory
    from lgtutorial.score.registry import default_model, load_score_model
    from lgtutorial.statistics.two_point import volume_fractions
    from lgtutorial.volume.export import plot_orthogonal_slices, save_tiff_stack
    from lgtutorial.volume.generator import VolumeGenerator
    from lgtutorial.volume.settings import ANNEALED_PASSES, FINAL_SIGMA
    from lgtutorial.volume.slices import slice_statistics
    from lgtutorial.volume.statistics import isotropic_statistics

    if volume.dims != 3:
        raise ValueError(f"run_generate_volume makes 3D volumes; got dims={volume.dims}")
    if settings.periodic == "none":
        raise ValueError("--periodic none does not apply to --dims 3: volumes are periodic along all three axes "
                         "(circular convolutions on every slice)")
    if settings.padding != HybridSettings.padding:
        raise ValueError("--padding does not apply to --dims 3: volumes use circular convolutions, no periodic frame")
    if settings.statistics:
        raise ValueError("--statistics cannot be used with --dims 3: the volume's slices are measured against a "
                         "micrograph; pass --reference (a registry name or a micrograph file) instead")
    side = settings.size or DEFAULT_SIDE
    if side < MIN_SIDE:
        raise ValueError(f"--size {side}: volumes need at least {MIN_SIDE} voxels a side (on fewer, one voxel moves a "
                         f"volume fraction by 1/64 or more, 1/8 at 2^3, and a slice holds no feature the 2D score model "
                         "could refine)")
    device = resolve_device(settings.device)
    loaded = data.load(settings.reference) if settings.reference else None
    # the model by the reference's phases, as in 2D
    model_name = settings.model or (default_model(loaded[0].shape[1]) if loaded else DEFAULT_MODEL)
    model, sigmas = load_score_model(model_name, device=device)
    channels = int(getattr(getattr(model, "settings", None), "channels", 1))
    n_phases = loaded[0].shape[1] if loaded else (2 if channels == 1 else channels)
    if n_phases != 2 or channels != 1:
        what = (f"the score model {model_name} has {channels} channels ({channels} phases)" if channels != 1
                else f"{settings.reference} has {n_phases} phases")
        raise ValueError(
            f"--dims 3 makes two-phase volumes only, and {what}. The slice-wise refinement has been checked on two "
            "phases, and the shipped three-phase model (Ti-6Al-4V laths, one colony orientation per grain) breaks the "
            "isotropy the 3D statistics assume (lgtutorial.VolumeGenerator takes N phases, untested)")
    multiple = int(getattr(model, "size_multiple", 1))
    smallest = -(-MIN_SIDE // multiple) * multiple  # at least MIN_SIDE, and a multiple of 2**depth
    if side % multiple:  # (a multiple of 2**depth of at least MIN_SIDE is at least `smallest`)
        below, above = side // multiple * multiple, (side // multiple + 1) * multiple
        choices = f"{below} or {above}" if below >= smallest else str(above)
        raise ValueError(f"--size {side}: every slice of the volume goes through the network of {model_name}, which "
                         f"takes sides divisible by 2**depth = {multiple}; try {choices}")
    latent = int(getattr(getattr(model, "settings", None), "latent_channels", 0))

    def estimate(candidate: int):
        return VolumeGenerator.memory_estimate((candidate,) * 3, n_phases=n_phases, channels=channels,
                                               latent_channels=latent, batch_size=settings.batch_size,
                                               n_samples=settings.n_samples)

    check_memory(estimate, side, device, sides=range(smallest, side, multiple),
                 what=f"--size {side} with {settings.n_samples} volume(s) in batches of {settings.batch_size}",
                 advice="ask for a smaller --size, fewer --n-samples or a smaller --batch-size")
    micrograph, name, phases, reference_periodic, material = _reference(settings, model_name, loaded)
    if micrograph is not None:
        from lgtutorial.grf.field import statistics_row

        if material is None:
            check_model_material(model_name, statistics_row(micrograph), name, force=settings.force)
        source = micrograph
    else:
        print(f"warning: the micrograph {name!r} the model was trained on could not be loaded; the volumes follow the "
              "statistics it carries and their slices are not measured against it (pass --reference)", file=sys.stderr)
        source = material.statistics_row()
    if (message := size_warning(side)) is not None:
        print(f"warning: {message}", file=sys.stderr)
    statistics = isotropic_statistics(source, (side, side, side))
    recipe = ({"sigma_pass": ANNEALED_PASSES, "final_sigma": FINAL_SIGMA} if volume.annealed
              else {"rounds": volume.rounds, "sigma_pass": volume.sigma_pass})
    generator = VolumeGenerator.from_statistics(statistics, model, settings, sigmas=sigmas, device=device,
                                                scheme=volume.scheme, **recipe)
    shift = generator.volume_fraction_shift
    out = fresh_directory(output or OUTPUT_ROOT / f"generate3d-{name}")
    scheme = (f"{volume.rounds} round(s) of xy, xz, yz passes" if volume.scheme == "passes"
              else "the mean of the three orientations' scores")
    if volume.annealed and volume.scheme == "passes":
        scheme = (f"{len(generator.passes)} annealed passes (re-noising {ANNEALED_PASSES[0]} to {ANNEALED_PASSES[-1]}) "
                  f"and a final step of all three orientations from {FINAL_SIGMA}")
    print(statistics.report())
    print(f"{settings.n_samples} volumes of {side}^3 voxels, {scheme} ({settings.sampler} sampler, "
          f"{generator.evaluations_per_sample} score evaluations and {generator.slices_per_sample:,} 2D slices "
          f"through the network per volume), score model {model_name}, on {device}")
    started = time.perf_counter()
    samples = generator.sample(settings.n_samples, seed=settings.seed, return_grf=True)
    seconds = time.perf_counter() - started
    final, grf = samples.volumes.cpu(), samples.grf.cpu()
    save_npy(out / "samples.npy", final.numpy())
    save_npy(out / "grf.npy", grf.numpy())
    for k in range(settings.n_samples):
        save_tiff_stack(final[k], out / f"sample_{k}.tif")
        plt.close(plot_orthogonal_slices(final[k], path=out / f"sample_{k}_slices.png", title=f"hybrid volume {k}"))
    plt.close(plot_orthogonal_slices(grf[0], path=out / "grf_0_slices.png", title="GRF volume 0 (the start of hybrid 0)"))
    achieved = volume_fractions(final).double()
    target = samples.target_volume_fractions.double().cpu()
    summary = {
        "settings": settings.__dict__,
        "volume_settings": volume.__dict__,
        "device": str(device),
        "phases": list(phases),
        "shape": [side, side, side],
        "model": model_name,
        "periodic": "along all three axes (circular convolutions on every slice)",
        "statistics": {"assumption": statistics.assumption, "clipped_fraction": statistics.clipped_fraction,
                       "clipped_frequencies": statistics.clipped_frequencies, "row_change": statistics.row_change,
                       "largest_change": statistics.largest_change, "report": statistics.report()},
        "score_evaluations_per_volume": generator.evaluations_per_sample,
        "slices_per_volume": generator.slices_per_sample,
        "volume_fraction_shift": shift,
        **volume_fraction_summary(achieved, target),
        "seconds_per_volume": seconds / settings.n_samples,
        "degenerate_samples": samples.degenerate,
        "samples": "samples.npy (n_samples, n_phases, D, H, W) one-hot; sample_K.tif phase labels (z, y, x)",
        "grf": "grf.npy: the GRF volumes the refinement started from, segmented one-hot",
    }
    if micrograph is not None:
        reference = micrograph.cpu()
        measured = {"hybrid": slice_statistics(final, reference, reference_periodic=reference_periodic),
                    "GRF": slice_statistics(grf, reference, reference_periodic=reference_periodic)}
        summary["slice_statistics"] = {"reference": name, "reference_periodic": reference_periodic,
                                       **{key: _slice_summary(value) for key, value in measured.items()}}
        table = slice_table(measured["hybrid"], measured["GRF"], phases)
    else:
        summary["slice_statistics"] = None
        table = "slices not measured: no reference micrograph"
    save_text(out / "summary.json", json.dumps(summary, indent=2))
    print(samples.report())
    print(f"slices of the volumes against {name} (vf: mean +- std over the slices; chord distance: total-variation "
          "distance between chord-length distributions, mean over phases and both in-slice axes; 2-point error: "
          "relative error of the slices' radially averaged 2-point row):")
    print(table)
    print(f"{seconds / settings.n_samples:.1f} s per volume; wrote samples.npy, grf.npy, {settings.n_samples} TIFF "
          f"stack(s), slice figures and summary.json to {out}")
    if samples.degenerate:
        message = (f"{len(samples.degenerate)} of {settings.n_samples} volumes are degenerate (non-finite, or a volume "
                   f"fraction off the target by more than {settings.guard}): volumes {samples.degenerate} (listed in "
                   "summary.json); the score model may not fit these statistics")
        if not settings.keep_going:
            raise DegenerateSamples(message + "; pass --keep-going to accept them")
        print(f"warning: {message}", file=sys.stderr)
    return out
