"""Connected regions of each phase: whether a phase forms closed cells, one network, or specks.

Chord lengths and 2-point statistics look along lines and pairs of pixels; neither says whether the
pieces of a phase join up. Grain boundaries that break off in loose ends, particles merged with their
neighbours and speckle can all have nearly the right chords and volume fraction; what they change is
*which connected region a pixel belongs to, and how big that region is*.

:func:`cluster_sizes` labels the connected regions of one phase (face connectivity: 4 neighbours in
2D, 6 in 3D; scipy's labelling) and returns their sizes in pixels. The distribution compared is the
one *a pixel of the phase sees*: the size of the region it belongs to, on a log scale (weighted by
area). :func:`cluster_size_distance` is the earth mover's distance between two such distributions, in
decades (0.3: regions about twice as large or small), on windows of one common size.
:func:`halves_cluster_distance` is the same distance between a micrograph's own top and bottom
halves: what two pieces of one material already differ by.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage, stats

from lgtutorial.microstructure import as_tensor, one_hot_to_labels, spatial_dims_of, top_and_bottom_halves

__all__ = ["cluster_sizes", "cluster_size_distance", "median_cluster_size", "halves_cluster_distance",
           "common_window"]


def _ensemble(microstructure) -> torch.Tensor:
    """A one-hot (or continuous) ``(n, N, H, W)`` or ``(n, N, D, H, W)`` ensemble as a tensor, checked."""
    m = as_tensor(microstructure)
    spatial_dims_of(m)
    return m


def _labels(microstructure) -> np.ndarray:
    """``(n, *spatial)`` integer phase labels (argmax) of an ensemble."""
    return one_hot_to_labels(_ensemble(microstructure)).cpu().numpy()


def common_window(*ensembles) -> tuple[int, ...]:
    """The largest window every image of every ensemble holds: per spatial axis, the smallest side."""
    shapes = [tuple(_ensemble(e).shape[2:]) for e in ensembles]
    if len({len(s) for s in shapes}) != 1:
        raise ValueError(f"ensembles of different dimensions cannot be compared: {shapes}")
    return tuple(min(sides) for sides in zip(*shapes))


def _windows(labels: np.ndarray, window: tuple[int, ...]):
    """Non-overlapping windows of shape ``window`` from every image (what is left at the far edges is dropped)."""
    spatial = labels.shape[1:]
    if len(window) != len(spatial) or any(w < 1 or w > s for w, s in zip(window, spatial)):
        raise ValueError(f"window {tuple(window)} does not fit in images of shape {spatial}")
    counts = [s // w for s, w in zip(spatial, window)]
    for image in labels:
        for index in np.ndindex(*counts):
            yield image[tuple(slice(i * w, (i + 1) * w) for i, w in zip(index, window))]


def cluster_sizes(microstructure, phase: int, *, window=None) -> np.ndarray:
    """Sizes in pixels (voxels) of the connected regions of ``phase``, over all windows of all images.

    Args:
        microstructure: one-hot (or continuous, argmax-segmented) ``(n, N, H, W)`` or ``(n, N, D, H, W)``.
        phase: phase index.
        window: side(s) of the windows labelled one by one (an int or one per axis); default the
            whole image.

    >>> from lgtutorial.microstructure import labels_to_one_hot
    >>> two_specks = labels_to_one_hot(torch.tensor([[[1, 0, 0, 0], [0, 0, 1, 1], [0, 0, 0, 0]]]), n_phases=2)
    >>> cluster_sizes(two_specks, 1).tolist(), cluster_sizes(two_specks, 0).tolist()
    ([1, 2], [9])
    """
    labels = _labels(microstructure)
    n_phases = _ensemble(microstructure).shape[1]
    if not 0 <= int(phase) < n_phases:
        raise ValueError(f"phase must be between 0 and {n_phases - 1}; got {phase}")
    spatial = labels.shape[1:]
    if window is None:
        window = spatial
    elif isinstance(window, int):
        window = (window,) * len(spatial)
    found = []
    for piece in _windows(labels, tuple(int(w) for w in window)):
        regions, count = ndimage.label(piece == int(phase))
        if count:
            found.append(np.bincount(regions.ravel())[1:])
    return np.concatenate(found) if found else np.zeros(0, dtype=np.int64)


def median_cluster_size(microstructure, phase: int, *, window=None) -> float:
    """The size of the region that the median pixel of ``phase`` belongs to (area-weighted median), or nan
    if the phase is absent.

    >>> from lgtutorial.microstructure import labels_to_one_hot
    >>> cells = labels_to_one_hot(torch.tensor([[[1, 1, 0, 1, 1, 1, 1, 1]]]), n_phases=2)
    >>> median_cluster_size(cells, 1)
    5.0
    """
    sizes = np.sort(cluster_sizes(microstructure, phase, window=window))
    if sizes.size == 0:
        return float("nan")
    area = np.cumsum(sizes)
    return float(sizes[np.searchsorted(area, area[-1] / 2)])


def cluster_size_distance(a, b, phase: int, *, window=None) -> float:
    """Earth mover's distance, in decades, between the region sizes that the pixels of ``phase`` see in
    ensembles ``a`` and ``b`` (log10 of the size of a pixel's region, area-weighted).

    0 when the regions have the same sizes; 1 when they are ten times larger or smaller; nan if the
    phase is absent from either. Region sizes depend on the window: a region touching the edge is
    cut, and one that spans the whole image grows with it. Both ensembles are therefore cut into
    windows of one size (``window``; default :func:`common_window`, the smallest image's) and each
    window is labelled on its own, without wrapping around periodic edges, so that a periodic sample
    and a non-periodic micrograph are treated alike.

    >>> from lgtutorial.microstructure import labels_to_one_hot
    >>> small = labels_to_one_hot(torch.tensor([[[1, 0] * 8] * 4]), n_phases=2)  # columns of 4 px
    >>> tall = labels_to_one_hot(torch.tensor([[[1, 0] * 8] * 40]), n_phases=2)  # cut into ten windows of 4 x 16
    >>> cluster_size_distance(small, tall, 1)
    0.0
    >>> lines = labels_to_one_hot(torch.tensor([[[1] * 16, [0] * 16, [1] * 16, [0] * 16]]), n_phases=2)
    >>> round(cluster_size_distance(small, lines, 1), 3)  # regions of 16 px against 4 px: log10(4)
    0.602
    """
    if window is None:
        window = common_window(a, b)
    sa, sb = cluster_sizes(a, phase, window=window), cluster_sizes(b, phase, window=window)
    if sa.size == 0 or sb.size == 0:
        return float("nan")
    return float(stats.wasserstein_distance(np.log10(sa), np.log10(sb), sa, sb))


def halves_cluster_distance(microstructure) -> list[float]:
    """Per phase, :func:`cluster_size_distance` between the top and bottom halves of a micrograph: the
    measure's resolution for this material (a phase with few, large regions has a large one).

    >>> from lgtutorial.microstructure import labels_to_one_hot
    >>> stripes = labels_to_one_hot(torch.tensor([[0, 0, 1, 1, 1] * 4] * 8))
    >>> halves_cluster_distance(stripes)
    [0.0, 0.0]
    """
    top, bottom = top_and_bottom_halves(microstructure)
    return [cluster_size_distance(top, bottom, p) for p in range(top.shape[1])]
