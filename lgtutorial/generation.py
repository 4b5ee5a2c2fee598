"""``lgtutorial.generate``: hybrid microstructures from settings, as the CLI, ``demo`` and notebooks draw them.

One function decides what the command line used to decide for itself: where the statistics come
from (a ``.npy`` of 2-point statistics, a reference micrograph, or the statistics the model carries),
which score model (the default model, or one chosen by the number of phases), whether that model fits
the material (a warning, or an error unless ``force``), and hands the settings' refinement options to the generator whole. It writes
nothing; ``lgtutorial generate`` (:func:`lgtutorial.cli.generate.run_generate`) is this plus files,
figures and a summary.

>>> import lgtutorial as lg
>>> result = lg.generate(n_samples=1, size=32, progress=False)          # doctest: +SKIP
>>> result.samples.microstructures.shape                                 # doctest: +SKIP
torch.Size([1, 2, 32, 32])
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from lgtutorial._checks import resolve_device
from lgtutorial.sampling.hybrid import HybridGenerator
from lgtutorial.sampling.samplers import DEFAULT_SAMPLER
from lgtutorial.sampling.settings import HybridSettings
from lgtutorial.sampling.sizes import MIN_SIDE, check_memory
from lgtutorial.score.schedules import SIGMA_C

#: where the oriented layer's lath starts are refined from (the GRF's: 0.75), and how sharp their laths are
#: painted (``OrientedLayer.sharpness``): ti-alpha-beta with lgtutorial-case2, benchmarks/results/case2_oriented_cpu.md
ORIENTED_SIGMA_C = 0.5
ORIENTED_SHARPNESS = 8.0

__all__ = ["generate", "Generation", "DEFAULT_MODEL", "model_statistics", "check_model_material", "check_shape"]

#: The model ``generate`` and ``demo`` use when neither a model nor statistics are given: it carries
#: the statistics of its training micrograph, so the default needs no data files.
DEFAULT_MODEL = "lgtutorial-case1"


def model_statistics(model_name: str):
    """The statistics a model carries, else those of its training micrograph when that can be loaded."""
    from lgtutorial.score.registry import statistics_for_model

    material = statistics_for_model(model_name)
    if material is None:
        raise ValueError(f"the score model {model_name!r} carries no statistics of its training micrograph and "
                         "that micrograph could not be loaded; pass --reference (a registry name or a micrograph "
                         "file) or --statistics (a .npy of 2-point statistics)")
    return material


def check_model_material(model_name: str, row, name: str, *, force: bool) -> None:
    """Warn when the model was trained on another material; refuse gross mismatches unless ``force``."""
    import sys

    from lgtutorial.grf.material import compare_with_training_material
    from lgtutorial.score.registry import statistics_for_model

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


def check_shape(settings: HybridSettings, shape: tuple[int, int], model, model_name: str, n_phases: int,
                device) -> None:
    """Refuse, before anything is built, samples of ``shape`` that ``model`` cannot refine or that do not fit in
    memory: a side below :data:`~lgtutorial.sampling.sizes.MIN_SIDE`, narrower than the periodic embedding, or
    whose embedded side is no multiple of the network's ``2**depth``; a request whose estimated peak memory
    (:meth:`~lgtutorial.sampling.hybrid.HybridGenerator.memory_estimate`) exceeds what is free on ``device``.

    Raises:
        ValueError: naming ``--size`` (or the statistics' size when no ``--size`` was given).
    """
    asked = f"--size {settings.size}" if settings.size else f"the statistics' size {shape[0]}x{shape[1]} (no --size)"
    padding = settings.padding if settings.periodic == "embedding" else 0
    multiple = int(getattr(model, "size_multiple", 1))
    smallest = max(MIN_SIDE, padding)
    network = getattr(model, "settings", None)
    channels = int(getattr(network, "channels", 1 if n_phases == 2 else n_phases))
    fits = channels == n_phases or (channels == 1 and n_phases == 2)  # else the generator says the model does not fit
    if min(shape) < MIN_SIDE:
        raise ValueError(f"{asked}: samples need at least {MIN_SIDE} px a side; pass a larger --size")
    if padding > min(shape):
        raise ValueError(f"{asked}: the periodic embedding (--padding {padding} px on each side) may not be wider than "
                         f"the sample; use --size {padding} or more, or a smaller --padding")
    for side in shape:
        if fits and (side + 2 * padding) % multiple:
            remainder = (side + 2 * padding) % multiple
            below, above = side - remainder, side + multiple - remainder
            choices = f"{below} or {above}" if below >= smallest else str(above)
            embedded = f"{side} + 2 x {padding} px of padding = {side + 2 * padding}" if padding else str(side)
            raise ValueError(f"{asked}: the network of {model_name} takes sides divisible by 2**depth = {multiple}, and "
                             f"{embedded} is not; try --size {choices}")
    latent = int(getattr(network, "latent_channels", 0))

    def estimate(side: int):
        return HybridGenerator.memory_estimate(shape if side == max(shape) else (side, side), n_phases=n_phases,
                                               channels=channels, latent_channels=latent, padding=padding,
                                               batch_size=settings.batch_size, n_samples=settings.n_samples)

    first = smallest + (-(smallest + 2 * padding)) % multiple  # the smallest side the network takes
    check_memory(estimate, max(shape), device, sides=range(first, max(shape), multiple),
                 what=f"{asked} with {settings.n_samples} sample(s) in batches of {settings.batch_size}",
                 advice="ask for a smaller --size, fewer --n-samples or a smaller --batch-size")


@dataclass
class Generation:
    """What :func:`generate` drew, and where everything came from."""

    samples: object
    """:class:`~lgtutorial.sampling.samples.HybridSamples` (with the GRF starts)"""
    generator: object
    """the :class:`~lgtutorial.sampling.hybrid.HybridGenerator` that drew them"""
    settings: HybridSettings
    model: str
    """the score model's name or path"""
    name: str
    """the material: the reference's or statistics file's name, or the model's training micrograph"""
    phases: list
    shape: tuple
    statistics_row: torch.Tensor
    """the statistics the GRF was built from, on their own grid"""
    reference: torch.Tensor | None
    """the reference micrograph ``(1, N, H, W)`` when one was given"""
    material: object | None
    """the :class:`~lgtutorial.grf.material.MaterialStatistics` the model carries, when those were used"""
    device: torch.device
    seconds: float
    global_layer: str = "grf"
    """'grf' or 'oriented': the global layer the samples were drawn with"""
    global_layer_reason: str = ""
    """why (the measurement behind 'auto')"""


def generate(settings: HybridSettings | None = None, *, progress: bool = True,
             on_ready=None, **overrides) -> Generation:
    """Draw hybrid samples as ``settings`` says (the fields of ``lgtutorial generate``'s options).

    ``overrides`` replace fields of ``settings`` (or of the defaults): ``generate(n_samples=4, size=64)``.
    With neither ``reference``, ``statistics`` nor ``model`` it uses :data:`DEFAULT_MODEL` and the
    statistics of the micrograph that model was trained on (no data files needed). ``on_ready`` is
    called with ``(generator, model_name, name)`` once everything is checked and loaded, before sampling.

    Raises:
        ValueError: bad settings, a model that does not fit the material (unless ``force``),
            statistics without a model that carries them, or a size the model cannot refine or this
            machine cannot hold (:func:`check_shape`, before the field is built).
    """
    from lgtutorial import data
    from lgtutorial.grf.field import statistics_row
    from lgtutorial.grf.interpolation import load_statistics_row
    from lgtutorial.score.registry import default_model, load_score_model

    settings = settings or HybridSettings()
    if overrides:
        unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(settings)})
        if unknown:
            raise TypeError(f"generate() got unknown settings {unknown}; the fields of HybridSettings are expected")
        settings = dataclasses.replace(settings, **overrides)
    device = resolve_device(settings.device)
    reference, material, model_name = None, None, settings.model
    if settings.statistics:
        row = load_statistics_row(settings.statistics, label="--statistics")
        name, phases = Path(settings.statistics).stem, None
    elif settings.reference:
        reference, meta = data.load(settings.reference)
        row, name, phases = statistics_row(reference), meta.get("name", Path(settings.reference).stem), meta["phases"]
    else:  # the statistics the model carries: those of the micrograph it was trained on
        model_name = model_name or DEFAULT_MODEL
        row = name = phases = None
    if model_name is None:
        model_name = default_model(row.shape[0])
    model, sigmas = load_score_model(model_name, device=device)
    if row is None:
        material = model_statistics(model_name)
        row, name, phases = material.statistics_row(), material.name, material.phases
    else:
        check_model_material(model_name, row, name, force=settings.force)
    phases = list(phases or [f"phase {n}" for n in range(row.shape[0])])
    shape = (settings.size, settings.size) if settings.size else tuple(row.shape[1:])
    check_shape(settings, shape, model, model_name, row.shape[0], device)
    generator = HybridGenerator.from_statistics(row, model, settings, shape=shape, device=device, sigmas=sigmas)
    layer, reason = choose_global_layer(settings.global_layer, reference, generator, seed=settings.seed)
    if layer is not None:  # laths painted into the GRF's colonies, refined by the sampler that keeps them
        settings = dataclasses.replace(
            settings, sampler="oriented" if settings.sampler == DEFAULT_SAMPLER else settings.sampler,
            sigma_c=ORIENTED_SIGMA_C if settings.sigma_c == SIGMA_C else settings.sigma_c)
        generator = HybridGenerator(generator.field, model, settings, device=device, sigmas=sigmas, oriented=layer)
    if on_ready is not None:
        on_ready(generator, model_name, name)
    started = time.perf_counter()
    samples = generator.sample(settings.n_samples, seed=settings.seed, return_grf=True, progress=progress)
    return Generation(samples=samples, generator=generator, settings=settings, model=model_name, name=name,
                      phases=phases, shape=shape, statistics_row=row, reference=reference, material=material,
                      device=device, seconds=time.perf_counter() - started,
                      global_layer="grf" if layer is None else "oriented", global_layer_reason=reason)


def choose_global_layer(global_layer: str, reference, generator, *, seed: int = 0) -> tuple:
    """The oriented layer (:class:`~lgtutorial.grf.oriented.OrientedLayer`) measured from ``reference``, or None
    for the GRF, as ``global_layer`` (``"grf"``, ``"oriented"``, ``"auto"``) says; and the reason in words.

    ``"auto"`` compares the boundary coherence of the reference's lath phases with that of two segmented GRF
    samples of ``generator``'s field (:func:`~lgtutorial.grf.oriented.needs_oriented_layer`).
    """
    from lgtutorial.grf.oriented import measure_oriented_layer, needs_oriented_layer

    if global_layer == "grf":
        return None, "--global-layer grf"
    if reference is None:
        if global_layer == "oriented":
            raise ValueError("--global-layer oriented is measured from a micrograph: pass --reference")
        return None, "no --reference micrograph to measure orientations from"
    reason = "--global-layer oriented"
    if global_layer == "auto":  # the coherence first (cheap); the layer's period only where that asks for it
        grf = generator.field.sample(2, generator=torch.Generator(device=generator.device).manual_seed(seed),
                                     segmentation="auto").segmented
        needed, reason = needs_oriented_layer(reference, grf)
        if not needed:
            return None, reason
    try:
        layer = measure_oriented_layer(reference, sharpness=ORIENTED_SHARPNESS)
    except ValueError as error:
        raise ValueError(f"--global-layer oriented: {error}") from None
    return layer, f"{reason}; {layer.describe()}"
