"""Shipping a trained score model: :func:`export_pretrained` and :func:`attach_statistics`.

A shipped model is one ``<name>.pt`` (float32 EMA weights, U-Net and training settings, noise
levels, history, provenance and, where they can be had, the statistics of the training micrograph),
one ``<name>.md`` model card and an entry with the file's SHA-256 in ``index.toml``;
:mod:`lgtutorial.score.registry` loads them back (and re-exports the functions here).
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import torch

from lgtutorial._io import OUTPUT_ROOT
from lgtutorial.score.registry import (
    INDEX_NAME,
    NAME_PATTERN,
    PRETRAINED_FORMAT,
    PRETRAINED_VERSION,
    checked_file,
    index_entry,
    read_index,
    read_payload,
    statistics_of_reference,
)

__all__ = ["export_pretrained", "attach_statistics", "EXPORT_DIRECTORY", "STATISTICS_SECTION"]


def _toml_value(value) -> str:
    import json

    return json.dumps(value) if isinstance(value, (str, bool, int, float)) else json.dumps(str(value))


def _write_index(directory: Path, index: dict) -> None:
    from lgtutorial._io import atomic_write

    lines = ["# This project's own trained score models (written by lgtutorial.score.export.export_pretrained).",
             "# lgtutorial.score.registry.load(name) checks each file against its sha256 here.", ""]
    for name in sorted(index):
        lines.append(f"[{name}]")
        lines += [f"{key} = {_toml_value(value)}" for key, value in index[name].items()]
        lines.append("")
    with atomic_write(directory / INDEX_NAME, "w") as handle:
        handle.write("\n".join(lines))



def _matching_preset(model_settings: dict, training_settings: dict) -> str:
    """The preset these settings come from (the step count, seed and bookkeeping may differ), or ``custom``."""
    import dataclasses

    from lgtutorial.score.settings import TRAINING_PRESETS, UNET_PRESETS, TrainingSettings

    loose = {"steps", "seed", "device", "eval_every", "checkpoint_every", "mixed_precision"}
    # settings added after a model was trained count as their defaults
    defaults = {field.name: field.default for field in dataclasses.fields(TrainingSettings)}
    for name, preset in TRAINING_PRESETS.items():
        wanted = dataclasses.asdict(preset)
        if dataclasses.asdict(UNET_PRESETS[name]) == model_settings and all(
                training_settings.get(k, defaults.get(k)) == v for k, v in wanted.items() if k not in loose):
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
EXPORT_DIRECTORY = OUTPUT_ROOT / "models"


def _budget_spent(state: dict) -> bool:
    """Whether a checkpoint trained on a time budget (``minutes``) and spent it."""
    minutes = state["training_settings"].get("minutes")
    return minutes is not None and float(state["provenance"]["wall_time_s"]) >= 60 * minutes


def export_pretrained(checkpoint_path: str | Path, name: str, *, directory: str | Path | None = None,
                      preset: str | None = None, statistics=None, overwrite: bool = False) -> Path:
    """Ship the EMA weights of a training checkpoint as the model ``name``, with a model card.

    Writes (atomically) ``<directory>/<name>.pt`` (float32 EMA weights, U-Net settings, noise
    levels, training settings and history, provenance: preset, steps done of planned, wall time,
    device, torch version, reference name and SHA-256, seed), ``<name>.md`` (the model card: how it
    was trained and how that differs from the paper's settings) and updates ``index.toml``.

    Args:
        checkpoint_path: a ``checkpoint.pt`` of :func:`lgtutorial.score.training.train_score_model` (or its folder).
            A training report (``report.json``) beside it is included when it belongs to the same step.
        name: lower-case letters, digits, ``.``, ``_``, ``-``; e.g. ``"lgtutorial-case1"``.
        directory: where to write (default: :data:`EXPORT_DIRECTORY`, ``lgtutorial-output/models``; the
            project's maintainers ship a model by naming ``data/pretrained`` explicitly).
        overwrite: replace an existing model of that name in ``directory`` (refused otherwise).
        preset: the training preset's name for the card (default: ``summary.json`` beside the
            checkpoint, else the preset the settings match).
        statistics: the :class:`~lgtutorial.grf.material.MaterialStatistics` to ship with the model
            (default: measured on the training micrograph when it can be loaded; else none).

    Returns:
        The path of the written ``.pt`` file.
    """
    import hashlib
    import time

    from lgtutorial._io import atomic_write
    from lgtutorial.score.checkpoints import CHECKPOINT_NAME, load_checkpoint

    if not isinstance(name, str) or not NAME_PATTERN.match(name):
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
        # a time budget's plan is its minutes: the steps it took are the steps it planned (once the budget is spent)
        "steps_planned": int(state["step"] if _budget_spent(state) else state["training_settings"]["steps"]),
        "budget_minutes": state["training_settings"].get("minutes"), "wall_time_s": float(source["wall_time_s"]),
        "device": source["device"], "device_name": source.get("device_name", ""),
        "torch_version": source["torch_version"], "lgtutorial_version": source.get("lgtutorial_version", ""),
        "reference": {k: source["reference"][k] for k in ("name", "sha256", "periodic", "shape")
                      if k in source["reference"]},
        "seed": int(source["seed"]), "periodic_patches": bool(source.get("periodic_patches", False)),
        "checkpoint_saved_at": source.get("saved_at", ""), "exported_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "checkpoint": shown.as_posix(), "n_parameters": model.n_parameters,
    }
    if statistics is None:
        statistics = statistics_of_reference(source["reference"])
        if statistics is None:
            warnings.warn(f"the training micrograph {source['reference'].get('name', '?')!r} could not be loaded "
                          f"(set LGTUTORIAL_DATA or pass statistics=): the model {name!r} ships without its "
                          "statistics, so generating with it will need --reference or --statistics", stacklevel=2)
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
    from lgtutorial.score.model_card import model_card as card_text

    card = card_text(payload, digest, report_markdown)
    if statistics is not None:
        card = _with_statistics_section(card, _statistics_section(statistics).replace("{name}", name))
    if (directory / f"{name}.md").is_file():  # a re-export keeps what the maintainers wrote by hand
        card = _with_kept_sections(card, (directory / f"{name}.md").read_text(encoding="utf-8"))
    with atomic_write(directory / f"{name}.md", "w") as handle:
        handle.write(card)
    index = read_index(directory)
    index[name] = {"file": path.name, "sha256": digest, "card": f"{name}.md", "channels": model.settings.channels,
                   "reference": provenance["reference"]["name"], "preset": preset,
                   "steps_done": provenance["steps_done"], "steps_planned": provenance["steps_planned"]}
    _write_index(directory, index)
    for written in (path, directory / f"{name}.md", directory / INDEX_NAME):
        written.chmod(0o644)  # shipped files: readable by everyone (temporary files start private)
    return path



def _sections(card: str) -> list[tuple[str, str]]:
    """``(heading, text)`` of every ``## `` section of a model card, in order (the text up to the next one)."""
    parts = re.split(r"(?m)^(?=## )", card)
    return [(part.splitlines()[0], part) for part in parts if part.startswith("## ")]


def _with_kept_sections(card: str, old_card: str) -> str:
    """``card`` with the sections of ``old_card`` that it does not generate (e.g. "## Known limit: no laths",
    written by hand) put back before its licence section. The statistics section is always generated: when
    this export carries no statistics, the old card's section goes."""
    # the statistics section describes this export's file: one the new file lacks must not survive
    generated = {heading for heading, _ in _sections(card)} | {STATISTICS_SECTION}
    kept = [text.rstrip("\n") + "\n\n" for heading, text in _sections(old_card) if heading not in generated]
    if not kept:
        return card
    licence = card.find("\n## Licence")
    at = licence + 1 if licence >= 0 else len(card)
    return card[:at] + "".join(kept) + card[at:]


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

    from lgtutorial._io import atomic_write

    path = checked_file(name, directory)  # the file as shipped must check out first
    directory, entry = index_entry(name, directory)
    payload = read_payload(path)
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
    index = read_index(directory)
    index[name]["sha256"] = digest
    _write_index(directory, index)
    for written in (path, card_path, directory / INDEX_NAME):
        written.chmod(0o644)
    return path
