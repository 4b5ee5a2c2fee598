"""Trained score models: this project's own shipped models, and the converter for the authors' checkpoints.

:func:`load` / :func:`load_with_sigmas` return a model this project trained and ships in
``data/pretrained`` (``lgtutorial-case1``: 2 phases, ``lgtutorial-case2``: 3 phases; see
:func:`available` and each model's card ``data/pretrained/<name>.md``); :func:`export_pretrained`
turns a training checkpoint into such a shipped model.

The authors of Robertson et al. 2023 published their EMA score models as plain state dicts
(``torch.save(model.state_dict())`` of a twice-wrapped model). :func:`load_authors_checkpoint`
maps those weights onto :class:`~lgtutorial.unet.ScoreUNet`, reading the architecture (C, L_c, D,
number of blocks) from the tensor shapes, so both case-study models of that family load. The
converted model is numerically the same network; sample it with the package's own samplers.

Key layout of the authors' files (after stripping the ``module.`` prefixes):

==============================  =========================================
authors                         :class:`~lgtutorial.unet.ScoreUNet`
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
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import torch

from .settings import UNetSettings
from .unet import ScoreUNet

__all__ = [
    "attach_statistics",
    "load_statistics",
    "statistics_for_model",
    "load_authors_checkpoint",
    "convert_authors_state_dict",
    "available",
    "load",
    "load_with_sigmas",
    "model_card",
    "export_pretrained",
    "pretrained_directory",
    "default_model",
    "DEFAULT_MODELS",
]

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
        hint = " It looks like an lgtutorial checkpoint; load it with lgtutorial.training.load_checkpoint."
    return ValueError(
        "not a checkpoint of the authors' score U-Net (expected keys 'initial.0.conv.weight', "
        f"'skip_unit.*', 'down_unit.*', 'up_unit.*', 'combiner_unit.*', 'final.*'): {reason}; "
        f"found keys such as {sample}.{hint}"
    )


def convert_authors_state_dict(state_dict: Mapping) -> tuple[ScoreUNet, torch.Tensor | None]:
    """Build a :class:`ScoreUNet` holding the weights of an authors' state dict.

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
                         "so load it with lgtutorial.training.load_checkpoint")
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


def load_authors_checkpoint(
    path_or_registry_name: str | Path = "nbsa-authors-checkpoint", *, device=None
) -> tuple[ScoreUNet, torch.Tensor | None]:
    """Load one of the authors' published score models as a :class:`ScoreUNet`.

    Every score-model loader goes through here (:func:`lgtutorial.hybrid.load_score_model`, the
    CLI's ``--model``), so it also takes the names of this project's shipped models (handed on to
    :func:`load_with_sigmas`, hash-checked), an exported model's ``.pt`` file and a training
    checkpoint (its EMA weights, :func:`lgtutorial.training.load_checkpoint`).

    Args:
        path_or_registry_name: a registry name (``lgtutorial data list``, kind checkpoint), a
            shipped model's name (:func:`available`) or a path to a ``.pth``/``.pt`` file.
        device: where to put the model and the noise levels (default: CPU).

    Returns:
        ``(model, sigmas)``: the model in eval mode and its ``(L,)`` noise levels (for the case
        study 1 model: 1000 geometric levels from 20 to 0.01).

    Example:
        >>> model, sigmas = load_authors_checkpoint()
        >>> model.settings
        UNetSettings(channels=1, latent_channels=40, depth=1, num_blocks=1, dropout=0.1)
    """
    from . import data

    source = str(path_or_registry_name)
    if source in available():  # this project's own models: every score-model loader takes their names
        return load_with_sigmas(source, device=device)
    if source in data.registry():
        entry = data.registry()[source]
        if entry.kind != "checkpoint":
            raise ValueError(f"{source!r} is a {entry.kind}, not a checkpoint")
        path = data.fetch(source)
    else:
        path = Path(source)
        if not path.is_file():
            names = ", ".join([e.name for e in data.list_references("checkpoint")] + available())
            raise FileNotFoundError(f"{source!r} is neither a registered checkpoint ({names}) nor a file")
    try:
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # unpickling errors come in many types
        raise ValueError(f"{path}: could not read it as a tensor state dict ({type(error).__name__}: {error})") from error
    if isinstance(state_dict, Mapping) and state_dict.get("format") in (PRETRAINED_FORMAT, "lgtutorial-score-model"):
        if state_dict["format"] == PRETRAINED_FORMAT:  # an exported model's file (not checked against an index)
            model, sigmas, _ = _load_pretrained_file(path)
        else:  # a training checkpoint: its EMA weights
            from .training import load_checkpoint

            model, sigmas, _ = load_checkpoint(path)
        return (model.to(device), sigmas.to(device)) if device is not None else (model, sigmas)
    try:
        model, sigmas = convert_authors_state_dict(state_dict)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
    if device is not None:
        model = model.to(device)
        sigmas = sigmas.to(device) if sigmas is not None else None
    return model, sigmas


# -- this project's own trained models ------------------------------------------------------------
# ``data/pretrained`` (installed: ``lgtutorial/_data/pretrained``) holds one ``<name>.pt`` (EMA
# weights, settings, noise levels, provenance) and one ``<name>.md`` model card per model, and an
# ``index.toml`` with every file's SHA-256. :func:`export_pretrained` writes all three.

PRETRAINED_FORMAT = "lgtutorial-pretrained"
PRETRAINED_VERSION = 1
INDEX_NAME = "index.toml"
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


def pretrained_directory() -> Path:
    """The folder of the shipped models: ``data/pretrained`` (a checkout) or ``lgtutorial/_data/pretrained``."""
    from .data import _registry_path

    return _registry_path().parent / "pretrained"


def _read_index(directory: Path) -> dict:
    import tomllib

    path = directory / INDEX_NAME
    if not path.is_file():
        return {}
    with open(path, "rb") as handle:
        return tomllib.load(handle)


def _toml_value(value) -> str:
    import json

    return json.dumps(value) if isinstance(value, (str, bool, int, float)) else json.dumps(str(value))


def _write_index(directory: Path, index: dict) -> None:
    from ._io import atomic_write

    lines = ["# This project's own trained score models (written by lgtutorial.pretrained.export_pretrained).",
             "# lgtutorial.pretrained.load(name) checks each file against its sha256 here.", ""]
    for name in sorted(index):
        lines.append(f"[{name}]")
        lines += [f"{key} = {_toml_value(value)}" for key, value in index[name].items()]
        lines.append("")
    with atomic_write(directory / INDEX_NAME, "w") as handle:
        handle.write("\n".join(lines))


def available(*, directory: str | Path | None = None) -> list[str]:
    """Names of the shipped (exported) models, e.g. ``["lgtutorial-case1", "lgtutorial-case2"]``."""
    return sorted(_read_index(Path(directory) if directory is not None else pretrained_directory()))


def _index_entry(name: str, directory) -> tuple[Path, dict]:
    directory = Path(directory) if directory is not None else pretrained_directory()
    index = _read_index(directory)
    if name not in index:
        shipped = ", ".join(sorted(index)) or "none"
        raise ValueError(f"unknown pretrained model {name!r}; expected one of: {shipped} (listed in "
                         f"{directory / INDEX_NAME}; 'lgtutorial pretrained list')")
    return directory, index[name]


def model_card(name: str, *, directory: str | Path | None = None) -> str:
    """The Markdown model card of a shipped model: its training, and how it differs from the paper's."""
    directory, entry = _index_entry(name, directory)
    return (directory / entry["card"]).read_text(encoding="utf-8")


def _checked_file(name: str, directory) -> Path:
    """The ``.pt`` file of a shipped model, after checking it against the index's SHA-256."""
    import hashlib

    directory, entry = _index_entry(name, directory)
    path = directory / entry["file"]
    if not path.is_file():
        raise FileNotFoundError(f"the pretrained model {name!r} is listed in {directory / INDEX_NAME} but its "
                                f"weights {path} are missing; reinstall lgtutorial or re-export them with "
                                f"'lgtutorial pretrained export CHECKPOINT {name}'")
    found = hashlib.sha256(path.read_bytes()).hexdigest()
    if found != entry["sha256"]:
        raise ValueError(f"{path} does not match the index entry of {name!r}: expected sha256 {entry['sha256']}, "
                         f"found {found}; the file is corrupt or was replaced without re-exporting")
    return path


def load_with_sigmas(name: str, *, device=None, directory: str | Path | None = None) -> tuple[ScoreUNet, torch.Tensor]:
    """Load a shipped model by name, after checking its file against the index's SHA-256.

    Args:
        name: one of :func:`available` (``lgtutorial pretrained list``).
        device: where to put the model and the noise levels (default: CPU).
        directory: the folder of the shipped models (default: :func:`pretrained_directory`).

    Returns:
        ``(model, sigmas)``: the EMA weights in eval mode and the ``(L,)`` float32 training noise
        levels. The model also carries them as a (non-persistent) buffer ``model.sigmas`` and
        its training record as ``model.provenance``.

    Raises:
        ValueError: an unknown name, or a file whose hash or contents do not match.
        FileNotFoundError: the index lists the name but its weights file is missing.
    """
    model, sigmas, state = _load_pretrained_file(_checked_file(name, directory))
    model.pretrained_name = name
    if device is not None:
        model, sigmas = model.to(device), sigmas.to(device)
    return model, sigmas


def load(name: str, *, device=None, directory: str | Path | None = None) -> ScoreUNet:
    """A shipped model, ready to sample: EMA weights, eval mode, noise levels as ``model.sigmas``.

    See :func:`load_with_sigmas` for the arguments and errors.

    Example:
        >>> model = load("lgtutorial-case1")
        >>> model.settings.channels, len(model.sigmas)
        (1, 1000)
    """
    return load_with_sigmas(name, device=device, directory=directory)[0]


def _load_pretrained_file(path: Path) -> tuple[ScoreUNet, torch.Tensor, dict]:
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or state.get("format") != PRETRAINED_FORMAT:
        raise ValueError(f"{path}: not an exported lgtutorial model (no format '{PRETRAINED_FORMAT}')")
    if state.get("version") != PRETRAINED_VERSION:
        raise ValueError(f"{path}: version {state.get('version')!r}, this package reads {PRETRAINED_VERSION}")
    model = ScoreUNet(UNetSettings(**state["model_settings"]))
    model.load_state_dict(state["state_dict"])
    model.eval()
    sigmas = state["sigmas"].to(torch.float32)
    model.register_buffer("sigmas", sigmas.clone(), persistent=False)
    model.provenance = state["provenance"]
    model.trained_sigma_max = state.get("training_settings", {}).get("train_sigma_max")
    return model, sigmas, state


def _matching_preset(model_settings: dict, training_settings: dict) -> str:
    """The preset these settings come from (the step count, seed and bookkeeping may differ), or ``custom``."""
    import dataclasses

    from .settings import TRAINING_PRESETS, UNET_PRESETS

    loose = {"steps", "seed", "device", "eval_every", "checkpoint_every", "mixed_precision"}
    for name, preset in TRAINING_PRESETS.items():
        wanted = dataclasses.asdict(preset)
        if dataclasses.asdict(UNET_PRESETS[name]) == model_settings and all(
                training_settings.get(k) == v for k, v in wanted.items() if k not in loose):
            return name
    return "custom"


def _training_outputs(checkpoint: Path, steps: int) -> tuple[dict, dict | None, str | None]:
    """``summary.json`` and, if it belongs to this very checkpoint, the training report beside it."""
    import json

    summary_path, report_path = checkpoint.parent / "summary.json", checkpoint.parent / "report.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    finished = summary.get("provenance", {}).get("steps_done") == steps
    if finished and report_path.is_file():
        markdown = checkpoint.parent / "report.md"
        return summary, json.loads(report_path.read_text()), markdown.read_text() if markdown.is_file() else None
    return summary, None, None


#: Where ``export_pretrained`` writes unless told otherwise: a user folder, never the installed package.
EXPORT_DIRECTORY = Path("lgtutorial-output") / "models"


def export_pretrained(checkpoint_path: str | Path, name: str, *, directory: str | Path | None = None,
                      preset: str | None = None, statistics=None, overwrite: bool = False) -> Path:
    """Ship the EMA weights of a training checkpoint as the model ``name``, with a model card.

    Writes (atomically) ``<directory>/<name>.pt`` (float32 EMA weights, U-Net settings, noise
    levels, training settings and history, provenance: preset, steps done of planned, wall time,
    device, torch version, reference name and SHA-256, seed), ``<name>.md`` (the model card: how it
    was trained and how that differs from the paper's settings) and updates ``index.toml``.

    Args:
        checkpoint_path: a ``checkpoint.pt`` of :func:`lgtutorial.training.train_score_model` (or its folder).
            A training report (``report.json``) beside it is included when it belongs to the same step.
        name: lower-case letters, digits, ``.``, ``_``, ``-``; e.g. ``"lgtutorial-case1"``.
        directory: where to write (default: :data:`EXPORT_DIRECTORY`, ``lgtutorial-output/models``; the
            project's maintainers ship a model by naming ``data/pretrained`` explicitly).
        overwrite: replace an existing model of that name in ``directory`` (refused otherwise).
        preset: the training preset's name for the card (default: ``summary.json`` beside the
            checkpoint, else the preset the settings match).
        statistics: the :class:`~lgtutorial.material.MaterialStatistics` to ship with the model
            (default: measured on the training micrograph when it can be loaded; else none).

    Returns:
        The path of the written ``.pt`` file.
    """
    import hashlib
    import time

    from ._io import atomic_write
    from .training import CHECKPOINT_NAME, load_checkpoint

    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"name must be lower-case letters, digits, '.', '_' or '-' (e.g. 'lgtutorial-case1'), "
                         f"got {name!r}")
    checkpoint = Path(checkpoint_path)
    checkpoint = checkpoint / CHECKPOINT_NAME if checkpoint.is_dir() else checkpoint
    model, sigmas, state = load_checkpoint(checkpoint, weights="ema")
    try:  # the card's re-export command: relative to the working folder (the project root) where possible
        shown = checkpoint.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        shown = checkpoint
    summary, report, report_markdown = _training_outputs(checkpoint, state["step"])
    source = state["provenance"]
    preset = preset or summary.get("preset") or _matching_preset(state["model_settings"], state["training_settings"])
    provenance = {
        "name": name, "preset": preset, "steps_done": int(state["step"]),
        "steps_planned": int(state["training_settings"]["steps"]), "wall_time_s": float(source["wall_time_s"]),
        "device": source["device"], "device_name": source.get("device_name", ""),
        "torch_version": source["torch_version"], "lgtutorial_version": source.get("lgtutorial_version", ""),
        "reference": {k: source["reference"][k] for k in ("name", "sha256", "periodic", "shape")
                      if k in source["reference"]},
        "seed": int(source["seed"]), "periodic_patches": bool(source.get("periodic_patches", False)),
        "checkpoint_saved_at": source.get("saved_at", ""), "exported_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "checkpoint": shown.as_posix(), "n_parameters": model.n_parameters,
    }
    if statistics is None:
        statistics = _statistics_of_reference(source["reference"])
    payload = {"format": PRETRAINED_FORMAT, "version": PRETRAINED_VERSION, "name": name,
               "model_settings": dict(state["model_settings"]), "training_settings": dict(state["training_settings"]),
               "state_dict": {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in model.state_dict().items()},
               "sigmas": sigmas.detach().to("cpu", torch.float32), "provenance": provenance,
               "history": state["history"], "report": report}
    if statistics is not None:
        payload["statistics"] = statistics.to_payload()
    directory = Path(directory) if directory is not None else EXPORT_DIRECTORY
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.pt"
    if path.exists() and not overwrite:
        raise ValueError(f"{path} exists already; choose another name, or overwrite it on purpose "
                         "(--force / overwrite=True)")
    with atomic_write(path) as handle:
        torch.save(payload, handle)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    from ._model_card import model_card as card_text

    card = card_text(payload, digest, report_markdown)
    if statistics is not None:
        card = _with_statistics_section(card, _statistics_section(statistics).replace("{name}", name))
    with atomic_write(directory / f"{name}.md", "w") as handle:
        handle.write(card)
    index = _read_index(directory)
    index[name] = {"file": path.name, "sha256": digest, "card": f"{name}.md", "channels": model.settings.channels,
                   "reference": provenance["reference"]["name"], "preset": preset,
                   "steps_done": provenance["steps_done"], "steps_planned": provenance["steps_planned"]}
    _write_index(directory, index)
    for written in (path, directory / f"{name}.md", directory / INDEX_NAME):
        written.chmod(0o644)  # shipped files: readable by everyone (temporary files start private)
    return path


#: The shipped model the CLI uses when no ``--model`` is given, by number of phases of the statistics.
DEFAULT_MODELS = {2: "lgtutorial-case1", 3: "lgtutorial-case2"}


def default_model(n_phases: int) -> str:
    """Name of the shipped model for statistics of ``n_phases`` phases (:data:`DEFAULT_MODELS`)."""
    if n_phases not in DEFAULT_MODELS:
        raise ValueError(f"no shipped score model for {n_phases}-phase statistics (there are models for "
                         f"{', '.join(f'{n} phases: {m}' for n, m in DEFAULT_MODELS.items())}); "
                         "train one ('lgtutorial train') and pass it with --model")
    return DEFAULT_MODELS[n_phases]


# -- the statistics a shipped model carries ------------------------------------------------------
def _statistics_of_reference(reference: dict):
    """Measure the training micrograph named in a checkpoint's provenance, if it can be loaded."""
    from . import data
    from .material import MaterialStatistics

    source = reference.get("path") or reference.get("name")
    name = reference.get("name", "")
    try:
        micro, meta = data.load(name if name in data.registry() else source)
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return None
    licence = data.registry()[name].licence if name in data.registry() else "as the micrograph's owner says"
    return MaterialStatistics.from_microstructure(
        micro, name=name or str(source), phases=meta["phases"], periodic=bool(reference.get("periodic", False)),
        provenance={"source": name or str(source), "source_sha256": reference.get("sha256", ""),
                    "source_licence": licence})


def _payload(path: Path) -> dict:
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or state.get("format") != PRETRAINED_FORMAT:
        raise ValueError(f"{path}: not an exported lgtutorial model (no format '{PRETRAINED_FORMAT}')")
    return state


def load_statistics(name: str, *, directory: str | Path | None = None):
    """The statistics of the micrograph a shipped model was trained on (None if it carries none).

    Example:
        >>> stats = load_statistics("lgtutorial-case1")
        >>> stats.name, stats.shape, round(float(stats.volume_fractions[1]), 4)
        ('nbsa-proxy', (256, 256), 0.3726)
    """
    from .material import MaterialStatistics

    payload = _payload(_checked_file(name, directory)).get("statistics")
    return MaterialStatistics.from_payload(payload) if payload is not None else None


def statistics_for_model(name_or_path):
    """The training micrograph's statistics for a model given by shipped name, exported file or checkpoint.

    Shipped and exported models carry them; for a training checkpoint they are measured on its
    reference when that can be loaded. Returns None when there are none to be had.
    """
    from . import data
    from .material import MaterialStatistics

    name_or_path = str(name_or_path)
    if name_or_path in available():
        return load_statistics(name_or_path)
    entry = data.registry().get(name_or_path)
    if entry is not None and entry.material:  # a registered checkpoint: its material, or a shipped copy of its statistics
        measured = _statistics_of_reference({"name": entry.material})
        if measured is not None:
            return measured
        for shipped in available():
            carried = load_statistics(shipped)
            if carried is not None and carried.name == entry.material:
                return carried
        return None
    path = Path(name_or_path)
    if path.is_dir():
        path = path / "checkpoint.pt"
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # not a torch file, or a pickled payload: the model loader reports it
        return None
    if not isinstance(state, dict):
        return None
    if state.get("format") == PRETRAINED_FORMAT:
        payload = state.get("statistics")
        return MaterialStatistics.from_payload(payload) if payload is not None else None
    if isinstance(state.get("provenance"), dict) and "reference" in state["provenance"]:
        return _statistics_of_reference(state["provenance"]["reference"])
    return None


STATISTICS_SECTION = "## Statistics of the training micrograph"


def _statistics_section(statistics) -> str:
    prov = statistics.provenance
    rows = ["| phase | volume fraction | mean chord x (px) | mean chord y (px) |", "|---|---|---|---|"]
    for n, phase in enumerate(statistics.phases):
        rows.append(f"| {phase} | {float(statistics.volume_fractions[n]):.4f} | "
                    f"{statistics.mean_chord_lengths['x'][n]} | {statistics.mean_chord_lengths['y'][n]} |")
    return "\n".join([
        STATISTICS_SECTION, "",
        f"The model file also carries the 1- and 2-point statistics of `{statistics.name}` "
        f"({statistics.shape[0]}x{statistics.shape[1]} px, {'periodic' if statistics.periodic else 'non-periodic'}; "
        f"source SHA-256 `{str(prov.get('source_sha256', ''))[:16]}...`), measured by {prov.get('computed_by', 'lgtutorial')} "
        f"on {prov.get('computed_at', '?')}: the volume fractions, row 0 of the 2-point statistics on the "
        "micrograph's grid, and chord-length distributions. The micrograph itself is not stored. With them "
        f"`lgtutorial generate --model {{name}}` needs no reference file: the GRF follows these statistics "
        "and the summary compares with them (`--reference` or `--statistics` replace them).", "",
        *rows, ""])


def _with_statistics_section(card: str, section: str) -> str:
    """The card with its statistics section replaced, or inserted before "## Training"."""
    if STATISTICS_SECTION in card:
        head, _, tail = card.partition(STATISTICS_SECTION)
        rest = tail.split("\n## ", 1)
        return head + section + ("\n## " + rest[1] if len(rest) > 1 else "")
    marker = "\n## Training\n"
    return card.replace(marker, "\n" + section + marker, 1) if marker in card else card + "\n" + section


def attach_statistics(name: str, statistics, *, directory: str | Path | None = None) -> Path:
    """Add (or replace) the training micrograph's statistics in a shipped model's file.

    Rewrites ``<name>.pt`` atomically with the same weights, updates its SHA-256 in the index and
    in the card, and writes the card's statistics section.
    """
    import hashlib

    from ._io import atomic_write

    path = _checked_file(name, directory)  # the file as shipped must check out first
    directory, entry = _index_entry(name, directory)
    payload = _payload(path)
    old_digest = entry["sha256"]
    payload["statistics"] = statistics.to_payload()
    with atomic_write(path) as handle:
        torch.save(payload, handle)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    card_path = directory / entry["card"]
    card = card_path.read_text(encoding="utf-8").replace(old_digest, digest)
    card = _with_statistics_section(card, _statistics_section(statistics).replace("{name}", name))
    with atomic_write(card_path, "w") as handle:
        handle.write(card)
    index = _read_index(directory)
    index[name]["sha256"] = digest
    _write_index(directory, index)
    for written in (path, card_path, directory / INDEX_NAME):
        written.chmod(0o644)
    return path
