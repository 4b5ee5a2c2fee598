"""The local layer of 3D generation: a 2D score model applied to every slice of a volume.

No 3D training: :class:`SliceScore` turns a 2D score model (the one the 2D hybrid uses, trained on
patches of one micrograph) into the score of a volume ``(n, C, D, H, W)`` by running it on the
volume's xy, xz and yz slices (batched, in chunks that bound memory) and averaging the three
orientations' scores voxel by voxel; restricted to one orientation (:meth:`SliceScore.only`) it is
the score the orientation passes of :class:`~lgtutorial.volume.generator.VolumeGenerator` run. Combining
perpendicular 2D priors is the idea of Lee et al., ICCV 2023 ("Improving 3D imaging with
pre-trained perpendicular 2D diffusion models"), there for tomography.

Circular convolutions (:func:`lgtutorial.sampling.integrators.with_circular_padding`) make every slice, and so
the volume, periodic along all three axes; a periodic embedding would pad all three sides, at
``((D + 32) / D)^3`` the cost.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from lgtutorial.grf.segmentation import segment_argmax
from lgtutorial.sampling.integrators import with_circular_padding
from lgtutorial.sampling.samplers import prepare_model, resolve_sampler
from lgtutorial.score.channels import from_model_channels
from lgtutorial.volume.statistics import ORIENTATIONS

__all__ = ["SliceScore", "slice_score", "finalize_volumes"]

# slice axis first: (n, C, D, H, W) -> (n, L, C, a, b) for xy (L = D), xz (L = H), yz (L = W) slices
_PERMUTATIONS = {"xy": (0, 2, 1, 3, 4), "xz": (0, 3, 1, 2, 4), "yz": (0, 4, 1, 2, 3)}


def finalize_volumes(x: torch.Tensor, n_phases: int) -> torch.Tensor:
    """Clamp model channels ``(n, C, D, H, W)`` to ``[-3, 3]`` and segment them: one-hot ``(n, N, D, H, W)``.

    As in 2D (:func:`lgtutorial.sampling.samples.finalize`): one channel is phase 1 where ``m > 0.5``, several
    channels are segmented by argmax.
    """
    return segment_argmax(from_model_channels(x.clamp(-3.0, 3.0), n_phases))


class SliceScore:
    """The score of a volume ``(n, C, D, H, W)`` from a 2D score function applied to its slices.

    Every xy, xz and yz slice goes through ``score_fn`` (``chunk_size`` slices per call); the three
    orientations' scores are averaged voxel by voxel. Counters: :attr:`calls` (volume evaluations)
    and :attr:`slices` (2D slices through the network).

    Args:
        score_fn: 2D ``score_fn(x, sigma)`` on slices ``(m, C, h, w)``; ``sigma`` a number, a 0-d tensor or ``(m,)``.
        channels: ``C``.
        chunk_size: slices per call of ``score_fn`` (bounds memory: about ``chunk_size * a * b``
            voxels of activations at once).
        orientations: which of :data:`~lgtutorial.volume.statistics.ORIENTATIONS` to use.
    """

    def __init__(self, score_fn: Callable, *, channels: int, chunk_size: int = 128, orientations=ORIENTATIONS):
        if not isinstance(chunk_size, int) or chunk_size < 1:
            raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
        orientations = tuple(orientations)
        if not orientations or any(o not in ORIENTATIONS for o in orientations) or len(set(orientations)) < len(orientations):
            raise ValueError(f"orientations must be a non-empty subset of {ORIENTATIONS}, got {orientations!r}")
        self.score_fn, self.channels, self.chunk_size, self.orientations = score_fn, channels, chunk_size, orientations
        self._counts = {"calls": 0, "slices": 0}

    @property
    def calls(self) -> int:
        """Volume score evaluations so far (shared with the :meth:`only` copies)."""
        return self._counts["calls"]

    @property
    def slices(self) -> int:
        """2D slices that went through ``score_fn`` so far (shared with the :meth:`only` copies)."""
        return self._counts["slices"]

    def only(self, *orientations: str) -> SliceScore:
        """The same score on fewer orientations, counting into the same counters."""
        copy = SliceScore(self.score_fn, channels=self.channels, chunk_size=self.chunk_size, orientations=orientations)
        copy._counts = self._counts
        return copy

    def __call__(self, x: torch.Tensor, sigma) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.ndim != 5 or x.shape[1] != self.channels:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"expected a volume of shape (n_samples, {self.channels}, D, H, W), got {shape}")
        sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
        if sigma.ndim == 1 and len(sigma) != x.shape[0]:
            raise ValueError(f"{len(sigma)} noise levels for {x.shape[0]} volumes")
        self._counts["calls"] += 1
        if len(self.orientations) == 1:
            return self._orientation(x, sigma, self.orientations[0]).contiguous()
        total = torch.zeros_like(x)
        for orientation in self.orientations:
            total += self._orientation(x, sigma, orientation)
        # Mean, not sum: each orientation's 2D score estimates the same gradient, restricted to that
        # orientation's slice planes (sigma^2 times it is the step to that plane's denoised estimate,
        # Tweedie's formula). Their mean is again a denoiser's step; a sum would step three times too far.
        return total / len(self.orientations)

    def _orientation(self, x: torch.Tensor, sigma: torch.Tensor, orientation: str) -> torch.Tensor:
        order = _PERMUTATIONS[orientation]
        stacked = x.permute(order)  # (n, L, C, a, b)
        n, length = stacked.shape[:2]
        slices = stacked.reshape(n * length, *stacked.shape[2:])
        levels = sigma.repeat_interleave(length) if sigma.ndim == 1 else sigma
        outputs = []
        for start in range(0, len(slices), self.chunk_size):
            level = levels[start:start + self.chunk_size] if levels.ndim == 1 else levels
            outputs.append(self.score_fn(slices[start:start + self.chunk_size].contiguous(), level))
        self._counts["slices"] += len(slices)
        scores = torch.cat(outputs).reshape(stacked.shape)
        inverse = [order.index(k) for k in range(5)]
        return scores.permute(inverse)


def slice_score(model, *, periodic: bool = True, sampler=None, channels: int | None = None,
                chunk_size: int = 128, orientations=ORIENTATIONS) -> SliceScore:
    """A :class:`SliceScore` from a 2D score model (:class:`~lgtutorial.score.unet.ScoreUNet` or any module with
    ``.score(x, sigma)`` and ``settings.channels``) or a plain 2D score function.

    Args:
        model: the 2D score model (put in eval mode; left unchanged: copies are made) or a function.
        periodic: circular convolutions in a copy of the model, so that every slice, and so the
            volume, is periodic (modules only).
        sampler: a sampler name or configuration whose network options (channels-last, compile)
            apply (:func:`lgtutorial.sampling.samplers.prepare_model`); ``None``: the model's own ``.score``.
        channels: ``C`` of a plain function (modules: ``settings.channels``).
        chunk_size, orientations: see :class:`SliceScore`.
    """
    if isinstance(model, torch.nn.Module):
        network = model.eval()
        if periodic:
            network = with_circular_padding(network)
        channels = getattr(getattr(network, "settings", None), "channels", channels)
        score_fn = prepare_model(network, resolve_sampler(sampler)) if sampler is not None else network.score
    elif callable(model):
        if periodic:
            raise ValueError("periodic=True needs a torch.nn.Module whose convolutions can be made circular")
        score_fn = model
    else:
        raise TypeError(f"model must be a module with .score(x, sigma) or a callable, got {type(model).__name__}")
    if channels is None:
        raise ValueError("channels must be given for a plain score function")
    return SliceScore(score_fn, channels=channels, chunk_size=chunk_size, orientations=orientations)
