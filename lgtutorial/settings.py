"""Settings as frozen dataclasses: one source of defaults for the API, the CLI and the book.

The command-line options of ``lgtutorial`` are generated from these classes
(:func:`add_arguments` / :func:`from_arguments`), so a default changes in one place only.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch

from . import schedules
from .samplers import DEFAULT_SAMPLER
from .settings_cli import add_arguments, from_arguments

__all__ = ["GRFSettings", "EvaluationSettings", "UNetSettings", "UNET_PRESETS", "TrainingSettings", "TRAINING_PRESETS",
           "HybridSettings", "VolumeSettings", "add_arguments", "from_arguments", "resolve_device"]


@dataclass(frozen=True)
class GRFSettings:
    """Sampling a Gaussian random field from a reference's 2-point statistics."""

    reference: str = "nbsa-proxy"
    """registry name or path of the reference micrograph"""
    n_samples: int = 4
    """number of samples"""
    reference_phase: int = 0
    """phase whose autocorrelation defines the field"""
    filter_sigma: float | None = None
    """width (px) of an optional Gaussian low-pass; none by default"""
    segmentation: str = "auto"
    """'auto' (the volume-fraction-preserving rule that keeps the 2-point statistics better, measured per field), 'preserve' (3x3 local mean first), 'quantile' (none), 'argmax' or 'none'"""
    seed: int = 0
    """seed of the torch.Generator"""
    device: str = "auto"
    """'auto' (GPU when there is one), 'cpu', 'cuda', ..."""

    def __post_init__(self):
        check_settings(self, {
            "n_samples": (positive_int, "a positive integer"),
            "reference_phase": (non_negative_int, "a phase index 0, 1, ..."),
            "filter_sigma": (optional(positive_number), "a positive width in pixels, or none"),
            "segmentation": (one_of("auto", "preserve", "quantile", "argmax", "none"),
                             "'auto', 'preserve', 'quantile', 'argmax' or 'none'"),
            "seed": (non_negative_int, "a non-negative integer"),
        })


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``"auto"`` -> the GPU when one is available, else the CPU; anything else as given, if this machine has it.

    Raises:
        ValueError: a device name torch does not know, or a device this machine does not have.
    """
    if device is None or str(device) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"--device: expected {_DEVICE_HELP}, got {device!r}") from error
    if resolved.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0 or (resolved.index is not None and resolved.index >= count):
            raise ValueError(f"--device {device}: this machine has {count or 'no'} CUDA GPU(s); use 'auto' or 'cpu'")
    elif resolved.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError(f"--device {device}: this machine has no MPS device; use 'auto' or 'cpu'")
    elif resolved.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"--device: expected {_DEVICE_HELP}, got {device!r}")
    return resolved


# -- validation: every setting checked where it is made, with the option's name in the message ----
def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def positive_int(value) -> bool:
    return _is_int(value) and value >= 1


def non_negative_int(value) -> bool:
    return _is_int(value) and value >= 0


def positive_number(value) -> bool:
    return _is_number(value) and value > 0


def finite_number(value) -> bool:
    return _is_number(value)


def optional(check):
    def allowed(value) -> bool:
        return value is None or check(value)

    return allowed


def one_of(*choices):
    def allowed(value) -> bool:
        return value in choices

    return allowed


def check_settings(settings, rules: dict) -> None:
    """Raise ``ValueError`` naming the option (``--name`` and the field) for the first broken rule.

    ``rules`` maps a field to ``(predicate, what is expected)``.
    """
    for name, (allowed, expected) in rules.items():
        value = getattr(settings, name)
        if not allowed(value):
            raise ValueError(f"--{name.replace('_', '-')} ({name}): expected {expected}, got {value!r}")
    device = getattr(settings, "device", "auto")
    resolve_device(device)


_DEVICE_HELP = "'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"


@dataclass(frozen=True)
class EvaluationSettings:
    """Comparing generated ensembles with a reference (``lgtutorial evaluate``, :func:`lgtutorial.comparison.compare`)."""

    patch_size: int | None = None
    """side (px) of the denoiser's patches: the box on the error maps, splitting 2-point errors inside/outside"""
    cutoff: int | None = None
    """largest lag (px) of the compared 2-point statistics; None: the largest lag every image provides"""
    three_point_cutoff: int = 10
    """largest second displacement (px) of the 3-point statistics"""
    n_components: int = 5
    """principal components kept for the 3-point statistics"""
    fit_radius: int = 2
    """outermost ring (px) of the slope fit for the feature size"""
    reference_periodic: bool | None = None
    """treat the reference as periodic; None: as the registry says (files are non-periodic)"""
    ensemble_periodic: bool = True
    """treat the generated samples as periodic (GRF and hybrid samples are)"""
    device: str = "auto"
    """'auto' (GPU when there is one), 'cpu', 'cuda', ..."""

    def __post_init__(self):
        check_settings(self, {
            "patch_size": (optional(positive_int), "a positive number of pixels, or none"),
            "cutoff": (optional(non_negative_int), "a non-negative number of pixels, or none"),
            "three_point_cutoff": (non_negative_int, "a non-negative number of pixels"),
            "n_components": (positive_int, "a positive integer"),
            "fit_radius": (positive_int, "a positive number of pixels"),
        })


@dataclass(frozen=True)
class UNetSettings:
    """Shape of the lightweight score U-Net (Robertson et al. 2023, Section 3.2)."""

    channels: int = 1
    """input/output channels C: 1 for a 2-phase model (phase 1), N for N > 2 phases"""
    latent_channels: int = 40
    """lift dimension L_c, the width of every hidden layer"""
    depth: int = 1
    """number of down/up-sampling levels D (D + 1 resolutions)"""
    num_blocks: int = 1
    """extra 3x3 conv blocks after the input conv and before the output conv"""
    dropout: float = 0.1
    """dropout between the two convs of each skip branch"""

    def __post_init__(self):
        check_settings(self, {
            "channels": (positive_int, "a positive integer (1 for 2 phases, N for N > 2)"),
            "latent_channels": (positive_int, "a positive integer"),
            "depth": (non_negative_int, "a non-negative integer"),
            "num_blocks": (non_negative_int, "a non-negative integer"),
            "dropout": (lambda v: _is_number(v) and 0 <= v < 1, "a number in [0, 1)"),
        })

    @classmethod
    def preset(cls, name: str) -> UNetSettings:
        """The named preset: ``case1``, ``case2``, ``case1-cpu``, ``case2-cpu`` (see UNET_PRESETS)."""
        if name not in UNET_PRESETS:
            raise ValueError(f"unknown U-Net preset {name!r}; expected one of {', '.join(UNET_PRESETS)}")
        return UNET_PRESETS[name]


UNET_PRESETS = {
    # the paper's 2-phase model (about 105 k parameters)
    "case1": UNetSettings(channels=1, latent_channels=40, depth=1, num_blocks=1),
    # the paper's 3-phase model (about 1.2 M parameters)
    "case2": UNetSettings(channels=3, latent_channels=100, depth=3, num_blocks=1),
    # CPU variants: case 1 is already cheap; case 2 shrinks to L_c = 48, D = 2 (about 218 k)
    "case1-cpu": UNetSettings(channels=1, latent_channels=40, depth=1, num_blocks=1),
    "case2-cpu": UNetSettings(channels=3, latent_channels=48, depth=2, num_blocks=1),
}
UNET_PRESETS["case1-hybrid-cpu"] = UNET_PRESETS["case1-cpu"]
UNET_PRESETS["case2-hybrid-cpu"] = UNET_PRESETS["case2-cpu"]


@dataclass(frozen=True)
class TrainingSettings:
    """Denoising score matching on patches of one micrograph (Robertson et al. 2023, Section 3.2)."""

    patch_size: int = 40
    """side of the square training patches (px)"""
    n_patches: int = 4000
    """patches cut at Latin-hypercube centres"""
    train_fraction: float = 0.85
    """share of the patches used for training; the rest measure the test loss"""
    batch_size: int = 128
    """patches per optimizer step"""
    steps: int = 500_000
    """optimizer steps in all (the learning-rate cycle spans them)"""
    sigma_max: float = schedules.SIGMA_MAX
    """largest noise level sigma_1 (just above the largest distance between patches)"""
    sigma_min: float = schedules.SIGMA_MIN
    """smallest noise level sigma_L"""
    n_levels: int = schedules.N_LEVELS
    """number of geometric noise levels L"""
    train_sigma_max: float | None = None
    """largest noise level trained on (the hybrid-range recipe: a little above sigma_c); None: sigma_max, the whole schedule"""
    initial_lr: float = 1e-3
    """learning rate at the start of the one-cycle schedule"""
    peak_lr: float = 1e-2
    """largest learning rate of the one-cycle schedule"""
    final_lr: float = 1e-5
    """learning rate at the last step"""
    warmup_fraction: float = 0.3
    """share of the steps spent rising to the peak learning rate"""
    grad_clip: float = 1.0
    """largest gradient norm (clipped above)"""
    ema_decay: float = 0.999
    """EMA decay of the sampling weights (warmed up as min(decay, (1+t)/(10+t)))"""
    eval_every: int = 1000
    """steps between test-loss evaluations"""
    checkpoint_every: int = 1000
    """steps between checkpoints"""
    checkpoint_minutes: float = 5.0
    """minutes between checkpoints at the latest, whatever the step count (a kill loses at most this much)"""
    seed: int = 0
    """seed of the patches, the initial weights and every step's randomness"""
    device: str = "auto"
    """'auto' (GPU when there is one), 'cpu', 'cuda', ..."""
    mixed_precision: bool = True
    """autocast to 16-bit floats on CUDA (ignored elsewhere)"""
    noise_log_normal: tuple[float, float] | None = None
    """(mean, std) of ln sigma: draw each patch's noise level log-normally (Karras et al. 2022), clamped to the trained range, instead of uniformly over the trained levels (the paper); centres training on the levels where the hybrid has to draw features"""
    augment: bool = False
    """train on each patch under a random one of the 8 symmetries of the square (flips, 90-degree turns): for micrographs whose features have no preferred direction in the image frame; leave off when they do (rolled, elongated, directionally solidified)"""

    def __post_init__(self):
        if isinstance(self.noise_log_normal, list):  # from a settings file or a checkpoint
            object.__setattr__(self, "noise_log_normal", tuple(self.noise_log_normal))
        check_settings(self, {
            "augment": (lambda v: isinstance(v, bool), "true or false"),
            "noise_log_normal": (lambda v: v is None or (isinstance(v, tuple) and len(v) == 2
                                                         and _is_number(v[0]) and positive_number(v[1])),
                                 "none, or the (mean, positive std) of ln sigma"),
            "patch_size": (lambda v: _is_int(v) and v >= 4, "a patch side of at least 4 pixels"),
            "n_patches": (lambda v: _is_int(v) and v >= 2, "at least 2 patches"),
            "train_fraction": (lambda v: _is_number(v) and 0 < v <= 1, "a share in (0, 1]"),
            "batch_size": (positive_int, "a positive integer"),
            "steps": (positive_int, "a positive integer"),
            "sigma_max": (positive_number, "a positive finite noise level"),
            "sigma_min": (positive_number, "a positive finite noise level below sigma_max"),
            "n_levels": (lambda v: _is_int(v) and v >= 2, "an integer of at least 2"),
            "train_sigma_max": (optional(positive_number), "a positive finite noise level, or none"),
            "initial_lr": (positive_number, "a positive finite learning rate"),
            "peak_lr": (positive_number, "a positive finite learning rate"),
            "final_lr": (positive_number, "a positive finite learning rate"),
            "warmup_fraction": (lambda v: _is_number(v) and 0 < v < 1, "a share in (0, 1)"),
            "grad_clip": (positive_number, "a positive finite gradient norm"),
            "ema_decay": (lambda v: _is_number(v) and 0 <= v < 1, "a decay in [0, 1)"),
            "eval_every": (positive_int, "a positive number of steps"),
            "checkpoint_every": (positive_int, "a positive number of steps"),
            "checkpoint_minutes": (positive_number, "a positive number of minutes"),
            "seed": (non_negative_int, "a non-negative integer"),
        })
        if not self.sigma_max > self.sigma_min:
            raise ValueError(f"--sigma-max ({self.sigma_max}) must be larger than --sigma-min ({self.sigma_min})")
        if self.train_sigma_max is not None and not self.train_sigma_max > self.sigma_min:
            raise ValueError(f"--train-sigma-max ({self.train_sigma_max}) must be above --sigma-min ({self.sigma_min})")

    @classmethod
    def preset(cls, name: str) -> TrainingSettings:
        """The named preset: ``case1``, ``case2``, ``case1-cpu``, ``case2-cpu`` (see TRAINING_PRESETS)."""
        if name not in TRAINING_PRESETS:
            raise ValueError(f"unknown training preset {name!r}; expected one of {', '.join(TRAINING_PRESETS)}")
        return TRAINING_PRESETS[name]


#: The two case studies' noise schedules, and the hybrid-range recipe's top level.
_CASE1_SCHEDULE = dict(sigma_max=schedules.SIGMA_MAX, sigma_min=schedules.SIGMA_MIN)
_CASE2_SCHEDULE = dict(sigma_max=schedules.SIGMA_MAX_THREE_PHASE, sigma_min=schedules.SIGMA_MIN)
_HYBRID_RANGE = dict(train_sigma_max=schedules.HYBRID_TRAIN_SIGMA_MAX, eval_every=250, checkpoint_every=250)

TRAINING_PRESETS = {
    # the paper's settings (a V100 GPU): 2-phase, 40 px patches of the 256x256 reference
    "case1": TrainingSettings(patch_size=40, n_patches=4000, batch_size=128, steps=500_000, **_CASE1_SCHEDULE),
    # the paper's settings: 3-phase, 64 px patches of the 400x512 reference
    "case2": TrainingSettings(patch_size=64, n_patches=8000, batch_size=128, steps=750_000, **_CASE2_SCHEDULE,
                              eval_every=2000, checkpoint_every=2000),
    # two CPU cores: batch 32, about 3 steps/s -> 20 k steps in roughly two hours
    "case1-cpu": TrainingSettings(patch_size=40, n_patches=4000, batch_size=32, steps=20_000, **_CASE1_SCHEDULE,
                                  eval_every=500, checkpoint_every=500),
    # two CPU cores: 48 px patches for the L_c = 48, D = 2 model, about 1.3 steps/s -> ~2 hours
    "case2-cpu": TrainingSettings(patch_size=48, n_patches=8000, batch_size=32, steps=10_000, **_CASE2_SCHEDULE,
                                  eval_every=500, checkpoint_every=500),
    # hybrid-range recipe: the same schedules, but only the levels the hybrid visits (sigma <= 1.5,
    # twice the paper's sigma_c) are trained on; such a model cannot sample from pure noise (SBG)
    "case1-hybrid-cpu": TrainingSettings(patch_size=40, n_patches=4000, batch_size=32, steps=4_000,
                                         **_CASE1_SCHEDULE, **_HYBRID_RANGE),
    "case2-hybrid-cpu": TrainingSettings(patch_size=48, n_patches=8000, batch_size=32, steps=5_000,
                                         **_CASE2_SCHEDULE, **_HYBRID_RANGE),
}


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
        from .samplers import SAMPLERS

        check_settings(self, {
            "n_samples": (positive_int, "a positive integer"),
            "size": (optional(lambda v: _is_int(v) and v >= 2), "a side of at least 2 pixels, or none"),
            "sigma_c": (positive_number, "a positive finite noise level"),
            "levels": (optional(lambda v: _is_int(v) and v >= 2), "an integer of at least 2, or none"),
            "volume_fraction_estimate": (one_of("segmented", "mean"), "'segmented' or 'mean'"),
            "volume_fraction_shift": (optional(lambda v: _is_number(v) and -1 < v < 1), "a number in (-1, 1), or none"),
            "periodic": (one_of("embedding", "circular", "none"), "'embedding', 'circular' or 'none'"),
            "padding": (non_negative_int, "a non-negative number of pixels"),
            "step_lr": (positive_number, "a positive finite step size"),
            "batch_size": (positive_int, "a positive integer"),
            "seed": (non_negative_int, "a non-negative integer"),
            "guard": (optional(lambda v: _is_number(v) and 0 < v <= 1), "a volume-fraction error in (0, 1], or none"),
            "sampler": (one_of(*SAMPLERS), "one of " + ", ".join(SAMPLERS)),
        })


@dataclass(frozen=True)
class VolumeSettings:
    """3D volumes from one 2D micrograph (``lgtutorial generate --dims 3``, :class:`lgtutorial.volume.VolumeGenerator`;
    its defaults, tested to agree). The hybrid's options of :class:`HybridSettings` apply as well."""

    dims: int = 2
    """2: square samples (the paper's method); 3: cubic volumes of side --size (default 64) from the 2D statistics under isotropy, refined slice by slice by the 2D score model: two phases, equiaxed or randomly oriented features only (book chapter 10)"""
    scheme: str = "passes"
    """--dims 3: 'passes' (one slice orientation at a time, xy, xz, yz, --rounds times) or 'mean' (the three orientations' scores averaged: turns grey; for comparison)"""
    rounds: int = 2
    """--dims 3, scheme 'passes': how many times the three orientations are visited"""
    sigma_pass: float = 0.3
    """--dims 3, scheme 'passes': the noise level every pass after the first re-noises the volume to"""
    annealed: bool = False
    """--dims 3, scheme 'passes': annealed passes instead of --rounds at --sigma-pass (eleven later passes re-noising geometrically less, 0.6 to 0.15) and a final denoising step of all three orientations at once (from 0.45, 16 noise draws): slices closer to the micrograph for about twice the time (book chapter 10)"""

    def __post_init__(self):
        check_settings(self, {
            "dims": (one_of(2, 3), "2 (square samples) or 3 (cubic volumes)"),
            "scheme": (one_of("passes", "mean"), "'passes' or 'mean'"),
            "rounds": (positive_int, "a positive integer"),
            "sigma_pass": (positive_number, "a positive finite noise level"),
        })
        if self.annealed:
            clashes = [f"--{name.replace('_', '-')}" for name in ("scheme", "rounds", "sigma_pass")
                       if getattr(self, name) != getattr(type(self), name)]
            if clashes:
                raise ValueError(f"--annealed sets the passes itself (scheme 'passes'); leave out {', '.join(clashes)}")
        if self.dims == 2:
            changed = [f"--{f.name.replace('_', '-')}" for f in dataclasses.fields(self)
                       if f.name != "dims" and getattr(self, f.name) != f.default]
            if changed:
                raise ValueError(f"{', '.join(changed)}: options of 3D volumes; add --dims 3 (or leave them out)")
