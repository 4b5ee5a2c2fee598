"""Layer 1: the multi-output Gaussian random field (GRF) built from 2-point statistics.

Robertson & Kalidindi, Acta Materialia 232 (2022) 117927; Section 3.1 of Robertson et al. 2023.

The microstructure function of a reference phase ``p`` is approximated by a stationary Gaussian
field whose covariance is that phase's autocorrelation; every other phase ``n`` is a linear,
shift-invariant transform of it, with the transfer function ``H_n = F_pn / F_pp`` fixed by the
cross-correlations. On a periodic domain both are diagonal in Fourier space, so drawing a sample
costs a handful of FFTs: ``O(N S log S)`` for N phases on S pixels, no training, no iteration.

One complex draw gives two independent samples (its real and imaginary parts), and because the
transfer functions are the Fourier transforms of real functions, one complex inverse FFT per phase
turns both into N-phase fields at once. The samples are segmented by the rules of
:mod:`lgtutorial.grf.segmentation`.
"""

from __future__ import annotations

import math
import numbers
import warnings
from dataclasses import dataclass

import torch

from lgtutorial._checks import positive_int
from lgtutorial.grf.segmentation import SEGMENTATIONS, segment_argmax, segment_preserving_fractions
from lgtutorial.microstructure import as_tensor, check_microstructure
from lgtutorial.statistics.two_point import two_point_statistics, volume_fractions

__all__ = [
    "GaussianRandomField",
    "GRFSamples",
    "gaussian_smooth",
    "statistics_row",
]


@dataclass
class GRFSamples:
    """Output of :meth:`GaussianRandomField.sample`, every stage kept.

    Attributes:
        raw: continuous fields ``(n, N, *spatial)``; phases sum to 1 at every pixel.
        filtered: ``raw`` after the optional Gaussian low-pass (``raw`` itself when none).
        segmented: one-hot ``(n, N, *spatial)`` or ``None`` when no segmentation was asked for.
        target_volume_fractions: ``(N,)`` volume fractions implied by the statistics.
    """

    raw: torch.Tensor
    filtered: torch.Tensor
    segmented: torch.Tensor | None
    target_volume_fractions: torch.Tensor

    @property
    def achieved_volume_fractions(self) -> torch.Tensor:
        """``(n, N)`` volume fractions of the segmented samples (of ``filtered`` when unsegmented)."""
        return volume_fractions(self.segmented if self.segmented is not None else self.filtered)

    def report(self) -> str:
        """One line per phase: target, achieved mean +- std over the samples."""
        achieved = self.achieved_volume_fractions.double()
        lines = ["phase  target   achieved (mean +- std)"]
        for n, target in enumerate(self.target_volume_fractions.tolist()):
            column = achieved[:, n]
            std = float(column.std()) if column.numel() > 1 else 0.0
            lines.append(f"{n:>5}  {target:.4f}   {float(column.mean()):.4f} +- {std:.4f}")
        return "\n".join(lines)


def _spatial_dims(row: torch.Tensor) -> tuple[int, ...]:
    return tuple(range(1, row.ndim))


class GaussianRandomField:
    """A multi-output GRF defined by one row of periodic 2-point statistics.

    Args:
        statistics_row: ``(N, *spatial)`` periodic 2-point statistics ``f_pn(r)`` of the
            reference phase ``p`` with every phase ``n`` (FFT order, zero lag at index 0), for 2 or
            3 spatial axes. The sample domain is ``spatial``.
        reference_phase: the phase ``p`` whose autocorrelation the row holds.
        tolerance: relative size of negative eigenvalues tolerated as round-off (clipped to 0);
            default ``max(1e-8, 100 * eps)`` of the row's dtype.
        device: where to keep the spectra and draw samples (default: the row's device).
        dtype: float dtype of the samples (float32 by default). Spectra are computed in float64.

    Raises:
        ValueError: wrong shape, a row that does not sum to ``v_p`` at every lag, volume fractions
            outside (0, 1), or a clearly negative spectrum (not a valid covariance).
    """

    def __init__(
        self,
        statistics_row,
        *,
        reference_phase: int = 0,
        tolerance: float | None = None,
        device=None,
        dtype: torch.dtype = torch.float32,
    ):
        row = as_tensor(statistics_row)
        if row.ndim not in (3, 4):
            raise ValueError(
                "statistics_row must have shape (n_phases, H, W) or (n_phases, D, H, W): the "
                f"2-point statistics of one reference phase with every phase; got {tuple(row.shape)}"
            )
        n_phases = row.shape[0]
        if n_phases < 2:
            raise ValueError(f"a statistics row needs at least 2 phases, got {n_phases}")
        if not 0 <= reference_phase < n_phases:
            raise ValueError(f"reference_phase must be in 0..{n_phases - 1}, got {reference_phase}")
        if not row.is_floating_point() or not torch.isfinite(row).all():
            raise ValueError("statistics_row must be finite floating-point values")
        if tolerance is None:
            tolerance = max(1e-8, 100 * torch.finfo(row.dtype).eps)
        self.device = torch.device(device) if device is not None else row.device
        self.dtype = dtype
        self.reference_phase = reference_phase
        self.shape = tuple(row.shape[1:])
        self.n_phases = n_phases

        row64 = row.detach().to("cpu", torch.float64)
        origin = (slice(None),) + (0,) * len(self.shape)
        v_ref = float(row64[reference_phase][origin[1:]])
        if not 1e-9 < v_ref < 1.0 - 1e-9:  # (a fraction of 1e-300 passes "> 0" and divides into NaN)
            raise ValueError(
                f"f_pp(0) must be the reference phase's volume fraction, strictly between 0 and 1; got {v_ref:.4g}"
            )
        deviation = float((row64.sum(0) - v_ref).abs().max())
        if deviation > 1e-3 * max(v_ref, 1e-12) + 1e-6:
            raise ValueError(
                "the statistics row must sum to v_p = f_pp(0) at every lag (sum over n of f_pn(r) "
                f"= v_p because the phases sum to 1); the largest deviation is {deviation:.3g}. "
                "Pass the complete row f_pn for all phases n, computed from one-hot data."
            )

        size = math.prod(self.shape)
        dims = _spatial_dims(row64)
        spectra = torch.fft.fftn(row64, dim=dims)  # F_pn(k), (N, *spatial) complex128
        eigenvalues = spectra[reference_phase].real.clone()
        eigenvalues.view(-1)[0] = 0.0  # the mean is added explicitly
        scale = float(eigenvalues.abs().max()) or 1.0
        most_negative = float(eigenvalues.min())
        if most_negative < -tolerance * scale:
            raise ValueError(
                "these statistics are not a valid covariance: the spectrum of the reference "
                f"autocorrelation has a clearly negative value ({most_negative:.3g}, "
                f"{-most_negative / scale:.2e} of the largest). Periodic statistics of one-hot "
                "data and convex combinations of them are always valid; non-periodic or edited "
                "statistics may not be."
            )
        negative = eigenvalues < 0
        self.clipped = int(negative.sum())
        self.most_negative_eigenvalue = min(most_negative, 0.0)
        if self.clipped and -most_negative > 1e-12 * scale:  # beyond float64 round-off
            warnings.warn(
                f"clipped {self.clipped} slightly negative spectral values (the most "
                f"negative is {most_negative:.2e}, {-most_negative / scale:.1e} of the largest)",
                stacklevel=2,
            )
        eigenvalues = eigenvalues.clamp_min(0.0)
        # Frequencies where the reference spectrum vanishes carry no signal; zeroing them keeps
        # the transfer functions bounded and the phases summing to exactly one.
        active = spectra[reference_phase].real > 1e-12 * scale
        active.view(-1)[0] = True
        transfer = torch.where(active, spectra / spectra[reference_phase].real, torch.zeros_like(spectra))
        transfer[reference_phase] = active.to(transfer.dtype)
        eigenvalues = torch.where(active, eigenvalues, torch.zeros_like(eigenvalues))

        self.target_volume_fractions = (spectra[(slice(None),) + (0,) * len(self.shape)].real / (size * v_ref)).to(dtype)
        complex_dtype = torch.complex64 if dtype == torch.float32 else torch.complex128
        self._amplitude = torch.sqrt(eigenvalues * size).to(self.device, dtype)
        self._transfer = transfer.to(self.device, complex_dtype)
        # For the statistics of one microstructure this equals f_pp(0); for convex combinations of
        # references with different volume fractions it is the zero-frequency (long-range) value,
        # the one choice that keeps every phase's mean consistent and their sum equal to one.
        self._mean_reference = float(self.target_volume_fractions[reference_phase])
        self.target_volume_fractions = self.target_volume_fractions.to(self.device)
        self._target_row = row64
        self._chosen_segmentation = None

    def row_error(self, segmented: torch.Tensor) -> float:
        """How far the segmented samples' statistics row is from the target's, relative to its covariance.

        ``||mean f_pn(samples) - f_pn|| / ||f_pn - v_p v_n||`` over every lag and phase ``n`` of the
        reference phase ``p``'s row (periodic statistics, the samples pooled).
        """
        m = as_tensor(segmented).to(torch.float64)
        dims = tuple(range(2, m.ndim))
        spectra = torch.fft.fftn(m, dim=dims)
        size = math.prod(self.shape)
        row = torch.fft.ifftn(spectra[:, self.reference_phase : self.reference_phase + 1].conj() * spectra,
                              dim=dims).real.mean(0) / size
        target = self._target_row.to(row.device)
        means = target.flatten(1).mean(1).view(-1, *([1] * len(self.shape)))
        return float((row - target).norm() / (target - means).norm().clamp_min(1e-300))

    def choose_segmentation(self, n_probe: int | None = None, seed: int = 12345) -> str:
        """The volume-fraction-preserving rule (``"preserve"`` or ``"quantile"``) that keeps this field's
        2-point statistics better (:meth:`row_error`), measured once on ``n_probe`` samples of its own
        (default 16, fewer for very large fields) and cached. ``"quantile"`` is chosen only when its
        error is at least 10 % below ``"preserve"``'s.

        Thresholding any Gaussian field changes its 2-point statistics; which rule changes them less
        depends on the feature size: the 3x3 local mean of ``"preserve"`` removes speckle, but also
        features with a period near 3 px (``benchmarks/segmentation_spectra.py``).
        """
        if self._chosen_segmentation is None:
            if n_probe is None:  # 16 samples (fewer for very large fields): 4 left the choice to chance
                n_probe = max(2, min(16, 2**24 // (math.prod(self.shape) * self.n_phases)))
            generator = torch.Generator(device=self.device).manual_seed(seed)
            raw = self.sample_raw(n_probe, generator=generator)
            errors = {rule: self.row_error(segment_preserving_fractions(raw, self.target_volume_fractions,
                                                                        smooth=rule == "preserve"))
                      for rule in SEGMENTATIONS}
            # the paper's rule unless the quantile rule is clearly (10 %) closer: a 3x3 mean also cleans
            # up single-pixel speckle, which a near tie in the statistics does not show
            clearly = errors["quantile"] < 0.9 * errors["preserve"]
            self._chosen_segmentation = "quantile" if clearly else "preserve"
        return self._chosen_segmentation

    @classmethod
    def from_microstructure(
        cls, microstructure, *, reference_phase: int = 0, device=None, dtype=torch.float32, **kwargs
    ) -> "GaussianRandomField":
        """Build the GRF from the periodic 2-point statistics of one or more one-hot samples.

        The statistics are averaged over the samples and computed in float64. A non-periodic
        micrograph is treated as periodic (its seams add a little spurious correlation at long
        lags); its domain size is the size of the samples.
        """
        row = statistics_row(microstructure, reference_phase=reference_phase)
        return cls(row, reference_phase=reference_phase, device=device, dtype=dtype, **kwargs)

    @property
    def spectrum(self) -> torch.Tensor:
        """Eigenvalues of the reference phase's covariance, ``(*spatial)``, FFT order."""
        return self._amplitude.double() ** 2 / math.prod(self.shape)

    def sample_raw(
        self, n_samples: int, *, generator: torch.Generator | None = None, filter_sigma: float | None = None
    ) -> torch.Tensor:
        """Draw continuous N-phase fields ``(n_samples, N, *spatial)`` whose phases sum to 1.

        Args:
            n_samples: how many samples (any positive number; two come from each complex draw).
            generator: a ``torch.Generator`` on the GRF's device, for reproducible draws.
            filter_sigma: standard deviation (pixels) of an optional Gaussian low-pass applied to
                every phase (it keeps the means and the sum to one).

        Raises:
            ValueError: as :meth:`sample`, before anything is drawn.
        """
        self._check_draw(n_samples, generator, filter_sigma)
        n_pairs = (n_samples + 1) // 2
        real_dtype = self._amplitude.dtype
        noise = torch.randn(
            (n_pairs, 2, *self.shape), generator=generator, device=self.device, dtype=real_dtype
        )
        draw = torch.complex(noise[:, 0], noise[:, 1]) * self._amplitude
        origin = (slice(None),) + (0,) * len(self.shape)
        size = math.prod(self.shape)
        draw[origin] = complex(size * self._mean_reference, size * self._mean_reference)
        spectra = draw.unsqueeze(1) * self._transfer  # (pairs, N, *spatial)
        if filter_sigma is not None:
            spectra = spectra * _gaussian_transfer(self.shape, filter_sigma, self.device, real_dtype)
        dims = tuple(range(2, 2 + len(self.shape)))
        fields = torch.fft.ifftn(spectra, dim=dims)
        # samples 2k and 2k + 1 are the real and imaginary parts of draw k
        both = torch.stack([fields.real, fields.imag], dim=1).flatten(0, 1)
        return both[:n_samples].contiguous()

    def _check_draw(self, n_samples, generator, filter_sigma) -> None:
        """What :meth:`sample` and :meth:`sample_raw` check before drawing (their ``Raises``)."""
        if not positive_int(n_samples):
            raise ValueError(f"n_samples must be a positive integer, got {n_samples!r}")
        if generator is not None:
            if not isinstance(generator, torch.Generator):
                raise ValueError(f"generator must be a torch.Generator (e.g. torch.Generator().manual_seed(0)) or None, "
                                 f"got {type(generator).__name__}")
            if generator.device.type != self.device.type:
                raise ValueError(f"generator lives on {generator.device} but the field draws on {self.device}; make it "
                                 f"with torch.Generator(device={str(self.device)!r})")
        if filter_sigma is not None:
            _check_filter_sigma(filter_sigma, self.shape)

    def sample(
        self,
        n_samples: int,
        *,
        generator: torch.Generator | None = None,
        filter_sigma: float | None = None,
        segmentation: str | None = "auto",
    ) -> GRFSamples:
        """Draw samples and keep every stage: raw, filtered and segmented.

        Args:
            n_samples: number of samples.
            generator: seeded ``torch.Generator`` on the GRF's device.
            filter_sigma: Gaussian low-pass width in pixels, or ``None`` for no filter.
            segmentation: ``"auto"`` (the volume-fraction-preserving rule that keeps the 2-point
                statistics better, :meth:`choose_segmentation`), ``"preserve"`` (3x3 local mean, then
                volume-fraction preserving), ``"quantile"`` (volume-fraction preserving on the field
                itself), ``"argmax"`` or ``None``.

        Raises:
            ValueError: ``n_samples`` not a positive integer, ``filter_sigma`` not ``None`` or a positive
                finite width of at most the domain's largest side, an unknown ``segmentation``, a
                ``generator`` that is not a ``torch.Generator`` on the field's device type; all checked
                before anything is drawn.
        """
        self._check_draw(n_samples, generator, filter_sigma)
        if segmentation is not None and segmentation not in ("auto", "argmax", *SEGMENTATIONS):
            raise ValueError(f"segmentation must be 'auto', {', '.join(map(repr, SEGMENTATIONS))}, 'argmax' or None, "
                             f"got {segmentation!r}")
        raw = self.sample_raw(n_samples, generator=generator)
        filtered = gaussian_smooth(raw, filter_sigma) if filter_sigma is not None else raw
        if segmentation is None:
            segmented = None
        elif segmentation == "argmax":
            segmented = segment_argmax(filtered)
        else:
            rule = self.choose_segmentation() if segmentation == "auto" else segmentation
            segmented = segment_preserving_fractions(filtered, self.target_volume_fractions,
                                                     smooth=rule == "preserve")
        return GRFSamples(raw, filtered, segmented, self.target_volume_fractions)


def statistics_row(microstructure, *, reference_phase: int = 0) -> torch.Tensor:
    """Periodic 2-point statistics row ``f_pn`` averaged over samples, ``(N, *spatial)``, float64.

    This is what :class:`GaussianRandomField` is built from.
    """
    m = check_microstructure(microstructure).to(torch.float64)
    if not (isinstance(reference_phase, int) and 0 <= reference_phase < m.shape[1]):
        raise ValueError(f"reference_phase must be in 0..{m.shape[1] - 1} (a phase of this {m.shape[1]}-phase "
                         f"microstructure), got {reference_phase!r}")
    return two_point_statistics(m)[:, reference_phase].mean(0)


def _check_filter_sigma(sigma, shape) -> None:
    """``sigma`` must be a positive finite width (px) of at most the domain's largest side: beyond it the
    low-pass keeps less than ``exp(-2 pi^2)`` (3e-9) of even the longest wave, a constant field in float32."""
    real = isinstance(sigma, numbers.Real) and not isinstance(sigma, bool)
    if not (real and math.isfinite(sigma) and sigma > 0):
        raise ValueError(f"filter_sigma must be a positive finite width in pixels, or None for no filter; got {sigma!r}")
    if sigma > max(shape):
        raise ValueError(f"filter_sigma={sigma:g} px is wider than the domain ({'x'.join(map(str, shape))} px): the "
                         f"low-pass would leave a constant field; use at most {max(shape)} px, or None for no filter")


def _gaussian_transfer(shape, sigma: float, device, dtype) -> torch.Tensor:
    """Fourier transform of a periodic Gaussian kernel of width ``sigma`` pixels (unit gain)."""
    _check_filter_sigma(sigma, shape)
    grids = torch.meshgrid(*[torch.fft.fftfreq(n, device=device, dtype=dtype) for n in shape], indexing="ij")
    squared = sum(g**2 for g in grids)
    return torch.exp(-2.0 * math.pi**2 * sigma**2 * squared)


def gaussian_smooth(fields: torch.Tensor, sigma: float) -> torch.Tensor:
    """Periodic Gaussian low-pass of every phase of ``(n, N, *spatial)`` fields (width in pixels).

    The filter has unit gain at zero frequency, so means and the sum over phases are unchanged.
    """
    fields = as_tensor(fields)
    spatial = tuple(fields.shape[2:])
    dims = tuple(range(2, fields.ndim))
    kernel = _gaussian_transfer(spatial, sigma, fields.device, fields.dtype)
    return torch.fft.ifftn(torch.fft.fftn(fields, dim=dims) * kernel, dim=dims).real
