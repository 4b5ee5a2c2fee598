"""Statistics beyond the 2-point level: a 3-point subset, feature size, patch statistics, coherence.

Measures Robertson et al. 2023 (Section 5, Figs. 6 and 12, Table 1, Appendix C) use to show what a
Gaussian random field cannot reproduce and the local (denoising) layer restores; chord lengths and
connected regions have their own modules (:mod:`lgtutorial.statistics.chords`,
:mod:`lgtutorial.statistics.clusters`). Here: the 3-point statistics ``f_a(r1, r2)`` whose first
displacement has ``|r1| <= 1`` pixel, the cross-correlation of the "expanded state"
``m_a(x) m_a(x + r1)`` with ``m_a`` (:func:`three_point_statistics`); the average feature size, from
the slope at the origin of the radially averaged autocorrelation (:func:`feature_size`); non-periodic
2-point statistics of small patches, the features of the patch PCA (:func:`patch_two_point_statistics`,
:mod:`lgtutorial.statistics.pca`); and how well a phase's boundaries align (:func:`boundary_coherence`).

Inputs are one-hot (or continuous) ``(n_samples, n_phases, H, W)`` arrays or tensors; the work runs
on the input's device. Displacements are ``(dy, dx)`` pairs and lag axes follow
:mod:`lgtutorial.statistics.two_point` (FFT order, zero lag at index 0).
"""

from __future__ import annotations

import math

import torch

from lgtutorial.microstructure import as_tensor, float_microstructure
from lgtutorial.statistics.two_point import (
    clip_round_off,
    crop_lags,
    fast_fft_size,
    two_point_statistics,
    unpad_lags,
    volume_fractions,
)

__all__ = [
    "FIRST_DISPLACEMENTS",
    "three_point_statistics",
    "radial_average",
    "feature_size",
    "patch_two_point_statistics",
    "boundary_coherence",
]

#: First displacements ``r1 = (dy, dx)`` with ``|r1| <= 1`` pixel: the 3-point subset of Section 5.2.
FIRST_DISPLACEMENTS = ((0, 0), (0, 1), (1, 0), (0, -1), (-1, 0))


def _shift_valid(shape, shift, device) -> torch.Tensor:
    """``(H, W)`` mask of the pixels ``x`` whose neighbour ``x + shift`` lies inside the image."""
    masks = []
    for size, step in zip(shape, shift):
        position = torch.arange(size, device=device) + step
        masks.append((position >= 0) & (position < size))
    return masks[0][:, None] & masks[1][None, :]


def _cross_correlate(a: torch.Tensor, b: torch.Tensor, shape) -> torch.Tensor:
    """``sum_x a_k(x) b(x + r)`` for every channel ``k`` of ``a`` (n, K, H, W) and ``b`` (n, 1, H, W)."""
    fa = torch.fft.rfftn(a, s=shape, dim=(-2, -1))
    fb = torch.fft.rfftn(b, s=shape, dim=(-2, -1))
    return torch.fft.irfftn(fa.conj() * fb, s=shape, dim=(-2, -1))


def three_point_statistics(
    microstructure,
    *,
    periodic: bool,
    cutoff: int | None = None,
    phases=None,
    first_displacements=FIRST_DISPLACEMENTS,
    batch_size: int = 16,
) -> torch.Tensor:
    """The 3-point subset ``f_a(r1, r2)`` with ``|r1| <= 1`` pixel (Section 5.2, footnote 22).

    ``f_a(r1, r2)`` is the probability that ``x``, ``x + r1`` and ``x + r2`` are all phase ``a``: the
    2-point cross-correlation of the expanded state ``e(x) = m_a(x) m_a(x + r1)`` with ``m_a``,
    computed with FFTs. Non-periodic statistics average over the positions ``x`` for which all three
    points lie inside the image (zero padding to a fast FFT size plus valid-triple counts, as for 2-point
    statistics).

    Args:
        microstructure: ``(n_samples, n_phases, H, W)``.
        periodic: torus (generated samples) or non-periodic (micrographs).
        cutoff: keep second displacements with ``|r2_i| <= cutoff`` on both axes.
        phases: phase indices (default: all).
        first_displacements: the ``(dy, dx)`` first displacements (default :data:`FIRST_DISPLACEMENTS`).
        batch_size: samples per FFT batch (bounds memory).

    Returns:
        ``(n_samples, n_selected_phases, n_first_displacements, *lags)`` with lags as in
        :func:`lgtutorial.statistics.two_point.two_point_statistics` (FFT order).

    >>> from lgtutorial.microstructure import labels_to_one_hot
    >>> m = labels_to_one_hot([[1, 1, 0], [0, 1, 0]])
    >>> f = three_point_statistics(m, periodic=True)
    >>> round(float(f[0, 1, 0, 0, 0]), 4), round(float(f[0, 1, 1, 0, 0]), 4)  # v_1; P(1 1 in a row) = 1/6
    (0.5, 0.1667)
    """
    m = float_microstructure(microstructure)
    dtype = m.dtype
    if not periodic:  # float64 inside: at lags with few valid triples float32's round-off left [0, 1]
        m = m.to(torch.float64)
    n_samples, n_phases, height, width = m.shape
    shifts = [tuple(int(s) for s in r) for r in first_displacements]
    if not shifts or any(len(r) != 2 for r in shifts):
        raise ValueError(f"first_displacements must be (dy, dx) pairs; got {first_displacements!r}")
    phases = list(range(n_phases)) if phases is None else [int(p) for p in phases]
    if any(not 0 <= p < n_phases for p in phases):
        raise ValueError(f"phases {phases} out of range for a microstructure with {n_phases} phases")
    shape = (height, width) if periodic else (fast_fft_size(2 * height - 1), fast_fft_size(2 * width - 1))
    valid = torch.stack([_shift_valid((height, width), r, m.device) for r in shifts]).to(m.dtype)
    if not periodic:
        pairs = _cross_correlate(
            valid[None], torch.ones((1, 1, height, width), dtype=m.dtype, device=m.device), shape
        )
        pairs = unpad_lags(pairs, (height, width), cutoff).round()
    outputs = []
    for start in range(0, n_samples, batch_size):
        chunk = m[start : start + batch_size, phases]  # (b, P, H, W)
        b, p = chunk.shape[:2]
        flat = chunk.reshape(b * p, 1, height, width)
        neighbours = torch.stack(
            [torch.roll(flat[:, 0], shifts=(-dy, -dx), dims=(-2, -1)) for dy, dx in shifts], dim=1
        )  # m_a(x + r1) for every r1: (b P, K, H, W)
        expanded = flat * neighbours
        if periodic:
            f = crop_lags(_cross_correlate(expanded, flat, shape) / float(height * width), cutoff, 2)
        else:
            f = unpad_lags(_cross_correlate(expanded * valid, flat, shape), (height, width), cutoff)
            f = torch.where(pairs > 0.5, f / pairs.clamp_min(1.0), torch.full_like(f, math.nan))
        outputs.append(f.reshape(b, p, len(shifts), *f.shape[-2:]))
    f = torch.cat(outputs)
    if bool(((m >= 0) & (m <= 1)).all()):  # then every probability lies in [0, 1]: outside it is round-off
        f = clip_round_off(f)
    return f.to(dtype)


def radial_average(statistics, *, max_radius: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Average 2D lag maps over rings of width one pixel around the zero lag.

    Args:
        statistics: ``(..., H, W)`` lag maps in FFT order (periodic or non-periodic layout).
        max_radius: drop rings beyond this radius (pixels).

    Returns:
        ``(radii, values)``: ``(R,)`` mean distance of the lags in each ring (ring 0 is the zero lag)
        and ``(..., R)`` ring averages (NaN lags are left out).
    """
    f = as_tensor(statistics)
    if f.ndim < 2:
        raise ValueError(f"expected lag maps of shape (..., H, W); got {tuple(f.shape)}")
    height, width = f.shape[-2:]
    dtype = f.dtype if f.is_floating_point() else torch.float32
    ry = torch.fft.fftfreq(height, d=1.0 / height, device=f.device, dtype=torch.float64)
    rx = torch.fft.fftfreq(width, d=1.0 / width, device=f.device, dtype=torch.float64)
    distance = torch.sqrt(ry[:, None] ** 2 + rx[None, :] ** 2).flatten()
    ring = distance.round().to(torch.int64)
    keep = torch.ones_like(distance, dtype=torch.bool) if max_radius is None else distance <= max_radius
    ring, distance = ring[keep], distance[keep]
    values = f.flatten(-2)[..., keep].to(torch.float64)
    finite = torch.isfinite(values)
    n_rings = int(ring.max()) + 1
    sums = torch.zeros(*values.shape[:-1], n_rings, dtype=torch.float64, device=f.device)
    counts = torch.zeros_like(sums)
    sums.index_add_(-1, ring, torch.where(finite, values, torch.zeros_like(values)))
    counts.index_add_(-1, ring, finite.to(torch.float64))
    radii = torch.zeros(n_rings, dtype=torch.float64, device=f.device).index_add_(0, ring, distance)
    radii = radii / torch.bincount(ring, minlength=n_rings).clamp_min(1)
    averages = torch.where(counts > 0, sums / counts.clamp_min(1), torch.full_like(sums, math.nan))
    return radii.to(dtype), averages.to(dtype)


def feature_size(microstructure, *, periodic: bool, fit_radius: int = 2) -> torch.Tensor:
    """Average feature size of every phase from the autocorrelation's slope at the origin.

    The radially averaged autocorrelation ``f_aa(r)`` falls linearly from ``v_a`` near ``r = 0``
    (its slope measures the interface length per area); the feature size is the lag at which that
    tangent reaches the uncorrelated level ``v_a^2``: ``l_a = v_a (1 - v_a) / |f_aa'(0)|``
    (Section 5.2, footnote 21). The slope is a least-squares fit through ``f_aa(0) = v_a`` over the
    rings ``1..fit_radius``. For two phases both phases get the same size.

    Args:
        microstructure: ``(n_samples, n_phases, H, W)``.
        periodic: periodic or non-periodic autocorrelations.
        fit_radius: outermost ring (pixels) used for the slope.

    Returns:
        ``(n_samples, n_phases)`` sizes in pixels (NaN for a phase without interfaces).
    """
    if int(fit_radius) < 1:
        raise ValueError(f"fit_radius must be at least 1 pixel, got {fit_radius}")
    m = float_microstructure(microstructure)
    auto = torch.cat(  # autocorrelations only, one phase at a time: (n, N, lags, lags)
        [
            two_point_statistics(m[:, a : a + 1], periodic=periodic, cutoff=int(fit_radius) + 1)[:, 0]
            for a in range(m.shape[1])
        ],
        dim=1,
    )
    radii, rings = radial_average(auto, max_radius=float(fit_radius) + 0.5)
    radii, rings = radii[1:].double(), rings.double()
    drop = rings[..., :1] - rings[..., 1:]  # v_a - f(r) over the rings 1..fit_radius
    slope = (drop * radii).sum(-1) / (radii**2).sum()
    fractions = volume_fractions(m).double()
    size = fractions * (1 - fractions) / slope
    return torch.where(slope > 1e-12, size, torch.full_like(size, math.nan)).to(m.dtype)


def patch_two_point_statistics(patches, *, cutoff: int | None = None) -> torch.Tensor:
    """Features for the patch PCA: non-periodic 2-point statistics of every patch (Section 4.3).

    Every pair ``a <= b`` of phases is kept (``f_ba(r) = f_ab(-r)`` adds nothing), cut off at half
    the patch size by default (20 px for 40 px patches), and flattened.

    Args:
        patches: ``(n_patches, n_phases, p, p)`` (square or not).
        cutoff: lag cutoff in pixels (default ``min(p_y, p_x) // 2``).

    Returns:
        ``(n_patches, n_features)`` with ``n_features = N (N + 1) / 2 * (2 cutoff + 1)^2``.
    """
    m = float_microstructure(patches, name="patches")
    if cutoff is None:
        cutoff = min(m.shape[-2:]) // 2
    f = two_point_statistics(m, periodic=False, cutoff=int(cutoff))
    upper = torch.triu_indices(m.shape[1], m.shape[1], device=m.device)
    return f[:, upper[0], upper[1]].flatten(1)


# -- measures that noise cannot fool ---------------------------------------------------------------
def _gaussian_kernels(sigma: float, dtype, device) -> tuple[torch.Tensor, torch.Tensor]:
    radius = max(1, math.ceil(4 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=dtype, device=device)
    g = torch.exp(-0.5 * (t / sigma) ** 2)
    g = g / g.sum()
    return g, -t / sigma**2 * g  # the kernel and its derivative


def _separable(x: torch.Tensor, ky: torch.Tensor, kx: torch.Tensor, periodic: bool) -> torch.Tensor:
    """Filter ``(n, H, W)`` with ``ky`` along y and ``kx`` along x (circular or reflecting edges).

    A kernel of ``k`` taps covers ``x - k // 2 .. x + (k - 1) // 2``: centred when ``k`` is odd, one
    pixel more before ``x`` than after it when ``k`` is even (where ``scipy.ndimage`` puts it).
    """
    by, bx = len(ky) // 2, len(kx) // 2  # pixels before
    ay, ax = (len(ky) - 1) // 2, (len(kx) - 1) // 2  # and after
    if periodic:  # wrap as often as needed: a kernel may be wider than a small image
        height, width = x.shape[1:]
        ty, tx = -(-by // height), -(-bx // width)
        tiled = x[:, None].repeat(1, 1, 2 * ty + 1, 2 * tx + 1)
        y0, x0 = ty * height - by, tx * width - bx
        x = tiled[..., y0 : y0 + height + by + ay, x0 : x0 + width + bx + ax]
    else:
        mode = "reflect" if by < x.shape[1] and bx < x.shape[2] else "replicate"
        x = torch.nn.functional.pad(x[:, None], (bx, ax, by, ay), mode=mode)
    x = torch.nn.functional.conv2d(x, ky.flip(0).view(1, 1, -1, 1))
    return torch.nn.functional.conv2d(x, kx.flip(0).view(1, 1, 1, -1))[:, 0]


def structure_tensor(field: torch.Tensor, *, periodic: bool, derivative_sigma: float = 1.0,
                     tensor_sigma: float = 3.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The structure tensor ``J = G_rho * (grad f grad f^T)`` of ``(n, H, W)`` fields: ``(Jxx, Jyy, Jxy)``.

    Gaussian derivatives of width ``derivative_sigma``, smoothed at ``tensor_sigma``; x runs along the
    columns, y along the rows. Its leading eigenvector is the local gradient direction, at the angle
    ``0.5 atan2(2 Jxy, Jxx - Jyy)`` from the x axis: across laths or lamellae, normal to their boundaries.

    >>> from lgtutorial.synthetic import lamellae
    >>> jxx, jyy, jxy = structure_tensor(lamellae(32, period=4)[:, 1].double(), periodic=True)
    >>> angles = 0.5 * torch.atan2(2 * jxy, jxx - jyy)  # bands along y: normal along x
    >>> round(float(angles.abs().max()), 3)
    0.0
    """
    g, dg = _gaussian_kernels(float(derivative_sigma), field.dtype, field.device)
    gx, gy = _separable(field, g, dg, periodic), _separable(field, dg, g, periodic)
    rho, _ = _gaussian_kernels(float(tensor_sigma), field.dtype, field.device)
    return tuple(_separable(v, rho, rho, periodic) for v in (gx * gx, gy * gy, gx * gy))


def boundary_coherence(
    microstructure,
    phase: int,
    *,
    periodic: bool,
    derivative_sigma: float = 1.0,
    tensor_sigma: float = 3.0,
    exclude_phase: int | None = None,
    exclude_window: int = 15,
) -> torch.Tensor:
    """How well aligned the boundaries of one phase are: structure-tensor coherence per sample.

    The indicator of ``phase`` is differentiated with Gaussian derivatives (width
    ``derivative_sigma``); the structure tensor ``J = G_rho * (grad m grad m^T)`` (smoothed at
    ``tensor_sigma``) has eigenvalues ``l1 >= l2`` and coherence ``(l1 - l2) / (l1 + l2)``: 1 where
    all boundaries nearby run one way (laths, lamellae), near 0 for isotropic speckle or blobs. The
    coherence is averaged with weight ``l1 + l2`` (so that boundary pixels count and flat regions do
    not), which is ``sum sqrt((Jxx - Jyy)^2 + 4 Jxy^2) / sum (Jxx + Jyy)``.

    Args:
        microstructure: one-hot ``(n, N, H, W)`` (or ``(N, H, W)``).
        phase: the phase whose boundaries are measured.
        periodic: circular filtering (generated samples) or reflecting edges (micrographs).
        exclude_phase: leave out pixels whose ``exclude_window`` neighbourhood is at least half this
            phase (e.g. the globular alpha of a Ti micrograph, to measure only inside colonies).
        exclude_window: side (pixels) of that square neighbourhood; an even side reaches one pixel
            further up and left than down and right, as ``scipy.ndimage.uniform_filter`` does.

    Returns:
        ``(n,)`` float64 coherence per sample (NaN for a sample without boundaries of ``phase``).

    >>> from lgtutorial.microstructure import labels_to_one_hot
    >>> from lgtutorial.synthetic import lamellae
    >>> stripes = lamellae(32, period=4)  # bands 2 px wide
    >>> round(float(boundary_coherence(stripes, 1, periodic=True)[0]), 3)
    1.0
    >>> speckle = labels_to_one_hot(torch.randint(0, 2, (1, 32, 32), generator=torch.Generator().manual_seed(0)))
    >>> float(boundary_coherence(speckle, 1, periodic=True)[0]) < 0.3  # white noise: about 0.2 at these widths
    True
    """
    m = float_microstructure(microstructure)
    if not 0 <= int(phase) < m.shape[1]:
        raise ValueError(f"phase {phase} is out of range for a microstructure with {m.shape[1]} phases")
    if not (derivative_sigma > 0 and tensor_sigma > 0):
        raise ValueError(f"derivative_sigma and tensor_sigma must be positive, got {derivative_sigma}, {tensor_sigma}")
    if exclude_phase is not None and int(exclude_window) < 1:
        raise ValueError(f"exclude_window must be at least 1 pixel, got {exclude_window}")
    x = m[:, int(phase)].to(torch.float64)
    jxx, jyy, jxy = structure_tensor(x, periodic=periodic, derivative_sigma=derivative_sigma, tensor_sigma=tensor_sigma)
    weight = torch.ones_like(x)
    if exclude_phase is not None:
        box = torch.ones(int(exclude_window), dtype=x.dtype, device=x.device) / int(exclude_window)
        local = _separable(m[:, int(exclude_phase)].to(torch.float64), box, box, periodic)
        weight = (local < 0.5).to(x.dtype)
    anisotropy = ((jxx - jyy) ** 2 + 4 * jxy**2).sqrt()
    total = ((jxx + jyy) * weight).sum(dim=(1, 2))
    aligned = (anisotropy * weight).sum(dim=(1, 2))
    return torch.where(total > 1e-12, aligned / total.clamp_min(1e-300), torch.full_like(total, math.nan))
