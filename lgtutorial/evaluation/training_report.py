"""Judging a trained score model by its unconditional samples (Robertson et al. 2023, Section 3.2).

:func:`sample_unconditional` draws samples from noise by annealed Langevin dynamics over the
training schedule (or a :func:`shortened_schedule`); :func:`training_report` compares them with the
training patches: volume fractions, chord lengths and the distance to the nearest training patch
(a model that memorizes its patches draws samples far closer to them than held-out patches are).
"""

from __future__ import annotations

import dataclasses
import math

import torch

from lgtutorial.sampling.integrators import annealed_langevin
from lgtutorial.score.channels import segment_model_output, to_model_channels
from lgtutorial.score.patches import PatchDataset
from lgtutorial.score.schedules import STEP_LR, langevin_step_sizes
from lgtutorial.score.unet import ScoreUNet

__all__ = ["sample_unconditional", "TrainingReport", "training_report"]


def sample_unconditional(
    model: ScoreUNet,
    *,
    n_samples: int,
    shape: tuple[int, int],
    sigmas: torch.Tensor,
    step_lr: float = STEP_LR,
    step_sizes: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    segment: bool = True,
    batch_size: int | None = None,
    callback=None,
) -> torch.Tensor:
    """Unconditional samples of a score model by annealed Langevin dynamics (Section 3.3).

    Starts from ``0.5 + sigma_1 z`` and runs every level of ``sigmas`` (one step each), with
    ``eps_i = step_lr (sigma_i / sigma_L)^2`` unless ``step_sizes`` is given. A subsampled
    schedule (:func:`lgtutorial.score.schedules.subsample`) takes fewer steps per decade of sigma and
    needs larger ones: e.g. 100 of the paper's 1000 levels with ``step_sizes =
    langevin_step_sizes(sigmas, step_lr) * 5`` (measured on the authors' case-study-1 model:
    volume fraction 0.35 vs 0.39 with all 1000 levels). Keep ``eps_i / sigma_i^2`` below ~1.

    Args:
        model: the score network (used in eval mode; its device is used).
        n_samples: number of samples.
        shape: ``(H, W)``, each divisible by ``2**depth``.
        sigmas: ``(L,)`` decreasing noise levels.
        step_lr: base step size (the paper: 2e-5).
        step_sizes: ``(L,)`` explicit step sizes.
        generator: ``torch.Generator`` on the model's device.
        segment: return one-hot phases (True) or the raw final iterate in model channels (False).
        batch_size: samples per Langevin run (default: all at once).
        callback: passed to :func:`lgtutorial.sampling.integrators.annealed_langevin`.

    Returns:
        ``(n_samples, N, H, W)`` one-hot, or ``(n_samples, C, H, W)`` unclamped when ``segment`` is false.
    """
    if n_samples < 1:
        raise ValueError(f"n_samples must be at least 1, got {n_samples}")
    if len(shape) != 2:
        raise ValueError(f"shape must be (H, W), got {shape!r}")
    parameter = next(model.parameters())
    device, dtype = parameter.device, parameter.dtype
    sigmas = sigmas.to(device=device, dtype=dtype)
    if step_sizes is None:
        step_sizes = langevin_step_sizes(sigmas, step_lr)
    was_training = model.training
    model.eval()
    batch_size = batch_size or n_samples
    outputs = []
    try:
        for start in range(0, n_samples, batch_size):
            count = min(batch_size, n_samples - start)
            noise = torch.randn((count, model.settings.channels, *shape), generator=generator, device=device, dtype=dtype)
            x = 0.5 + sigmas[0] * noise
            outputs.append(annealed_langevin(model.score, x, sigmas, step_sizes=step_sizes, generator=generator,
                                             callback=callback))
    finally:
        model.train(was_training)
    result = torch.cat(outputs)
    return segment_model_output(result) if segment else result


@dataclasses.dataclass
class TrainingReport:
    """Unconditional samples of a score model compared with its training patches (Section 3.2)."""

    samples: torch.Tensor
    """one-hot ``(n_samples, n_phases, p, p)`` samples at the patch size"""
    summary: dict
    """plain numbers: volume fractions, x chord lengths, nearest-training-patch distances"""

    def markdown(self) -> str:
        """The summary as a Markdown table (one row per statistic and phase)."""
        s = self.summary
        rows = ["| statistic | phase | samples (mean +- std) | training patches (mean +- std) |", "|---|---|---|---|"]
        for key, label in (("volume_fraction", "volume fraction"), ("x_chord_length", "mean x-chord (px, edge chords dropped)")):
            for phase, (a, b, c, d) in enumerate(zip(s[key]["samples_mean"], s[key]["samples_std"],
                                                     s[key]["training_mean"], s[key]["training_std"])):
                rows.append(f"| {label} | {phase} | {a:.3f} +- {b:.3f} | {c:.3f} +- {d:.3f} |")
        near = s["nearest_training_distance"]
        rows.append(f"| nearest training patch (L2) | - | median {near['samples_median']:.2f} | "
                    f"test patches: median {near['test_median']:.2f} |")
        return "\n".join(rows)


def _nearest_distances(queries: torch.Tensor, references: torch.Tensor) -> torch.Tensor:
    flat = references.flatten(1).float()
    return torch.cat([torch.cdist(chunk.flatten(1).float(), flat).min(dim=1).values for chunk in queries.split(256)])


def training_report(
    model: ScoreUNet, patches: PatchDataset, *, sigmas: torch.Tensor, n_samples: int = 16,
    test_patches: PatchDataset | None = None, step_sizes: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> TrainingReport:
    """Judge a trained model by statistics, not by its loss (Section 3.2).

    Draws ``n_samples`` unconditional samples at the patch size and compares them with the
    training patches: volume fractions, mean x chord lengths (:func:`lgtutorial.statistics.chords.chord_lengths`,
    non-periodic, edge chords dropped) and the L2 distance of every sample to its nearest
    training patch. A model that memorizes its patches has sample distances far below those of
    held-out test patches (given as ``test_patches``) to the training set.
    """
    from lgtutorial.statistics.chords import chord_lengths
    from lgtutorial.statistics.two_point import volume_fractions

    size = patches.patch_size
    samples = sample_unconditional(model, n_samples=n_samples, shape=(size, size), sigmas=sigmas,
                                   step_sizes=step_sizes, generator=generator)
    training = patches.one_hot()
    device = training.device
    samples = samples.to(device)

    def spread(values: torch.Tensor) -> tuple[list, list]:
        values = values.double()
        std = values.std(0) if len(values) > 1 else torch.zeros_like(values[0])
        return values.mean(0).tolist(), std.tolist()

    def chords(one_hot: torch.Tensor) -> tuple[list, list]:
        per_phase = chord_lengths(one_hot, axis="x", periodic=False)
        return [c.mean() for c in per_phase], [c.std() for c in per_phase]

    vf_samples, vf_training = spread(volume_fractions(samples)), spread(volume_fractions(training))
    cld_samples, cld_training = chords(samples), chords(training)
    channels = patches.channels
    sample_inputs = to_model_channels(samples, channels)
    near = _nearest_distances(sample_inputs, patches.batch(torch.arange(len(patches))))
    summary = {
        "n_samples": n_samples, "patch_size": size, "n_training_patches": len(patches), "n_levels": len(sigmas),
        "volume_fraction": {"samples_mean": vf_samples[0], "samples_std": vf_samples[1],
                            "training_mean": vf_training[0], "training_std": vf_training[1]},
        "x_chord_length": {"samples_mean": cld_samples[0], "samples_std": cld_samples[1],
                           "training_mean": cld_training[0], "training_std": cld_training[1], "periodic": False},
        "nearest_training_distance": {"samples": near.tolist(), "samples_median": float(near.median()),
                                      "test_median": math.nan},
    }
    if test_patches is not None and len(test_patches):
        test_near = _nearest_distances(test_patches.batch(torch.arange(len(test_patches))),
                                       patches.batch(torch.arange(len(patches))))
        summary["nearest_training_distance"]["test_median"] = float(test_near.median())
    return TrainingReport(samples.cpu(), summary)
