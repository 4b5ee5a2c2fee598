"""Checkpoints of a training run: what :func:`~lgtutorial.score.training.train_score_model` writes and reads.

One file, ``checkpoint.pt``, holds everything a run needs to continue exactly where it stopped (the
weights and their EMA, the optimizer, learning-rate scheduler and gradient scaler, the history, the
running loss) and what it was (the U-Net and training settings, the noise levels, provenance: the
reference's SHA-256, seed, steps, wall time, device, versions). :func:`load_checkpoint` returns the
model ready to sample.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from lgtutorial.data import read_torch_file
from lgtutorial.score.settings import TrainingSettings, UNetSettings
from lgtutorial.score.unet import ScoreUNet

__all__ = ["CHECKPOINT_FORMAT", "CHECKPOINT_VERSION", "CHECKPOINT_NAME", "RESUMABLE_CHANGES", "read_checkpoint",
           "check_same_run", "save_checkpoint", "load_checkpoint"]

CHECKPOINT_FORMAT = "lgtutorial-score-model"
CHECKPOINT_VERSION = 1
CHECKPOINT_NAME = "checkpoint.pt"
#: Settings that may change when a run is resumed (they do not change what is computed).
RESUMABLE_CHANGES = ("device", "eval_every", "checkpoint_every", "checkpoint_minutes")


def read_checkpoint(path) -> dict:
    """The dict of a checkpoint file written by :func:`save_checkpoint`, after checking its format and version."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint file at {path}")
    state = read_torch_file(path, "a checkpoint")
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        hint = ""
        if isinstance(state, dict) and any(str(k).endswith("initial.0.conv.weight") for k in state):
            hint = " It looks like the authors' checkpoint; load it with lgtutorial.score.registry.load_authors_checkpoint."
        raise ValueError(f"{path}: not an lgtutorial score-model checkpoint (no format '{CHECKPOINT_FORMAT}').{hint}")
    if state.get("version") != CHECKPOINT_VERSION:
        raise ValueError(f"{path}: checkpoint version {state.get('version')!r}, this package reads {CHECKPOINT_VERSION}")
    return state


def check_same_run(state: dict, model_settings: UNetSettings, settings: TrainingSettings, source: dict, path) -> None:
    """Refuse to resume ``state`` with another model, other settings (but :data:`RESUMABLE_CHANGES`) or reference."""
    if state["model_settings"] != dataclasses.asdict(model_settings):
        raise ValueError(f"{path} holds a model {state['model_settings']}, not {dataclasses.asdict(model_settings)}")
    old, new = state["training_settings"], dataclasses.asdict(settings)
    # a setting added after the checkpoint was written counts as its default value
    defaults = {field.name: field.default for field in dataclasses.fields(TrainingSettings)}
    changed = [k for k in new if k not in RESUMABLE_CHANGES + ("mixed_precision",)
               and old.get(k, defaults.get(k)) != new[k]]
    if changed:
        raise ValueError(f"{path} was trained with other settings ({', '.join(f'{k}: {old.get(k, defaults.get(k))} -> {new[k]}' for k in changed)}); "
                         "resume it with the same settings or start a new output folder")
    if state["provenance"]["reference"]["sha256"] != source["sha256"]:
        raise ValueError(f"{path} was trained on another reference ({state['provenance']['reference']['name']})")


def save_checkpoint(path, *, step: int, model_settings: UNetSettings, settings: TrainingSettings, sigmas, model,
                    ema, optimizer, scheduler, scaler, history: dict, loss_sum: float, loss_count: int,
                    provenance: dict) -> None:
    """Write a run's whole state to ``path`` atomically (a kill leaves the previous file whole)."""
    from lgtutorial._io import atomic_write

    checkpoint = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "step": step,
                  "model_settings": dataclasses.asdict(model_settings),
                  "training_settings": dataclasses.asdict(settings), "sigmas": sigmas.cpu(),
                  "model": model.state_dict(), "ema": ema.state_dict(), "optimizer": optimizer.state_dict(),
                  "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict() if scaler.is_enabled() else {},
                  "history": history, "loss_sum": loss_sum, "loss_count": loss_count, "provenance": provenance}
    with atomic_write(path) as handle:
        torch.save(checkpoint, handle)


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
    state = read_checkpoint(path)
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
