"""Is a rising test loss over-fitting, or the network's dropout? Losses of a checkpoint in both modes.

``lgtutorial train`` reports the test loss of the EMA weights in eval mode (dropout off), on held-out
patches with fixed noise. When that loss rises while the training loss falls, the usual reading is
over-fitting. Here the same denoising loss (the run's own noise law, the same fixed noise for every
row) is measured on training and on held-out patches, each with dropout off (eval mode, how the
samplers run the network) and on (train mode, how the training loss is measured). Over-fitting shows
as a gap between the patch sets; a network that has come to lean on its dropout shows as a gap
between the modes on both sets.

Run (a minute per checkpoint on one thread; the reference must be loadable):

    python benchmarks/dropout_gap.py training-runs/RUN/checkpoint.pt --output benchmarks/results/dropout_gap_RUN.md
"""

from __future__ import annotations

import argparse

import torch
from _report import emit_table

from lgtutorial import data
from lgtutorial.score.checkpoints import load_checkpoint
from lgtutorial.score.loss import denoising_score_matching_loss
from lgtutorial.score.patches import make_patch_datasets
from lgtutorial.score.settings import TrainingSettings
from lgtutorial.score.training import trained_levels


def losses(path, *, n_patches: int = 256, seed: int = 1) -> dict:
    """``{(weights, patches, mode): loss}`` for one checkpoint; weights "ema" / "model", patches
    "training" / "held-out", mode "eval" (dropout off) / "train" (dropout on)."""
    models = {"ema": load_checkpoint(path, weights="ema"), "model": load_checkpoint(path, weights="model")}
    state = models["ema"][2]
    settings = TrainingSettings(**state["training_settings"])
    reference = data.load(state["provenance"]["reference"]["name"])[0]
    split = make_patch_datasets(reference, patch_size=settings.patch_size, n_patches=settings.n_patches,
                                train_fraction=settings.train_fraction, seed=settings.seed,
                                periodic=bool(state["provenance"].get("periodic_patches", False)),
                                channels=state["model_settings"]["channels"])
    out = {}
    for weights, (model, sigmas, _) in models.items():
        levels = trained_levels(sigmas, settings.train_sigma_max)
        for name, patches in (("training", split.train), ("held-out", split.test)):
            clean = patches.batch(torch.arange(min(n_patches, len(patches))))
            for mode in ("eval", "train"):
                model.train(mode == "train")
                torch.manual_seed(seed)  # the dropout masks
                generator = torch.Generator().manual_seed(seed)  # the noise levels and the noise
                with torch.no_grad():
                    total = sum(float(denoising_score_matching_loss(model, chunk, levels, generator=generator,
                                                                    log_normal=settings.noise_log_normal)) * len(chunk)
                                for chunk in clean.split(64))
                out[weights, name, mode] = total / len(clean)
    return {"step": int(state["step"]), "dropout": state["model_settings"]["dropout"], "losses": out}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", nargs="+", help="checkpoint.pt files written by lgtutorial train")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", default=None, help="Markdown file to write")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    lines = ["# Dropout or over-fitting: denoising losses in both modes", "",
             "Loss per patch (the run's noise law, fixed noise and dropout masks, 256 patches per set); eval: "
             "dropout off, as the samplers run the network; train: dropout on, as the training loss is measured. "
             "Made by `benchmarks/dropout_gap.py`.", "",
             "| checkpoint | step | dropout | weights | training, eval | training, train | held-out, eval "
             "| held-out, train |", "|---|---|---|---|---|---|---|---|"]
    for path in args.checkpoints:
        result = losses(path)
        for weights in ("ema", "model"):
            cells = [f"{result['losses'][weights, name, mode]:.1f}" for name in ("training", "held-out")
                     for mode in ("eval", "train")]
            lines.append(f"| {path} | {result['step']:,} | {result['dropout']:g} | {weights} | " + " | ".join(cells) + " |")
    emit_table("\n".join(lines), args.output)


if __name__ == "__main__":
    main()
