"""Options of hybrid generation (``lgtutorial generate``, :func:`lgtutorial.generate`): frozen, checked once.

The command-line options are generated from these dataclasses (:mod:`lgtutorial.cli.options`).
"""

from __future__ import annotations

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
from lgtutorial.sampling.samplers import DEFAULT_SAMPLER
from lgtutorial.score import schedules


@dataclass(frozen=True)
class HybridSettings:
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
    sigma_c: float = schedules.SIGMA_C
    """noise level at which refinement of the GRF sample starts"""
    levels: int | None = None
    """levels of the geometric noise schedule over the model's range (default: the sampler's: {levels_help}); those below sigma_c are run"""
    condition_volume_fraction: bool = True
    """use the volume-fraction posterior score (Eq. 12)"""
    volume_fraction_estimate: str = "segmented"
    """'segmented' (argmax) or 'mean' estimate of the current volume fraction"""
    volume_fraction_shift: float | None = None
    """offset of the likelihood's target (default: 0.0073 for the authors' case-study-1 model, else 0)"""
    periodic: str = "embedding"
    """'embedding' (periodic frame), 'circular' (circular convolutions) or 'none'"""
    padding: int = 16
    """width (px) of the periodic embedding"""
    step_lr: float = schedules.STEP_LR
    """base Langevin step size"""
    batch_size: int = 8
    """samples refined at once"""
    seed: int = 0
    """seed of the torch.Generator"""
    device: str = "auto"
    """'auto' (GPU when there is one), 'cpu', 'cuda', ..."""
    guard: float | None = 0.1
    """a sample whose volume fraction misses the target by more than this (e.g. a collapse into one phase) is redone with the faithful sampler; what still fails is reported and makes the command exit with 1"""
    force: bool = False
    """generate even when the statistics differ grossly from those of the model's training micrograph"""
    keep_going: bool = False
    """exit with 0 even when some samples are degenerate (they are still listed in summary.json)"""
    sampler: str = DEFAULT_SAMPLER
    """the named sampler ({sampler_help})"""

    def __post_init__(self):
        from lgtutorial.sampling.samplers import SAMPLERS

        check_settings(self, {
            "n_samples": (positive_int, "a positive integer"),
            "size": (optional(lambda v: is_int(v) and v >= 2), "a side of at least 2 pixels, or none"),
            "sigma_c": (positive_number, "a positive finite noise level"),
            "levels": (optional(lambda v: is_int(v) and v >= 2), "an integer of at least 2, or none"),
            "volume_fraction_estimate": (one_of("segmented", "mean"), "'segmented' or 'mean'"),
            "volume_fraction_shift": (optional(lambda v: is_number(v) and -1 < v < 1), "a number in (-1, 1), or none"),
            "periodic": (one_of("embedding", "circular", "none"), "'embedding', 'circular' or 'none'"),
            "padding": (non_negative_int, "a non-negative number of pixels"),
            "step_lr": (positive_number, "a positive finite step size"),
            "batch_size": (positive_int, "a positive integer"),
            "seed": (non_negative_int, "a non-negative integer"),
            "guard": (optional(lambda v: is_number(v) and 0 < v <= 1), "a volume-fraction error in (0, 1], or none"),
            "sampler": (one_of(*SAMPLERS), "one of " + ", ".join(SAMPLERS)),
        })
