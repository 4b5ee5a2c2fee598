"""Extrapolation: GRFs from convex combinations of two references' 2-point statistics.

Section 5.2 of Robertson et al. 2023: ``f_theta = (1 - theta) f_A + theta f_B`` is a valid set of
2-point statistics for every ``theta`` in [0, 1], so the global layer can move between (and
beyond the training data of) two materials without retraining; the local layer stays the one
trained on reference A.

Both references must have the same phases. When their grids differ, reference B is resized to
A's grid by nearest-neighbour sampling (:func:`resize_microstructure`), which keeps it one-hot and
scales its features by the ratio of the grid sizes (e.g. 256 / 201 = 1.27 for the 201 x 201 GRF
paper examples on the 256 x 256 case-study grid).
"""

from __future__ import annotations

import torch

from lgtutorial.grf.field import GaussianRandomField, statistics_row
from lgtutorial.microstructure import as_tensor, check_microstructure
from lgtutorial.statistics.two_point import two_point_statistics

__all__ = [
    "interpolate_statistics",
    "resize_microstructure",
    "interpolated_field",
    "local_volume_fractions",
    "normalised_covariance",
    "two_point_error",
    "statistics_row_for_shape",
    "load_statistics_row",
]


def interpolate_statistics(statistics_a, statistics_b, theta: float) -> torch.Tensor:
    """Convex combination ``(1 - theta) f_A + theta f_B`` of two sets of 2-point statistics.

    Both must have the same shape (same phases, same domain). A convex combination of valid
    statistics is valid, so the result can feed :class:`GaussianRandomField` (Section 5.2 of
    Robertson et al. 2023). When the two references have different volume fractions, the field's
    volume fractions follow the zero-frequency content of the mixture,
    ``v_n = sum_r f_pn(r) / (S f_pp(0))``, a weighted average of the references' fractions.
    The result is on ``statistics_a``'s device and of its dtype.
    """
    a, b = as_tensor(statistics_a), as_tensor(statistics_b)
    if a.shape != b.shape:
        raise ValueError(
            f"statistics must have the same shape (same phases and domain); got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    if not 0.0 <= theta <= 1.0:
        raise ValueError(f"theta must lie in [0, 1] for a convex combination, got {theta}")
    return (1.0 - theta) * a + theta * b.to(a.device, a.dtype)


def resize_microstructure(microstructure, shape: tuple[int, ...]) -> torch.Tensor:
    """Nearest-neighbour resize of one-hot ``(n, N, *spatial)`` to ``(n, N, *shape)`` (stays one-hot)."""
    m = check_microstructure(microstructure)
    if len(shape) != m.ndim - 2:
        raise ValueError(f"shape must have {m.ndim - 2} entries for this microstructure, got {tuple(shape)}")
    if tuple(shape) == tuple(m.shape[2:]):
        return m
    return torch.nn.functional.interpolate(m, size=tuple(shape), mode="nearest-exact")


def interpolated_field(
    reference_a,
    reference_b,
    theta: float,
    *,
    reference_phase: int = 0,
    device=None,
    dtype: torch.dtype = torch.float32,
) -> GaussianRandomField:
    """The GRF of ``(1 - theta) f_A + theta f_B`` on reference A's grid (Section 5.2, Robertson et al. 2023).

    Args:
        reference_a: one-hot ``(n, N, H, W)``: the reference the score model was trained on.
        reference_b: one-hot ``(m, N, H', W')`` with the same phases; resized to ``(H, W)``.
        theta: weight of reference B, in [0, 1].
        reference_phase: the phase whose statistics row defines the field.

    Returns:
        A :class:`~lgtutorial.grf.field.GaussianRandomField` sampling ``(H, W)`` periodic fields.
    """
    a = check_microstructure(reference_a, name="reference_a")
    b = check_microstructure(reference_b, name="reference_b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(
            f"both references need the same phases; reference_a has {a.shape[1]}, reference_b {b.shape[1]}"
        )
    b = resize_microstructure(b, tuple(a.shape[2:]))
    row = interpolate_statistics(
        statistics_row(a, reference_phase=reference_phase),
        statistics_row(b, reference_phase=reference_phase),
        theta,
    )
    return GaussianRandomField(row, reference_phase=reference_phase, device=device, dtype=dtype)


def local_volume_fractions(
    microstructure, *, window: int = 40, phase: int = 1, stride: int = 1, periodic: bool = True
) -> torch.Tensor:
    """Volume fraction of ``phase`` in every ``window x window`` neighbourhood.

    The score model of Robertson et al. 2023 sees its training micrograph only through patches
    (40 x 40 px in case study 1); a neighbourhood whose local volume fraction lies outside the range
    of those patches is outside its training distribution (Section 5.2, cost 2 of extrapolation).

    Args:
        microstructure: one-hot ``(n_samples, n_phases, H, W)``.
        window: side of the square neighbourhood in pixels.
        phase: the phase whose fraction is measured.
        stride: step between neighbourhood corners in pixels.
        periodic: ``True``: neighbourhoods wrap around (every pixel starts one, for periodic
            samples); ``False``: only neighbourhoods fully inside the image (like training patches
            cut from a micrograph).

    Returns:
        ``(n_samples, H', W')``: ``H' = ceil(H / stride)`` when periodic, else
        ``(H - window) // stride + 1``; likewise ``W'``.

    >>> m = torch.zeros(1, 2, 4, 4); m[:, 1, :, :2] = 1; m[:, 0, :, 2:] = 1
    >>> local_volume_fractions(m, window=2, periodic=False).tolist()
    [[[1.0, 0.5, 0.0], [1.0, 0.5, 0.0], [1.0, 0.5, 0.0]]]
    """
    m = check_microstructure(microstructure)
    if m.ndim != 4:
        raise ValueError(f"expected a 2-D microstructure (n_samples, n_phases, H, W), got {tuple(m.shape)}")
    if not 0 <= phase < m.shape[1]:
        raise ValueError(f"phase must be in 0..{m.shape[1] - 1}, got {phase}")
    for name, value in (("window", window), ("stride", stride)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    height, width = m.shape[2:]
    if window > min(height, width):
        raise ValueError(f"the window ({window} px) is larger than the domain {height}x{width}")
    field = m[:, phase : phase + 1].to(torch.float64)
    if periodic:
        field = torch.cat([field, field[:, :, : window - 1]], dim=2)
        field = torch.cat([field, field[:, :, :, : window - 1]], dim=3)
    fractions = torch.nn.functional.avg_pool2d(field, window, stride=stride)
    return fractions[:, 0]


def normalised_covariance(statistics: torch.Tensor) -> torch.Tensor:
    """Periodic 2-point statistics ``(..., H, W)`` (FFT order) as normalised covariances.

    ``c(r) = (f(r) - v_p v_n) / |f(0) - v_p v_n|`` with ``v_p v_n`` the mean of ``f`` over all lags:
    ``c_pp(0) = 1``, ``c_pn(0) = -1`` for ``n != p``, and ``c -> 0`` where the phases decorrelate.

    >>> m = torch.tensor([[[[1.0, 1.0, 0.0, 0.0]], [[0.0, 0.0, 1.0, 1.0]]]])  # (1, 2, 1, 4)
    >>> normalised_covariance(two_point_statistics(m)[0, 0]).tolist()
    [[[1.0, 0.0, -1.0, 0.0]], [[-1.0, 0.0, 1.0, 0.0]]]
    """
    row = torch.as_tensor(statistics)
    covariance = row - row.mean(dim=(-2, -1), keepdim=True)
    scale = covariance[..., :1, :1].abs()
    return covariance / torch.where(scale > 0, scale, torch.ones_like(scale))


def two_point_error(
    microstructures,
    target_row,
    *,
    reference_phase: int = 0,
    min_lag: float = 0.0,
    max_lag: float | None = None,
    normalise: bool = False,
) -> torch.Tensor:
    """Root-mean-square difference between samples' 2-point statistics and a target row.

    Compares the periodic statistics ``f_pn(r)`` of every sample (``p = reference_phase``, all
    ``n``) with ``target_row`` over the lags ``min_lag <= |r| <= max_lag``: the measure of how well
    a generator reproduces the statistics it was given, split into short and long range.

    With ``normalise=True`` both sides are first turned into normalised covariances
    ``c_pn(r) = (f_pn(r) - v_p v_n) / |f_pn(0) - v_p v_n|`` (``v_p v_n`` is the mean of ``f_pn`` over
    all lags of a periodic row), each with its own volume fractions: a volume-fraction mismatch then
    drops out to first order and only the shape of the correlations is compared (``c_pp(0) = 1``).

    Args:
        microstructures: one-hot ``(n_samples, n_phases, H, W)``, periodic.
        target_row: ``(n_phases, H, W)`` statistics row in FFT order (e.g. the input of the GRF).
        reference_phase: ``p``.
        min_lag, max_lag: the ring of lag lengths (pixels) to compare; ``max_lag=None``: all lags.
        normalise: compare normalised covariances instead of the statistics themselves.

    Returns:
        ``(n_samples,)`` float64 errors.
    """
    m = check_microstructure(microstructures, name="microstructures").to(torch.float64)
    target = torch.as_tensor(target_row, dtype=torch.float64, device=m.device)
    if m.ndim != 4 or tuple(target.shape) != (m.shape[1], *m.shape[2:]):
        raise ValueError(
            f"expected microstructures (n, N, H, W) and a target row (N, H, W) on the same grid; got "
            f"{tuple(m.shape)} and {tuple(target.shape)}"
        )
    height, width = m.shape[2:]
    lag_y = torch.fft.fftfreq(height, d=1.0 / height, device=m.device, dtype=torch.float64)
    lag_x = torch.fft.fftfreq(width, d=1.0 / width, device=m.device, dtype=torch.float64)
    radius = (lag_y[:, None] ** 2 + lag_x[None, :] ** 2).sqrt()
    ring = radius >= min_lag
    if max_lag is not None:
        ring &= radius <= max_lag
    if not bool(ring.any()):
        raise ValueError(f"no lag lies in [{min_lag}, {max_lag}] px on a {height}x{width} grid")
    samples = two_point_statistics(m)[:, reference_phase]
    if normalise:
        samples, target = normalised_covariance(samples), normalised_covariance(target)
    difference = (samples - target)[..., ring]
    return difference.pow(2).mean(dim=(1, 2)).sqrt()


def statistics_row_for_shape(row: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """Move a periodic statistics row ``(N, H, W)`` onto another periodic grid ``(N, *shape)``.

    The covariance ``f_pn(r) - v_p v_n`` is multiplied by a Gaussian window of width ``h / 3``
    (``h`` half the smaller side of both grids), cut at ``|r| = h``, shifted to sum to zero and
    written onto the new grid; the asymptote ``v_p v_n`` fills the rest and lag zero keeps its
    value. The window keeps the spectrum non-negative (up to round-off that the GRF clips) and the
    volume fractions exact to ``O(1/S)``, but weakens long-range (and slightly also short-range)
    correlations: a small domain cannot hold correlations longer than itself. The row is returned
    unchanged when ``shape`` is its own.
    """
    row = torch.as_tensor(row, dtype=torch.float64)
    shape = tuple(int(s) for s in shape)
    if row.ndim != 3 or len(shape) != 2:
        raise ValueError(
            f"expected a 2-D statistics row (N, H, W) and a shape (H, W); got {tuple(row.shape)}, {shape}"
        )
    if tuple(row.shape[1:]) == shape:
        return row
    if min(shape) < 2:
        raise ValueError(f"the domain must be at least 2x2 pixels, got {shape}")
    size = row.shape[1] * row.shape[2]
    means = row.sum(dim=(1, 2)) / size  # v_p v_n for every n (zero-frequency value)
    covariance = row - means.view(-1, 1, 1)
    half = min(min(shape), min(row.shape[1:])) / 2

    def lags(n: int) -> torch.Tensor:
        k = torch.arange(n, dtype=torch.float64, device=row.device)
        return torch.where(k < (n + 1) // 2, k, k - n)

    lag_y, lag_x = torch.meshgrid(lags(shape[0]), lags(shape[1]), indexing="ij")
    radius = (lag_y**2 + lag_x**2).sqrt()
    window = torch.exp(-0.5 * (3.0 * radius / half) ** 2) * (radius < half)
    moved = covariance[:, lag_y.long() % row.shape[1], lag_x.long() % row.shape[2]] * window
    moved = moved - moved.mean(dim=(1, 2), keepdim=True)  # zero-sum covariance: exact means
    resized = moved + means.view(-1, 1, 1)
    # Lag zero keeps its own value (f_pp(0) = v_p, f_pn(0) = 0 for one-hot data), so the row still
    # sums to f_pp(0); this adds a small white component to the spectrum.
    resized[:, 0, 0] = row[:, 0, 0]
    return _nonnegative_reference_spectrum(resized)


def _nonnegative_reference_spectrum(row: torch.Tensor) -> torch.Tensor:
    """Lift the negative spectral values of the reference autocorrelation to zero, keeping the row's sum.

    Cutting the window at ``|r| = h`` and resampling onto another grid leaves a few slightly negative
    values in the spectrum of ``f_pp`` (measured on the registered 201 x 201 NGRF examples moved to
    200 x 200: up to 1e-4 of the largest, beyond what the GRF accepts as round-off). The correction
    ``delta`` (the inverse transform of those negative parts) is added to ``f_pp`` and taken from the
    other phases' rows in proportion to their long-range values, so that ``sum_n f_pn(r) = v_p`` still
    holds at every lag; ``f_pp(0)`` grows by the same small amount.
    """
    reference = int(torch.argmax(row[:, 0, 0]))  # f_pp(0) = v_p; f_pn(0) = 0 for n != p (one-hot data)
    spectrum = torch.fft.fft2(row[reference]).real
    spectrum[0, 0] = 0.0  # the mean is not a fluctuation
    negative = spectrum.clamp_max(0.0)
    if not bool((negative < 0).any()):
        return row
    delta = torch.fft.ifft2(-negative.to(torch.complex128)).real
    others = [n for n in range(row.shape[0]) if n != reference]
    means = row.mean(dim=(1, 2))
    weights = means[others] / means[others].sum() if float(means[others].sum()) > 0 else torch.full(
        (len(others),), 1.0 / len(others), dtype=row.dtype, device=row.device)
    repaired = row.clone()
    repaired[reference] += delta
    for weight, n in zip(weights, others):
        repaired[n] -= weight * delta
    return repaired


def load_statistics_row(path, *, label: str = "statistics") -> torch.Tensor:
    """Row 0 ``(N, H, W)`` (float64) of periodic 2-point statistics saved as ``.npy``: the full set
    ``(N, N, H, W)`` or one row ``(N, H, W)``, FFT order (as ``lgtutorial stats`` writes them).

    Raises:
        FileNotFoundError: no such file. ValueError: not a ``.npy`` file, or not floating-point
            statistics of one of those shapes; ``label`` (an option or design field) opens the message.
    """
    from pathlib import Path

    import numpy as np

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{label}: no such file: {path}")
    if path.suffix.lower() != ".npy":
        raise ValueError(f"{label}: expected a .npy file of 2-point statistics, got {path}")
    array = np.load(path, allow_pickle=False)
    if array.ndim == 4 and array.shape[0] == array.shape[1]:
        array = array[0]
    if array.ndim != 3 or not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f"{label}: expected periodic 2-point statistics of shape (N, N, H, W) or a row (N, H, W), "
                         f"floating point, got {array.dtype} {array.shape} in {path}")
    return torch.from_numpy(np.ascontiguousarray(array)).double()
