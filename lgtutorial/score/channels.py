"""The model's channel convention: how one-hot microstructures become score-model channels and back.

A score model for two phases has one channel (``C = 1``): the phase with label 1 (the precipitate in
case study 1), the other being ``1 - m``; a model for N > 2 phases has N channels, one per phase.
:func:`to_model_channels` turns one-hot ``(n, N, H, W)`` into model input ``(n, C, H, W)``,
:func:`from_model_channels` turns model output back into continuous phases, and
:func:`segment_model_output` clamps and segments model-channel samples into one-hot microstructures
(threshold 0.5 for one channel, argmax for several; Section 3.3 of Robertson et al. 2023).
"""

from __future__ import annotations

import torch

from lgtutorial.grf.segmentation import segment_argmax


def to_model_channels(microstructure: torch.Tensor, channels: int) -> torch.Tensor:
    """One-hot ``(n, N, H, W)`` -> model input ``(n, C, H, W)``.

    2-phase models use one channel (``C = 1``): the phase with label 1 (the precipitate in case
    study 1); the other is ``1 - m``. Models for N > 2 phases use all N channels.
    """
    n_phases = microstructure.shape[1]
    if channels == n_phases:
        return microstructure
    if channels == 1 and n_phases == 2:
        return microstructure[:, 1:2]
    raise ValueError(f"a {channels}-channel model cannot take a {n_phases}-phase microstructure")


def from_model_channels(x: torch.Tensor, n_phases: int) -> torch.Tensor:
    """Model output ``(n, C, H, W)`` -> continuous phases ``(n, N, H, W)`` (inverse of the above)."""
    if x.shape[1] == n_phases:
        return x
    if x.shape[1] == 1 and n_phases == 2:
        return torch.cat([1.0 - x, x], dim=1)
    raise ValueError(f"a {x.shape[1]}-channel output cannot describe {n_phases} phases")


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
