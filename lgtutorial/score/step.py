"""One optimizer step of the trainer, and what it costs on this machine.

:class:`TrainingStep` is the step :func:`lgtutorial.score.training.train_score_model` takes, the
only copy of it: a batch of patches, the optional symmetry augmentation, the denoising score
matching loss (:mod:`lgtutorial.score.loss`) at drawn noise levels, autocast and gradient scaling
on CUDA (the 16-bit type from the GPU's capability: :func:`amp_dtype`), gradient-norm clipping,
Adam, the one-cycle learning rate and the EMA of the weights. A step returns its loss on the device
and waits for nothing, except once under float16: the gradient scaler reads its overflow flag on the
host to skip a step whose gradients overflowed. Only the fused Adam avoids that wait, and it is
another kernel (the numbers would differ from every other path's) that refuses the scaler's flag
after a checkpoint of the ordinary Adam is loaded, so a run resumed on a T4 would fail; the trainer
reads the losses at its evaluations.
:func:`seconds_per_step` times that same step on random patches; the fitting planner
(:func:`steps_for_budget`) and ``benchmarks/training_throughput.py`` use it.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time

import torch

from lgtutorial._checks import resolve_device
from lgtutorial.microstructure import labels_to_one_hot
from lgtutorial.score.loss import denoising_score_matching_loss
from lgtutorial.score.patches import PatchDataset
from lgtutorial.score.schedules import geometric_sigmas, one_cycle_learning_rate
from lgtutorial.score.settings import TrainingSettings, UNetSettings
from lgtutorial.score.unet import ScoreUNet

__all__ = ["TrainingStep", "amp_dtype", "dihedral_augment", "seconds_per_step", "steps_for_budget"]


def dihedral_augment(patches: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """Each square patch of ``(n, C, h, h)`` under its own random symmetry of the square (8 in all).

    A transpose (drawn with probability 1/2) followed by independent flips of rows and columns
    gives each of the 8 elements of the dihedral group with equal probability. Phase fractions,
    chord lengths along the two axes taken together, and any feature's shape survive; a preferred
    direction in the image frame does not.

    >>> x = torch.arange(4.0).view(1, 1, 2, 2)
    >>> sorted({tuple(dihedral_augment(x, generator=torch.Generator().manual_seed(s)).flatten().tolist())
    ...         for s in range(64)}) == sorted({tuple(t.flatten().tolist()) for t in
    ...     (x, x.flip(-1), x.flip(-2), x.flip(-1, -2), x.mT, x.mT.flip(-1), x.mT.flip(-2), x.mT.flip(-1, -2))})
    True
    """
    if patches.ndim != 4 or patches.shape[-1] != patches.shape[-2]:
        raise ValueError(f"expected square patches (n, C, h, h), got {tuple(patches.shape)}")
    ops = torch.randint(8, (patches.shape[0],), generator=generator, device=patches.device).view(-1, 1, 1, 1)
    out = torch.where(ops >= 4, patches.transpose(-1, -2), patches)
    out = torch.where(ops % 2 == 1, out.flip(-1), out)
    return torch.where((ops // 2) % 2 == 1, out.flip(-2), out)


def amp_dtype(device: torch.device | str) -> torch.dtype | None:
    """The 16-bit type the trainer autocasts to on ``device``: None (no autocast) off CUDA.

    bfloat16 on GPUs of compute capability 8.0 or above (A100, L4, H100, RTX 30xx on), where it is
    native; float16 (with the gradient scaler) below, e.g. Colab's T4 (7.5) or a V100 (7.0), where
    ``torch.cuda.is_bf16_supported()`` says True since torch 2.3 (it counts emulation) but bfloat16
    is emulated and cuDNN takes no bfloat16 convolutions.

    >>> amp_dtype("cpu") is None
    True
    """
    device = torch.device(device)
    if device.type != "cuda":
        return None
    major, _ = torch.cuda.get_device_capability(device)
    return torch.bfloat16 if major >= 8 else torch.float16


def _step_seed(seed: int, step: int) -> int:
    """Seed of one step's randomness (batch, levels, noise, dropout): resumed runs repeat it exactly."""
    return ((seed & 0x7FFFFFFF) << 32) + step


@torch.no_grad()
def _update_ema(ema: ScoreUNet, model: ScoreUNet, step: int, decay: float) -> None:
    """``ema <- d ema + (1 - d) theta`` with the warm-up ``d = min(decay, (1 + step) / (10 + step))``."""
    rate = 1.0 - min(decay, (1.0 + step) / (10.0 + step))
    # one multi-tensor launch for every parameter on CUDA; the same lerp, tensor by tensor, on the CPU
    torch._foreach_lerp_(list(ema.parameters()), list(model.parameters()), rate)


class TrainingStep:
    """The trainer's optimizer step, with the state it updates.

    Holds a fresh network (``model``, initialised from ``settings.seed``), its EMA (``ema``, eval
    mode), Adam (0.9, 0.999), a one-cycle cosine learning rate over ``settings.steps``, or with
    ``settings.minutes`` over the share of the time budget spent (``budget_fraction``, set by the
    trainer before each step) (``scheduler``), the autocast type (``amp_dtype``: :func:`amp_dtype` when
    ``settings.mixed_precision``, else None) and the gradient scaler (``scaler``: active under
    float16 autocast). Calling it with the training patches and the step number takes that step;
    all its randomness (batch, augmentation, noise levels, noise, dropout) is seeded from
    ``(settings.seed, step)``.

    Args:
        model_settings: the architecture.
        settings: the recipe (batch size, learning rates, clipping, EMA decay, augmentation, ...).
        levels: ``(L,)`` noise levels trained on, on ``device``.
        device: where the network runs.
    """

    def __init__(self, model_settings: UNetSettings, settings: TrainingSettings, levels: torch.Tensor,
                 device: torch.device):
        self.settings, self.levels, self.device = settings, levels, device
        self.model = ScoreUNet(model_settings, generator=torch.Generator().manual_seed(settings.seed)).to(device)
        self.ema = copy.deepcopy(self.model).eval().requires_grad_(False)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=settings.initial_lr, betas=(0.9, 0.999))
        #: share of the time budget spent (``settings.minutes``): the trainer sets it before each step
        self.budget_fraction = 0.0
        if settings.minutes is None:
            self.scheduler = torch.optim.lr_scheduler.OneCycleLR(
                self.optimizer, max_lr=settings.peak_lr, total_steps=settings.steps,
                pct_start=settings.warmup_fraction, anneal_strategy="cos",
                div_factor=settings.peak_lr / settings.initial_lr,
                final_div_factor=settings.initial_lr / settings.final_lr, cycle_momentum=False)
        else:  # the same cycle over the share of the budget spent, set at the start of each step (__call__)
            self.scheduler = torch.optim.lr_scheduler.LambdaLR(
                self.optimizer, lambda _: self._budget_rate() / settings.initial_lr)
        self.amp_dtype = amp_dtype(device) if settings.mixed_precision else None
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.amp_dtype == torch.float16)
        self._generator = torch.Generator(device=device)

    def _budget_rate(self) -> float:
        settings = self.settings
        return one_cycle_learning_rate(self.budget_fraction, initial_lr=settings.initial_lr, peak_lr=settings.peak_lr,
                                       final_lr=settings.final_lr, warmup_fraction=settings.warmup_fraction)

    def __call__(self, patches: PatchDataset, step: int) -> torch.Tensor:
        """Take optimizer step ``step`` (counted from 0) on a batch of ``patches``; returns its training loss.

        The loss is a 0-d float32 tensor on the device, detached: reading it (``float``) waits for
        the device, so the trainer sums it there and reads the sum at its evaluations. Seeds torch's
        global generator (dropout): run it inside ``torch.random.fork_rng`` to keep the caller's
        random state.
        """
        settings, generator = self.settings, self._generator
        if settings.minutes is not None:  # the rate of the share of the budget spent before this step
            for group in self.optimizer.param_groups:
                group["lr"] = self._budget_rate()
        torch.manual_seed(_step_seed(settings.seed, step))  # dropout
        generator.manual_seed(_step_seed(settings.seed, step))
        index = torch.randint(len(patches), (settings.batch_size,), generator=generator, device=self.device)
        clean = patches.batch(index, device=self.device)
        if settings.augment:
            clean = dihedral_augment(clean, generator=generator)
        self.model.train()
        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
            loss = denoising_score_matching_loss(self.model, clean, self.levels, generator=generator,
                                                 log_normal=settings.noise_log_normal)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), settings.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        _update_ema(self.ema, self.model, step, settings.ema_decay)
        return loss.detach()


def seconds_per_step(model_settings: UNetSettings, training_settings: TrainingSettings, *, warmup: int = 1,
                     min_steps: int = 6, min_seconds: float = 0.0, max_steps: int | None = None) -> tuple[float, int]:
    """Wall seconds one :class:`TrainingStep` takes on this machine, and how many steps were timed.

    After ``warmup`` untimed steps, times at least ``min_steps`` steps and ``min_seconds`` seconds
    (at most ``max_steps`` steps; default ``min_steps``) of the same network, batch, patch size and
    recipe on 256 random patches, with the threads torch has now. The caller's random state is kept.
    """
    max_steps = min_steps if max_steps is None else max_steps
    device = resolve_device(training_settings.device)
    settings = dataclasses.replace(training_settings, steps=warmup + max_steps)  # the learning-rate cycle
    size, channels = settings.patch_size, model_settings.channels
    n_phases = 2 if channels == 1 else channels
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        labels = torch.randint(n_phases, (256, size, size), generator=torch.Generator().manual_seed(0))
        patches = PatchDataset(labels_to_one_hot(labels, n_phases=n_phases), channels=channels).to(device)
        # which of the levels are trained changes nothing in the cost of a step
        levels = geometric_sigmas(settings.sigma_max, settings.sigma_min, settings.n_levels, device=device)
        take_step = TrainingStep(model_settings, settings, levels, device)
        for step in range(warmup):
            take_step(patches, step)
        _wait_for(device)  # a step does not wait for the device: the clock does
        count, started = 0, time.perf_counter()
        while count < max_steps:
            take_step(patches, warmup + count)
            count += 1
            if count >= min_steps:
                _wait_for(device)
                if time.perf_counter() - started >= min_seconds:
                    break
        _wait_for(device)
        return (time.perf_counter() - started) / count, count


def _wait_for(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def steps_for_budget(model_settings: UNetSettings, training_settings: TrainingSettings, minutes: float, *,
                     probe_steps: int = 6, share: float = 0.93) -> int:
    """Optimizer steps that fit in ``minutes`` of training on this machine, measured.

    Times ``probe_steps`` of the trainer's steps (after one warm-up step) with
    :func:`seconds_per_step`, and keeps ``share`` of the budget for the steps (the rest covers
    test-loss evaluations, checkpoints and patch cutting). The learning-rate cycle then spans the budget.
    """
    if not (isinstance(minutes, (int, float)) and math.isfinite(minutes) and minutes > 0):
        raise ValueError(f"the training budget must be a positive number of minutes, got {minutes!r}")
    per_step, _ = seconds_per_step(model_settings, training_settings, min_steps=probe_steps)
    return max(1, int(minutes * 60 * share / per_step))
