"""3D hybrid generation from one 2D micrograph: a 3D GRF refined by a 2D score model on its slices.

The first piece of the 3D generation Robertson et al. 2023 name as future work. Two layers, as in 2D:

* global: a 3D multi-output GRF (:class:`~lgtutorial.grf.field.GaussianRandomField` takes ``(N, D, H, W)``
  rows) of statistics extended from the micrograph under an assumption stated in
  :mod:`lgtutorial.volume.statistics` (isotropy: equiaxed or randomly oriented features);
* local: the existing 2D score model on the volume's slices (:mod:`lgtutorial.volume.slice_score`), no
  3D training, refining the GRF volume from ``sigma_c`` as the 2D hybrid does.

Two schemes combine the orientations:

* ``"passes"`` (the default): one orientation at a time. The first pass refines the GRF volume from
  ``sigma_c`` with the xy slices' score; each later pass re-noises the segmented result to
  ``sigma_pass`` and refines it with the next orientation's (xz, then yz, then the three again for
  each further round): block-wise SDEdit, each pass making one orientation's slices look like the
  micrograph while staying within about ``sigma_pass`` of the previous pass.
* ``"mean"``: the three orientations' scores averaged in every evaluation. It does not converge to
  a two-phase volume: where the orientations' denoisers disagree, their mean is a grey value, and
  the grey regions spread as sigma falls (at sigma = 0.1 nearly every voxel lies within 0.25 of the
  threshold). With the volume fraction measured on the denoised estimate (the ``"fast"`` sampler's
  choice) the many voxels near the threshold make the likelihood's pull overshoot, and the volume
  collapsed into one phase; the generator measures on the iterate for this scheme instead.

Measured on one 32^3 volume of the nbsa-proxy statistics with the shipped ``lgtutorial-case1`` model
and the ``"fast"`` sampler (seed 0, one CPU thread shared with other work): the slices' chord-length
distribution distance to the micrograph (:func:`lgtutorial.volume.slices.slice_statistics`, mean over
orientations, axes and phases) is 0.32 for the GRF start; 0.21 after one round of passes (27 s, 3,360
slices through the network), 0.17 after two (the default; 36 s, 6,048 slices) and 0.25 with
``"mean"`` (39 s, 4,704 slices). The slices' 2-point error stays at the GRF's (0.07-0.12 against
0.09) with passes and grows to 0.19-0.32 with ``"mean"``; the volume fraction is 0.3732 with passes
and 0.3632 with ``"mean"`` (target 0.3726). The last pass's orientation comes out best: after two
rounds the chords along x (the normal of the last, yz, pass) are at 0.22, along y and z at 0.15.

At 64^3 (``benchmarks/volume_quality.py``, two volumes, two CPU threads, about four minutes each) the
slices of every orientation keep the volume fraction exactly and are closer to the micrograph than the
3D GRF's, but their chord-length-distribution distances are 1.6-2.1 (matrix) and 2.3-3.2
(precipitates) times those of 2D hybrid samples of 64 x 64 px from the same model: the passes end in a
compromise between orientations. Tried on single 32^3 volumes, none closer: re-noising between passes
to 0.15 or 0.5 instead of :data:`SIGMA_PASS`; switching the orientation at every score evaluation of
one annealing run (the volume fraction drifted to 0.346 against 0.373 and the precipitate chords moved
further off); a third round is slightly closer for 45 % more evaluations.

Annealed passes (``sigma_pass=ANNEALED_PASSES``: eleven later passes, each re-noising less, 0.6 down to
0.15) did help: at 64^3 (``benchmarks/results/volume_quality_cpu_annealed.md``, two volumes) the ratios
to the 2D hybrid fall to 1.25-1.38 (matrix, within the 1.5 the 3D issue asks for) and 1.68-1.84
(precipitates, not yet), the volume fraction within 0.001, for 1.8 times the time (444 s a volume).
Measured on one material only, so not the default yet.

What the annealed passes left was one-voxel disagreement between orientations: each pass decides the
boundary voxels slice by slice, so a boundary that is smooth in the pass's own slices is ragged across
them, and the slices of the other orientations see the ragged edge as slivers (precipitate chords of
1-2 voxels: 18-21 % of the chords against 12 % in the micrograph, most along z) and bridges between
precipitates. Averaging the three orientations' denoisers at a low level (0.05-0.2) changes nothing
(each keeps a one-hot volume as it is); from 0.35-0.45 it decides those voxels by the orientations'
mean. Hence the final step (``final_sigma=FINAL_SIGMA``): the segmented volume re-noised to 0.45, one
Tweedie step under the mean of the three slice scores and the posterior, averaged over ``final_draws``
noise draws, segmented at 0.5. On 48^3 (two volumes, ``benchmarks/volume_quality.py
--side 48``) the worst ratio to the 2D hybrid fell from 1.98 to 1.63 with 4 draws and to 1.58 with 8;
from 0.6 it helped less (1.96), from 0.35 it helped the matrix more and the precipitates less; more,
finer annealed passes instead (17 levels to 0.15 or 0.1) were worse (2.2-2.3). At 64^3 with 16 draws:
``benchmarks/results/volume_quality_cpu_final.md``.

The refinement reuses the 2D hybrid's pieces: the schedules and samplers of :mod:`lgtutorial.sampling.samplers`
(they work on any shape) and the volume-fraction posterior of :mod:`lgtutorial.sampling.conditioning`, applied
to the volume viewed as ``(n, C, D H, W)`` so that its reductions over the last two axes run over
every voxel: one posterior for the whole volume, not one per slice.
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
    DEFAULT_SAMPLER,
    SamplerConfiguration,
    resolve_sampler,
    sampler_schedule,
)
from lgtutorial.sampling.samples import batch_sizes
from lgtutorial.score.channels import from_model_channels, to_model_channels
from lgtutorial.score.schedules import N_LEVELS, SIGMA_C, SIGMA_MAX, SIGMA_MIN
from lgtutorial.statistics.two_point import volume_fractions
from lgtutorial.volume.slice_score import finalize_volumes, slice_score
from lgtutorial.volume.statistics import ORIENTATIONS, VolumeStatistics, isotropic_statistics

__all__ = ["VolumeSamples", "VolumeGenerator", "SCHEMES", "SIGMA_PASS", "ANNEALED_PASSES", "WIDTH_VOXELS", "annealed_levels",
           "FINAL_SIGMA", "FINAL_DRAWS"]

#: How the orientations are combined: one at a time (``"passes"``) or averaged in every evaluation (``"mean"``).
SCHEMES = ("passes", "mean")
#: Noise level each orientation pass after the first starts from (re-noising the previous pass's volume).
SIGMA_PASS = 0.3


def annealed_levels(top: float, end: float, count: int) -> tuple[float, ...]:
    """``count`` noise levels falling geometrically from ``top`` to ``end`` (one per later pass).

    >>> annealed_levels(0.6, 0.15, 3)
    (0.6, 0.3, 0.15)
    """
    if not (isinstance(count, int) and count >= 1) or not 0 < end <= top:
        raise ValueError(f"annealed_levels: expected 0 < end <= top and a positive count, got {top}, {end}, {count}")
    if count == 1:
        return (float(top),)
    return tuple(round(top * (end / top) ** (k / (count - 1)), 4) for k in range(count))


#: Levels for annealed passes (``sigma_pass=ANNEALED_PASSES``): eleven later passes, re-noising geometrically
#: less from 0.6 to 0.15. At 64^3 closer to the micrograph than two rounds at :data:`SIGMA_PASS`, for
#: about 1.9 times the time (``benchmarks/results/volume_quality_cpu_annealed.md``).
ANNEALED_PASSES = annealed_levels(0.6, 0.15, 11)
#: Where the final denoising step of all three orientations starts (``final_sigma=FINAL_SIGMA``), and how
#: many noise draws it averages (``final_draws``): after annealed passes, one voxel the orientations
#: disagree on is decided by their mean (``benchmarks/results/volume_quality_cpu_final.md``).
FINAL_SIGMA = 0.45
FINAL_DRAWS = 16
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
        sampler: ``"fast"`` (default), ``"faithful"`` or any name/configuration of
            :data:`lgtutorial.sampling.samplers.SAMPLERS`; it runs every pass.
        scheme: ``"passes"`` or ``"mean"`` (module docstring).
        rounds: ``"passes"`` only: how many times the three orientations are visited (3 passes each;
            one round costs about 55 % of two, for chord distances about 20 % further from the micrograph's).
        sigma_pass: ``"passes"`` only: where the passes after the first start; or a sequence of levels,
            one per later pass (orientations cycling xz, yz, xy, ...; ``rounds`` is then not used), e.g.
            :data:`ANNEALED_PASSES`: each pass re-noises less than the one before, so the orientations
            settle on one volume.
        n_levels: levels of the geometric schedule (default: the sampler's, else the model's).
        sigma_c: where refinement of the GRF volume starts (0.75 as in the paper).
        step_lr: Langevin base step (default: the sampler's).
        condition_volume_fraction: add the volume-fraction posterior of Eq. (12) over the whole volume.
        volume_fraction_estimate: ``"segmented"`` or ``"mean"``.
        likelihood_widths: ``(sigma_mu start, end)``; default the authors', scaled to ``D H W`` voxels
            up to :data:`WIDTH_VOXELS` and held there above.
        volume_fraction_shift: added to the likelihood's targets only.
        segment_grf: segment the GRF start (volume-fraction preserving); default as in 2D, the
            sampler's ``segment_start`` (the fast samplers: always), else for 2 phases only.
        channels: channels of a plain score function.
        chunk_size: 2D slices per network call.
        guard: volumes whose volume fraction misses the target by more than this are listed as
            degenerate (``None``: no check).
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

    def __init__(self, field: GaussianRandomField, score_model, *, sigmas: torch.Tensor | None = None,
                 sampler: str | SamplerConfiguration = DEFAULT_SAMPLER, scheme: str = "passes",
                 rounds: int = 2, sigma_pass: float | tuple = SIGMA_PASS, n_levels: int | None = None, sigma_c: float = SIGMA_C,
                 step_lr: float | None = None, condition_volume_fraction: bool = True,
                 volume_fraction_estimate: str = "segmented", likelihood_widths: tuple[float, float] | None = None,
                 volume_fraction_shift: float = 0.0, segment_grf: bool | None = None, channels: int | None = None,
                 chunk_size: int = 128, guard: float | None = 0.1, statistics: VolumeStatistics | None = None,
                 final_sigma: float | None = None, final_draws: int = FINAL_DRAWS):
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
        if volume_fraction_estimate not in ("segmented", "mean"):
            raise ValueError(f"volume_fraction_estimate must be 'segmented' or 'mean', got {volume_fraction_estimate!r}")
        if sigma_c is None:
            raise ValueError("sigma_c=None (sampling from noise) is not offered for volumes; give a starting level")
        if final_sigma is not None and not (isinstance(final_sigma, (int, float)) and final_sigma > 0):
            raise ValueError(f"final_sigma must be None or a positive noise level, got {final_sigma!r}")
        if not isinstance(final_draws, int) or final_draws < 1:
            raise ValueError(f"final_draws must be a positive integer, got {final_draws!r}")
        if guard is not None and not 0 < guard <= 1:
            raise ValueError(f"guard must be None or a volume-fraction error in (0, 1], got {guard!r}")
        self.field, self.statistics, self.device = field, statistics, field.device
        self.n_phases, self.guard, self.scheme = field.n_phases, guard, scheme
        self.sampler = resolve_sampler(sampler)
        if scheme == "mean":  # see the module docstring: on the denoised estimate the pull overshoots
            self.sampler = replace(self.sampler, likelihood_on="iterate")
        self.sampler_name = sampler if isinstance(sampler, str) else "custom"
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
        n_levels = n_levels or self.sampler.levels or (N_LEVELS if sigmas is None else len(sigmas))
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
        self.step_lr = self.sampler.step_lr if step_lr is None else step_lr
        self.condition_volume_fraction = condition_volume_fraction
        self.volume_fraction_estimate = volume_fraction_estimate
        self.likelihood_widths = likelihood_widths
        self.volume_fraction_shift = float(volume_fraction_shift)
        self.segment_grf = self.sampler.segments_start(self.n_phases) if segment_grf is None else bool(segment_grf)
        self.target_volume_fractions = field.target_volume_fractions.to(self.device)

    @classmethod
    def from_statistics(cls, statistics, score_model, *, reference_phase: int = 0, device=None,
                        **options) -> VolumeGenerator:
        """Build from a 3D statistics row ``(N, D, H, W)`` or a :class:`VolumeStatistics`; ``options`` go to the constructor."""
        from lgtutorial._checks import resolve_device

        if isinstance(statistics, VolumeStatistics):
            options.setdefault("statistics", statistics)
            reference_phase, statistics = statistics.reference_phase, statistics.row
        row = torch.as_tensor(statistics, dtype=torch.float64)
        if row.ndim != 4:
            raise ValueError(f"expected a 3D statistics row (n_phases, D, H, W); got shape {tuple(row.shape)}")
        field = GaussianRandomField(row, reference_phase=reference_phase, device=resolve_device(device))
        return cls(field, score_model, **options)

    @classmethod
    def from_micrograph(cls, micrograph, score_model, *, shape, reference_phase: int = 0, device=None,
                        **options) -> VolumeGenerator:
        """Build from a one-hot 2D micrograph ``(n, N, H, W)`` under isotropy
        (:func:`~lgtutorial.volume.statistics.isotropic_statistics`) on a ``(D, H, W)`` grid."""
        statistics = isotropic_statistics(micrograph, shape, reference_phase=reference_phase)
        return cls.from_statistics(statistics, score_model, device=device, **options)

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
               batch_size: int | None = 1, return_grf: bool = False, progress: bool = True,
               callback: Callable[[dict], None] | None = None) -> VolumeSamples:
        """Draw ``n_samples`` refined volumes, ``batch_size`` at a time.

        Args:
            n_samples: how many volumes.
            seed: seed of a fresh ``torch.Generator`` on the device (ignored when ``generator`` is given).
            generator: for the GRF draws and the sampler's noise.
            batch_size: volumes refined at once (``None``: all).
            return_grf: keep the GRF starts.
            progress: a tqdm bar over the score evaluations.
            callback: called after every step with the sampler's dict plus ``"pass"``,
                ``"orientation"`` and ``"batch"``.
        """
        if not isinstance(n_samples, int) or n_samples < 1:
            raise ValueError(f"n_samples must be a positive integer, got {n_samples!r}")
        if generator is None:
            generator = torch.Generator(device=self.device).manual_seed(0 if seed is None else seed)
        batches = batch_sizes(n_samples, batch_size)
        calls, slices = self.score_fn.calls, self.score_fn.slices
        from tqdm.auto import tqdm

        bar = tqdm(total=len(batches) * self.evaluations_per_sample, desc="volume sampling", unit="step",
                   disable=not progress)
        finals, starts, degenerate = [], [], []
        try:
            for index, size in enumerate(batches):
                def step(info: dict, index=index) -> None:
                    bar.update(1)
                    if callback is not None:
                        callback({**info, "batch": index})

                start = self.starting_points(size, generator=generator)
                x = self.refine(start, generator=generator, callback=step)
                broken = ~torch.isfinite(x).flatten(1).all(dim=1)
                final = finalize_volumes(x.nan_to_num(0.0), self.n_phases)
                if self.guard is not None:
                    error = (volume_fractions(final) - self.target_volume_fractions.to(final.dtype)).abs().amax(1)
                    broken |= error > self.guard
                degenerate += [sum(batches[:index]) + k for k in broken.nonzero().flatten().tolist()]
                finals.append(final)
                if return_grf:
                    starts.append(from_model_channels(start, self.n_phases))
        finally:
            bar.close()
        return VolumeSamples(volumes=torch.cat(finals), grf=torch.cat(starts) if return_grf else None,
                             target_volume_fractions=self.target_volume_fractions,
                             evaluations=self.score_fn.calls - calls, slice_evaluations=self.score_fn.slices - slices,
                             degenerate=degenerate)
