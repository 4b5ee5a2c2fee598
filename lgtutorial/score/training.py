"""Training the score model by denoising score matching: the run around the step.

Robertson et al. 2023, Section 3.2 (after Song & Ermon 2019). :func:`train_score_model` cuts the
patches, takes the steps (:class:`lgtutorial.score.step.TrainingStep`; the loss is in
:mod:`lgtutorial.score.loss`), measures the test loss, writes and resumes checkpoints
(:mod:`lgtutorial.score.checkpoints`) and stops cleanly on Ctrl-C, SIGTERM or a time limit.
Judging a model by its unconditional samples is :mod:`lgtutorial.evaluation.training_report`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import platform
import time
from pathlib import Path

import torch

from lgtutorial._checks import resolve_device
from lgtutorial._io import claim_output, output_claims
from lgtutorial.score.checkpoints import (
    CHECKPOINT_NAME,
    check_same_run,
    read_checkpoint,
    save_checkpoint,
)
from lgtutorial.score.loss import denoising_score_matching_loss
from lgtutorial.score.patches import make_patch_datasets
from lgtutorial.score.schedules import geometric_sigmas
from lgtutorial.score.settings import TrainingSettings, UNetSettings
from lgtutorial.score.step import TrainingStep
from lgtutorial.score.unet import ScoreUNet

__all__ = ["train_score_model", "TrainingRun", "trained_levels", "TrainingInterrupted"]


def trained_levels(sigmas: torch.Tensor, train_sigma_max: float | None) -> torch.Tensor:
    """The levels of ``sigmas`` a model is trained on: all, or those up to ``train_sigma_max``.

    The hybrid generator only visits ``sigma <= sigma_c`` (0.75 in the paper), so training on the
    levels above it spends steps (most of them, for a 20 -> 0.01 schedule) where the hybrid never
    goes. The schedule itself is kept whole: the samplers place their levels on it as before.

    >>> from lgtutorial.score.schedules import geometric_sigmas
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
    """:class:`lgtutorial.score.patches.PatchSplit` used for training and testing"""
    history: dict
    """lists ``step``, ``train_loss``, ``test_loss`` (EMA weights on up to 256 test patches with fixed
    noise), ``learning_rate``: one entry per evaluation, the first at step 0 (train loss NaN). The test
    loss is measured with dropout off, as the samplers run the network, the training loss with it on:
    a test loss that rises while the training loss falls can be the network leaning on its dropout
    rather than over-fitting (``benchmarks/dropout_gap.py`` measures both modes on both patch sets)"""
    checkpoint: Path | None
    """the checkpoint file (None when no output folder was given)"""
    stopped_at_time_limit: bool = False
    """True when ``time_limit_s`` ran out before the run's end (``settings.steps``, or the budget of
    ``settings.minutes``); the weights are those of the last step"""
    wall_time_s: float = 0.0
    """training wall time over every run of this checkpoint (resumed runs included), as the checkpoint records it"""
    steps_per_second: float = math.nan
    """optimizer steps per wall-clock second in this call, evaluations and checkpoints included (NaN: no step)"""


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

    def __exit__(self, *_exc):
        import signal

        for signum, previous in self._previous.items():
            if not (self.requested and signum == signal.SIGINT):
                signal.signal(signum, previous)
        return False


def _load_reference(reference) -> tuple[torch.Tensor, dict]:
    from lgtutorial import data
    from lgtutorial.microstructure import check_microstructure

    if isinstance(reference, torch.Tensor):
        micro = check_microstructure(reference.detach().cpu().float())
        digest = hashlib.sha256(micro.numpy().tobytes()).hexdigest()
        return micro, {"name": "in-memory tensor", "sha256": digest, "periodic": False, "shape": list(micro.shape)}
    micro, meta = data.load(reference)
    digest = hashlib.sha256(Path(meta["path"]).read_bytes()).hexdigest()
    return micro, {"name": meta.get("name", Path(str(reference)).stem), "path": meta["path"], "sha256": digest,
                   "periodic": bool(meta.get("periodic", False)), "shape": list(micro.shape)}


@output_claims()
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

    With ``settings.minutes`` the run is a time budget: it trains until that much wall time is spent
    (over every call on its checkpoint), evaluates and saves at the end, and its learning rate
    follows the one-cycle shape over the elapsed share of the budget
    (:func:`lgtutorial.score.schedules.one_cycle_learning_rate`), so that the rate anneals by the end
    however fast or slow the machine turns out to be; ``settings.steps`` caps the steps.

    Args:
        reference: registry name, file path or one-hot tensor ``(1, N, H, W)``.
        model_settings: the architecture; ``channels`` must be 1 for 2 phases, N otherwise.
        training_settings: the recipe (:class:`~lgtutorial.score.settings.TrainingSettings`).
        output: folder for ``checkpoint.pt`` (written atomically every ``checkpoint_every`` steps,
            at the end and on Ctrl-C); None keeps everything in memory. The call holds the folder
            (:func:`lgtutorial._io.claim_output`): another run training into it meanwhile is refused.
        resume: ``True``: continue from ``output/checkpoint.pt`` (same settings required; an error when
            there is none); ``"if-present"``: continue if there is one, else start.
        periodic: cut patches across the edges (default: the registry's flag; tensors: False).
        progress: show a tqdm progress bar.
        callback: called after every step with ``{"step", "loss", "model", "ema"}`` (``loss``: a 0-d
            tensor on the device; ``float(loss)`` waits for the device); raising
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

    take_step = TrainingStep(model_settings, settings, trained, device)
    model, ema, optimizer, scheduler, scaler = (take_step.model, take_step.ema, take_step.optimizer,
                                                take_step.scheduler, take_step.scaler)

    history = {"step": [], "train_loss": [], "test_loss": [], "learning_rate": []}
    step, wall_before, loss_count = 0, 0.0, 0
    # the training losses are summed on the device and read at the evaluations and checkpoints
    # only (reading one waits for the device); float64 sums as the Python floats did (MPS has none)
    loss_sum = torch.zeros((), dtype=torch.float32 if device.type == "mps" else torch.float64, device=device)
    path = Path(output) / CHECKPOINT_NAME if output is not None else None
    if resume and path is None:
        raise ValueError("resume=True needs the output folder that holds the checkpoint")
    if resume is True and path is not None and not path.exists():
        raise FileNotFoundError(f"nothing to resume: no {CHECKPOINT_NAME} in {path.parent} (start without resume, "
                                "or use resume='if-present')")
    if output is not None:
        claim_output(output)  # OutputInUse while another run trains into it; released when this call ends
    if path is not None and path.exists():
        if not resume:
            raise ValueError(f"{path} already exists; pass resume=True (CLI: --resume) to continue it, "
                             "or choose a new output folder")
        state = read_checkpoint(path)
        check_same_run(state, model_settings, settings, source, path)
        model.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if state["scaler"]:
            scaler.load_state_dict(state["scaler"])
        history, step = state["history"], state["step"]
        wall_before, loss_count = state["provenance"]["wall_time_s"], state["loss_count"]
        loss_sum.fill_(state["loss_sum"])
    started = time.perf_counter()

    def save() -> None:
        if path is None:
            return
        from lgtutorial._version import __version__

        provenance = {"reference": source, "seed": settings.seed, "steps_done": step,
                      "wall_time_s": wall_before + time.perf_counter() - started, "device": str(device),
                      "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor(),
                      "torch_version": str(torch.__version__), "lgtutorial_version": __version__,
                      "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "periodic_patches": periodic}
        save_checkpoint(path, step=step, model_settings=model_settings, settings=settings, sigmas=sigmas, model=model,
                        ema=ema, optimizer=optimizer, scheduler=scheduler, scaler=scaler, history=history,
                        loss_sum=float(loss_sum), loss_count=loss_count, provenance=provenance)

    def evaluate() -> float:
        generator = torch.Generator(device=device).manual_seed(settings.seed + 1)
        chunks = evaluation_clean.split(max(settings.batch_size, 64))
        with torch.no_grad():
            return sum(float(denoising_score_matching_loss(ema, chunk, trained, generator=generator,
                                                           log_normal=settings.noise_log_normal)) * len(chunk)
                       for chunk in chunks) / len(evaluation_clean)

    if step == 0 and not history["step"]:  # the untrained model's test loss, for comparison
        history["step"].append(0)
        history["train_loss"].append(math.nan)
        history["test_loss"].append(evaluate())
        history["learning_rate"].append(scheduler.get_last_lr()[0])

    from tqdm.auto import tqdm

    budget_s = None if settings.minutes is None else 60.0 * settings.minutes

    def spent() -> float:  # wall seconds over every call on this checkpoint
        return wall_before + time.perf_counter() - started

    if budget_s is None:
        bar = tqdm(total=settings.steps, initial=step, disable=not progress, desc="training", unit="step")
    else:  # a budget: the bar counts its seconds, the steps and their rate go in the postfix
        bar = tqdm(total=round(budget_s), initial=min(round(wall_before), round(budget_s)), disable=not progress,
                   desc="training", unit="s", bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} s [{elapsed}{postfix}]")
    consistent = True
    last_saved = time.perf_counter()
    out_of_time = False
    budget_spent = budget_s is not None and wall_before >= budget_s  # a resumed budget already spent
    first_step = step
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), _DeferredInterrupt() as stop:
            while step < settings.steps and not budget_spent:
                if stop.requested:
                    raise KeyboardInterrupt
                if budget_s is not None:
                    take_step.budget_fraction = spent() / budget_s
                consistent = False
                loss = take_step(split.train, step)
                step += 1
                loss_sum += loss
                loss_count += 1
                consistent = True
                out_of_time = time_limit_s is not None and time.perf_counter() - started > time_limit_s
                budget_spent = budget_s is not None and spent() >= budget_s
                last = step == settings.steps or budget_spent
                if step % settings.eval_every == 0 or last or out_of_time:
                    history["step"].append(step)
                    history["train_loss"].append(float(loss_sum) / loss_count)
                    history["test_loss"].append(evaluate())
                    history["learning_rate"].append(scheduler.get_last_lr()[0])
                    loss_sum.zero_()
                    loss_count = 0
                    bar.set_postfix(loss=f"{history['train_loss'][-1]:.1f}", test=f"{history['test_loss'][-1]:.1f}")
                if (step % settings.checkpoint_every == 0 or last or out_of_time
                        or time.perf_counter() - last_saved > 60 * settings.checkpoint_minutes):
                    save()
                    last_saved = time.perf_counter()
                if budget_s is None:
                    bar.update(1)
                else:
                    bar.update(min(round(spent()), round(budget_s)) - bar.n)
                    bar.set_postfix_str(f"step {step:,}", refresh=False)
                if callback is not None:
                    callback({"step": step, "loss": loss, "model": model, "ema": ema})
                if out_of_time and not last:
                    bar.write(f"time limit of {time_limit_s / 60:.1f} min reached at step {step:,}"
                              + (f" of {settings.steps:,}" if budget_s is None else "")
                              + "; the weights of that step are kept")
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
    seconds = time.perf_counter() - started
    return TrainingRun(ema, model, sigmas, split, history, path,
                       stopped_at_time_limit=step < settings.steps and not budget_spent,
                       wall_time_s=wall_before + seconds,
                       steps_per_second=(step - first_step) / seconds if step > first_step else math.nan)
