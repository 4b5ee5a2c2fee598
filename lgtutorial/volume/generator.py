"""3D hybrid generation from one 2D micrograph: a 3D GRF refined by a 2D score model on its slices.

Two layers, as in 2D (3D generation is future work in Robertson et al. 2023): a 3D multi-output GRF
(:class:`~lgtutorial.grf.field.GaussianRandomField` takes ``(N, D, H, W)`` rows) of statistics
extended under isotropy (:mod:`lgtutorial.volume.statistics`), refined from ``sigma_c`` by the 2D
score model on the volume's slices (:mod:`lgtutorial.volume.slice_score`), with no 3D training.
``"passes"`` (the default) refines with one orientation's slices at a time: xy first, then each
pass re-noises the segmented volume to ``sigma_pass`` (``ANNEALED_PASSES``: less each pass) and
refines it with the next orientation's (xz, yz, again for each round); ``"mean"`` averages the three
orientations' scores in every evaluation (volume fraction measured on the iterate). With
``final_sigma=FINAL_SIGMA`` the volume ends with one Tweedie step from that level under the mean of
the three slice scores, averaged over ``final_draws`` noise draws. The samplers and the posterior are
the 2D hybrid's, on the volume viewed as ``(n, C, D H, W)``: one posterior for the whole volume.
What each scheme and step measured: ``benchmarks/results/volume_notes.md``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch

from lgtutorial.grf.field import GaussianRandomField
from lgtutorial.sampling.conditioning import likelihood_widths as default_likelihood_widths
from lgtutorial.sampling.conditioning import volume_fraction_posterior
from lgtutorial.sampling.samplers import (
    resolve_refinement,
    sampler_schedule,
)
from lgtutorial.sampling.samples import run_batches
from lgtutorial.sampling.settings import RefinementOptions
from lgtutorial.sampling.sizes import STATISTICS_BYTES, VOLUME_STATE, MemoryEstimate, generation_memory
from lgtutorial.score.channels import from_model_channels, to_model_channels
from lgtutorial.score.schedules import N_LEVELS, SIGMA_MAX, SIGMA_MIN
from lgtutorial.statistics.two_point import volume_fractions
from lgtutorial.volume.settings import FINAL_DRAWS, SCHEMES, VolumeSettings
from lgtutorial.volume.slice_score import finalize_volumes, slice_score
from lgtutorial.volume.statistics import ORIENTATIONS, VolumeStatistics, isotropic_statistics

__all__ = ["VolumeSamples", "VolumeGenerator", "WIDTH_VOXELS"]

#: The volume-fraction likelihood's default widths narrow as ``1/sqrt(voxels)`` up to this many voxels
#: (64^3) and are held above it. Narrowed further, at 128^3, the first pass's volume-fraction pull
#: overshot from step to step (the phase-1 fraction of the iterate 0.34 -> 0.63 -> 0.01 -> 0.11 ...) and
#: the volume collapsed into one phase; twice as wide it settled, and with the widths held at 64^3 a
#: 128^3 volume came out at a phase-1 fraction of 0.367 (target 0.373), its slices' chord distance 0.361
#: (GRF) -> 0.140 (``benchmarks/results/volume_cost_cpu.md``). Why the loop is less stable on 128-px
#: slices than on 64-px ones is not yet understood.
WIDTH_VOXELS = 64**3


@dataclass
class VolumeSamples:
    """Output of :meth:`VolumeGenerator.sample`.

    Attributes:
        volumes: one-hot ``(n, N, D, H, W)`` final volumes.
        grf: the starting GRF volumes as phases ``(n, N, D, H, W)`` (segmented for 2 phases,
            continuous otherwise), or ``None`` unless asked for.
        target_volume_fractions: ``(N,)`` of the statistics.
        evaluations: score evaluations spent (calls of the slice score; a ``"mean"`` call runs all
            three orientations' slices, a ``"passes"`` call one orientation's).
        slice_evaluations: 2D slices that went through the network (the cost).
        degenerate: indices of volumes whose iterate was not finite or whose volume fraction missed
            the target by more than the generator's ``guard``.
    """

    volumes: torch.Tensor
    grf: torch.Tensor | None
    target_volume_fractions: torch.Tensor
    evaluations: int
    slice_evaluations: int
    degenerate: list

    @property
    def achieved_volume_fractions(self) -> torch.Tensor:
        """``(n, N)`` volume fractions of the final volumes."""
        return volume_fractions(self.volumes)

    @property
    def grf_volume_fractions(self) -> torch.Tensor | None:
        """``(n, N)`` volume fractions of the GRF starts (``None`` when they were not kept)."""
        return None if self.grf is None else volume_fractions(self.grf)

    def report(self) -> str:
        """One line per phase: target, GRF start and final volume fractions (mean +- std), then the cost."""
        def spread(column):
            return f"{float(column.mean()):.4f} +- {float(column.std()) if len(column) > 1 else 0.0:.4f}"

        achieved, starts = self.achieved_volume_fractions.double().cpu(), self.grf_volume_fractions
        lines = ["phase  target   GRF start          refined"]
        for n, target in enumerate(self.target_volume_fractions.tolist()):
            start = spread(starts[:, n].double().cpu()) if starts is not None else "-" * 15
            lines.append(f"{n:>5}  {target:.4f}   {start}   {spread(achieved[:, n])}")
        lines.append(f"{self.evaluations} score evaluations, {self.slice_evaluations} slices through the network")
        if self.degenerate:
            lines.append(f"DEGENERATE (non-finite or volume fraction far off the target): volumes {self.degenerate}")
        return "\n".join(lines)


class VolumeGenerator:
    """3D GRF volumes refined by a 2D score model on their slices (the 2D hybrid's API, one axis more).

    Args:
        field: a 3D :class:`~lgtutorial.grf.field.GaussianRandomField` (e.g. of
            :func:`~lgtutorial.volume.statistics.isotropic_statistics`).
        score_model: the 2D score model (a :class:`~lgtutorial.score.unet.ScoreUNet`, made periodic by
            circular convolutions in a copy) or a plain 2D ``score_fn(x, sigma)`` (then ``channels``).
        sigmas: the model's training noise levels; only their range is used (default 20 -> 0.01).
        options: the :class:`~lgtutorial.sampling.settings.RefinementOptions` shared with the 2D hybrid (its
            sampler runs every pass; ``sigma_c`` must be a level; ``periodic`` and ``padding`` do not apply:
            slices are made periodic by circular convolutions); ``**changes`` change some of them.
        scheme: ``"passes"`` or ``"mean"`` (module docstring).
        rounds: ``"passes"`` only: how many times the three orientations are visited (3 passes each;
            one round costs about 55 % of two, for chord distances about 20 % further from the micrograph's).
        sigma_pass: ``"passes"`` only: where the passes after the first start; or a sequence of levels,
            one per later pass (orientations cycling xz, yz, xy, ...; ``rounds`` is then not used), e.g.
            :data:`ANNEALED_PASSES`: each pass re-noises less than the one before, so the orientations
            settle on one volume.
        likelihood_widths: ``(sigma_mu start, end)``; default the authors', scaled to ``D H W`` voxels
            up to :data:`WIDTH_VOXELS` and held there above.
        segment_grf: segment the GRF start (volume-fraction preserving); default as in 2D, the
            sampler's ``segment_start`` (the fast samplers: always), else for 2 phases only.
        channels: channels of a plain score function.
        chunk_size: 2D slices per network call.
        statistics: the :class:`~lgtutorial.volume.statistics.VolumeStatistics` the field came from, if any.
        final_sigma: end with one denoising step of all three orientations at once from this level
            (``None``: no such step), e.g. :data:`FINAL_SIGMA` after :data:`ANNEALED_PASSES`: the segmented
            volume re-noised to it, the Tweedie estimate under the mean of the three slice scores (with the
            volume-fraction posterior), averaged over ``final_draws`` noise draws, segmented.
        final_draws: noise draws of the final step (one evaluation of every slice in all three orientations each).

    Raises:
        ValueError: a field that is not 3D, channels that do not fit the phases, sides the network
            cannot take (each must be a multiple of ``2**depth``), unknown options.
    """

    def __init__(self, field: GaussianRandomField, score_model, options: RefinementOptions | None = None, *,
                 sigmas: torch.Tensor | None = None, scheme: str = VolumeSettings.scheme,
                 rounds: int = VolumeSettings.rounds, sigma_pass: float | tuple = VolumeSettings.sigma_pass,
                 likelihood_widths: tuple[float, float] | None = None, segment_grf: bool | None = None,
                 channels: int | None = None, chunk_size: int = 128, statistics: VolumeStatistics | None = None,
                 final_sigma: float | None = None, final_draws: int = FINAL_DRAWS, **changes):
        options = RefinementOptions.of(options, **changes)
        self.options = options
        sigma_c, guard = options.sigma_c, options.guard
        if options.periodic == "none":
            raise ValueError("periodic='none' does not apply to volumes: they are periodic along all three axes "
                             "(circular convolutions on every slice)")
        if not isinstance(field, GaussianRandomField) or len(field.shape) != 3:
            raise TypeError("field must be a 3-D GaussianRandomField (a statistics row of shape (N, D, H, W))")
        if scheme not in SCHEMES:
            raise ValueError(f"scheme must be one of {SCHEMES}, got {scheme!r}")
        if not isinstance(rounds, int) or rounds < 1:
            raise ValueError(f"rounds must be a positive integer, got {rounds!r}")
        if isinstance(sigma_pass, (int, float)):
            pass_levels = (float(sigma_pass),) * (3 * rounds - 1)
        else:  # one level per later pass: the sequence sets the passes, rounds is not used
            pass_levels = tuple(float(v) for v in sigma_pass)
            if not pass_levels:
                raise ValueError("sigma_pass: expected a number or a non-empty sequence of noise levels")
        if sigma_c is None:
            raise ValueError("sigma_c=None (sampling from noise) is not offered for volumes; give a starting level")
        if final_sigma is not None and not (isinstance(final_sigma, (int, float)) and final_sigma > 0):
            raise ValueError(f"final_sigma must be None or a positive noise level, got {final_sigma!r}")
        if not isinstance(final_draws, int) or final_draws < 1:
            raise ValueError(f"final_draws must be a positive integer, got {final_draws!r}")
        self.field, self.statistics, self.device = field, statistics, field.device
        self.n_phases, self.guard, self.scheme = field.n_phases, guard, scheme
        vars(self).update(resolve_refinement(options, score_model, field.n_phases, segment_grf))
        if scheme == "mean":  # on the denoised estimate the pull overshoots (benchmarks/results/volume_notes.md)
            self.sampler = replace(self.sampler, likelihood_on="iterate")
        trained_top = getattr(score_model, "trained_sigma_max", None)
        if trained_top is not None and max(sigma_c, *pass_levels, final_sigma or 0.0) > float(trained_top) * 1.001:
            raise ValueError(f"the score model was trained on noise levels up to sigma={float(trained_top):g} only; "
                             f"sigma_c, sigma_pass and final_sigma must not exceed it (got {sigma_c}, {sigma_pass}, "
                             f"{final_sigma})")
        module = isinstance(score_model, torch.nn.Module)
        if module:
            score_model = score_model.to(self.device)
        self.size_multiple = int(getattr(score_model, "size_multiple", 1)) if module else 1
        self.score_fn = slice_score(score_model, periodic=module, sampler=self.sampler if module else None,
                                    channels=channels or (1 if self.n_phases == 2 else self.n_phases),
                                    chunk_size=chunk_size)
        self.channels = self.score_fn.channels
        if not (self.channels == self.n_phases or (self.channels == 1 and self.n_phases == 2)):
            raise ValueError(
                f"the score model has {self.channels} channel(s) but the statistics describe {self.n_phases} phases; "
                "a 2-phase model has 1 channel and an N-phase model (N > 2) has N: use a model trained on this material")
        if any(side % self.size_multiple for side in field.shape):
            raise ValueError(f"every side of the volume must be a multiple of 2**depth = {self.size_multiple} (each "
                             f"slice goes through the network); got {'x'.join(map(str, field.shape))}")
        sigma_max, sigma_min = (SIGMA_MAX, SIGMA_MIN) if sigmas is None else (float(sigmas.max()), float(sigmas.min()))
        if not all(sigma_min < level <= sigma_max for level in pass_levels):
            raise ValueError(f"sigma_pass must lie in the model's range ({sigma_min:g}, {sigma_max:g}], got {sigma_pass}")
        n_levels = options.levels or self.sampler.levels or (N_LEVELS if sigmas is None else len(sigmas))
        self.sigma_max, self.sigma_min, self.sigma_c, self.sigma_pass = sigma_max, sigma_min, sigma_c, sigma_pass
        self.sigmas = sampler_schedule(self.sampler, sigma_max, sigma_min, n_levels, sigma_c, device=self.device)
        # one schedule per later pass, from its own level down
        self.pass_schedules = [sampler_schedule(self.sampler, sigma_max, sigma_min, n_levels, level, device=self.device)
                               for level in pass_levels] if scheme == "passes" else []
        self.pass_sampler = replace(self.sampler, start_noise=1.0)  # re-noise the previous pass's volume to sigma_pass
        self.passes = tuple(ORIENTATIONS[k % 3] for k in range(1 + len(pass_levels))) if scheme == "passes" else ("all",)
        if final_sigma is not None and not sigma_min < final_sigma <= sigma_max:
            raise ValueError(f"final_sigma must lie in the model's range ({sigma_min:g}, {sigma_max:g}], got {final_sigma}")
        self.final_sigma, self.final_draws = (None if final_sigma is None else float(final_sigma)), final_draws
        self.likelihood_widths = likelihood_widths
        self.target_volume_fractions = field.target_volume_fractions.to(self.device)

    @classmethod
    def memory_estimate(cls, shape, *, n_phases: int, channels: int, latent_channels: int, batch_size: int,
                        n_samples: int, chunk_size: int = 128) -> MemoryEstimate:
        """Peak memory of :meth:`from_micrograph` on ``shape`` and :meth:`sample` (``return_grf``), from the sizes
        alone (:func:`~lgtutorial.sampling.sizes.generation_memory`; the 3D statistics, ``chunk_size`` slices of the
        largest face through the network at once, the volumes' copies a slice-score evaluation holds)."""
        voxels, batch = math.prod(shape), min(batch_size, n_samples)
        slices = min(chunk_size, batch * max(shape))
        return generation_memory(pixels=voxels, n_phases=n_phases, channels=channels, batch=batch, n_samples=n_samples,
                                 latent_channels=latent_channels, network_pixels=slices * math.prod(sorted(shape)[1:]),
                                 state_floats=VOLUME_STATE * channels * voxels,
                                 statistics=STATISTICS_BYTES * n_phases**2 * voxels)

    @classmethod
    def from_statistics(cls, statistics, score_model, options: RefinementOptions | None = None, *,
                        reference_phase: int = 0, device=None, **keywords) -> VolumeGenerator:
        """Build from a 3D statistics row ``(N, D, H, W)`` or a :class:`VolumeStatistics`; ``options`` and
        ``keywords`` go to the constructor."""
        from lgtutorial._checks import resolve_device

        if isinstance(statistics, VolumeStatistics):
            keywords.setdefault("statistics", statistics)
            reference_phase, statistics = statistics.reference_phase, statistics.row
        row = torch.as_tensor(statistics, dtype=torch.float64)
        if row.ndim != 4:
            raise ValueError(f"expected a 3D statistics row (n_phases, D, H, W); got shape {tuple(row.shape)}")
        field = GaussianRandomField(row, reference_phase=reference_phase, device=resolve_device(device))
        return cls(field, score_model, options, **keywords)

    @classmethod
    def from_micrograph(cls, micrograph, score_model, options: RefinementOptions | None = None, *, shape,
                        reference_phase: int = 0, device=None, **keywords) -> VolumeGenerator:
        """Build from a one-hot 2D micrograph ``(n, N, H, W)`` under isotropy
        (:func:`~lgtutorial.volume.statistics.isotropic_statistics`) on a ``(D, H, W)`` grid."""
        statistics = isotropic_statistics(micrograph, shape, reference_phase=reference_phase)
        return cls.from_statistics(statistics, score_model, options, device=device, **keywords)

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(D, H, W)`` of the volumes."""
        return tuple(self.field.shape)

    @property
    def evaluations_per_sample(self) -> int:
        """Score evaluations per refinement: the first pass's, plus every later pass's."""
        first = self.sampler.evaluations(len(self.sigmas))
        final = 0 if self.final_sigma is None else self.final_draws
        return first + sum(self.pass_sampler.evaluations(len(levels)) for levels in self.pass_schedules) + final

    @property
    def slices_per_sample(self) -> int:
        """2D slices through the network per volume (``D + H + W`` per ``"mean"`` evaluation)."""
        lengths = dict(zip(ORIENTATIONS, (self.shape[0], self.shape[1], self.shape[2])))
        if self.scheme == "mean":
            return self.evaluations_per_sample * sum(lengths.values())
        first = self.sampler.evaluations(len(self.sigmas)) * lengths[self.passes[0]]
        final = 0 if self.final_sigma is None else self.final_draws * sum(lengths.values())
        return first + final + sum(self.pass_sampler.evaluations(len(levels)) * lengths[o]
                                   for levels, o in zip(self.pass_schedules, self.passes[1:]))

    @property
    def evaluations(self) -> int:
        """Score evaluations done so far by this generator (all batches, all calls)."""
        return self.score_fn.calls

    def score(self, orientations=ORIENTATIONS) -> Callable:
        """The score the sampler runs on ``(n, C, D, H, W)``: the slice score on ``orientations``, wrapped
        into the volume-fraction posterior (Eq. (12)) over every voxel when conditioning is on."""
        prior_3d = self.score_fn.only(*orientations)
        if not self.condition_volume_fraction:
            return prior_3d
        target = to_model_channels(self.target_volume_fractions.view(1, -1, 1, 1), self.channels).flatten()
        target = (target + self.volume_fraction_shift).clamp(0.0, 1.0)
        widths = self.likelihood_widths or default_likelihood_widths(min(math.prod(self.shape), WIDTH_VOXELS),
                                                                     estimate=self.volume_fraction_estimate)
        scale = self.sampler.likelihood_scale**-0.5

        # the posterior measures volume fractions over the last two axes: it sees the volumes as
        # (n, C, D H, W), so that they run over every voxel; the slice score sees them as volumes again
        def prior(x: torch.Tensor, sigma) -> torch.Tensor:
            return prior_3d(x.view(*x.shape[:2], *self.shape), sigma).view(x.shape)

        posterior = volume_fraction_posterior(
            prior, target, estimate=self.volume_fraction_estimate, sigma_max=self.sigma_max,
            sigma_min=self.sigma_min, widths=(widths[0] * scale, widths[1] * scale),
            measure_on=self.sampler.likelihood_on)

        def score(x: torch.Tensor, sigma) -> torch.Tensor:
            return posterior(x.reshape(*x.shape[:2], -1, x.shape[-1]), sigma).view(x.shape)

        return score

    def starting_points(self, n_samples: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """GRF volumes in model channels ``(n, C, D, H, W)`` (segmented for 2 phases)."""
        samples = self.field.sample(n_samples, generator=generator, segmentation="auto" if self.segment_grf else None)
        return to_model_channels(samples.segmented if self.segment_grf else samples.raw, self.channels)

    def refine(self, start: torch.Tensor, *, generator: torch.Generator | None = None,
               callback: Callable[[dict], None] | None = None) -> torch.Tensor:
        """Run the scheme on ``(n, C, D, H, W)`` starting iterates; return the last iterate (unclamped).

        ``callback`` gets the sampler's dict plus ``"pass"`` (index) and ``"orientation"``.
        """
        if start.ndim != 5 or start.shape[1] != self.channels or tuple(start.shape[2:]) != self.shape:
            raise ValueError(f"expected starting volumes (n, {self.channels}, {', '.join(map(str, self.shape))}), "
                             f"got {tuple(start.shape)}")
        x = start.to(self.device)
        for index, orientation in enumerate(self.passes):
            def step(info: dict, index=index, orientation=orientation) -> None:
                if callback is not None:
                    callback({**info, "pass": index, "orientation": orientation})

            score = self.score(ORIENTATIONS if orientation == "all" else (orientation,))
            if index == 0:
                x = self.sampler.run(score, x, self.sigmas, step_lr=self.step_lr, generator=generator, callback=step)
            else:  # from the segmented previous pass, re-noised to sigma_pass by the sampler's start_noise
                x = self.pass_sampler.run(score, self._segmented(x), self.pass_schedules[index - 1], step_lr=self.step_lr,
                                          generator=generator, callback=step)
        if self.final_sigma is not None:
            x = self._final_denoise(x, generator=generator, callback=callback)
        return x

    def _segmented(self, x: torch.Tensor) -> torch.Tensor:
        """The iterate segmented (non-finite values as 0), back in model channels: where a later pass or
        the final step re-noises from."""
        return to_model_channels(finalize_volumes(x.nan_to_num(0.0), self.n_phases), self.channels)

    @torch.no_grad()
    def _final_denoise(self, x: torch.Tensor, *, generator=None, callback=None) -> torch.Tensor:
        """One denoising step of all three orientations at once: the segmented volume re-noised to
        ``final_sigma``, the Tweedie estimate ``x + sigma^2 score(x)`` under the mean of the three
        orientations' scores (with the volume-fraction posterior), averaged over ``final_draws`` noise draws.

        Where the last passes left a boundary voxel that one orientation's slices keep and another's
        drop (a one-voxel sliver seen across the slices), the orientations' mean decides it.
        """
        segmented = self._segmented(x)
        score = self.score(ORIENTATIONS)
        sigma = torch.tensor(self.final_sigma, dtype=segmented.dtype, device=segmented.device)
        estimate = torch.zeros_like(segmented)
        for draw in range(self.final_draws):
            noise = torch.randn(segmented.shape, generator=generator, device=segmented.device, dtype=segmented.dtype)
            noisy = segmented + sigma * noise
            estimate += noisy + sigma**2 * score(noisy, sigma)
            if callback is not None:
                callback({"sigma": float(sigma), "pass": len(self.passes), "orientation": "all", "draw": draw})
        return estimate / self.final_draws

    def sample(self, n_samples: int, *, seed: int | None = None, generator: torch.Generator | None = None,
               batch_size: int | None = None, return_grf: bool = False, progress: bool = True,
               callback: Callable[[dict], None] | None = None) -> VolumeSamples:
        """Draw ``n_samples`` refined volumes, ``batch_size`` at a time.

        Args:
            n_samples: how many volumes.
            seed: seed of a fresh ``torch.Generator`` on the device (ignored when ``generator`` is given).
            generator: for the GRF draws and the sampler's noise.
            batch_size: volumes refined at once (default: the options' ``batch_size``).
            return_grf: keep the GRF starts.
            progress: a tqdm bar over the score evaluations.
            callback: called after every step with the sampler's dict plus ``"pass"``,
                ``"orientation"`` and ``"batch"``.
        """
        calls, slices = self.score_fn.calls, self.score_fn.slices

        def draw(size: int, generator: torch.Generator, step, first: int):
            start = self.starting_points(size, generator=generator)
            x = self.refine(start, generator=generator, callback=step)
            broken = ~torch.isfinite(x).flatten(1).all(dim=1)
            final = finalize_volumes(x.nan_to_num(0.0), self.n_phases)
            if self.guard is not None:
                error = (volume_fractions(final) - self.target_volume_fractions.to(final.dtype)).abs().amax(1)
                broken |= error > self.guard
            grf = from_model_channels(start, self.n_phases) if return_grf else None
            return final, grf, [first + k for k in broken.nonzero().flatten().tolist()]

        batches = run_batches(draw, n_samples, self.options.batch_size if batch_size is None else batch_size,
                              device=self.device, seed=seed, generator=generator, progress=progress,
                              callback=callback, steps_per_batch=self.evaluations_per_sample,
                              description="volume sampling")
        finals, starts, degenerate = (list(part) for part in zip(*batches))
        degenerate = sum(degenerate, [])
        return VolumeSamples(volumes=torch.cat(finals), grf=torch.cat(starts) if return_grf else None,
                             target_volume_fractions=self.target_volume_fractions,
                             evaluations=self.score_fn.calls - calls, slice_evaluations=self.score_fn.slices - slices,
                             degenerate=degenerate)
