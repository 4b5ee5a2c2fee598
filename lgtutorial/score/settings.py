"""Options of the score network and of its training, and the named presets of both (Robertson et al. 2023, Section 3.2).

The command-line options are generated from these dataclasses (:mod:`lgtutorial.cli.options`).
"""

from __future__ import annotations

from dataclasses import dataclass

from lgtutorial._checks import (
    check_settings,
    is_int,
    is_number,
    non_negative_int,
    optional,
    positive_int,
    positive_number,
)
from lgtutorial.score import schedules


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
            "dropout": (lambda v: is_number(v) and 0 <= v < 1, "a number in [0, 1)"),
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


#: ``steps`` of a run on a time budget (``TrainingSettings.minutes``) that names no step count: no cap in practice
#: (the budget ends the run long before on any machine of today)
BUDGET_STEP_CAP = 100_000_000


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
    """optimizer steps in all (the learning-rate cycle spans them); with ``minutes``, the most steps taken"""
    minutes: float | None = None
    """a time budget: train until this many minutes of wall time are spent (a resumed run counts the time spent before), the learning-rate cycle following the elapsed share of the budget instead of the step count; none: train ``steps`` steps. A budgeted run is not repeatable bit for bit (its steps depend on the machine's speed)"""
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
                                                         and is_number(v[0]) and positive_number(v[1])),
                                 "none, or the (mean, positive std) of ln sigma"),
            "patch_size": (lambda v: is_int(v) and v >= 4, "a patch side of at least 4 pixels"),
            "n_patches": (lambda v: is_int(v) and v >= 2, "at least 2 patches"),
            "train_fraction": (lambda v: is_number(v) and 0 < v <= 1, "a share in (0, 1]"),
            "batch_size": (positive_int, "a positive integer"),
            "steps": (positive_int, "a positive integer"),
            "minutes": (optional(positive_number), "a positive finite number of minutes, or none (train --steps)"),
            "sigma_max": (positive_number, "a positive finite noise level"),
            "sigma_min": (positive_number, "a positive finite noise level below sigma_max"),
            "n_levels": (lambda v: is_int(v) and v >= 2, "an integer of at least 2"),
            "train_sigma_max": (optional(positive_number), "a positive finite noise level, or none"),
            "initial_lr": (positive_number, "a positive finite learning rate"),
            "peak_lr": (positive_number, "a positive finite learning rate"),
            "final_lr": (positive_number, "a positive finite learning rate"),
            "warmup_fraction": (lambda v: is_number(v) and 0 < v < 1, "a share in (0, 1)"),
            "grad_clip": (positive_number, "a positive finite gradient norm"),
            "ema_decay": (lambda v: is_number(v) and 0 <= v < 1, "a decay in [0, 1)"),
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
