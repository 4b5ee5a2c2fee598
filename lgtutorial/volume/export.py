"""Volumes out of Python: phase-label TIFF stacks (Fiji, ParaView, Dragonfly) and orthogonal-slice figures.

A TIFF stack holds one 8-bit (16-bit beyond 255 phases) phase label per voxel, slices along the
volume's first axis (z), written by the ``tifffile`` library in ImageJ's hyperstack layout, so Fiji
opens it as a z-stack with its voxel size, and ParaView's TIFF reader as an image volume. Files are
written atomically: a failed write leaves any earlier file in place.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch

from lgtutorial._io import atomic_write
from lgtutorial.microstructure import as_tensor, check_microstructure, labels_to_one_hot

__all__ = ["volume_labels", "save_tiff_stack", "load_tiff_stack", "plot_orthogonal_slices"]


def volume_labels(volume) -> np.ndarray:
    """Phase labels ``(D, H, W)`` of one volume: one-hot ``(N, D, H, W)`` / ``(1, N, D, H, W)`` or labels ``(D, H, W)``.

    >>> volume_labels(labels_to_one_hot(torch.tensor([[[0, 1], [1, 0]]]), spatial_dims=3)).tolist()
    [[[0, 1], [1, 0]]]
    """
    t = as_tensor(volume)
    if t.ndim == 5:
        if t.shape[0] != 1:
            raise ValueError(f"expected one volume; got {t.shape[0]} (pass volumes[k] to save volume k)")
        t = t[0]
    if t.ndim == 4:
        return check_microstructure(t[None], name="volume").argmax(1)[0].cpu().numpy()
    if t.ndim == 3 and not t.is_floating_point() and not t.is_complex():
        if int(t.min()) < 0:
            raise ValueError(f"phase labels must be >= 0; found {int(t.min())}")
        return t.cpu().numpy()
    raise ValueError("expected one volume: one-hot (n_phases, D, H, W) or (1, n_phases, D, H, W), or integer phase "
                     f"labels (D, H, W); got shape {tuple(t.shape)} of {t.dtype}")


def save_tiff_stack(volume, path, *, voxel_size: float | None = None, unit: str = "um") -> Path:
    """Write one volume as a phase-label TIFF stack (one z-slice per page), atomically.

    Args:
        volume: one-hot ``(N, D, H, W)`` / ``(1, N, D, H, W)`` or integer labels ``(D, H, W)``.
        path: the ``.tif``/``.tiff`` file to write (folders are made).
        voxel_size: edge of a voxel in ``unit``, stored as ImageJ spacing and TIFF resolution
            (``None``: pixel units).
        unit: the unit of ``voxel_size``.

    Returns:
        The path written.
    """
    import tifffile

    labels = volume_labels(volume)
    dtype = np.uint8 if int(labels.max()) < 256 else np.uint16
    path = Path(path)
    if path.suffix.lower() not in (".tif", ".tiff"):
        raise ValueError(f"{path}: a TIFF stack needs a .tif or .tiff name")
    metadata = {"axes": "ZYX"}
    options = {}
    if voxel_size is not None:
        if not voxel_size > 0:
            raise ValueError(f"voxel_size must be positive, got {voxel_size!r}")
        metadata.update(spacing=float(voxel_size), unit=unit)
        options["resolution"] = (1.0 / voxel_size, 1.0 / voxel_size)
    buffer = io.BytesIO()  # tifffile wants a named file or a buffer; the temporary file's handle has no name
    tifffile.imwrite(buffer, labels.astype(dtype), imagej=True, metadata=metadata, **options)
    with atomic_write(path, "wb") as handle:
        handle.write(buffer.getbuffer())
    return path


def load_tiff_stack(path, *, n_phases: int | None = None) -> torch.Tensor:
    """Read a phase-label TIFF stack back as a one-hot volume ``(1, N, D, H, W)`` (float32)."""
    import tifffile

    labels = tifffile.imread(Path(path))
    if labels.ndim != 3:
        raise ValueError(f"{path}: expected a stack of 2D phase-label slices (D, H, W); got shape {labels.shape}")
    return labels_to_one_hot(labels.astype(np.int64), n_phases=n_phases, spatial_dims=3)


def plot_orthogonal_slices(volume, *, index: tuple[int, int, int] | None = None, path=None, title: str | None = None,
                           size: float = 3.0):
    """Three orthogonal sections through one volume: xy at z, xz at y, yz at x (axes in voxels).

    Args:
        volume: as for :func:`save_tiff_stack`.
        index: ``(z, y, x)`` of the sections (default: the centre).
        path: also save the figure there as PNG (atomically).
        title: a title above the three panels.

    Returns:
        The matplotlib figure.
    """
    import matplotlib.pyplot as plt

    from lgtutorial.plotting import phase_colormap

    labels = volume_labels(volume)
    depth, height, width = labels.shape
    z, y, x = index if index is not None else (depth // 2, height // 2, width // 2)
    if not (0 <= z < depth and 0 <= y < height and 0 <= x < width):
        raise ValueError(f"index {index} lies outside the volume {labels.shape}")
    n_phases = max(2, int(labels.max()) + 1)
    sections = [(labels[z], f"xy at z = {z}", "x", "y"), (labels[:, y], f"xz at y = {y}", "x", "z"),
                (labels[:, :, x], f"yz at x = {x}", "y", "z")]
    figure, axes = plt.subplots(1, 3, figsize=(3 * size, size), constrained_layout=True)
    for ax, (image, name, horizontal, vertical) in zip(axes, sections):
        ax.imshow(image, cmap=phase_colormap(n_phases), vmin=-0.5, vmax=n_phases - 0.5, interpolation="nearest")
        ax.set_title(name)
        ax.set_xlabel(f"{horizontal} (voxels)")
        ax.set_ylabel(f"{vertical} (voxels)")
    if title:
        figure.suptitle(title)
    if path is not None:
        with atomic_write(path, "wb") as handle:
            figure.savefig(handle, format="png", dpi=100)
    return figure
