"""The plan of a fit: patch size, network, training length and sampler for one micrograph, and why.

:func:`plan_fit` reads the micrograph (:func:`lgtutorial.fitting.inspect.inspect_micrograph`) and
chooses the patch side from the mean chord lengths, the model from the number of phases, a time
budget (the steps it should buy estimated from the trainer's step timed on this machine,
:func:`lgtutorial.score.step.seconds_per_step`), the
hybrid-range recipe (only the noise levels the hybrid visits are trained on) and the sampler;
:class:`FitPlan` holds the choices and their reasons (``describe()``). The measurements behind them:
``benchmarks/results/fit_registered_cpu.md``, ``fit_registered_cpu_3phase_depth3.md``, ``fit_sampler_fine_cpu.md``.

>>> from lgtutorial.synthetic import blobs
>>> plan = plan_fit(blobs(64, 2.0), minutes=1.0, device="cpu", measure_speed=False)
>>> plan.patch_size, plan.model_settings.channels, plan.periodic, plan.training_settings.train_sigma_max
(32, 1, True, 1.5)
>>> plan_fit(blobs(64, 2.0)[..., :40, :40], minutes=1.0, device="cpu", measure_speed=False).periodic
False
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch

from lgtutorial._checks import resolve_device
from lgtutorial.fitting.inspect import finest_mean_chord, inspect_micrograph
from lgtutorial.sampling.samplers import DEFAULT_SAMPLER
from lgtutorial.score.schedules import (
    HYBRID_TRAIN_SIGMA_MAX,
    SIGMA_C,
    SIGMA_MAX,
    SIGMA_MAX_THREE_PHASE,
    SIGMA_MIN,
)
from lgtutorial.score.settings import BUDGET_STEP_CAP, TrainingSettings, UNetSettings
from lgtutorial.score.unet import receptive_field

__all__ = ["FINE_FEATURE_PX", "FitPlan", "plan_fit"]

#: the noise levels a fitted model is trained on: up to twice the hybrid's sigma_c
HYBRID_TOP = HYBRID_TRAIN_SIGMA_MAX
#: Below this finest mean chord (px) the plan samples a 2-phase micrograph with ``"fast-fine"``
#: (:data:`lgtutorial.sampling.samplers.SAMPLERS`; ``benchmarks/results/fit_sampler_fine_cpu.md``: with the
#: 30-minute alloy model two of four samples drew mostly continuous lines where three of four were dotted,
#: and it changed little elsewhere; on the 3-phase
#: composite one phase came out further from the reference, so three phases keep ``"fast"``).
FINE_FEATURE_PX = 4.0


@dataclass(frozen=True)
class FitPlan:
    """What :func:`lgtutorial.fitting.fit.fit` will do, and why (``describe()``)."""

    info: dict
    periodic: bool
    patch_size: int
    model_settings: UNetSettings
    training_settings: TrainingSettings
    minutes: float
    reasons: tuple
    sampler: str = DEFAULT_SAMPLER
    expected_steps: int = 0
    """steps the budget should buy at the speed measured when planning (the run trains until the time is spent)"""

    def describe(self) -> str:
        return "\n".join(f"- {reason}" for reason in self.reasons)


def plan_fit(micro: torch.Tensor, *, minutes: float = 15.0, device="auto", periodic: bool | None = None,
             patch_size: int | None = None, measure_speed: bool = True, steps: int | None = None,
             batch_size: int | None = None, sampler: str | None = None, depth: int | None = None,
             latent_channels: int | None = None, time_budget: bool = True) -> FitPlan:
    """Choose the patch size, the model, the training length and the sampler for one micrograph (see :func:`lgtutorial.fitting.fit.fit`).

    ``depth`` and ``latent_channels`` override the network's number of levels and width (a resumed fit passes
    the ones it planned: the width of a network of three or more phases is chosen by the device kind, which a
    resume on another machine may not share). ``time_budget``: train until ``minutes`` are spent (the learning
    rate following the share of the time spent; ``steps``, measured or given, is then only the expectation);
    False: train the measured ``steps`` with ``minutes`` as a hard limit (plans written before budgets).
    """
    if not (isinstance(minutes, (int, float)) and math.isfinite(minutes) and minutes > 0):
        raise ValueError(f"--minutes (minutes): minutes must be a positive number, got {minutes!r}")
    if depth is not None and not (isinstance(depth, int) and not isinstance(depth, bool) and 0 <= depth <= 6):
        raise ValueError(f"depth must be an integer from 0 to 6, got {depth!r}")
    if latent_channels is not None and not (isinstance(latent_channels, int) and not isinstance(latent_channels, bool)
                                            and latent_channels >= 1):
        raise ValueError(f"latent_channels must be a positive integer, got {latent_channels!r}")
    info = inspect_micrograph(micro)
    n_phases, (height, width) = info["n_phases"], info["shape"]
    reasons = [f"{n_phases} phases, {height}x{width} px, volume fractions "
               + ", ".join(f"{v:.3f}" for v in info["volume_fractions"])]
    if periodic is None:
        periodic = info["periodic"]
        reasons.append("not periodic: a uniform frame of one phase runs along its edge" if info["framed"] else
                       f"{'periodic' if periodic else 'not periodic'}: phases change across the wrap-around seam at "
                       f"{max(info['seam_changes']):.3f} of the pixels against {max(info['inside_changes']):.3f} "
                       "between neighbouring lines inside" + ("" if periodic else " (patches are cut inside the image)"))
    else:
        reasons.append(f"periodic={periodic} as asked")
    finest = finest_mean_chord(info)
    if patch_size is None:
        # about 8 of the finest features across (the paper: 40 px for ~5 px precipitates), a multiple of
        # 8, between 32 and 64 px, and at most half the micrograph so that patches differ
        patch_size = int(min(64, max(32, 8 * round(8 * finest / 8)), 8 * (min(height, width) // 16)))
        reasons.append(f"patches of {patch_size} px: the finest mean chord is {finest:.1f} px, and a patch should "
                       "hold several of the features the local layer must learn")
    if patch_size < 8 or patch_size > min(height, width):
        raise ValueError(f"--patch-size (patch_size): the patch size must be between 8 px and the micrograph's smaller side "
                         f"({min(height, width)} px), got {patch_size}")
    if sampler is None:
        if finest < FINE_FEATURE_PX and n_phases == 2:
            sampler = "fast-fine"
            reasons.append(f"the sampler 'fast-fine' (88 network evaluations a sample, not 49): the finest mean chord "
                           f"is {finest:.1f} px, under {FINE_FEATURE_PX:g}; 'fast' stops at sigma = 0.1, where lines one "
                           "or two pixels wide can still be grey, and breaks them into dots")
        else:
            sampler = DEFAULT_SAMPLER
    else:
        reasons.append(f"the sampler {sampler!r} as asked")
    device = resolve_device(device)
    gpu = device.type == "cuda"
    asked = depth is not None
    if n_phases == 2:
        # the network must see a feature and as much again around it to draw it whole: the shallowest depth whose
        # receptive field spans twice the finest mean chord (ngrf-two-phase-dense-circles, 12 px discs: with
        # D = 1, an 18 px window, the hybrid merged them into worms; D = 2 kept most of them round,
        # benchmarks/results/fit_registered_cpu.md), and no wider than a patch (the paper saw fields larger
        # than the patch make the model unstable)
        windows = {d: receptive_field(UNetSettings(depth=d)) for d in (1, 2, 3)}
        allowed = [d for d, window in windows.items() if d == 1 or window <= patch_size]
        feature_depth = next((d for d in allowed if windows[d] >= 2 * finest), allowed[-1])
        model = UNetSettings(channels=1, latent_channels=latent_channels or 40,
                             depth=int(depth) if asked else feature_depth, num_blocks=1)
        window = receptive_field(model)
        if asked:
            reasons.append(f"the paper's 2-phase network (one channel, L_c = 40) with the depth given, D = "
                           f"{model.depth} ({window} px receptive field)")
        elif model.depth == 1:
            reasons.append(f"the paper's 2-phase network (one channel, L_c = 40, D = 1, about 105 k parameters): its "
                           f"{window} px receptive field spans twice the finest mean chord ({finest:.1f} px)")
        else:
            reasons.append(f"the paper's 2-phase network one level deeper per doubling (one channel, L_c = 40, D = "
                           f"{model.depth}): a {window} px receptive field, so that the network sees a feature of the "
                           f"finest mean chord ({finest:.1f} px) and as much again around it (D = 1 sees "
                           f"{windows[1]} px)")
    else:
        # three or more phases keep the CPU variant's D = 2 whatever the features: one level deeper (52 px) measured
        # no better on ngrf-three-phase-simple at 30 min, chords of two phases further, the rarest phase's regions
        # alike (benchmarks/results/fit_registered_cpu_3phase_depth3.md)
        model = UNetSettings(channels=n_phases, latent_channels=latent_channels or (100 if gpu else 48),
                             depth=int(depth) if asked else (3 if gpu else 2), num_blocks=1)
        window = receptive_field(model)
        reasons.append(f"a network of {n_phases} channels: " + (
            f"L_c = {model.latent_channels}, the depth given, D = {model.depth}" if asked else
            "the paper's (L_c = 100, D = 3)" if gpu else
            "the CPU variant L_c = 48, D = 2 (the paper's L_c = 100, D = 3 is 7x slower here)")
            + f": a {window} px receptive field")
        if not gpu and minutes < 60:
            reasons.append(f"warning: {minutes:g} min on a CPU is likely too short for {n_phases} phases: in this "
                           "project's measurements 8-30 CPU minutes brought the chord lengths of three-phase "
                           "micrographs closer than the GRF's, not yet the sizes of their connected regions "
                           "(benchmarks/results/fit_registered_cpu.md); give it an hour, or a GPU")
    if patch_size % (2 ** model.depth):
        raise ValueError(f"--patch-size (patch_size): the patch size must be a multiple of {2 ** model.depth} for this "
                         f"network, got {patch_size}")
    if batch_size is None:
        if gpu:
            batch_size = 128
        else:
            # on a CPU the budget buys few steps: a batch holds as many pixels as 32 patches of 32 px, so a
            # larger patch (more context) does not cost steps (li2018-ceramics and the 64 px synthetic
            # micrographs, fitted for 8 minutes: benchmarks/results/fit_registered_cpu.md)
            batch_size = max(8, round(32 * (32 / patch_size) ** 2))
            if batch_size != 32:
                reasons.append(f"batches of {batch_size} patches of {patch_size} px: as many pixels per step as "
                               "32 patches of 32 px, so that the larger patch does not cost steps")
    training = TrainingSettings(patch_size=patch_size, n_patches=4000 if n_phases == 2 else 8000,
                                batch_size=int(batch_size), steps=1,
                                sigma_max=SIGMA_MAX if n_phases == 2 else SIGMA_MAX_THREE_PHASE,
                                sigma_min=SIGMA_MIN, train_sigma_max=HYBRID_TOP, device=str(device))
    reasons.append(f"the hybrid-range recipe: noise levels up to sigma = {HYBRID_TOP} only (the hybrid starts at "
                   f"{SIGMA_C}), so every step trains what the hybrid uses")
    if steps is None:
        steps = (_steps_for(model, training, minutes) if measure_speed else max(1, int(minutes * 60)))
        how = "throughput measured just now" if measure_speed else "assuming one step per second"
    else:
        how = "as planned before"
    if time_budget:
        reasons.append(f"training until {minutes:g} min are spent, the learning rate following the share of the time "
                       f"spent: about {steps:,} optimizer steps of {training.batch_size} patches on {device} ({how}; "
                       "a busier or faster machine takes fewer or more)")
    else:
        reasons.append(f"{steps:,} optimizer steps of {training.batch_size} patches: what fits in {minutes:g} min on "
                       f"{device} ({how})")
    # a test-loss evaluation and a checkpoint cost several steps each: not more often than every 25 steps
    # (and checkpoints also every few minutes, whatever the count)
    training = dataclasses.replace(training, steps=BUDGET_STEP_CAP if time_budget else int(steps),
                                   minutes=float(minutes) if time_budget else None, eval_every=max(25, steps // 10),
                                   checkpoint_every=max(25, min(250, steps // 10)))
    return FitPlan(info=info, periodic=bool(periodic), patch_size=int(patch_size), model_settings=model,
                   training_settings=training, minutes=float(minutes), reasons=tuple(reasons), sampler=sampler,
                   expected_steps=int(steps))


_SECONDS_PER_STEP: dict = {}


def _steps_for(model: UNetSettings, training: TrainingSettings, minutes: float) -> int:
    """Steps that fit in ``minutes``; the trainer's step is timed once per network, batch and thread count."""
    from lgtutorial.score.step import seconds_per_step

    key = (model, training.patch_size, training.batch_size, training.device, torch.get_num_threads())
    if key not in _SECONDS_PER_STEP:
        _SECONDS_PER_STEP[key] = seconds_per_step(model, training)[0]
    return max(1, int(minutes * 60 * 0.93 / _SECONDS_PER_STEP[key]))
