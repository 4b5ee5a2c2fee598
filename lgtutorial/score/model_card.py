"""The model card written next to every exported model (:func:`lgtutorial.score.export.export_pretrained`).

Plain Markdown: what the model is, how to load it, how it was trained, every setting in which it
differs from the paper's (Robertson et al. 2023, Section 4.4 and Appendices C and D), the training
report's numbers when there is one, the command that re-exports it, and the licence of the weights,
the statistics shipped with them and the samples they generate (:func:`licence_section`).
"""

from __future__ import annotations

import dataclasses
import math

from lgtutorial.score.settings import TRAINING_PRESETS, UNET_PRESETS

__all__ = ["licence_section", "model_card", "paper_differences"]

# settings compared with the paper's preset, with the words used in the card
_MODEL_FIELDS = {"latent_channels": "latent channels L_c", "depth": "down/up-sampling levels D",
                 "num_blocks": "extra conv blocks", "dropout": "dropout"}
_TRAINING_FIELDS = {"patch_size": "patch size (px)", "n_patches": "patches", "train_fraction": "training share",
                    "batch_size": "batch size", "steps": "optimizer steps (planned)",
                    "sigma_max": "sigma_1", "sigma_min": "sigma_L", "n_levels": "noise levels",
                    "initial_lr": "initial learning rate", "peak_lr": "peak learning rate",
                    "final_lr": "final learning rate", "warmup_fraction": "warm-up share",
                    "grad_clip": "gradient clip", "ema_decay": "EMA decay",
                    "train_sigma_max": "largest noise level trained on", "augment": "random flips and turns",
                    "noise_log_normal": "noise level of each patch"}
# settings added after the first models were exported: such a card reads the paper's value
_LATER_FIELDS = ("augment", "noise_log_normal")


def _noise_law(value) -> str:
    """``None`` -> the paper's uniform draw over the levels; ``(mean, std)`` -> the log-normal law in words."""
    if value is None:
        return "uniform over the trained levels"
    mean, std = value
    return f"log-normal: median {math.exp(mean):.3g}, std of ln sigma {std:g}"


def _paper_preset(channels: int) -> str:
    """The paper's model family a model belongs to: one channel -> case study 1, else case study 2."""
    return "case1" if channels == 1 else "case2"


def _number(value) -> str:
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.2f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


def paper_differences(model_settings: dict, training_settings: dict) -> list[tuple[str, object, object]]:
    """``(setting, paper's value, this model's value)`` for every setting that is not the paper's."""
    paper = _paper_preset(model_settings["channels"])
    rows = []
    for fields, ours, theirs in ((_MODEL_FIELDS, model_settings, dataclasses.asdict(UNET_PRESETS[paper])),
                                 (_TRAINING_FIELDS, training_settings, dataclasses.asdict(TRAINING_PRESETS[paper]))):
        for key, label in fields.items():
            mine = ours.get(key, theirs[key] if key in _LATER_FIELDS else None)  # models from before the setting
            if isinstance(mine, list):  # a tuple read back from JSON
                mine = tuple(mine)
            if mine != theirs[key]:
                if key == "noise_log_normal":
                    rows.append((label, _noise_law(theirs[key]), _noise_law(mine)))
                else:
                    rows.append((label, theirs[key], mine))
    return rows


def _reproduce_command(provenance: dict, training: dict) -> str:
    preset = provenance["preset"]
    parts = [f"lgtutorial train {provenance['reference']['name']}"]
    if preset in TRAINING_PRESETS:
        parts.append(f"--preset {preset}")
        base = TRAINING_PRESETS[preset]
        for key, flag in (("steps", "--steps"), ("batch_size", "--batch-size"), ("seed", "--seed")):
            if training[key] != getattr(base, key):
                parts.append(f"{flag} {training[key]}")
    return " ".join(parts)


def licence_section(reference_licence: str, *, reference: str = "the training micrograph") -> str:
    """The model card's ``## Licence`` section: the weights, the statistics shipped with them, generated samples.

    The same statement as the README's "Licence" section. Weights trained on GPL-3.0 data (the
    shipped models: ``nbsa-proxy``, derived from the authors' GPL-3.0 checkpoint, and the Ti
    micrograph), and the statistics of that micrograph stored with them, are distributed under
    GPL-3.0; other training data pass their own terms on. Generated microstructures carry no
    restriction from the project.

    Args:
        reference_licence: the training micrograph's licence, as ``data/registry.toml`` gives it.
        reference: how to name the training micrograph (a registry name, or a description).

    >>> section = licence_section("GPL-3.0 (derived)", reference="nbsa-proxy")
    >>> section.splitlines()[0], "distributed under GPL-3.0" in section
    ('## Licence', True)
    """
    gpl = reference_licence.strip().upper().startswith("GPL")
    terms = "GPL-3.0" if gpl else f"the same terms as the training micrograph ({reference_licence})"
    return "\n".join([
        "## Licence", "",
        f"- **Weights and statistics.** This model was trained on {reference} (licence: {reference_licence}). "
        f"Its weights, and any statistics of that micrograph shipped with them (volume fractions, 2-point "
        f"statistics, chord lengths), are distributed under {terms} to respect the source's licence. "
        "lgtutorial's code is MIT-licensed (`LICENSE`).",
        "- **Generated microstructures** are outputs of running the program: lgtutorial claims no rights in "
        "them and places no restriction on them. They are not copies of the reference micrograph, but they "
        f"follow its statistics: when publishing them, say so, name the reference ({reference}) and its licence "
        f"({reference_licence}), and cite the papers (Robertson et al. 2023; Robertson & Kalidindi 2022).",
        "- This states the project's intent; it is not legal advice.", "",
    ])


def _reference_licence(reference: dict) -> str:
    """The registry's licence for a training reference, or a pointer to its owner for a user's own file."""
    from lgtutorial.data import registry

    entries = registry()
    name = reference.get("name", "")
    return entries[name].licence if name in entries else "as set by its owner"


def model_card(payload: dict, digest: str, report_markdown: str | None = None) -> str:
    """The Markdown model card of an exported model (``payload`` as written to its ``.pt`` file)."""
    name, prov = payload["name"], payload["provenance"]
    model, training, history = payload["model_settings"], payload["training_settings"], payload["history"]
    paper = _paper_preset(model["channels"])
    n_phases = 2 if model["channels"] == 1 else model["channels"]
    study = "1" if paper == "case1" else "2"
    done, planned = prov["steps_done"], prov["steps_planned"]
    lines = [
        f"# {name}: score model for case study {study} ({n_phases} phases)", "",
        f"This project's own denoising score model (the local layer of the hybrid generator), trained with "
        f"`lgtutorial train` on patches of the `{prov['reference']['name']}` reference. These are the EMA "
        "weights, the ones to sample with.", "",
        "```python",
        "from lgtutorial import pretrained",
        f'model, sigmas = pretrained.load_with_sigmas("{name}")   # or pretrained.load("{name}"); model.sigmas',
        "```", "",
        f"Command line: `lgtutorial generate --model {name}`. The file's SHA-256 is `{digest}`.", "",
    ]
    if done < planned:
        lines += [f"**Interim weights:** taken after {done:,} of the {planned:,} planned steps, in the middle of "
                  "the one-cycle learning-rate schedule (before the learning rate decayed). Re-export the "
                  "final weights when training ends (see the last section).", ""]
    first_loss, last_loss = history["test_loss"][0], history["test_loss"][-1]
    table = [
        ("reference", f"`{prov['reference']['name']}` (sha256 `{prov['reference'].get('sha256', '?')[:16]}...`), "
                      f"patches cut {'periodically' if prov['periodic_patches'] else 'inside the image'}"),
        ("preset", f"`{prov['preset']}`"),
        ("steps", f"{done:,} of {planned:,} planned"),
        ("batch", f"{training['batch_size']} patches of {training['patch_size']}x{training['patch_size']} px "
                  f"({training['n_patches']:,} patches, {100 * training['train_fraction']:.0f} % for training)"),
        ("noise levels", f"{training['n_levels']}, geometric {training['sigma_max']:g} -> {training['sigma_min']:g}"),
        ("optimizer", f"Adam (0.9, 0.999), one-cycle cosine learning rate {training['initial_lr']:g} -> "
                      f"{training['peak_lr']:g} (at {100 * training['warmup_fraction']:.0f} %) -> "
                      f"{training['final_lr']:g}, gradient clip {training['grad_clip']:g}, EMA {training['ema_decay']}"),
        ("architecture", f"C = {model['channels']}, L_c = {model['latent_channels']}, D = {model['depth']}, "
                         f"{model['num_blocks']} extra block(s), dropout {model['dropout']}: "
                         f"{prov['n_parameters']:,} parameters"),
        ("wall time", f"{_hours(prov['wall_time_s'])} on {prov['device']}"
                      + (f" ({prov['device_name']})" if prov.get("device_name") else "")),
        ("software", f"torch {prov['torch_version']}, lgtutorial {prov['lgtutorial_version']}"),
        ("seed", str(prov["seed"])),
        ("test loss", f"{first_loss:.1f} (untrained) -> {last_loss:.1f} at step {history['step'][-1]:,} "
                      "(EMA weights, fixed noise)"),
    ]
    lines += ["## Training", "", "| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in table]
    lines += ["", f"Reproduce: `{_reproduce_command(prov, training)}`.", ""]

    differences = paper_differences(model, training)
    lines += ["## How it differs from the paper's settings", "",
              f"Compared with the paper's case-study-{study} model (preset `{paper}`: Robertson et al. 2023, "
              "Section 4.4 and Appendices C/D):", ""]
    if differences:
        lines += ["| setting | paper | this model |", "|---|---|---|"]
        lines += [f"| {label} | {_number(theirs)} | {_number(ours)} |" for label, theirs, ours in differences]
        lines.append("")
    else:
        lines += ["No setting differs.", ""]
    seen, paper_seen = done * training["batch_size"], TRAINING_PRESETS[paper].steps * TRAINING_PRESETS[paper].batch_size
    lines += [f"- It saw {seen:,} training patches (steps x batch), {100 * seen / paper_seen:.2f} % of the paper's "
              f"{paper_seen:,}, on device `{prov['device']}` instead of a V100 GPU. Expect softer features and a looser "
              "volume fraction than the paper's model.",
              "- Everything not listed (loss, noise schedule shape, EMA, clipping, Latin-hypercube patch centres, "
              "85/15 split) follows the paper."]
    if prov["reference"]["name"] == "nbsa-proxy":
        lines.append("- The reference is a stand-in: the paper's Ni-superalloy micrograph is replaced by one "
                     "256x256 unconditional sample of the authors' case-study-1 model (registry entry "
                     "`nbsa-proxy`), thresholded at 0.5 and periodic.")
    lines.append("")

    lines += ["## Training report", ""]
    report = payload.get("report")
    if report is not None:
        lines += [f"{report['n_samples']} unconditional samples at the patch size ({report['n_levels']} noise levels) "
                  "against the training patches:", "", (report_markdown or "").strip(), ""]
    else:
        lines += ["None yet: `lgtutorial train` writes `report.json` when a run ends; re-exporting then includes it."
                  if done < planned else
                  "None: the run ended without writing `report.json` (it was trained with `--report-samples 0`, "
                  "or the report was not kept beside the checkpoint).", ""]
    lines += ["## Re-export", "", "After training ends (from the project's root):" if done < planned else
              "From the checkpoint it was exported from (from the project's root):", "", "```bash",
              f"lgtutorial pretrained export {prov['checkpoint']} {name}", "```", ""]
    lines += [licence_section(_reference_licence(prov["reference"]), reference=f"`{prov['reference']['name']}`")]
    return "\n".join(lines)
