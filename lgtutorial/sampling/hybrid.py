"""The hybrid generator: a GRF sample refined by annealed Langevin with a score model (Section 3.3).

Robertson et al. 2023, Fig. 1: the Gaussian random field fixes the 1- and 2-point statistics; the
score model, run from a low noise level ``sigma_c`` with the GRF sample as the starting iterate and
the volume-fraction posterior of Eq. (12) as its score, adds the local features. A periodic
embedding (or circular convolutions) keeps the periodic GRF sample periodic throughout.

The paper segments the GRF sample (volume-fraction preserving) before refinement for 2-phase models
and refines the continuous GRF output for N > 2 phases; the fast samplers segment it for any number
of phases (``SamplerConfiguration.segment_start``: from the continuous start their volume-fraction
pull tipped 3-phase samples into one phase). After the last level the iterate is clamped to
``[-3, 3]`` and segmented by argmax (one-channel models: threshold 0.5).

:class:`HybridSamples`, :func:`finalize` and the collapse guard live in :mod:`lgtutorial.sampling.samples`,
:func:`statistics_row_for_shape` in :mod:`lgtutorial.grf.interpolation` and :func:`load_score_model` in
:mod:`lgtutorial.score.registry`; all are re-exported here.

The authors' sampling script raises the likelihood's target by 0.0073 for their case-study-1 model
(:data:`VOLUME_FRACTION_SHIFTS`). Without it, 256 x 256 hybrid samples of the nbsa-proxy statistics
end about 0.008 below the target volume fraction; with it, within 0.001.
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
    DEFAULT_SAMPLER,
    SamplerConfiguration,
    default_volume_fraction_shift,
    prepare_model,
    resolve_sampler,
    sampler_schedule,
)
from lgtutorial.sampling.samples import HybridSamples, batch_sizes, degenerate_samples, finalize, redo_failed
from lgtutorial.score.channels import from_model_channels, to_model_channels
from lgtutorial.score.schedules import N_LEVELS, SIGMA_C, SIGMA_MAX, SIGMA_MIN

__all__ = ["HybridGenerator", "generator_options"]

PERIODIC_MODES = ("embedding", "circular", "none")

def generator_options(settings, model_name) -> dict:
    """:class:`HybridGenerator` keywords from :class:`~lgtutorial.sampling.settings.HybridSettings` (``lgtutorial
    generate``, and a sweep design's ``sampler`` block through ``SamplerSettings.hybrid_settings()``):
    the sampler and its schedule, the conditioning, the periodic frame and the guard. An unset
    ``volume_fraction_shift`` is the model's default under that sampler (:func:`default_volume_fraction_shift`).
    """
    shift = settings.volume_fraction_shift
    return dict(
        sampler=settings.sampler, n_levels=settings.levels, sigma_c=settings.sigma_c, step_lr=settings.step_lr,
        condition_volume_fraction=settings.condition_volume_fraction,
        volume_fraction_estimate=settings.volume_fraction_estimate,
        volume_fraction_shift=default_volume_fraction_shift(model_name, settings.sampler) if shift is None else shift,
        periodic=settings.periodic, padding=settings.padding, guard=settings.guard,
    )


class HybridGenerator:
    """GRF-conditioned sampling with a score model (Section 3.3 and Eq. (12), Robertson et al. 2023).

    Args:
        field: the :class:`~lgtutorial.grf.field.GaussianRandomField` (2-D) that draws the starting iterates.
        score_model: a module with ``.score(x, sigma)`` (e.g. :class:`~lgtutorial.score.unet.ScoreUNet`;
            moved to ``device`` and put in eval mode) or a plain ``score_fn(x, sigma)``.
        sigmas: the model's training noise levels ``(L,)``; only their range is used. Default 20 -> 0.01.
        sampler: ``"fast"`` (the default, :data:`~lgtutorial.sampling.samplers.DEFAULT_SAMPLER`: reverse-SDE
            predictor-corrector on a coarse schedule, 49 evaluations per 2-phase sample), ``"faithful"``
            (the paper's annealed Langevin, 568), ``"fast-compiled"`` or a
            :class:`~lgtutorial.sampling.samplers.SamplerConfiguration`; see :data:`lgtutorial.sampling.samplers.SAMPLERS`
            (:func:`lgtutorial.sampling.samplers.evaluations_at` gives each one's count).
        n_levels: levels of the geometric schedule over that range at sampling time (default: the
            sampler's; for ``"faithful"`` ``L``, 1000 for the paper's models); those from ``sigma_c``
            down are run. Fewer levels give cheaper, coarser runs.
        sigma_c: noise level at which refinement starts (0.75 in the paper); ``None`` samples the
            score model alone from noise at ``sigma_max`` over the whole schedule (the SBG baseline).
        step_lr: base Langevin step size, ``eps_i = step_lr (sigma_i / sigma_L)^2`` (default: the
            sampler's, 2e-5; Langevin samplers only).
        condition_volume_fraction: use the volume-fraction posterior score (Eq. (12)).
        volume_fraction_estimate: ``"segmented"`` or ``"mean"`` (see :mod:`lgtutorial.sampling.conditioning`).
        likelihood_widths: ``(sigma_mu start, end)``; default the authors' values for the estimate,
            scaled by the domain size.
        volume_fraction_shift: added to every channel's target in the likelihood only (the authors
            use 0.0073 with their case-study-1 model, see ``VOLUME_FRACTION_SHIFTS``); reported
            targets are unchanged.
        periodic: ``"embedding"`` (periodic frame of ``padding`` pixels, re-copied after every step),
            ``"circular"`` (circular convolutions in a copy of the model) or ``"none"``.
        padding: width of the periodic embedding in pixels.
        segment_grf: segment the GRF sample (volume-fraction preserving) before refinement;
            default: the sampler's ``segment_start`` (``"fast"`` and its variants: always), else as
            in the paper, yes for 2 phases and no for more.
        channels: channels of a plain score function (default 1 for 2 phases, else N).
        device: where to sample (default: the field's device); must be the field's device.
        guard: a sample whose volume fraction misses the target by more than this (a collapse into
            one phase, say) or whose iterate is not finite is redone with the ``"faithful"`` sampler
            from the same GRF start; what still fails is listed in ``HybridSamples.degenerate``.
            ``None`` turns the check off (it never applies to sampling from noise).

    Raises:
        ValueError: a model whose channels do not fit the phases of the statistics, a domain the
            network cannot take (its sides, plus twice the padding, must be multiples of
            ``2**depth``), ``sigma_c`` outside the schedule, unknown options or sampler names.
    """

    def __init__(
        self,
        field: GaussianRandomField,
        score_model,
        *,
        sigmas: torch.Tensor | None = None,
        sampler: str | SamplerConfiguration = DEFAULT_SAMPLER,
        n_levels: int | None = None,
        sigma_c: float | None = SIGMA_C,
        step_lr: float | None = None,
        condition_volume_fraction: bool = True,
        volume_fraction_estimate: str = "segmented",
        likelihood_widths: tuple[float, float] | None = None,
        volume_fraction_shift: float = 0.0,
        periodic: str = "embedding",
        padding: int = 16,
        segment_grf: bool | None = None,
        channels: int | None = None,
        device=None,
        guard: float | None = 0.1,
    ):
        self._arguments = {k: v for k, v in locals().items() if k not in ("self", "field", "score_model", "__class__")}
        self._score_model = score_model
        if guard is not None and not (isinstance(guard, (int, float)) and 0 < guard <= 1):
            raise ValueError(f"guard must be None or a volume-fraction error in (0, 1], got {guard!r}")
        self.guard = guard
        if not isinstance(field, GaussianRandomField) or len(field.shape) != 2:
            raise TypeError("field must be a 2-D GaussianRandomField")
        self.sampler = resolve_sampler(sampler)
        self.sampler_name = sampler if isinstance(sampler, str) else "custom"
        self.field = field
        self.device = torch.device(device) if device is not None else field.device
        if self.device != field.device:
            raise ValueError(f"the field lives on {field.device} but sampling was asked on {self.device}")
        self.n_phases = field.n_phases
        if periodic not in PERIODIC_MODES:
            raise ValueError(f"periodic must be one of {PERIODIC_MODES}, got {periodic!r}")
        if volume_fraction_estimate not in ("segmented", "mean"):
            raise ValueError(
                f"volume_fraction_estimate must be 'segmented' or 'mean', got {volume_fraction_estimate!r}"
            )
        if not isinstance(padding, int) or padding < 0:
            raise ValueError(f"padding must be a non-negative integer, got {padding!r}")
        self.padding = padding if periodic == "embedding" else 0
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
        if n_levels is None:
            n_levels = self.sampler.levels or (N_LEVELS if sigmas is None else len(sigmas))
        if not isinstance(n_levels, int) or n_levels < 2:
            raise ValueError(f"n_levels must be an integer >= 2, got {n_levels!r}")
        self.sigma_max, self.sigma_min, self.sigma_c = sigma_max, sigma_min, sigma_c
        self.sigmas = sampler_schedule(self.sampler, sigma_max, sigma_min, n_levels, sigma_c, device=self.device)
        self.step_lr = self.sampler.step_lr if step_lr is None else step_lr
        self.condition_volume_fraction = condition_volume_fraction
        self.volume_fraction_estimate = volume_fraction_estimate
        self.likelihood_widths = likelihood_widths
        self.volume_fraction_shift = float(volume_fraction_shift)
        self.segment_grf = self.sampler.segments_start(self.n_phases) if segment_grf is None else bool(segment_grf)
        self.target_volume_fractions = field.target_volume_fractions.to(self.device)
        self._evaluations = 0

    @classmethod
    def from_statistics(
        cls, statistics_row, score_model, *, shape=None, reference_phase: int = 0, device=None, **options
    ) -> HybridGenerator:
        """Build from a periodic statistics row ``(N, H, W)``; ``shape`` moves it to another grid
        (:func:`statistics_row_for_shape`). ``options`` go to the constructor."""
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
        return cls(field, score_model, **options)

    @classmethod
    def from_reference(
        cls, microstructure, score_model, *, shape=None, reference_phase: int = 0, device=None, **options
    ) -> HybridGenerator:
        """Build from one-hot reference microstructure(s) ``(n, N, H, W)`` (their periodic statistics)."""
        from lgtutorial.grf.field import statistics_row

        row = statistics_row(microstructure, reference_phase=reference_phase)
        return cls.from_statistics(
            row, score_model, shape=shape, reference_phase=reference_phase, device=device, **options
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
            n_samples, generator=generator, segmentation="auto" if self.segment_grf else None
        )
        start = samples.segmented if self.segment_grf else samples.raw
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
        batch_size: int | None = 8,
        return_grf: bool = False,
        progress: bool = True,
        callback: Callable[[dict], None] | None = None,
    ) -> HybridSamples:
        """Draw ``n_samples`` hybrid microstructures, in batches of ``batch_size``.

        Args:
            n_samples: how many samples.
            seed: seed of a fresh ``torch.Generator`` on the device (ignored when ``generator`` is given).
            generator: a ``torch.Generator`` on the device, for GRF draws and Langevin noise.
            batch_size: samples refined at once (``None``: all).
            return_grf: keep the starting GRF samples in the result.
            progress: show a tqdm progress bar over the score evaluations.
            callback: called after every step (one per score evaluation) with the sampler's dict
                (``"i", "sigma", "x", "step_size"``) plus ``"batch"``.

        The same seed and ``batch_size`` give the same samples; another ``batch_size`` draws the
        random numbers in another order and gives other (equally valid) samples.
        """
        if not isinstance(n_samples, int) or n_samples < 1:
            raise ValueError(f"n_samples must be a positive integer, got {n_samples!r}")
        if generator is None:
            generator = torch.Generator(device=self.device)
            generator.manual_seed(0 if seed is None else seed)
        batches = batch_sizes(n_samples, batch_size)
        from tqdm.auto import tqdm

        bar = tqdm(
            total=len(batches) * self.evaluations_per_sample, desc="hybrid sampling", unit="step", disable=not progress
        )
        finals, refined, starts, recovered, degenerate = [], [], [], [], []
        try:
            for index, size in enumerate(batches):

                def step(info: dict, index=index) -> None:
                    bar.update(1)
                    if callback is not None:
                        callback({**info, "batch": index})

                start = self.starting_points(size, generator=generator)
                x = self.refine(start, generator=generator, callback=step)
                final = finalize(x.nan_to_num(0.0).clamp(-3.0, 3.0), self.n_phases)
                if self.guard is not None and self.sigma_c is not None:
                    x, final, redone, failed = redo_failed(self, start, x, final, generator)
                    offset = sum(batches[:index])
                    recovered += [offset + k for k in redone]
                    degenerate += [offset + k for k in failed]
                x = x.nan_to_num(0.0).clamp(-3.0, 3.0)
                finals.append(final)
                refined.append(x)
                if return_grf:
                    starts.append(from_model_channels(start, self.n_phases))
        finally:
            bar.close()
        return HybridSamples(
            microstructures=torch.cat(finals),
            refined=torch.cat(refined),
            grf=torch.cat(starts) if return_grf else None,
            target_volume_fractions=self.target_volume_fractions,
            recovered=recovered,
            degenerate=degenerate,
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
            self._fallback = HybridGenerator(self.field, self._score_model, **{
                **self._arguments, "sampler": "faithful", "n_levels": None, "step_lr": None, "guard": None})
        return self._fallback
