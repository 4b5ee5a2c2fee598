"""1- and 2-point statistics of N-phase microstructures (Robertson et al. 2023, Section 2).

Conventions used throughout the package:

* microstructures are ``(n_samples, n_phases, *spatial)`` with 2 or 3 spatial axes;
* 2-point statistics are ``(n_samples, n_phases, n_phases, *lags)``: entry ``[s, a, b, r]`` is
  ``f_ab(r)``, the probability that a pixel ``x`` is phase ``a`` and ``x + r`` is phase ``b``;
* lags are in FFT order: zero lag at index 0, positive lags next, negative lags wrapped to the
  end. :func:`centre` moves the zero lag to the middle for plotting.

The functions accept NumPy arrays or tensors, run on the input's device, and keep its floating
dtype (integers become float32).
"""

from __future__ import annotations

import torch

from lgtutorial.microstructure import as_tensor, spatial_dims_of

__all__ = [
    "volume_fraction_summary",
    "volume_fractions",
    "two_point_statistics",
    "centre",
    "lag_axes",
    "crop_lags",
    "fast_fft_size",
    "unpad_lags",
    "contact_chances",
    "clip_round_off",
]

#: How far round-off may carry a non-periodic statistic of a field with values in [0, 1] outside [0, 1]:
#: float64 FFTs of 10^8 pixels err by about 1e-8. A value further out is left alone, for it is no round-off.
_ROUND_OFF = 1e-6


def clip_round_off(f: torch.Tensor) -> torch.Tensor:
    """Probabilities computed by FFT, with values within round-off (1e-6) outside [0, 1] clipped into it.

    For statistics of a field with values in [0, 1], where every true value lies in [0, 1]; a value further
    out is left alone, for it is no round-off.

    >>> clip_round_off(torch.tensor([-1e-9, 0.5, 1 + 1e-9, 1.1], dtype=torch.float64)).tolist()
    [0.0, 0.5, 1.0, 1.1]
    """
    return torch.where((f > -_ROUND_OFF) & (f < 1 + _ROUND_OFF), f.clamp(0.0, 1.0), f)


def _as_field(microstructure) -> torch.Tensor:
    t = as_tensor(microstructure)
    spatial_dims_of(t)
    if not t.is_floating_point():
        t = t.to(torch.float32)
    if not torch.isfinite(t).all():
        raise ValueError("microstructure contains NaN or infinite values")
    return t


def volume_fractions(microstructure) -> torch.Tensor:
    """1-point statistics: the volume fraction of every phase, ``v_n = mean(m_n)``.

    Args:
        microstructure: ``(n_samples, n_phases, *spatial)``.

    Returns:
        ``(n_samples, n_phases)``.

    >>> from lgtutorial.microstructure import labels_to_one_hot
    >>> volume_fractions(labels_to_one_hot([[0, 1], [1, 1]])).tolist()
    [[0.25, 0.75]]
    """
    t = _as_field(microstructure)
    return t.flatten(2).mean(-1)


def _keep_lags(f: torch.Tensor, reach) -> torch.Tensor:
    """Keep lags ``-c..c`` (FFT order) on each of the last ``len(reach)`` axes, ``c`` from ``reach``."""
    for axis, c in zip(range(f.ndim - len(reach), f.ndim), reach):
        size = f.shape[axis]
        index = torch.cat([torch.arange(0, c + 1), torch.arange(size - c, size)]).to(f.device)
        f = f.index_select(axis, index)
    return f


def _check_cutoff(cutoff) -> None:
    if cutoff is not None and cutoff < 0:
        raise ValueError(f"cutoff must be a non-negative number of pixels, got {cutoff}")


def crop_lags(f: torch.Tensor, cutoff: int | None, spatial_dims: int) -> torch.Tensor:
    """Keep lags ``-cutoff..cutoff`` on every spatial axis, still in FFT order."""
    if cutoff is None:
        return f
    _check_cutoff(cutoff)
    return _keep_lags(f, [min(cutoff, (size - 1) // 2) for size in f.shape[-spatial_dims:]])


def fast_fft_size(n: int) -> int:
    """The smallest ``2^a 3^b 5^c >= n``: a length that FFTs transform fast on the CPU and on GPUs.

    Non-periodic statistics zero-pad an axis of ``L`` pixels to ``fast_fft_size(2 L - 1)`` rather than
    ``2 L - 1`` itself (511 = 7 x 73 for 256 px): the same values, faster
    (``benchmarks/results/fft_padding_cpu.md``).

    >>> fast_fft_size(511), fast_fft_size(401), fast_fft_size(7), fast_fft_size(1)
    (512, 405, 8, 1)
    """
    n = int(n)
    if n < 1:
        raise ValueError(f"an FFT length must be at least 1, got {n}")
    best = 1 << (n - 1).bit_length()  # the power of two
    odd5 = 1
    while odd5 < best:
        odd = odd5
        while odd < best:  # odd = 3^b 5^c: the smallest power of two that lifts it to n or beyond
            best = min(best, odd << (-(-n // odd) - 1).bit_length())
            odd *= 3
        odd5 *= 5
    return best


def unpad_lags(correlation: torch.Tensor, spatial, cutoff: int | None = None) -> torch.Tensor:
    """The lags ``-c..c`` of a correlation zero-padded to at least ``2 L - 1`` per axis, in FFT order.

    ``c = L - 1`` on an axis of ``L`` pixels, or ``min(cutoff, L - 1)``: the layout of
    :func:`two_point_statistics` with ``periodic=False``, whatever FFT length the correlation used.
    """
    _check_cutoff(cutoff)
    return _keep_lags(correlation, [s - 1 if cutoff is None else min(cutoff, s - 1) for s in spatial])


def _correlate(a: torch.Tensor, b: torch.Tensor, dims: tuple[int, ...], shape) -> torch.Tensor:
    """All pairwise cross-correlations ``sum_x a_i(x) b_j(x + r)`` (periodic over ``shape``)."""
    fa = torch.fft.rfftn(a, s=shape, dim=dims)
    fb = torch.fft.rfftn(b, s=shape, dim=dims)
    product = fa.conj().unsqueeze(2) * fb.unsqueeze(1)  # (n, Na, Nb, ...)
    shifted = tuple(d + 1 for d in dims)
    return torch.fft.irfftn(product, s=shape, dim=shifted)


def two_point_statistics(
    microstructure,
    *,
    periodic: bool = True,
    mask=None,
    cutoff: int | None = None,
    min_pairs: float = 0.5,
) -> torch.Tensor:
    """All auto- and cross-correlations ``f_ab(r)`` of every sample (Eq. (2), Robertson et al. 2023).

    Periodic statistics treat the domain as a torus: ``f_ab(r) = (1/S) sum_x m_a(x) m_b(x + r)``,
    computed with FFTs in ``O(N^2 S log S)``. Non-periodic statistics zero-pad every spatial axis
    to at least ``2 L - 1`` (:func:`fast_fft_size`) and divide each lag by the number of valid pixel
    pairs at that lag, so edge effects do not bias them (the convention for micrographs and small
    patches). They are computed in float64 whatever the input's dtype, so that a field with values in
    ``[0, 1]`` gets values in ``[0, 1]`` at every lag, however few pairs it has.

    Periodic statistics satisfy ``sum_b f_ab(r) = v_a`` exactly; non-periodic ones only
    approximately (each lag averages over a different window of the image), and
    ``f_ab(r) = f_ba(-r)`` holds for both.

    Args:
        microstructure: ``(n_samples, n_phases, *spatial)``, one-hot or continuous.
        periodic: periodic (torus) or non-periodic (zero-padded, pair-count normalised).
        mask: optional ``(*spatial)`` or ``(n_samples, *spatial)`` array of 0/1 marking the
            pixels that count (non-periodic only; e.g. to ignore a scale bar).
        cutoff: keep only lags with ``|r_i| <= cutoff`` on every axis.
        min_pairs: lags with fewer valid pairs than this are set to NaN (non-periodic with mask).

    Returns:
        ``(n_samples, n_phases, n_phases, *lags)`` in FFT order (zero lag at index 0). Periodic:
        ``lags == spatial``; non-periodic: ``2 L - 1`` per axis; with ``cutoff``: ``2 cutoff + 1``.

    >>> import torch
    >>> m = torch.tensor([[[[1., 0.], [0., 0.]], [[0., 1.], [1., 1.]]]])
    >>> f = two_point_statistics(m)
    >>> float(f[0, 0, 0, 0, 0]), float(f[0, 1, 1, 0, 0])  # f_aa(0) = v_a
    (0.25, 0.75)
    """
    m = _as_field(microstructure)
    n_spatial = spatial_dims_of(m)
    spatial = tuple(m.shape[2:])
    dims = tuple(range(2, 2 + n_spatial))
    dtype = m.dtype
    if periodic:
        if mask is not None:
            raise ValueError("mask is only supported for non-periodic statistics (periodic=False)")
        f = _correlate(m, m, dims, spatial) / float(torch.tensor(spatial).prod())
        return crop_lags(f, cutoff, n_spatial)

    _check_cutoff(cutoff)
    # float64 whatever the input: at lags with few pairs the FFT's absolute round-off is divided by a
    # small count (float32 left values 0.005 outside [0, 1] at 256 px)
    m = m.to(torch.float64)
    if mask is None:
        weights = torch.ones((1, 1, *spatial), dtype=m.dtype, device=m.device)
    else:
        weights = as_tensor(mask, device=m.device).to(m.dtype)
        if tuple(weights.shape[-n_spatial:]) != spatial or weights.ndim not in (n_spatial, n_spatial + 1):
            raise ValueError(
                f"mask must have shape {spatial} or (n_samples, *{spatial}); got {tuple(weights.shape)}"
            )
        if not ((weights == 0) | (weights == 1)).all():
            raise ValueError("mask must hold only 0 and 1")
        weights = weights.reshape((-1, 1, *spatial))
        m = m * weights
    padded = tuple(fast_fft_size(2 * s - 1) for s in spatial)
    f = unpad_lags(_correlate(m, m, dims, padded), spatial, cutoff)
    pairs = unpad_lags(_correlate(weights, weights, dims, padded), spatial, cutoff)  # (n or 1, 1, 1, *lags)
    pairs = pairs.round()
    f = f / pairs.clamp_min(min_pairs)
    if bool(((m >= 0) & (m <= 1)).all()):  # then every f_ab(r) lies in [0, 1]: outside it is round-off
        f = clip_round_off(f)
    f = torch.where(pairs >= min_pairs, f, torch.full_like(f, float("nan")))
    return f.to(dtype)


def centre(statistics: torch.Tensor, *, spatial_dims: int | None = None) -> torch.Tensor:
    """Move the zero lag of FFT-ordered statistics to the centre (for plotting).

    Args:
        statistics: tensor whose last ``spatial_dims`` axes are lags in FFT order.
        spatial_dims: number of lag axes (default: 2, or 3 for a 6-D tensor).
    """
    t = as_tensor(statistics)
    if spatial_dims is None:
        spatial_dims = 3 if t.ndim == 6 else 2
    dims = tuple(range(t.ndim - spatial_dims, t.ndim))
    return torch.fft.fftshift(t, dim=dims)


def lag_axes(statistics: torch.Tensor, *, spatial_dims: int = 2) -> list[torch.Tensor]:
    """Lag values (pixels) along each axis of centred statistics, for plot extents."""
    return [
        torch.fft.fftshift(torch.fft.fftfreq(n, d=1.0 / n)).round().to(torch.int64)
        for n in statistics.shape[-spatial_dims:]
    ]


def contact_chances(microstructure, *, periodic: bool, lags=(1, 2, 4, 8)) -> dict:
    """Which phases touch: ``P(b at x + r | a at x) = f_ab(r) / v_a`` for every ordered pair of distinct phases.

    The chance that the pixel ``r`` px away from a pixel of phase ``a`` (along any axis, both
    directions, averaged; over all samples) is of phase ``b``. A material that wraps every particle of
    one phase in a third keeps it at zero for small ``r``: an exclusion that a Gaussian random
    field cannot hold and a hybrid must learn.

    Returns:
        ``{(a, b): [chance at each lag]}``; NaN for a phase absent from every sample.

    >>> from lgtutorial.microstructure import labels_to_one_hot
    >>> m = labels_to_one_hot([[[0, 0, 1, 1, 0, 0, 2, 2]] * 8])  # 1 and 2 are 2 px apart along x
    >>> [round(c, 3) for c in contact_chances(m, periodic=True, lags=(1, 2, 3))[(1, 2)]]  # x only: half the lags
    [0.0, 0.0, 0.25]
    """
    m = _as_field(microstructure).double()
    n_spatial = spatial_dims_of(m)
    largest = max(int(r) for r in lags)
    if min(int(r) for r in lags) < 1 or largest > (min(m.shape[2:]) - 1) // 2:
        raise ValueError(f"lags must be between 1 and {(min(m.shape[2:]) - 1) // 2} px for samples of "
                         f"{tuple(m.shape[2:])} px, got {tuple(lags)}")
    f = two_point_statistics(m, periodic=periodic, cutoff=largest).mean(0)  # FFT order: lag r at r, -r at -r
    fractions = volume_fractions(m).double().mean(0)
    chances = {}
    for a in range(m.shape[1]):
        for b in range(m.shape[1]):
            if a == b:
                continue
            values = []
            for r in lags:
                total = 0.0
                for axis in range(n_spatial):
                    for sign in (1, -1):
                        index = [0] * n_spatial
                        index[axis] = sign * int(r)
                        total += float(f[(a, b, *index)])
                chance = total / (2 * n_spatial) / float(fractions[a]) if float(fractions[a]) > 0 else float("nan")
                values.append(chance)
            chances[(a, b)] = values
    return chances


def volume_fraction_summary(achieved: torch.Tensor, target: torch.Tensor) -> dict:
    """The volume-fraction part of a run's ``summary.json``: the targets, the samples' mean and spread
    (``(n, N)`` achieved fractions; the spread is 0 for one sample) and the largest error.

    >>> achieved = torch.tensor([[0.6, 0.4], [0.7, 0.3]], dtype=torch.float64)
    >>> round(volume_fraction_summary(achieved, torch.tensor([0.65, 0.35], dtype=torch.float64))["largest_volume_fraction_error"], 6)
    0.05
    """
    return {
        "target_volume_fractions": target.tolist(),
        "achieved_volume_fractions_mean": achieved.mean(0).tolist(),
        "achieved_volume_fractions_std": achieved.std(0).tolist() if len(achieved) > 1 else [0.0] * len(target),
        "largest_volume_fraction_error": float((achieved - target).abs().max()),
    }
