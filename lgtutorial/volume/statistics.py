"""3D 2-point statistics from a 2D micrograph, under a stated assumption (future work of Section 6).

The global layer of 3D generation needs a 3D statistics row; a micrograph gives only a section
through it. The missing information is supplied by an assumption, stated here once:

**Isotropy.** The 2-point statistics depend on the length of the lag only, ``f_ab(r) = f_ab(|r|)``,
so the radial profiles of one section determine them in 3D (:func:`isotropic_statistics`). It fits
equiaxed or randomly oriented features: gamma-prime precipitates in Ni superalloys (case study 1),
porosity, equiaxed grains, particles of random orientation. It does not fit Ti-6Al-4V's alpha laths
(one colony orientation per prior-beta grain: case study 2), rolled, drawn or elongated features,
fibres, columnar grains, or anything with a texture. For materials with one symmetry axis,
:func:`transversely_isotropic_statistics` takes a longitudinal section instead. Not every extension
is a valid 3D covariance: each is projected onto valid statistics, and :class:`VolumeStatistics`
reports how much was clipped. :mod:`lgtutorial.volume.slices` measures the generated volumes by their sections.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from lgtutorial.microstructure import as_tensor, check_microstructure
from lgtutorial.statistics.two_point import two_point_statistics

__all__ = [
    "VolumeStatistics",
    "radial_profiles",
    "isotropic_statistics",
    "transversely_isotropic_statistics",
    "ORIENTATIONS",
]

#: The three orthogonal slice orientations of a ``(D, H, W) = (z, y, x)`` volume: the plane each slice lies in.
ORIENTATIONS = ("xy", "xz", "yz")


def _lags(n: int, device=None) -> torch.Tensor:
    """Minimum-image lags of a periodic axis of ``n`` pixels in FFT order: 0, 1, ..., -1."""
    k = torch.arange(n, dtype=torch.float64, device=device)
    return torch.where(k <= n // 2, k, k - n)


def _radius(shape, device=None) -> torch.Tensor:
    """``|r|`` of every lag of a periodic grid (FFT order, minimum image), float64 of ``shape``."""
    grids = torch.meshgrid(*[_lags(n, device) for n in shape], indexing="ij")
    return sum(g**2 for g in grids).sqrt()


def radial_profiles(statistics) -> tuple[torch.Tensor, torch.Tensor]:
    """Angular averages ``f(rho)`` of periodic 2D statistics ``(..., H, W)`` (FFT order).

    Lags are binned by their minimum-image radius rounded to whole pixels, up to ``min(H, W) // 2``
    (the largest radius whose circle fits in the periodic domain); each bin gives the mean radius
    of its lags and the mean of the statistics over them.

    Returns:
        ``(radii, profiles)``: ``(K,)`` float64 mean radius of each bin (``radii[0] = 0``) and
        ``(..., K)`` float64 profiles.

    >>> radii, profile = radial_profiles(torch.ones(2, 8, 8))
    >>> radii.shape, profile.shape, float(radii[0]), bool((profile == 1).all())
    (torch.Size([5]), torch.Size([2, 5]), 0.0, True)
    """
    f = as_tensor(statistics).to(torch.float64)
    if f.ndim < 2 or min(f.shape[-2:]) < 2:
        raise ValueError(f"expected 2D statistics of shape (..., H, W) with H, W >= 2; got {tuple(f.shape)}")
    radius = _radius(f.shape[-2:], f.device)
    bins = radius.round().long().flatten()
    keep = bins <= min(f.shape[-2:]) // 2
    bins, count = bins[keep], int(bins[keep].max()) + 1
    weights = torch.bincount(bins, minlength=count).to(torch.float64)
    radii = torch.bincount(bins, weights=radius.flatten()[keep], minlength=count) / weights
    values = f.flatten(-2)[..., keep]
    sums = torch.zeros((*f.shape[:-2], count), dtype=torch.float64, device=f.device)
    sums.index_add_(sums.ndim - 1, bins, values)
    return radii, sums / weights


def _interpolate(radii: torch.Tensor, profiles: torch.Tensor, radius: torch.Tensor, beyond: torch.Tensor):
    """Profiles ``(..., K)`` at ``radius`` (any shape) by linear interpolation; ``beyond`` ``(...)`` past the last radius."""
    upper = torch.searchsorted(radii, radius.flatten()).clamp(1, len(radii) - 1)
    lower = upper - 1
    weight = ((radius.flatten() - radii[lower]) / (radii[upper] - radii[lower])).clamp(0.0, 1.0)
    values = profiles[..., lower] * (1 - weight) + profiles[..., upper] * weight
    values = torch.where(radius.flatten() > radii[-1], beyond[..., None], values)
    return values.reshape(*profiles.shape[:-1], *radius.shape)


@dataclass
class VolumeStatistics:
    """A 3D statistics row made from 2D data, and what making it valid cost.

    Attributes:
        row: ``(N, D, H, W)`` float64 periodic row ``f_pn`` of the reference phase, FFT order: the
            input of :class:`~lgtutorial.grf.field.GaussianRandomField`; on the 2D data's device.
        reference_phase: ``p``.
        volume_fractions: ``(N,)`` float64, those of the 2D data (kept exactly).
        assumption: ``"isotropic"`` or ``"transversely isotropic"``.
        clipped_fraction: spectral weight removed by the projection, as a fraction of all of it
            (sum of the negative eigenvalues' magnitudes over the sum of all magnitudes): 0 when the
            extension was valid as it stood.
        clipped_frequencies: number of frequencies with at least one negative eigenvalue.
        row_change: ``||row - row before projection|| / ||row before projection - v_p v||`` (over
            every lag): how far the projection (with the rescaling that restores ``f(0)``, and the
            uniform shift that makes every covariance sum to zero so that the volume fractions are
            exact) moved the statistics. Dominated by the many long lags, where a small shift adds up.
        largest_change: ``max |row - row before projection|`` over lags and phases, as a fraction of
            the variance ``v_p (1 - v_p)``.
        radii, profiles: ``(K,)`` and ``(N, N, K)`` radial profiles of the 2D statistics (isotropic).
    """

    row: torch.Tensor
    reference_phase: int
    volume_fractions: torch.Tensor
    assumption: str
    clipped_fraction: float
    clipped_frequencies: int
    row_change: float
    largest_change: float
    radii: torch.Tensor | None = None
    profiles: torch.Tensor | None = None

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(D, H, W)`` of the volume grid."""
        return tuple(self.row.shape[1:])

    def report(self) -> str:
        """Two lines: the assumption and grid, and how much the projection onto valid statistics changed."""
        return (f"{self.assumption} extension to {'x'.join(map(str, self.shape))} voxels, volume fractions "
                f"{[round(v, 4) for v in self.volume_fractions.tolist()]}\n"
                f"projection onto valid (PSD) statistics: {100 * self.clipped_fraction:.3f} % of the spectral weight "
                f"clipped at {self.clipped_frequencies} of {math.prod(self.shape)} frequencies; row moved by "
                f"{100 * self.row_change:.2f} % of its covariance (norm over all lags), by at most "
                f"{100 * self.largest_change:.2f} % of the variance at any lag")


def _full_statistics(source, reference_phase: int) -> torch.Tensor:
    """``(N, N, H, W)`` float64 periodic 2D statistics from a one-hot micrograph or a 2-phase row."""
    t = as_tensor(source)
    if t.ndim == 3:  # a statistics row (N, H, W)
        row = t.to(torch.float64)
        n_phases = row.shape[0]
        if n_phases != 2:
            raise ValueError(
                f"a statistics row (N, H, W) of N = {n_phases} phases does not hold the cross-correlations between the "
                "other phases, which the projection onto valid statistics needs; for N > 2 pass the one-hot "
                "micrograph (n_samples, N, H, W)")
        if not 0 <= reference_phase < 2:
            raise ValueError(f"reference_phase must be 0 or 1 for a 2-phase row, got {reference_phase}")
        v_p = float(row[reference_phase, 0, 0])
        if not 0 < v_p < 1 or float((row.sum(0) - v_p).abs().max()) > 1e-3 * v_p + 1e-6:
            raise ValueError("expected a periodic 2-point statistics row (N, H, W) with f_pp(0) = v_p in (0, 1) and "
                             "rows summing to v_p at every lag (statistics_row of a one-hot micrograph)")
        q = 1 - reference_phase
        f_pq = row[q]
        f_qp = torch.roll(f_pq.flip(-2, -1), shifts=(1, 1), dims=(-2, -1))  # f_qp(r) = f_pq(-r)
        full = torch.empty((2, 2, *row.shape[1:]), dtype=torch.float64, device=row.device)
        full[reference_phase, reference_phase], full[reference_phase, q] = row[reference_phase], f_pq
        full[q, reference_phase], full[q, q] = f_qp, (1.0 - v_p) - f_qp
        return full
    if t.ndim == 4:
        m = check_microstructure(t, name="micrograph").to(torch.float64)
        if not 0 <= reference_phase < m.shape[1]:
            raise ValueError(f"reference_phase must be in 0..{m.shape[1] - 1}, got {reference_phase}")
        return two_point_statistics(m).mean(0)
    raise ValueError(
        "expected 2D data: a one-hot micrograph (n_samples, n_phases, H, W) or a 2-phase statistics row "
        f"(2, H, W); got shape {tuple(t.shape)}")


def _check_shape(shape) -> tuple[int, int, int]:
    try:
        shape = tuple(int(s) for s in shape)
    except TypeError:
        shape = ()
    if len(shape) != 3 or min(shape) < 2:
        raise ValueError(f"shape must be the volume's (D, H, W), three sides of at least 2 voxels; got {shape!r}")
    return shape


def _project(full: torch.Tensor, v: torch.Tensor, reference_phase: int, **fields) -> VolumeStatistics:
    """Project ``(N, N, *spatial)`` statistics onto valid ones (PSD cross-spectra, exact ``f(0)`` and row sums)."""
    n_phases, shape = full.shape[0], tuple(full.shape[2:])
    dims = tuple(range(2, full.ndim))
    full = 0.5 * (full + full.transpose(0, 1))  # the extensions are even in r, so f_ab = f_ba
    product = torch.outer(v, v)
    covariance = full - product.view(n_phases, n_phases, *[1] * len(shape))
    spectra = torch.fft.fftn(covariance, dim=dims).real.flatten(2).permute(2, 0, 1)  # (S, N, N), real: even in r
    # The phases sum to one, so (1, ..., 1) is in the null space of every cross-spectral matrix: work in
    # the (N - 1)-dimensional complement, where clipping keeps every row sum at v_a at every lag.
    centring = torch.eye(n_phases, dtype=torch.float64, device=full.device) - 1.0 / n_phases
    basis = torch.linalg.qr(centring)[0][:, : n_phases - 1]
    reduced = basis.T @ spectra @ basis
    reduced[0] = 0.0  # zero frequency: covariances sum to zero, so the field's volume fractions are exact
    eigenvalues, vectors = torch.linalg.eigh(reduced)
    negative = eigenvalues < 0
    clipped_fraction = float(-eigenvalues[negative].sum() / eigenvalues.abs().sum().clamp_min(1e-300))
    clipped_frequencies = int(negative.any(-1).sum())
    reduced = (vectors * eigenvalues.clamp_min(0.0).unsqueeze(-2)) @ vectors.transpose(-2, -1)
    # Restore f_ab(0) = v_a delta_ab with one congruence A (the same at every frequency, so PSD is kept):
    # A C'(0) A^T = C(0), with C(0) = diag(v) - v v^T the lag-0 covariance of one-hot data.
    target = basis.T @ (torch.diag(v) - product) @ basis
    current = reduced.mean(0)  # inverse FFT at r = 0
    a = _sqrtm(target) @ _sqrtm(current, inverse=True)
    reduced = a @ reduced @ a.T
    spectra = (basis @ reduced @ basis.T).permute(1, 2, 0).reshape(n_phases, n_phases, *shape)
    projected = torch.fft.ifftn(spectra, dim=dims).real + product.view(n_phases, n_phases, *[1] * len(shape))
    row, before = projected[reference_phase], full[reference_phase]
    asymptote = product[reference_phase].view(-1, *[1] * len(shape))
    row_change = float((row - before).norm() / (before - asymptote).norm().clamp_min(1e-300))
    v_p = float(v[reference_phase])
    largest_change = float((row - before).abs().max()) / (v_p * (1 - v_p))
    return VolumeStatistics(row=row, reference_phase=reference_phase, volume_fractions=v,
                            clipped_fraction=clipped_fraction, clipped_frequencies=clipped_frequencies,
                            row_change=row_change, largest_change=largest_change, **fields)


def _sqrtm(matrix: torch.Tensor, *, inverse: bool = False) -> torch.Tensor:
    values, vectors = torch.linalg.eigh(matrix)
    floor = 1e-12 * float(values.abs().max().clamp_min(1e-300))
    if float(values.min()) <= floor:
        raise ValueError("the projected statistics have no variance left in some phase combination; a phase is "
                         "missing from the micrograph or its features are far below the voxel size")
    values = values.sqrt() if not inverse else values.rsqrt()
    return (vectors * values) @ vectors.T


def isotropic_statistics(source, shape, *, reference_phase: int = 0) -> VolumeStatistics:
    """A valid 3D statistics row on a periodic ``(D, H, W)`` grid from 2D data, assuming isotropy.

    The 2D statistics are averaged over angle into radial profiles ``f_ab(rho)``
    (:func:`radial_profiles`), which are evaluated at the 3D minimum-image distance ``|r|`` by
    linear interpolation; beyond the largest 2D radius (half the micrograph's smaller side) the
    volume-fraction product ``v_a v_b`` takes over. The voxel is the micrograph's pixel. Which
    materials the assumption fits: the module docstring.

    The isotropic extension of a valid 2D covariance need not be a valid 3D covariance: its
    cross-spectral matrices may have negative eigenvalues. They are projected onto the positive
    semi-definite cone at every frequency (negative eigenvalues clipped, on the subspace orthogonal
    to ``(1, ..., 1)`` so that every row still sums to ``v_a`` at every lag), then rescaled by one
    congruence so that ``f_ab(0) = v_a delta_ab`` again; :attr:`VolumeStatistics.clipped_fraction`
    says how much was clipped.

    Args:
        source: a one-hot micrograph ``(n_samples, N, H, W)`` (its periodic statistics, averaged
            over the samples), or for 2 phases its statistics row ``(2, H, W)``
            (:func:`lgtutorial.grf.field.statistics_row`).
        shape: the volume's ``(D, H, W)``.
        reference_phase: the phase ``p`` of the row.

    Raises:
        ValueError: not 2D data, a row of more than 2 phases, a bad shape.

    Example:
        >>> from lgtutorial.microstructure import labels_to_one_hot
        >>> micrograph = labels_to_one_hot(torch.arange(64).view(8, 8) % 3 == 0)  # v_0 = 42 / 64
        >>> stats = isotropic_statistics(micrograph, (8, 8, 8))
        >>> stats.row.shape, round(float(stats.row[0, 0, 0, 0]) * 64, 9), round(float((stats.row.sum(0) - 42 / 64).abs().max()), 12)
        (torch.Size([2, 8, 8, 8]), 42.0, 0.0)
    """
    shape = _check_shape(shape)
    full = _full_statistics(source, reference_phase)
    v = torch.diagonal(full[..., 0, 0])
    radii, profiles = radial_profiles(full)
    asymptote = full.flatten(2).mean(-1)  # v_a v_b for periodic statistics
    extended = _interpolate(radii, profiles, _radius(shape, full.device), asymptote)
    return _project(extended, v, reference_phase, assumption="isotropic", radii=radii, profiles=profiles)


def transversely_isotropic_statistics(longitudinal, shape, *, reference_phase: int = 0) -> VolumeStatistics:
    """A valid 3D statistics row assuming transverse isotropy about the volume's first (z) axis.

    A transversely isotropic material (one symmetry axis: columnar grains, a fibre bundle's cross-
    section statistics, features elongated along one direction and random about it) has
    ``f_ab(r) = f_ab(rho, z)``, ``rho`` the in-plane distance; one longitudinal section, whose rows
    (its ``H`` axis) run along the symmetry axis, shows ``f_ab(x, z)`` for every ``x`` and ``z``,
    and so determines the 3D statistics: ``f_ab(x, y, z) = f_ab(sqrt(x^2 + y^2), z)``, linear in
    the in-plane distance between whole pixels. Lags beyond the section's half-sides take ``v_a v_b``.
    A transverse section (perpendicular to the axis) adds nothing the longitudinal one lacks; its
    radial profile should match the longitudinal one's ``z = 0`` line, which is a check of the
    assumption worth making by hand. The result is projected as in :func:`isotropic_statistics`.

    Args:
        longitudinal: one-hot section ``(n_samples, N, Z, X)`` containing the symmetry axis as its
            first spatial axis, or for 2 phases its statistics row ``(2, Z, X)``.
        shape: the volume's ``(D, H, W)``; ``D`` runs along the symmetry axis.
        reference_phase: the phase ``p`` of the row.
    """
    shape = _check_shape(shape)
    full = _full_statistics(longitudinal, reference_phase)
    v = torch.diagonal(full[..., 0, 0])
    # even in x (transverse isotropy) and in z (the mirror perpendicular to the axis: automatic for
    # autocorrelations, an assumption for the cross-correlations of N > 2 phases)
    full = 0.5 * (full + full.flip(-1).roll(1, dims=-1))
    full = 0.5 * (full + full.flip(-2).roll(1, dims=-2))
    asymptote = full.flatten(2).mean(-1)
    n_z, n_x = full.shape[-2:]
    lag_z, lag_y, lag_x = torch.meshgrid(*[_lags(n, full.device) for n in shape], indexing="ij")
    rho = (lag_y**2 + lag_x**2).sqrt()
    inside = (lag_z.abs() <= n_z // 2) & (rho <= n_x // 2)
    z_index = lag_z.long() % n_z
    low = rho.floor().long().clamp_max(n_x // 2)
    high = (low + 1).clamp_max(n_x // 2)
    weight = rho - low
    values = full[..., z_index, low] * (1 - weight) + full[..., z_index, high] * weight
    extended = torch.where(inside, values, asymptote[..., None, None, None])
    return _project(extended, v, reference_phase, assumption="transversely isotropic")
