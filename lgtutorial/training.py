"""Training the score model by denoising score matching, and sampling it unconditionally.

Robertson et al. 2023, Section 3.2 (after Song & Ermon 2019): the network learns the score of
the patch distribution blurred by Gaussian noise at every level of a geometric schedule.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import math
import platform
import time
from pathlib import Path

import torch

from .grf import segment_argmax
from .patches import PatchDataset, make_patch_datasets
from .sampling import annealed_langevin, from_model_channels, to_model_channels
from .schedules import STEP_LR, geometric_sigmas, langevin_step_sizes
from .settings import TrainingSettings, UNetSettings, resolve_device
from .unet import ScoreUNet

__all__ = [
    "denoising_score_matching_loss",
    "train_score_model",
    "TrainingRun",
    "load_checkpoint",
    "CHECKPOINT_NAME",
    "sample_unconditional",
    "segment_model_output",
    "training_report",
    "TrainingReport",
    "shortened_schedule",
    "trained_levels",
    "steps_for_budget",
    "TrainingInterrupted",
]

CHECKPOINT_FORMAT = "lgtutorial-score-model"
CHECKPOINT_VERSION = 1
CHECKPOINT_NAME = "checkpoint.pt"
# settings that may change when a run is resumed (they do not change what is computed)
_RESUMABLE_CHANGES = ("device", "eval_every", "checkpoint_every", "checkpoint_minutes")


def denoising_score_matching_loss(
    model: ScoreUNet, clean: torch.Tensor, sigmas: torch.Tensor, *, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Denoising score matching with one random noise level per example (Eq. (4), Robertson et al. 2023).

    ``l = (1/2) sigma_i^2 || s(x~, sigma_i) + (x~ - x) / sigma_i^2 ||^2`` with ``x~ = x + sigma_i z``.
    Because the score is ``model(x~) / sigma_i``, this is ``(1/2) || model(x~) + z ||^2``: the
    network predicts minus the (unit) noise. Summed over pixels, averaged over the batch.

    Args:
        model: the score network.
        clean: ``(n, C, h, w)`` training patches.
        sigmas: ``(L,)`` noise levels (on ``clean``'s device).
        generator: ``torch.Generator`` on ``clean``'s device for the levels and the noise.
    """
    levels = torch.randint(len(sigmas), (clean.shape[0],), generator=generator, device=clean.device)
    sigma = sigmas[levels].view(-1, 1, 1, 1)
    noise = torch.randn(clean.shape, generator=generator, device=clean.device, dtype=clean.dtype)
    output = model(clean + sigma * noise)
    return 0.5 * (output.float() + noise).square().sum(dim=(1, 2, 3)).mean()


def trained_levels(sigmas: torch.Tensor, train_sigma_max: float | None) -> torch.Tensor:
    """The levels of ``sigmas`` a model is trained on: all, or those up to ``train_sigma_max``.

    The hybrid generator only visits ``sigma <= sigma_c`` (0.75 in the paper), so training on the
    levels above it spends steps (most of them, for a 20 -> 0.01 schedule) where the hybrid never
    goes. The schedule itself is kept whole: the samplers place their levels on it as before.

    >>> from lgtutorial.schedules import geometric_sigmas
    >>> levels = trained_levels(geometric_sigmas(20.0, 0.01, 1000), 1.5)
    >>> len(levels), round(float(levels[0]), 3)
    (659, 1.494)
    """
    if train_sigma_max is None:
        return sigmas
    top = float(train_sigma_max)
    if not math.isfinite(top) or top <= float(sigmas.min()):
        raise ValueError(f"train_sigma_max must be a number above the smallest level {float(sigmas.min()):.4g}, "
                         f"got {train_sigma_max!r}")
    return sigmas[sigmas <= top]


def segment_model_output(x: torch.Tensor, *, n_phases: int | None = None, clamp: float | None = 3.0) -> torch.Tensor:
    """Model-channel samples ``(n, C, H, W)`` -> one-hot ``(n, N, H, W)`` (Section 3.3).

    Values are clamped to ``[-clamp, clamp]`` first (as the authors do). A 1-channel output is the
    second phase of a 2-phase structure (threshold 0.5); C > 1 channels are segmented by argmax.
    """
    if x.ndim != 4:
        raise ValueError(f"expected model output of shape (n_samples, C, H, W), got {tuple(x.shape)}")
    n_phases = n_phases if n_phases is not None else (2 if x.shape[1] == 1 else x.shape[1])
    if clamp is not None:
        x = x.clamp(-clamp, clamp)
    return segment_argmax(from_model_channels(x, n_phases))


def sample_unconditional(
    model: ScoreUNet,
    *,
    n_samples: int,
    shape: tuple[int, int],
    sigmas: torch.Tensor,
    step_lr: float = STEP_LR,
    step_sizes: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    segment: bool = True,
    batch_size: int | None = None,
    callback=None,
) -> torch.Tensor:
    """Unconditional samples of a score model by annealed Langevin dynamics (Section 3.3).

    Starts from ``0.5 + sigma_1 z`` and runs every level of ``sigmas`` (one step each), with
    ``eps_i = step_lr (sigma_i / sigma_L)^2`` unless ``step_sizes`` is given. A subsampled
    schedule (:func:`lgtutorial.schedules.subsample`) takes fewer steps per decade of sigma and
    needs larger ones: e.g. 100 of the paper's 1000 levels with ``step_sizes =
    langevin_step_sizes(sigmas, step_lr) * 5`` (measured on the authors' case-study-1 model:
    volume fraction 0.35 vs 0.39 with all 1000 levels). Keep ``eps_i / sigma_i^2`` below ~1.

    Args:
        model: the score network (used in eval mode; its device is used).
        n_samples: number of samples.
        shape: ``(H, W)``, each divisible by ``2**depth``.
        sigmas: ``(L,)`` decreasing noise levels.
        step_lr: base step size (the paper: 2e-5).
        step_sizes: ``(L,)`` explicit step sizes.
        generator: ``torch.Generator`` on the model's device.
        segment: return one-hot phases (True) or the raw final iterate in model channels (False).
        batch_size: samples per Langevin run (default: all at once).
        callback: passed to :func:`lgtutorial.sampling.annealed_langevin`.

    Returns:
        ``(n_samples, N, H, W)`` one-hot, or ``(n_samples, C, H, W)`` unclamped when ``segment`` is false.
    """
    if n_samples < 1:
        raise ValueError(f"n_samples must be at least 1, got {n_samples}")
    if len(shape) != 2:
        raise ValueError(f"shape must be (H, W), got {shape!r}")
    parameter = next(model.parameters())
    device, dtype = parameter.device, parameter.dtype
    sigmas = sigmas.to(device=device, dtype=dtype)
    if step_sizes is None:
        step_sizes = langevin_step_sizes(sigmas, step_lr)
    was_training = model.training
    model.eval()
    batch_size = batch_size or n_samples
    outputs = []
    try:
        for start in range(0, n_samples, batch_size):
            count = min(batch_size, n_samples - start)
            noise = torch.randn((count, model.settings.channels, *shape), generator=generator, device=device, dtype=dtype)
            x = 0.5 + sigmas[0] * noise
            outputs.append(annealed_langevin(model.score, x, sigmas, step_sizes=step_sizes, generator=generator,
                                             callback=callback))
    finally:
        model.train(was_training)
    result = torch.cat(outputs)
    return segment_model_output(result) if segment else result


# -- the trainer ----------------------------------------------------------------------------------
@dataclasses.dataclass
class TrainingRun:
    """The outcome of :func:`train_score_model`."""

    model: ScoreUNet
    """the EMA weights (the ones to sample with), in eval mode"""
    raw_model: ScoreUNet
    """the optimized weights themselves"""
    sigmas: torch.Tensor
    """``(L,)`` training noise levels"""
    patches: object
    """:class:`lgtutorial.patches.PatchSplit` used for training and testing"""
    history: dict
    """lists ``step``, ``train_loss``, ``test_loss`` (EMA weights on up to 256 test patches with fixed
    noise), ``learning_rate``: one entry per evaluation, the first at step 0 (train loss NaN)"""
    checkpoint: Path | None
    """the checkpoint file (None when no output folder was given)"""
    stopped_at_time_limit: bool = False
    """True when ``time_limit_s`` ran out before ``settings.steps`` (the weights are those of the last step)"""


def _step_seed(seed: int, step: int) -> int:
    """Seed of one step's randomness (batch, levels, noise, dropout): resumed runs repeat it exactly."""
    return ((seed & 0x7FFFFFFF) << 32) + step


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped by Ctrl-C or SIGTERM after writing its checkpoint (``step``, ``checkpoint``)."""

    def __init__(self, step: int, checkpoint):
        super().__init__(f"training interrupted at step {step}; checkpoint {checkpoint}")
        self.step, self.checkpoint = step, checkpoint


class _DeferredInterrupt:
    """Turn the first Ctrl-C or SIGTERM into a flag checked between steps (a second Ctrl-C interrupts at once)."""

    def __init__(self):
        self.requested = False
        self._previous = {}

    def _handle(self, signum, frame):
        import signal

        self.requested = True
        if signum == signal.SIGINT:
            signal.signal(signal.SIGINT, self._previous[signal.SIGINT])

    def __enter__(self):
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc):
        import signal

        for signum, previous in self._previous.items():
            if not (self.requested and signum == signal.SIGINT):
                signal.signal(signum, previous)
        return False


def _load_reference(reference) -> tuple[torch.Tensor, dict]:
    from . import data
    from .microstructure import check_microstructure

    if isinstance(reference, torch.Tensor):
        micro = check_microstructure(reference.detach().cpu().float())
        digest = hashlib.sha256(micro.numpy().tobytes()).hexdigest()
        return micro, {"name": "in-memory tensor", "sha256": digest, "periodic": False, "shape": list(micro.shape)}
    micro, meta = data.load(reference)
    digest = hashlib.sha256(Path(meta["path"]).read_bytes()).hexdigest()
    return micro, {"name": meta.get("name", Path(str(reference)).stem), "path": meta["path"], "sha256": digest,
                   "periodic": bool(meta.get("periodic", False)), "shape": list(micro.shape)}


@torch.no_grad()
def _update_ema(ema: ScoreUNet, model: ScoreUNet, step: int, decay: float) -> None:
    """``ema <- d ema + (1 - d) theta`` with the warm-up ``d = min(decay, (1 + step) / (10 + step))``."""
    rate = 1.0 - min(decay, (1.0 + step) / (10.0 + step))
    for average, parameter in zip(ema.parameters(), model.parameters()):
        average.lerp_(parameter.detach(), rate)


def _read_checkpoint(path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint file at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # unpickling errors come in many types
        raise ValueError(f"{path}: could not read it as a checkpoint ({type(error).__name__}: {error})") from error
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        hint = ""
        if isinstance(state, dict) and any(str(k).endswith("initial.0.conv.weight") for k in state):
            hint = " It looks like the authors' checkpoint; load it with lgtutorial.pretrained.load_authors_checkpoint."
        raise ValueError(f"{path}: not an lgtutorial score-model checkpoint (no format '{CHECKPOINT_FORMAT}').{hint}")
    if state.get("version") != CHECKPOINT_VERSION:
        raise ValueError(f"{path}: checkpoint version {state.get('version')!r}, this package reads {CHECKPOINT_VERSION}")
    return state


def _check_same_run(state: dict, model_settings: UNetSettings, settings: TrainingSettings, source: dict, path) -> None:
    if state["model_settings"] != dataclasses.asdict(model_settings):
        raise ValueError(f"{path} holds a model {state['model_settings']}, not {dataclasses.asdict(model_settings)}")
    old, new = state["training_settings"], dataclasses.asdict(settings)
    changed = [k for k in new if k not in _RESUMABLE_CHANGES + ("mixed_precision",) and old.get(k) != new[k]]
    if changed:
        raise ValueError(f"{path} was trained with other settings ({', '.join(f'{k}: {old.get(k)} -> {new[k]}' for k in changed)}); "
                         "resume it with the same settings or start a new output folder")
    if state["provenance"]["reference"]["sha256"] != source["sha256"]:
        raise ValueError(f"{path} was trained on another reference ({state['provenance']['reference']['name']})")


def train_score_model(
    reference,
    *,
    model_settings: UNetSettings,
    training_settings: TrainingSettings,
    output=None,
    resume: bool = False,
    periodic: bool | None = None,
    progress: bool = True,
    callback=None,
    time_limit_s: float | None = None,
) -> TrainingRun:
    """Train a score U-Net on patches of one micrograph by denoising score matching (Section 3.2).

    Adam (0.9, 0.999), a one-cycle cosine learning rate, gradient-norm clipping, an EMA of the
    weights with warm-up; autocast to 16-bit floats on CUDA. Every step's randomness (batch, noise
    levels, noise, dropout) is seeded from ``(seed, step)``, so a run interrupted and resumed from
    its checkpoint ends with the same weights as an uninterrupted one.

    Args:
        reference: registry name, file path or one-hot tensor ``(1, N, H, W)``.
        model_settings: the architecture; ``channels`` must be 1 for 2 phases, N otherwise.
        training_settings: the recipe (:class:`~lgtutorial.settings.TrainingSettings`).
        output: folder for ``checkpoint.pt`` (written atomically every ``checkpoint_every`` steps,
            at the end and on Ctrl-C); None keeps everything in memory.
        resume: ``True``: continue from ``output/checkpoint.pt`` (same settings required; an error when
            there is none); ``"if-present"``: continue if there is one, else start.
        periodic: cut patches across the edges (default: the registry's flag; tensors: False).
        progress: show a tqdm progress bar.
        callback: called after every step with ``{"step", "loss", "model", "ema"}``; raising
            ``KeyboardInterrupt`` there stops the run cleanly (checkpoint written).
        time_limit_s: wall-clock seconds this call may train (None: no limit). When they run out
            the run stops after the current step, evaluates and saves, and returns with
            ``stopped_at_time_limit=True``; resuming it continues the same plan. ``fit`` uses it so
            that a budget holds even when the machine turns out slower than measured.
    """
    if time_limit_s is not None and not (isinstance(time_limit_s, (int, float)) and math.isfinite(time_limit_s)
                                         and time_limit_s > 0):
        raise ValueError(f"time_limit_s: expected a positive number of seconds or None, got {time_limit_s!r}")
    settings = training_settings
    device = resolve_device(settings.device)
    micro, source = _load_reference(reference)
    n_phases = micro.shape[1]
    wanted = 1 if n_phases == 2 else n_phases
    if model_settings.channels != wanted:
        raise ValueError(f"a {n_phases}-phase reference needs a model with {wanted} channel(s), "
                         f"got channels={model_settings.channels}")
    periodic = source["periodic"] if periodic is None else bool(periodic)
    split = make_patch_datasets(micro, patch_size=settings.patch_size, n_patches=settings.n_patches,
                                train_fraction=settings.train_fraction, seed=settings.seed, periodic=periodic,
                                channels=model_settings.channels)
    split.train.to(device)
    split.test.to(device)
    evaluation_set = split.test if len(split.test) else split.train
    evaluation_clean = evaluation_set.batch(torch.arange(min(256, len(evaluation_set))), device=device)
    sigmas = geometric_sigmas(settings.sigma_max, settings.sigma_min, settings.n_levels, device=device)
    trained = trained_levels(sigmas, settings.train_sigma_max)

    model = ScoreUNet(model_settings, generator=torch.Generator().manual_seed(settings.seed)).to(device)
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.initial_lr, betas=(0.9, 0.999))
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=settings.peak_lr, total_steps=settings.steps, pct_start=settings.warmup_fraction,
        anneal_strategy="cos", div_factor=settings.peak_lr / settings.initial_lr,
        final_div_factor=settings.initial_lr / settings.final_lr, cycle_momentum=False)
    use_amp = settings.mixed_precision and device.type == "cuda"
    amp_dtype = torch.bfloat16 if use_amp and torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler(device.type, enabled=use_amp and amp_dtype == torch.float16)

    history = {"step": [], "train_loss": [], "test_loss": [], "learning_rate": []}
    step, wall_before, loss_sum, loss_count = 0, 0.0, 0.0, 0
    path = Path(output) / CHECKPOINT_NAME if output is not None else None
    if resume and path is None:
        raise ValueError("resume=True needs the output folder that holds the checkpoint")
    if resume is True and path is not None and not path.exists():
        raise FileNotFoundError(f"nothing to resume: no {CHECKPOINT_NAME} in {path.parent} (start without resume, "
                                "or use resume='if-present')")
    if path is not None and path.exists():
        if not resume:
            raise ValueError(f"{path} already exists; pass resume=True (CLI: --resume) to continue it, "
                             "or choose a new output folder")
        state = _read_checkpoint(path)
        _check_same_run(state, model_settings, settings, source, path)
        model.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if state["scaler"]:
            scaler.load_state_dict(state["scaler"])
        history, step = state["history"], state["step"]
        wall_before, loss_sum, loss_count = state["provenance"]["wall_time_s"], state["loss_sum"], state["loss_count"]
    started = time.perf_counter()

    def save() -> None:
        if path is None:
            return
        from . import __version__
        from ._io import atomic_write

        provenance = {"reference": source, "seed": settings.seed, "steps_done": step,
                      "wall_time_s": wall_before + time.perf_counter() - started, "device": str(device),
                      "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor(),
                      "torch_version": str(torch.__version__), "lgtutorial_version": __version__,
                      "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "periodic_patches": periodic}
        checkpoint = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "step": step,
                      "model_settings": dataclasses.asdict(model_settings),
                      "training_settings": dataclasses.asdict(settings), "sigmas": sigmas.cpu(),
                      "model": model.state_dict(), "ema": ema.state_dict(), "optimizer": optimizer.state_dict(),
                      "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict() if scaler.is_enabled() else {},
                      "history": history, "loss_sum": loss_sum, "loss_count": loss_count, "provenance": provenance}
        with atomic_write(path) as handle:
            torch.save(checkpoint, handle)

    def evaluate() -> float:
        generator = torch.Generator(device=device).manual_seed(settings.seed + 1)
        with torch.no_grad():
            return sum(float(denoising_score_matching_loss(ema, chunk, trained, generator=generator)) * len(chunk)
                       for chunk in evaluation_clean.split(max(settings.batch_size, 64))) / len(evaluation_clean)

    if step == 0 and not history["step"]:  # the untrained model's test loss, for comparison
        history["step"].append(0)
        history["train_loss"].append(math.nan)
        history["test_loss"].append(evaluate())
        history["learning_rate"].append(scheduler.get_last_lr()[0])

    from tqdm.auto import tqdm

    bar = tqdm(total=settings.steps, initial=step, disable=not progress, desc="training", unit="step")
    generator = torch.Generator(device=device)
    consistent = True
    last_saved = time.perf_counter()
    out_of_time = False
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), _DeferredInterrupt() as stop:
            while step < settings.steps:
                if stop.requested:
                    raise KeyboardInterrupt
                consistent = False
                torch.manual_seed(_step_seed(settings.seed, step))  # dropout
                generator.manual_seed(_step_seed(settings.seed, step))
                index = torch.randint(len(split.train), (settings.batch_size,), generator=generator, device=device)
                clean = split.train.batch(index, device=device)
                model.train()
                with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
                    loss = denoising_score_matching_loss(model, clean, trained, generator=generator)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()
                _update_ema(ema, model, step, settings.ema_decay)
                step += 1
                loss_value = float(loss.detach())
                loss_sum, loss_count = loss_sum + loss_value, loss_count + 1
                consistent = True
                out_of_time = time_limit_s is not None and time.perf_counter() - started > time_limit_s
                if step % settings.eval_every == 0 or step == settings.steps or out_of_time:
                    history["step"].append(step)
                    history["train_loss"].append(loss_sum / loss_count)
                    history["test_loss"].append(evaluate())
                    history["learning_rate"].append(scheduler.get_last_lr()[0])
                    loss_sum, loss_count = 0.0, 0
                    bar.set_postfix(loss=f"{history['train_loss'][-1]:.1f}", test=f"{history['test_loss'][-1]:.1f}")
                if (step % settings.checkpoint_every == 0 or step == settings.steps or out_of_time
                        or time.perf_counter() - last_saved > 60 * settings.checkpoint_minutes):
                    save()
                    last_saved = time.perf_counter()
                bar.update(1)
                if callback is not None:
                    callback({"step": step, "loss": loss_value, "model": model, "ema": ema})
                if out_of_time and step < settings.steps:
                    bar.write(f"time limit of {time_limit_s / 60:.1f} min reached at step {step:,} of "
                              f"{settings.steps:,}; the weights of that step are kept")
                    break
    except KeyboardInterrupt:
        if consistent:
            save()
        if path is not None and consistent:
            raise TrainingInterrupted(step, path) from None
        raise
    finally:
        bar.close()
    model.eval()
    return TrainingRun(ema, model, sigmas, split, history, path, stopped_at_time_limit=step < settings.steps)


def load_checkpoint(path, *, device=None, weights: str = "ema") -> tuple[ScoreUNet, torch.Tensor, dict]:
    """Load a checkpoint written by :func:`train_score_model`.

    Args:
        path: the checkpoint file (or the output folder that holds ``checkpoint.pt``).
        device: where to put the model.
        weights: ``"ema"`` (for sampling) or ``"model"`` (the optimized weights).

    Returns:
        ``(model, sigmas, checkpoint)``: the model in eval mode, its ``(L,)`` noise levels, and the
        whole checkpoint dict (settings, history, provenance).
    """
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    if weights not in ("ema", "model"):
        raise ValueError(f"weights must be 'ema' or 'model', got {weights!r}")
    state = _read_checkpoint(path)
    model = ScoreUNet(UNetSettings(**state["model_settings"]))
    try:
        model.load_state_dict(state[weights])
    except RuntimeError as error:
        raise ValueError(f"{path}: the weights do not fit the stored settings {state['model_settings']}: {error}") from None
    model.eval()
    model.trained_sigma_max = state["training_settings"].get("train_sigma_max")
    sigmas = state["sigmas"]
    if device is not None:
        model, sigmas = model.to(device), sigmas.to(device)
    return model, sigmas, state


# -- judging a model by statistics ----------------------------------------------------------------
@dataclasses.dataclass
class TrainingReport:
    """Unconditional samples of a score model compared with its training patches (Section 3.2)."""

    samples: torch.Tensor
    """one-hot ``(n_samples, n_phases, p, p)`` samples at the patch size"""
    summary: dict
    """plain numbers: volume fractions, x chord lengths, nearest-training-patch distances"""

    def markdown(self) -> str:
        """The summary as a Markdown table (one row per statistic and phase)."""
        s = self.summary
        rows = ["| statistic | phase | samples (mean +- std) | training patches (mean +- std) |", "|---|---|---|---|"]
        for key, label in (("volume_fraction", "volume fraction"), ("x_chord_length", "mean x-chord (px, edge chords dropped)")):
            for phase, (a, b, c, d) in enumerate(zip(s[key]["samples_mean"], s[key]["samples_std"],
                                                     s[key]["training_mean"], s[key]["training_std"])):
                rows.append(f"| {label} | {phase} | {a:.3f} +- {b:.3f} | {c:.3f} +- {d:.3f} |")
        near = s["nearest_training_distance"]
        rows.append(f"| nearest training patch (L2) | - | median {near['samples_median']:.2f} | "
                    f"test patches: median {near['test_median']:.2f} |")
        return "\n".join(rows)


def _nearest_distances(queries: torch.Tensor, references: torch.Tensor) -> torch.Tensor:
    flat = references.flatten(1).float()
    return torch.cat([torch.cdist(chunk.flatten(1).float(), flat).min(dim=1).values for chunk in queries.split(256)])


def training_report(
    model: ScoreUNet, patches: PatchDataset, *, sigmas: torch.Tensor, n_samples: int = 16,
    test_patches: PatchDataset | None = None, step_sizes: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> TrainingReport:
    """Judge a trained model by statistics, not by its loss (Section 3.2).

    Draws ``n_samples`` unconditional samples at the patch size and compares them with the
    training patches: volume fractions, mean x chord lengths (:func:`lgtutorial.metrics.chord_lengths`,
    non-periodic, edge chords dropped) and the L2 distance of every sample to its nearest
    training patch. A model that memorizes its patches has sample distances far below those of
    held-out test patches (given as ``test_patches``) to the training set.
    """
    from .metrics import chord_lengths
    from .statistics import volume_fractions

    size = patches.patch_size
    samples = sample_unconditional(model, n_samples=n_samples, shape=(size, size), sigmas=sigmas,
                                   step_sizes=step_sizes, generator=generator)
    training = patches.one_hot()
    device = training.device
    samples = samples.to(device)

    def spread(values: torch.Tensor) -> tuple[list, list]:
        values = values.double()
        std = values.std(0) if len(values) > 1 else torch.zeros_like(values[0])
        return values.mean(0).tolist(), std.tolist()

    def chords(one_hot: torch.Tensor) -> tuple[list, list]:
        per_phase = chord_lengths(one_hot, axis="x", periodic=False)
        return [c.mean() for c in per_phase], [c.std() for c in per_phase]

    vf_samples, vf_training = spread(volume_fractions(samples)), spread(volume_fractions(training))
    cld_samples, cld_training = chords(samples), chords(training)
    channels = patches.channels
    sample_inputs = to_model_channels(samples, channels)
    near = _nearest_distances(sample_inputs, patches.batch(torch.arange(len(patches))))
    summary = {
        "n_samples": n_samples, "patch_size": size, "n_training_patches": len(patches), "n_levels": len(sigmas),
        "volume_fraction": {"samples_mean": vf_samples[0], "samples_std": vf_samples[1],
                            "training_mean": vf_training[0], "training_std": vf_training[1]},
        "x_chord_length": {"samples_mean": cld_samples[0], "samples_std": cld_samples[1],
                           "training_mean": cld_training[0], "training_std": cld_training[1], "periodic": False},
        "nearest_training_distance": {"samples": near.tolist(), "samples_median": float(near.median()),
                                      "test_median": math.nan},
    }
    if test_patches is not None and len(test_patches):
        test_near = _nearest_distances(test_patches.batch(torch.arange(len(test_patches))),
                                       patches.batch(torch.arange(len(patches))))
        summary["nearest_training_distance"]["test_median"] = float(test_near.median())
    return TrainingReport(samples.cpu(), summary)


def shortened_schedule(sigmas: torch.Tensor, n_levels: int, *, step_lr: float = STEP_LR,
                       max_ratio: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """A cheaper sampling schedule: ``n_levels`` of ``sigmas`` with proportionally larger steps.

    Every kept level gets ``len(sigmas) / n_levels`` times the paper's step
    ``step_lr (sigma_i / sigma_L)^2``, capped so that ``eps_i / sigma_i^2 <= max_ratio`` (larger
    ratios overshoot). For the paper's schedule (20 -> 0.01, step_lr 2e-5) the cap is a factor 5.

    Returns:
        ``(levels, step_sizes)``, both ``(n_levels,)``.
    """
    from .schedules import subsample

    levels = subsample(sigmas, n_levels)
    ratio = step_lr / float(sigmas[-1]) ** 2
    factor = min(len(sigmas) / n_levels, max_ratio / ratio) if n_levels < len(sigmas) else 1.0
    return levels, langevin_step_sizes(levels, step_lr) * max(factor, 1.0)


def steps_for_budget(model_settings: UNetSettings, training_settings: TrainingSettings, minutes: float, *,
                     probe_steps: int = 6, share: float = 0.93) -> int:
    """Optimizer steps that fit in ``minutes`` of training on this machine, measured.

    Times ``probe_steps`` steps (after one warm-up step) of the same model, batch and patch size on
    random data, with the threads torch has now, and keeps ``share`` of the budget for the steps
    (the rest covers test-loss evaluations, checkpoints and patch cutting). The learning-rate
    cycle then spans the budget.
    """
    if not (isinstance(minutes, (int, float)) and math.isfinite(minutes) and minutes > 0):
        raise ValueError(f"the training budget must be a positive number of minutes, got {minutes!r}")
    device = resolve_device(training_settings.device)
    model = ScoreUNet(model_settings, generator=torch.Generator().manual_seed(0)).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=training_settings.initial_lr)
    size, channels = training_settings.patch_size, model_settings.channels
    clean = torch.rand(training_settings.batch_size, channels, size, size, device=device)
    sigmas = geometric_sigmas(training_settings.sigma_max, training_settings.sigma_min, 50, device=device)

    def step():
        loss = denoising_score_matching_loss(model, clean, sigmas)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    started = time.perf_counter()
    for _ in range(probe_steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    per_step = (time.perf_counter() - started) / probe_steps
    return max(1, int(minutes * 60 * share / per_step))
