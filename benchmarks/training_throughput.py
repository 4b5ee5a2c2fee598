"""Training throughput of the score U-Net presets: optimizer steps per second.

One step is the trainer's own (:class:`lgtutorial.score.step.TrainingStep`, timed by
:func:`lgtutorial.score.step.seconds_per_step`, as the fitting planner times it): a batch cut from
the patches, denoising score matching loss (forward), backward, gradient-norm clipping, Adam, the
one-cycle learning-rate update and the EMA update, on random patches of the preset's size (no data
needed). Mixed precision on CUDA as in the trainer.

Run: python benchmarks/training_throughput.py [--batch-size 32] [--min-seconds 10] [--output FILE]
Prints a Markdown table; timings, not assertions. On a shared machine, compare only runs made
under the same load (the load average is printed).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform

import torch
from _report import emit_table

from lgtutorial._checks import resolve_device
from lgtutorial.score.settings import TRAINING_PRESETS, UNET_PRESETS
from lgtutorial.score.step import seconds_per_step
from lgtutorial.score.unet import ScoreUNet


def steps_per_second(preset: str, *, batch_size: int, device: torch.device, min_seconds: float,
                     max_steps: int = 10_000) -> tuple[float, int, int]:
    """Steps per second for ``preset`` after two warm-up steps; returns (rate, parameters, steps timed)."""
    model_settings = UNET_PRESETS[preset]
    settings = dataclasses.replace(TRAINING_PRESETS[preset], batch_size=batch_size, device=str(device))
    seconds, count = seconds_per_step(model_settings, settings, warmup=2, min_steps=1, min_seconds=min_seconds,
                                      max_steps=max_steps)
    return 1.0 / seconds, ScoreUNet(model_settings).n_parameters, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--min-seconds", type=float, default=10.0, help="time each preset at least this long")
    parser.add_argument("--presets", nargs="+", default=list(TRAINING_PRESETS))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--output", default=None, help="also write the table to this Markdown file")
    args = parser.parse_args()

    device = resolve_device(args.device)
    where = (torch.cuda.get_device_name(device) if device.type == "cuda"
             else f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads")
    load = f", load average {os.getloadavg()[0]:.1f} at start" if hasattr(os, "getloadavg") else ""
    lines = [f"Score U-Net training throughput at batch {args.batch_size} ({device.type}: {where}; "
             f"torch {torch.__version__}{load})", "",
             "| preset | model (C, L_c, D) | parameters | patch | steps/s | patches/s | steps timed | "
             "hours for the preset's steps at this batch |",
             "|---|---|---|---|---|---|---|---|"]
    for preset in args.presets:
        rate, parameters, count = steps_per_second(preset, batch_size=args.batch_size, device=device,
                                                   min_seconds=args.min_seconds)
        m, s = UNET_PRESETS[preset], TRAINING_PRESETS[preset]
        lines.append(f"| {preset} | ({m.channels}, {m.latent_channels}, {m.depth}) | {parameters:,} | "
                     f"{s.patch_size}x{s.patch_size} | {rate:.2f} | {rate * args.batch_size:.0f} | {count} | "
                     f"{s.steps / rate / 3600:.1f} |")
        print(lines[-1], flush=True)
    emit_table("\n".join(lines), args.output)


if __name__ == "__main__":
    main()
