"""The authors' published score models, converted to :class:`~lgtutorial.score.unet.ScoreUNet`.

The authors of Robertson et al. 2023 published their EMA score models as plain state dicts
(``torch.save(model.state_dict())`` of a twice-wrapped model). :func:`convert_authors_state_dict`
maps those weights onto :class:`~lgtutorial.score.unet.ScoreUNet`, reading the architecture (C, L_c, D,
number of blocks) from the tensor shapes, so both case-study models of that family load. The
converted model is numerically the same network; sample it with the package's own samplers.
:func:`lgtutorial.score.registry.load_authors_checkpoint` finds the file and calls it. The key layout
of the authors' files: :func:`convert_authors_state_dict`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch

from lgtutorial.score.settings import UNetSettings
from lgtutorial.score.unet import ScoreUNet

__all__ = ["convert_authors_state_dict", "VOLUME_FRACTION_SHIFTS"]

#: What the authors' sampling script adds to the likelihood's target volume fraction for their
#: published models, by registry name: 0.0073 for case study 1, to cancel the undershoot of
#: measuring the volume fraction on the noisy iterate (the paper does not mention it). The loader
#: sets it on the model as ``model.volume_fraction_shift``; samplers that measure on the iterate
#: apply it (:func:`lgtutorial.sampling.samplers.model_volume_fraction_shift`).
VOLUME_FRACTION_SHIFTS = {"nbsa-authors-checkpoint": 0.0073}

_RENAMES = {"initial": "encoder", "down_unit": "downs", "up_unit": "ups", "combiner_unit": "merges"}
_BLOCK_LEAVES = {"conv.weight", "conv.bias", "norm.alpha", "norm.gamma", "norm.beta", "activation.weight"}


def _strip_wrappers(state_dict: Mapping) -> dict[str, torch.Tensor]:
    stripped = {}
    for key, value in state_dict.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise ValueError(f"expected a state dict of named tensors, found entry {key!r}: {type(value).__name__}")
        while key.startswith("module."):
            key = key[len("module."):]
        stripped[key] = value
    return stripped


def _indices(state: dict, prefix: str) -> list[int]:
    pattern = re.compile(rf"^{prefix}\.(\d+)\.")
    return sorted({int(m.group(1)) for key in state if (m := pattern.match(key))})


def _not_authors(reason: str, state: dict) -> ValueError:
    sample = ", ".join(list(state)[:4])
    hint = ""
    if "format" in state or "ema" in state:
        hint = " It looks like an lgtutorial checkpoint; load it with lgtutorial.score.checkpoints.load_checkpoint."
    return ValueError(
        "not a checkpoint of the authors' score U-Net (expected keys 'initial.0.conv.weight', "
        f"'skip_unit.*', 'down_unit.*', 'up_unit.*', 'combiner_unit.*', 'final.*'): {reason}; "
        f"found keys such as {sample}.{hint}"
    )


def convert_authors_state_dict(state_dict: Mapping) -> tuple[ScoreUNet, torch.Tensor | None]:
    """Build a :class:`ScoreUNet` holding the weights of an authors' state dict.

    Key layout of the authors' files (after stripping the ``module.`` prefixes):

    ==============================  =========================================
    authors                         :class:`~lgtutorial.score.unet.ScoreUNet`
    ==============================  =========================================
    ``initial.k.*``                 ``encoder.k.*``
    ``skip_unit.k.model.{i,j}.*``   ``skips.k.first.*``, ``skips.k.second.*``
    ``down_unit.k.*``               ``downs.k.*``
    ``up_unit.k.*``                 ``ups.k.*``
    ``combiner_unit.k.*``           ``merges.k.*``
    ``final.k.*`` (k < blocks)      ``decoder.k.*``
    ``final.<blocks>.conv.*``       ``output.*``
    ``sigmas``                      returned beside the model
    ``n_averaged``                  dropped (EMA bookkeeping)
    ==============================  =========================================

    Args:
        state_dict: the loaded checkpoint (tensors under ``module.module.*`` keys, or unprefixed).

    Returns:
        ``(model, sigmas)``: the model in eval mode on the CPU, and the ``(L,)`` float32 noise
        levels stored in the checkpoint (``None`` if it has none).

    Raises:
        ValueError: the dict is not a checkpoint of this architecture (names or shapes do not fit).
    """
    if not isinstance(state_dict, Mapping):
        raise ValueError(f"expected a state dict (a mapping of names to tensors), got {type(state_dict).__name__}")
    if state_dict.get("format") == "lgtutorial-score-model":
        raise ValueError("not a checkpoint of the authors' score U-Net: it looks like an lgtutorial checkpoint, "
                         "so load it with lgtutorial.score.checkpoints.load_checkpoint")
    state = _strip_wrappers(state_dict)
    state.pop("n_averaged", None)
    sigmas = state.pop("sigmas", None)
    if "initial.0.conv.weight" not in state or "final.0.conv.weight" not in state:
        raise _not_authors("no 'initial.0.conv.weight' / 'final.0.conv.weight'", state)

    first = state["initial.0.conv.weight"]
    if first.ndim != 4 or first.shape[2:] != (3, 3):
        raise _not_authors(f"'initial.0.conv.weight' has shape {tuple(first.shape)}, expected (L_c, C, 3, 3)", state)
    latent, channels = int(first.shape[0]), int(first.shape[1])
    encoder, final = _indices(state, "initial"), _indices(state, "final")
    depth = len(_indices(state, "down_unit"))
    num_blocks = len(encoder) - 1
    if len(final) != num_blocks + 1:
        raise _not_authors(f"{len(encoder)} 'initial' blocks but {len(final)} 'final' blocks", state)
    counts = {"up_unit": depth, "combiner_unit": depth, "skip_unit": depth + 1}
    for name, expected in counts.items():
        found = len(_indices(state, name))
        if found != expected:
            raise _not_authors(f"{found} '{name}' entries for {depth} down-sampling levels (expected {expected})", state)

    converted, dropout = {}, 0.1
    for key, value in state.items():
        head, _, rest = key.partition(".")
        if head in _RENAMES:
            converted[f"{_RENAMES[head]}.{rest}"] = value
        elif head == "final":
            index, _, leaf = rest.partition(".")
            if int(index) < num_blocks:
                converted[f"decoder.{rest}"] = value
            elif leaf in ("conv.weight", "conv.bias"):
                converted[f"output.{leaf.split('.')[1]}"] = value
            else:
                raise _not_authors(f"the output layer has an unexpected entry {key!r}", state)
        elif head == "skip_unit":
            match = re.match(r"^(\d+)\.model\.(\d+)\.(.+)$", rest)
            if match is None:
                raise _not_authors(f"unexpected skip entry {key!r}", state)
            level, position, leaf = match.groups()
            positions = _indices(state, f"skip_unit\\.{level}\\.model")
            if len(positions) != 2:
                raise _not_authors(f"skip branch {level} has {len(positions)} conv blocks, expected 2", state)
            if positions[1] - positions[0] == 1:
                dropout = 0.0  # that family member had no dropout layer between the two convs
            name = "first" if int(position) == positions[0] else "second"
            converted[f"skips.{level}.{name}.{leaf}"] = value
        else:
            raise _not_authors(f"unexpected entry {key!r}", state)

    settings = UNetSettings(channels=channels, latent_channels=latent, depth=depth, num_blocks=num_blocks,
                            dropout=dropout)
    model = ScoreUNet(settings)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(converted))
    unexpected = sorted(set(converted) - set(expected))
    if missing or unexpected:
        raise _not_authors(f"missing {missing[:3]}, unexpected {unexpected[:3]}", state)
    for key, value in converted.items():
        if value.shape != expected[key].shape:
            raise _not_authors(f"{key} has shape {tuple(value.shape)}, the inferred architecture "
                               f"{settings} needs {tuple(expected[key].shape)}", state)
    model.load_state_dict({k: v.to(torch.float32) for k, v in converted.items()})
    model.eval()
    if sigmas is not None:
        sigmas = sigmas.to(torch.float32)
    return model, sigmas

