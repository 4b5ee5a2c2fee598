"""The objective of training: denoising score matching (Robertson et al. 2023, Eq. (4)).

After Song & Ermon 2019: the network learns the score of the patch distribution blurred by
Gaussian noise at every level of a geometric schedule. The trainer's step
(:class:`lgtutorial.score.step.TrainingStep`) minimises it; its test loss is measured with it.
"""

from __future__ import annotations

import torch

from lgtutorial.score.unet import ScoreUNet

__all__ = ["denoising_score_matching_loss"]


def denoising_score_matching_loss(
    model: ScoreUNet, clean: torch.Tensor, sigmas: torch.Tensor, *, generator: torch.Generator | None = None,
    log_normal: tuple[float, float] | None = None,
) -> torch.Tensor:
    """Denoising score matching with one random noise level per example (Eq. (4), Robertson et al. 2023).

    ``l = (1/2) sigma_i^2 || s(x~, sigma_i) + (x~ - x) / sigma_i^2 ||^2`` with ``x~ = x + sigma_i z``.
    Because the score is ``model(x~) / sigma_i``, this is ``(1/2) || model(x~) + z ||^2``: the
    network predicts minus the (unit) noise. Summed over pixels, averaged over the batch.

    Args:
        model: the score network.
        clean: ``(n, C, h, w)`` training patches.
        sigmas: ``(L,)`` noise levels (on ``clean``'s device).
        generator: ``torch.Generator`` on ``clean``'s device for the levels and the noise.
        log_normal: ``(mean, std)`` of ``ln sigma``: draw each example's level from that log-normal
            law, clamped to ``[min(sigmas), max(sigmas)]``, instead of uniformly from ``sigmas`` (the
            paper). The network takes no noise level, so any level in the range is valid.
    """
    if log_normal is None:
        levels = torch.randint(len(sigmas), (clean.shape[0],), generator=generator, device=clean.device)
        sigma = sigmas[levels].view(-1, 1, 1, 1)
    else:
        mean, std = log_normal
        log_sigma = mean + std * torch.randn((clean.shape[0], 1, 1, 1), generator=generator, device=clean.device)
        sigma = log_sigma.exp().clamp(sigmas.min(), sigmas.max()).to(clean.dtype)  # no wait for the device
    noise = torch.randn(clean.shape, generator=generator, device=clean.device, dtype=clean.dtype)
    output = model(clean + sigma * noise)
    return 0.5 * (output.float() + noise).square().sum(dim=(1, 2, 3)).mean()
