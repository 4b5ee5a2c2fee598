"""Trained score models: this project's own shipped models, and the loader every score model goes through.

:func:`load` / :func:`load_with_sigmas` return a model this project trained and ships in
``data/pretrained`` (``lgtutorial-case1``: 2 phases, ``lgtutorial-case2``: 3 phases; see
:func:`available` and each model's card ``data/pretrained/<name>.md``);
:func:`~lgtutorial.score.export.export_pretrained` turns a training checkpoint into such a
shipped model (re-exported here, with ``attach_statistics``). :func:`load_authors_checkpoint` loads
any score model: a shipped name, an exported file, a training checkpoint or the authors' published
weights (converted by :mod:`lgtutorial.score.authors`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import torch

from lgtutorial.data import read_torch_file
from lgtutorial.score.authors import VOLUME_FRACTION_SHIFTS, convert_authors_state_dict
from lgtutorial.score.settings import UNetSettings
from lgtutorial.score.unet import ScoreUNet

__all__ = [
    "load_statistics",
    "statistics_for_model",
    "load_authors_checkpoint",
    "load_score_model",
    "available",
    "load",
    "load_with_sigmas",
    "model_card",
    "pretrained_directory",
    "default_model",
    "DEFAULT_MODELS",
]


def load_authors_checkpoint(
    path_or_registry_name: str | Path = "nbsa-authors-checkpoint", *, device=None
) -> tuple[ScoreUNet, torch.Tensor | None]:
    """Load one of the authors' published score models as a :class:`ScoreUNet`.

    Every score-model loader goes through here (:func:`load_score_model`, the
    CLI's ``--model``), so it also takes the names of this project's shipped models (handed on to
    :func:`load_with_sigmas`, hash-checked), an exported model's ``.pt`` file and a training
    checkpoint (its EMA weights, :func:`lgtutorial.score.checkpoints.load_checkpoint`).

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
    from lgtutorial import data

    source = str(path_or_registry_name)
    if source in available():  # this project's own models: every score-model loader takes their names
        return load_with_sigmas(source, device=device)
    if source in data.registry():
        entry = data.registry()[source]
        if entry.kind != "checkpoint":
            raise ValueError(f"{source!r} is a {entry.kind}, not a checkpoint")
        path = data.fetch(source)
        registered = source
    else:
        path = Path(source)
        if not path.is_file():
            names = ", ".join([e.name for e in data.list_references("checkpoint")] + available())
            raise FileNotFoundError(f"{source!r} is neither a registered checkpoint ({names}) nor a file")
    state_dict = read_torch_file(path, "score-model weights")
    if isinstance(state_dict, Mapping) and state_dict.get("format") in (PRETRAINED_FORMAT, "lgtutorial-score-model"):
        if state_dict["format"] == PRETRAINED_FORMAT:  # an exported model's file (not checked against an index)
            model, sigmas, _ = _load_pretrained_file(path)
        else:  # a training checkpoint: its EMA weights
            from lgtutorial.score.checkpoints import load_checkpoint

            model, sigmas, _ = load_checkpoint(path)
        return (model.to(device), sigmas.to(device)) if device is not None else (model, sigmas)
    try:
        model, sigmas = convert_authors_state_dict(state_dict)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
    if source not in data.registry():  # a file: the registered checkpoint it is a copy of, if any
        registered = _registered_checkpoint(path)
    model.volume_fraction_shift = VOLUME_FRACTION_SHIFTS.get(registered, 0.0)
    if device is not None:
        model = model.to(device)
        sigmas = sigmas.to(device) if sigmas is not None else None
    return model, sigmas


def _registered_checkpoint(path: Path) -> str | None:
    """The registry name of the checkpoint whose SHA-256 ``path`` has, or None."""
    from lgtutorial import data
    from lgtutorial._io import file_digest

    digest = file_digest(path)
    return next((e.name for e in data.list_references("checkpoint") if e.sha256 == digest), None)


def load_score_model(name_or_path: str, *, device=None):
    """A score model and its training noise levels, for sampling: whatever :func:`load_authors_checkpoint`
    takes (a shipped model's name, an exported ``.pt``, a training checkpoint or its folder, a registry
    name or a file of the authors' published weights), refused when it carries no noise levels.

    Returns:
        ``(model, sigmas)`` with the model in eval mode and its ``(L,)`` noise levels.
    """
    model, sigmas = load_authors_checkpoint(name_or_path, device=device)
    if sigmas is None:
        raise ValueError(
            f"{name_or_path}: the checkpoint carries no noise levels ('sigmas'); cannot build a schedule"
        )
    return model, sigmas


# -- this project's own trained models ------------------------------------------------------------
# ``data/pretrained`` (installed: ``lgtutorial/_data/pretrained``) holds one ``<name>.pt`` (EMA
# weights, settings, noise levels, provenance) and one ``<name>.md`` model card per model, and an
# ``index.toml`` with every file's SHA-256. :func:`export_pretrained` writes all three.

PRETRAINED_FORMAT = "lgtutorial-pretrained"
PRETRAINED_VERSION = 1
INDEX_NAME = "index.toml"
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


def pretrained_directory() -> Path:
    """The folder of the shipped models: ``data/pretrained`` (a checkout) or ``lgtutorial/_data/pretrained``."""
    from lgtutorial.data import registry_path

    return registry_path().parent / "pretrained"


def read_index(directory: Path) -> dict:
    import tomllib

    path = directory / INDEX_NAME
    if not path.is_file():
        return {}
    with open(path, "rb") as handle:
        return tomllib.load(handle)



def available(*, directory: str | Path | None = None) -> list[str]:
    """Names of the shipped (exported) models, e.g. ``["lgtutorial-case1", "lgtutorial-case2"]``."""
    return sorted(read_index(Path(directory) if directory is not None else pretrained_directory()))


def index_entry(name: str, directory) -> tuple[Path, dict]:
    directory = Path(directory) if directory is not None else pretrained_directory()
    index = read_index(directory)
    if name not in index:
        shipped = ", ".join(sorted(index)) or "none"
        raise ValueError(f"unknown pretrained model {name!r}; expected one of: {shipped} (listed in "
                         f"{directory / INDEX_NAME}; 'lgtutorial pretrained list')")
    return directory, index[name]


def model_card(name: str, *, directory: str | Path | None = None) -> str:
    """The Markdown model card of a shipped model: its training, and how it differs from the paper's."""
    directory, entry = index_entry(name, directory)
    return (directory / entry["card"]).read_text(encoding="utf-8")


def checked_file(name: str, directory) -> Path:
    """The ``.pt`` file of a shipped model, after checking it against the index's SHA-256."""
    import hashlib

    directory, entry = index_entry(name, directory)
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
    model, sigmas, state = _load_pretrained_file(checked_file(name, directory))
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
    state = read_torch_file(path, "an exported score model")
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
def statistics_of_reference(reference: dict):
    """Measure the training micrograph named in a checkpoint's provenance, if it can be loaded."""
    from lgtutorial import data
    from lgtutorial.grf.material import MaterialStatistics

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


def read_payload(path: Path) -> dict:
    state = read_torch_file(path, "an exported score model")
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
    from lgtutorial.grf.material import MaterialStatistics

    payload = read_payload(checked_file(name, directory)).get("statistics")
    return MaterialStatistics.from_payload(payload) if payload is not None else None


def statistics_for_model(name_or_path):
    """The training micrograph's statistics for a model given by shipped name, exported file or checkpoint.

    Shipped and exported models carry them; for a training checkpoint they are measured on its
    reference when that can be loaded. Returns None when there are none to be had.
    """
    from lgtutorial import data
    from lgtutorial.grf.material import MaterialStatistics

    name_or_path = str(name_or_path)
    if name_or_path in available():
        return load_statistics(name_or_path)
    entry = data.registry().get(name_or_path)
    if entry is not None and entry.material:  # a registered checkpoint: its material, or a shipped copy of its statistics
        measured = statistics_of_reference({"name": entry.material})
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
        state = read_torch_file(path, "a score model")
    except ValueError:  # not a torch file, or a pickled payload: the model loader reports it
        return None
    if not isinstance(state, dict):
        return None
    if state.get("format") == PRETRAINED_FORMAT:
        payload = state.get("statistics")
        return MaterialStatistics.from_payload(payload) if payload is not None else None
    if isinstance(state.get("provenance"), dict) and "reference" in state["provenance"]:
        return statistics_of_reference(state["provenance"]["reference"])
    return None


#: Old private name, still read by older code and tests.
_read_index = read_index
