"""Options of hybrid generation: :class:`RefinementOptions` (how a score model refines a GRF start),
taken whole by :class:`~lgtutorial.sampling.hybrid.HybridGenerator` and
:class:`~lgtutorial.volume.generator.VolumeGenerator`, and :class:`HybridSettings` (the whole
``lgtutorial generate`` job: those options plus where the statistics and the model come from).

Every default is written here once; the command line (:mod:`lgtutorial.cli.options`), a sweep
design, ``fit`` and the Python API build these objects, and they check themselves when made.

>>> RefinementOptions().sampler, RefinementOptions(sampler="faithful").step_lr is None
('fast', True)
>>> RefinementOptions(levels=1)
Traceback (most recent call last):
...
ValueError: --levels (levels): expected an integer of at least 2, or none, got 1
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from lgtutorial._checks import (
    check_settings,
    is_int,
    is_number,
    non_negative_int,
    one_of,
    optional,
    positive_int,
    positive_number,
)
from lgtutorial.sampling.samplers import DEFAULT_SAMPLER, SAMPLERS, SamplerConfiguration
from lgtutorial.sampling.sizes import MIN_SIDE
from lgtutorial.score import schedules

__all__ = ["RefinementOptions", "HybridSettings"]


@dataclass(frozen=True)
class RefinementOptions:
    """How a score model refines a GRF start (Robertson et al. 2023, Section 3.3 and Eq. (12))."""

    sampler: str = DEFAULT_SAMPLER
    """the named sampler ({sampler_help}); in Python also a SamplerConfiguration"""
    levels: int | None = None
    """levels of the geometric noise schedule over the model's range (default: the sampler's: {levels_help}); those below sigma_c are run"""
    sigma_c: float | None = schedules.SIGMA_C
    """noise level at which refinement of the GRF sample starts (in Python None samples the score model alone from noise, the SBG baseline, with the sampler's from-noise variant)"""
    step_lr: float | None = None
    """base Langevin step size (default: the sampler's own)"""
    condition_volume_fraction: bool = True
    """use the volume-fraction posterior score (Eq. 12)"""
    volume_fraction_estimate: str = "segmented"
    """'segmented' (argmax) or 'mean' estimate of the current volume fraction"""
    volume_fraction_shift: float | None = None
    """offset of the likelihood's target (default: what the model carries, for samplers that measure the volume fraction on the iterate: 0.0073 for the authors' case-study-1 model, else 0)"""
    periodic: str = "embedding"
    """'embedding' (periodic frame), 'circular' (circular convolutions) or 'none'"""
    padding: int = 16
    """width (px) of the periodic embedding"""
    guard: float | None = 0.1
    """a sample whose volume fraction misses the target by more than this (e.g. a collapse into one phase) is redone with the faithful sampler; what still fails is reported and makes the command exit with 1"""
    batch_size: int = 8
    """samples refined at once"""

    def __post_init__(self):
        check_settings(self, {
            "sampler": (lambda v: v in SAMPLERS or isinstance(v, SamplerConfiguration),
                        "one of " + ", ".join(SAMPLERS)),
            "levels": (optional(lambda v: is_int(v) and v >= 2), "an integer of at least 2, or none"),
            "sigma_c": (optional(positive_number), "a positive finite noise level"),
            "step_lr": (optional(positive_number), "a positive finite step size, or none"),
            "condition_volume_fraction": (lambda v: isinstance(v, bool), "true or false"),
            "volume_fraction_estimate": (one_of("segmented", "mean"), "'segmented' or 'mean'"),
            "volume_fraction_shift": (optional(lambda v: is_number(v) and -1 < v < 1), "a number in (-1, 1), or none"),
            "periodic": (one_of("embedding", "circular", "none"), "'embedding', 'circular' or 'none'"),
            "padding": (non_negative_int, "a non-negative number of pixels"),
            "guard": (optional(lambda v: is_number(v) and 0 < v <= 1), "a volume-fraction error in (0, 1], or none"),
            "batch_size": (positive_int, "a positive integer"),
        })

    @classmethod
    def of(cls, options: RefinementOptions | None = None, **changes) -> RefinementOptions:
        """``options`` (or the defaults) as a plain :class:`RefinementOptions`, with ``changes`` applied.

        A :class:`HybridSettings` gives its refinement part. An unknown change is a ``TypeError``
        naming the fields expected.
        """
        names = [field.name for field in dataclasses.fields(cls)]
        unknown = sorted(set(changes) - set(names))
        if unknown:
            raise TypeError(f"unknown refinement option(s) {unknown}; expected some of {', '.join(names)}")
        base = {name: getattr(options, name) for name in names} if options is not None else {}
        return cls(**{**base, **changes})


@dataclass(frozen=True)
class HybridSettings(RefinementOptions):
    """Hybrid sampling: a GRF sample refined by a score model (``lgtutorial generate``, Section 3.3)."""

    reference: str | None = None
    """registry name or path of the reference micrograph whose 2-point statistics the GRF follows (default: the statistics the score model carries, those of its training micrograph)"""
    statistics: str | None = None
    """.npy of periodic 2-point statistics (N, N, H, W) or one row (N, H, W), FFT order; replaces the reference's"""
    model: str | None = None
    """score model: a shipped name ('lgtutorial pretrained list'), a registered checkpoint or a path (default: lgtutorial-case1, with the statistics it carries; with --reference or --statistics: lgtutorial-case1 for 2 phases, lgtutorial-case2 for 3)"""
    n_samples: int = 4
    """number of samples"""
    size: int | None = None
    """side (px) of the square samples (default: the size of the reference or statistics)"""
    seed: int = 0
    """seed of the torch.Generator"""
    device: str = "auto"
    """'auto' (GPU when there is one), 'cpu', 'cuda', ..."""
    force: bool = False
    """generate even when the statistics differ grossly from those of the model's training micrograph"""
    keep_going: bool = False
    """exit with 0 even when some samples are degenerate (they are still listed in summary.json)"""
    global_layer: str = "auto"
    """'grf' (the paper's global layer), 'oriented' (laths painted into the GRF's colonies, measured from --reference: this book's extension, sampled with the 'oriented' sampler from sigma_c 0.5 unless another sampler or sigma_c is named) or 'auto' (oriented where the reference's laths are clearly more coherent than GRF samples of its statistics)"""

    def __post_init__(self):
        super().__post_init__()
        check_settings(self, {
            "global_layer": (one_of("grf", "oriented", "auto"), "'grf', 'oriented' or 'auto'"),
            "n_samples": (positive_int, "a positive integer"),
            "size": (optional(lambda v: is_int(v) and v >= MIN_SIDE),
                     f"a side of at least {MIN_SIDE} pixels, voxels for --dims 3 (on fewer, one pixel moves a volume "
                     "fraction by more than 1/64, and no feature fits that the score model could refine), or none"),
            "seed": (non_negative_int, "a non-negative integer"),
        })
