"""The hybrid generator: a GRF sample refined by annealed Langevin with a score model (Section 3.3).

Robertson et al. 2023, Fig. 1: the Gaussian random field fixes the 1- and 2-point statistics; the
score model, run from a low noise level ``sigma_c`` with the GRF sample as the starting iterate and
the volume-fraction posterior of Eq. (12) as its score, adds the local features. A periodic
embedding (or circular convolutions) keeps the periodic GRF sample periodic throughout.

The GRF start is segmented (volume-fraction preserving) for 2-phase models and, with the fast
samplers (``SamplerConfiguration.segment_start``), for any number of phases; otherwise the
continuous GRF output is refined. After the last level the iterate is clamped to ``[-3, 3]`` and
segmented by argmax (one-channel models: threshold 0.5). Why, and what the authors' target shift
(:data:`~lgtutorial.score.authors.VOLUME_FRACTION_SHIFTS`, carried by the loaded model) does: ``benchmarks/results/hybrid_notes.md``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from lgtutorial.grf.field import GaussianRandomField
from lgtutorial.grf.interpolation import statistics_row_for_shape
from lgtutorial.sampling.conditioning import likelihood_widths as default_likelihood_widths
from lgtutorial.sampling.conditioning import volume_fraction_posterior
from lgtutorial.sampling.integrators import (
    crop_embedding,
    interior_mask,
    periodic_embed,
    refresh_embedding,
    with_circular_padding,
)
from lgtutorial.sampling.samplers import (
    prepare_model,
    resolve_refinement,
    sampler_schedule,
)
from lgtutorial.sampling.samples import HybridSamples, degenerate_samples, finalize, redo_failed, run_batches
from lgtutorial.sampling.settings import RefinementOptions
from lgtutorial.sampling.sizes import STATE, MemoryEstimate, generation_memory
from lgtutorial.score.channels import from_model_channels, to_model_channels
from lgtutorial.score.schedules import N_LEVELS, SIGMA_MAX, SIGMA_MIN

__all__ = ["HybridGenerator"]


class HybridGenerator:
    """GRF-conditioned sampling with a score model (Section 3.3 and Eq. (12), Robertson et al. 2023).

    Args:
        field: the :class:`~lgtutorial.grf.field.GaussianRandomField` (2-D) that draws the starting iterates.
        score_model: a module with ``.score(x, sigma)`` (e.g. :class:`~lgtutorial.score.unet.ScoreUNet`;
            moved to ``device`` and put in eval mode) or a plain ``score_fn(x, sigma)``.
        sigmas: the model's training noise levels ``(L,)``; only their range is used. Default 20 -> 0.01.
        options: the :class:`~lgtutorial.sampling.settings.RefinementOptions` (sampler, levels,
            ``sigma_c``, step size, conditioning, shift, periodic frame, guard, batch size); a
            :class:`~lgtutorial.sampling.settings.HybridSettings` gives its refinement part. Default: their
            defaults. ``sigma_c=None`` samples the score model alone from noise at ``sigma_max`` over the
            whole schedule (the SBG baseline) with the sampler's from-noise variant
            (:func:`~lgtutorial.sampling.samplers.sampler_from_noise`). An unset step size is the sampler's,
            an unset volume-fraction shift what the model carries (its ``volume_fraction_shift``, set by
            the loader) for samplers that measure on the iterate, else 0.
        **changes: fields of the options to change, e.g. ``sampler="faithful", levels=200``.
        likelihood_widths: ``(sigma_mu start, end)``; default the authors' values for the estimate,
            scaled by the domain size.
        segment_grf: segment the GRF sample (volume-fraction preserving) before refinement;
            default: the sampler's ``segment_start`` (``"fast"`` and its variants: always), else as
            in the paper, yes for 2 phases and no for more.
        channels: channels of a plain score function (default 1 for 2 phases, else N).
        device: where to sample (default: the field's device); must be the field's device.
        oriented: an :class:`~lgtutorial.grf.oriented.OrientedLayer`: the segmented GRF starts get its laths
            painted into the colonies before refinement (this book's extension for lath microstructures).

    Raises:
        ValueError: a model whose channels do not fit the phases of the statistics, a domain the
            network cannot take (its sides, plus twice the padding, must be multiples of
            ``2**depth``), ``sigma_c`` outside the schedule, unknown options or sampler names.
    """

    def __init__(
        self,
        field: GaussianRandomField,
        score_model,
        options: RefinementOptions | None = None,
        *,
        sigmas: torch.Tensor | None = None,
        likelihood_widths: tuple[float, float] | None = None,
        segment_grf: bool | None = None,
        channels: int | None = None,
        device=None,
        oriented=None,
        **changes,
    ):
        options = RefinementOptions.of(options, **changes)
        self.options = options
        self._arguments = dict(sigmas=sigmas, likelihood_widths=likelihood_widths, segment_grf=segment_grf,
                               channels=channels, device=device, oriented=oriented)
        self.oriented = oriented
        self._score_model = score_model
        sigma_c, periodic = options.sigma_c, options.periodic
        self.guard = options.guard
        if not isinstance(field, GaussianRandomField) or len(field.shape) != 2:
            raise TypeError("field must be a 2-D GaussianRandomField")
        # sampler (from noise: its variant that can start there), step size, conditioning, shift, start rule
        vars(self).update(resolve_refinement(options, score_model, field.n_phases, segment_grf))
        self.field = field
        self.device = torch.device(device) if device is not None else field.device
        if self.device != field.device:
            raise ValueError(f"the field lives on {field.device} but sampling was asked on {self.device}")
        self.n_phases = field.n_phases
        self.padding = options.padding if periodic == "embedding" else 0
        self.periodic = periodic

        trained_top = getattr(score_model, "trained_sigma_max", None)
        if trained_top is not None and (sigma_c is None or sigma_c > float(trained_top) * 1.001):
            asked = "sampling from pure noise (sigma_c=None, the SBG baseline)" if sigma_c is None else (
                f"refinement from sigma_c={sigma_c}")
            raise ValueError(
                f"the score model was trained on noise levels up to sigma={float(trained_top):g} only (hybrid range), "
                f"but {asked} needs levels above that; use a full-range model (train_sigma_max=None) or a "
                f"sigma_c <= {float(trained_top):g}"
            )
        self.trained_sigma_max = trained_top
        if isinstance(score_model, torch.nn.Module):
            model = score_model.to(self.device).eval()
            if periodic == "circular":
                model = with_circular_padding(model)
            settings = getattr(model, "settings", None)
            self.channels = getattr(settings, "channels", channels)
            self.size_multiple = int(getattr(model, "size_multiple", 1))
            self.prior_score = prepare_model(model, self.sampler)
            self.model = model
        elif callable(score_model):
            if periodic == "circular":
                raise ValueError(
                    "periodic='circular' needs a torch.nn.Module whose convolutions can be switched"
                )
            self.channels, self.size_multiple = channels, 1
            self.prior_score, self.model = score_model, None
        else:
            raise TypeError(
                f"score_model must be a module with .score(x, sigma) or a callable, got {type(score_model).__name__}"
            )
        if self.channels is None:
            self.channels = 1 if self.n_phases == 2 else self.n_phases
        if not (self.channels == self.n_phases or (self.channels == 1 and self.n_phases == 2)):
            raise ValueError(
                f"the score model has {self.channels} channel(s) but the statistics describe {self.n_phases} phases; "
                "a 2-phase model has 1 channel and an N-phase model (N > 2) has N: use a model trained on this material"
            )
        height, width = field.shape
        side = (height + 2 * self.padding, width + 2 * self.padding)
        if self.padding > min(height, width):
            raise ValueError(f"the padding ({self.padding} px) may not exceed the domain {height}x{width}")
        if side[0] % self.size_multiple or side[1] % self.size_multiple:
            raise ValueError(
                f"the network needs sides divisible by 2**depth = {self.size_multiple}, but the domain {height}x{width}"
                f" with {self.padding} px of padding on each side is {side[0]}x{side[1]}; choose a size (or padding) "
                f"so that size + 2*padding is a multiple of {self.size_multiple}"
            )

        sigma_max, sigma_min = (SIGMA_MAX, SIGMA_MIN) if sigmas is None else (float(sigmas.max()), float(sigmas.min()))
        n_levels = options.levels or self.sampler.levels or (N_LEVELS if sigmas is None else len(sigmas))
        self.sigma_max, self.sigma_min, self.sigma_c = sigma_max, sigma_min, sigma_c
        self.sigmas = sampler_schedule(self.sampler, sigma_max, sigma_min, n_levels, sigma_c, device=self.device)
        self.likelihood_widths = likelihood_widths
        self.target_volume_fractions = field.target_volume_fractions.to(self.device)
        self._evaluations = 0

    @classmethod
    def memory_estimate(cls, shape, *, n_phases: int, channels: int, latent_channels: int, padding: int,
                        batch_size: int, n_samples: int) -> MemoryEstimate:
        """Peak memory of :meth:`from_statistics` on ``shape`` and :meth:`sample` (``return_grf``), from the sizes
        alone (:func:`~lgtutorial.sampling.sizes.generation_memory`; the network and the sampler's iterates
        on the domain embedded in ``padding`` px a side)."""
        height, width = (int(side) for side in shape)
        batch, embedded = min(batch_size, n_samples), (height + 2 * padding) * (width + 2 * padding)
        return generation_memory(pixels=height * width, n_phases=n_phases, channels=channels, batch=batch,
                                 n_samples=n_samples, latent_channels=latent_channels, network_pixels=batch * embedded,
                                 state_floats=STATE * channels * embedded)

    @classmethod
    def from_statistics(
        cls, statistics_row, score_model, options: RefinementOptions | None = None, *, shape=None,
        reference_phase: int = 0, device=None, **keywords
    ) -> HybridGenerator:
        """Build from a periodic statistics row ``(N, H, W)``; ``shape`` moves it to another grid
        (:func:`statistics_row_for_shape`). ``options`` and ``keywords`` go to the constructor."""
        import warnings

        from lgtutorial._checks import resolve_device

        row = torch.as_tensor(statistics_row, dtype=torch.float64)
        resized = shape is not None and tuple(shape) != tuple(row.shape[1:])
        if resized:
            row = statistics_row_for_shape(row, shape)
        with warnings.catch_warnings():
            if resized:  # the windowed row's spectrum is non-negative up to round-off
                warnings.filterwarnings("ignore", message="clipped")
            field = GaussianRandomField(row, reference_phase=reference_phase, device=resolve_device(device))
        return cls(field, score_model, options, **keywords)

    @classmethod
    def from_reference(
        cls, microstructure, score_model, options: RefinementOptions | None = None, *, shape=None,
        reference_phase: int = 0, device=None, **keywords
    ) -> HybridGenerator:
        """Build from one-hot reference microstructure(s) ``(n, N, H, W)`` (their periodic statistics)."""
        from lgtutorial.grf.field import statistics_row

        row = statistics_row(microstructure, reference_phase=reference_phase)
        return cls.from_statistics(
            row, score_model, options, shape=shape, reference_phase=reference_phase, device=device, **keywords
        )

    @property
    def shape(self) -> tuple[int, int]:
        """``(H, W)`` of the samples."""
        return tuple(self.field.shape)

    @property
    def evaluations_per_sample(self) -> int:
        """Score-model evaluations the sampler spends on one sample (``len(sigmas)`` for Langevin)."""
        return self.sampler.evaluations(len(self.sigmas))

    @property
    def evaluations(self) -> int:
        """Score-model evaluations spent so far through :meth:`score`, counted per sample (a batch of
        ``b`` iterates counts ``b``), those of the guard's faithful redos included. After drawing ``n``
        samples without redos it is ``n * evaluations_per_sample``: what the sampler really spent."""
        fallback = getattr(self, "_fallback", None)
        return self._evaluations + (fallback.evaluations if fallback is not None else 0)

    def _counted(self, score_fn: Callable) -> Callable:
        def counted(x: torch.Tensor, sigma) -> torch.Tensor:
            self._evaluations += x.shape[0]
            return score_fn(x, sigma)

        return counted

    def score(self) -> Callable:
        """The score function the sampler uses on the (embedded) domain: ``prior_score`` (the model's),
        wrapped into the volume-fraction posterior (Eq. (12)) when conditioning is on. Every call of
        the prior adds to :attr:`evaluations`."""
        prior = self._counted(self.prior_score)
        if not self.condition_volume_fraction:
            return prior
        target = to_model_channels(self.target_volume_fractions.view(1, -1, 1, 1), self.channels).flatten()
        target = (target + self.volume_fraction_shift).clamp(0.0, 1.0)
        mask = interior_mask(self.shape, self.padding, device=self.device) if self.padding else None
        widths = self.likelihood_widths or default_likelihood_widths(
            self.shape[0] * self.shape[1], estimate=self.volume_fraction_estimate
        )
        scale = self.sampler.likelihood_scale**-0.5  # the pull grows as 1 / sigma_mu^2
        return volume_fraction_posterior(
            prior,
            target,
            estimate=self.volume_fraction_estimate,
            sigma_max=self.sigma_max,
            sigma_min=self.sigma_min,
            widths=(widths[0] * scale, widths[1] * scale),
            mask=mask,
            measure_on=self.sampler.likelihood_on,
        )

    def starting_points(self, n_samples: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """Starting iterates in model channels ``(n, C, H, W)``: GRF samples, or noise when ``sigma_c`` is None."""
        if self.sigma_c is None:
            shape = (n_samples, self.channels, *self.shape)
            return self.sigma_max * torch.randn(shape, generator=generator, device=self.device)
        samples = self.field.sample(
            n_samples, generator=generator, segmentation="auto" if self.segment_grf or self.oriented else None
        )
        start = samples.segmented if self.segment_grf or self.oriented else samples.raw
        if self.oriented is not None:
            from lgtutorial.microstructure import labels_to_one_hot

            painted = self.oriented.paint(start.argmax(1), generator=generator)
            start = labels_to_one_hot(painted, n_phases=self.n_phases).to(start.dtype)
        return to_model_channels(start, self.channels)

    def refine(
        self,
        start: torch.Tensor,
        *,
        generator: torch.Generator | None = None,
        callback: Callable[[dict], None] | None = None,
    ) -> torch.Tensor:
        """Run the sampler on ``(n, C, H, W)`` starting iterates; return the last iterate (unclamped)."""
        if start.ndim != 4 or start.shape[1] != self.channels or tuple(start.shape[2:]) != self.shape:
            raise ValueError(
                f"expected starting iterates (n, {self.channels}, {self.shape[0]}, {self.shape[1]}), "
                f"got {tuple(start.shape)}"
            )
        x = periodic_embed(start.to(self.device), self.padding)
        project = (lambda y: refresh_embedding(y, self.padding)) if self.padding else None
        x = self.sampler.run(
            self.score(), x, self.sigmas, step_lr=self.step_lr, generator=generator, callback=callback,
            project=project,
        )
        return crop_embedding(x, self.padding)

    def sample(
        self,
        n_samples: int,
        *,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        batch_size: int | None = None,
        return_grf: bool = False,
        progress: bool = True,
        callback: Callable[[dict], None] | None = None,
    ) -> HybridSamples:
        """Draw ``n_samples`` hybrid microstructures, in batches of ``batch_size``.

        Args:
            n_samples: how many samples.
            seed: seed of a fresh ``torch.Generator`` on the device (ignored when ``generator`` is given).
            generator: a ``torch.Generator`` on the device, for GRF draws and Langevin noise.
            batch_size: samples refined at once (default: the options' ``batch_size``).
            return_grf: keep the starting GRF samples in the result.
            progress: show a tqdm progress bar over the score evaluations.
            callback: called after every step (one per score evaluation) with the sampler's dict
                (``"i", "sigma", "x", "step_size"``) plus ``"batch"``.

        The same seed and ``batch_size`` give the same samples; another ``batch_size`` draws the
        random numbers in another order and gives other (equally valid) samples.
        """
        def draw(size: int, generator: torch.Generator, step, first: int):
            start = self.starting_points(size, generator=generator)
            x = self.refine(start, generator=generator, callback=step)
            final = finalize(x.nan_to_num(0.0).clamp(-3.0, 3.0), self.n_phases)
            redone, failed = [], []
            if self.guard is not None and self.sigma_c is not None:
                x, final, redone, failed = redo_failed(self, start, x, final, generator)
            grf = from_model_channels(start, self.n_phases) if return_grf else None
            return final, x.nan_to_num(0.0).clamp(-3.0, 3.0), grf, [first + k for k in redone], [first + k for k in failed]

        batches = run_batches(draw, n_samples, self.options.batch_size if batch_size is None else batch_size,
                              device=self.device, seed=seed, generator=generator, progress=progress,
                              callback=callback, steps_per_batch=self.evaluations_per_sample,
                              description="hybrid sampling")
        finals, refined, starts, recovered, degenerate = (list(part) for part in zip(*batches))
        return HybridSamples(
            microstructures=torch.cat(finals),
            refined=torch.cat(refined),
            grf=torch.cat(starts) if return_grf else None,
            target_volume_fractions=self.target_volume_fractions,
            recovered=sum(recovered, []),
            degenerate=sum(degenerate, []),
        )

    def degenerate(self, x: torch.Tensor, final: torch.Tensor) -> torch.Tensor:
        """``(n,)`` True for samples that failed: a non-finite iterate, or a volume fraction off the
        target by more than ``guard`` (e.g. a collapse into one phase); see
        :func:`~lgtutorial.sampling.samples.degenerate_samples`."""
        return degenerate_samples(x, final, self.target_volume_fractions, self.guard)

    def fallback(self) -> HybridGenerator:
        """The generator that redoes failed samples: this one with the faithful sampler (the paper's
        small steps) and no guard; built once, on the first failure."""
        if getattr(self, "_fallback", None) is None:
            options = RefinementOptions.of(self.options, sampler="faithful", levels=None, step_lr=None, guard=None,
                                           volume_fraction_shift=self.volume_fraction_shift)
            self._fallback = HybridGenerator(self.field, self._score_model, options, **self._arguments)
        return self._fallback
