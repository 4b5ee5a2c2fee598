"""Training throughput of the score U-Net presets: optimizer steps per second.

One step is what :func:`lgtutorial.score.training.train_score_model` does per batch: denoising score
matching loss (forward), backward, gradient-norm clipping, Adam, the one-cycle learning-rate
update and the EMA update, on random patches of the preset's size (no data needed). Mixed
precision on CUDA as in the trainer.

Run: python benchmarks/training_throughput.py [--batch-size 32] [--min-seconds 10] [--output FILE]
Prints a Markdown table; timings, not assertions. On a shared machine, compare only runs made
under the same load (the load average is printed).
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import time

import torch
from _report import emit_table

from lgtutorial._checks import resolve_device
from lgtutorial.score.schedules import geometric_sigmas
from lgtutorial.score.settings import TRAINING_PRESETS, UNET_PRESETS
from lgtutorial.score.training import _update_ema, denoising_score_matching_loss
from lgtutorial.score.unet import ScoreUNet


def steps_per_second(preset: str, *, batch_size: int, device: torch.device, min_seconds: float,
                     max_steps: int = 10_000) -> tuple[float, int, int]:
    """Steps per second for ``preset`` after two warm-up steps; returns (rate, parameters, steps timed)."""
    model_settings, settings = UNET_PRESETS[preset], TRAINING_PRESETS[preset]
    generator = torch.Generator(device=device).manual_seed(0)
    model = ScoreUNet(model_settings, generator=torch.Generator().manual_seed(0)).to(device)
    ema = copy.deepcopy(model).requires_grad_(False)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.initial_lr)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=settings.peak_lr, total_steps=max_steps + 2,
                                                    cycle_momentum=False)
    sigmas = geometric_sigmas(settings.sigma_max, settings.sigma_min, settings.n_levels, device=device)
    size = settings.patch_size
    patches = (torch.rand(256, model_settings.channels, size, size, generator=generator, device=device) > 0.6).float()
    use_amp = device.type == "cuda" and settings.mixed_precision
    amp_dtype = torch.bfloat16 if use_amp and torch.cuda.is_bf16_supported() else torch.float16

    def step(k: int) -> None:
        index = torch.randint(len(patches), (batch_size,), generator=generator, device=device)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
            loss = denoising_score_matching_loss(model, patches[index], sigmas, generator=generator)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
        optimizer.step()
        scheduler.step()
        _update_ema(ema, model, k, settings.ema_decay)
        float(loss.detach())  # the trainer reads the loss every step (a device sync)

    step(0)
    step(1)
    count, start = 0, time.perf_counter()
    while count < max_steps:
        step(count + 2)
        count += 1
        if time.perf_counter() - start >= min_seconds:
            break
    return count / (time.perf_counter() - start), model.n_parameters, count


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
