"""Figures used by the book and the CLI, with one colour per model everywhere."""

from __future__ import annotations

import matplotlib

import numpy as np
import torch

from .microstructure import as_tensor, one_hot_to_labels
from .statistics import centre

__all__ = ["MODEL_COLOURS", "PHASE_COLOURS", "phase_colormap", "show_microstructures", "show_two_point_statistics"]

#: One colour per model, used by every figure of the book.
MODEL_COLOURS = {
    "reference": "#000000",
    "GRF": "#d95f02",
    "SBG": "#7570b3",
    "hybrid": "#1b9e77",
    "hybrid (no vf)": "#66a61e",
    "SBG + vf": "#e7298a",
}

#: Phase colours close to the paper's figures (yellow, teal, dark blue, ...).
PHASE_COLOURS = ["#fde725", "#21918c", "#3b528b", "#5ec962", "#440154", "#f89540"]


def model_colour(name: str) -> str:
    """The colour of a model; unknown names get a stable colour from the tab10 cycle."""
    if name in MODEL_COLOURS:
        return MODEL_COLOURS[name]
    palette = matplotlib.colormaps["tab10"].colors
    return matplotlib.colors.to_hex(palette[sum(map(ord, name)) % len(palette)])


def phase_colormap(n_phases: int):
    """A discrete colormap with one colour per phase (2-phase: black matrix, white precipitate)."""
    from matplotlib.colors import ListedColormap

    if n_phases == 2:
        return ListedColormap(["#111111", "#f0f0f0"])
    return ListedColormap(PHASE_COLOURS[:n_phases])


def _labels(microstructure) -> np.ndarray:
    t = as_tensor(microstructure)
    if t.ndim == 3:
        t = t.unsqueeze(0)
    return one_hot_to_labels(t).cpu().numpy()


def show_microstructures(microstructures, titles=None, *, axes=None, n_phases=None, size=3.0):
    """Show one or more one-hot (or continuous, argmax-segmented) 2D microstructures side by side.

    Args:
        microstructures: a list of ``(N, H, W)`` / ``(1, N, H, W)`` tensors, or one ``(n, N, H, W)``.
        titles: optional titles.
        axes: optional matplotlib axes to draw into.
    """
    import matplotlib.pyplot as plt

    if isinstance(microstructures, (torch.Tensor, np.ndarray)) and as_tensor(microstructures).ndim == 4:
        microstructures = list(as_tensor(microstructures))
    images = [_labels(m)[0] for m in microstructures]
    n_phases = n_phases or max(as_tensor(m).shape[-3] for m in microstructures)
    if axes is None:
        _, axes = plt.subplots(1, len(images), figsize=(size * len(images), size), squeeze=False)
        axes = axes[0]
    for k, (ax, image) in enumerate(zip(axes, images)):
        ax.imshow(image, cmap=phase_colormap(n_phases), vmin=-0.5, vmax=n_phases - 0.5, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        if titles is not None:
            ax.set_title(titles[k])
    return axes


def show_two_point_statistics(statistics, *, phase_names=None, cutoff=None, size=3.0):
    """Show the centred maps ``f_ab(r)`` of one row or the full matrix of 2-point statistics.

    Args:
        statistics: ``(N, N, H, W)`` (full matrix) or ``(N, H, W)`` (one row), FFT order.
        phase_names: labels of the phases.
        cutoff: show lags ``|r| <= cutoff`` only.
    """
    import matplotlib.pyplot as plt

    f = as_tensor(statistics).detach().cpu().double()
    if f.ndim == 3:
        f = f.unsqueeze(0)
    rows, cols = f.shape[:2]
    f = centre(f).numpy()
    h, w = f.shape[-2:]
    extent = (-(w // 2) - 0.5, (w - 1) // 2 + 0.5, (h - 1) // 2 + 0.5, -(h // 2) - 0.5)
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols, size * rows), squeeze=False)
    names = phase_names or [str(i) for i in range(cols)]
    for a in range(rows):
        for b in range(cols):
            ax = axes[a, b]
            image = ax.imshow(f[a, b], extent=extent, cmap="viridis")
            if cutoff is not None:
                ax.set_xlim(-cutoff, cutoff)
                ax.set_ylim(cutoff, -cutoff)
            ax.set_title(f"f[{names[a] if rows > 1 else names[0]}, {names[b]}]", fontsize=9)
            ax.set_xlabel("r_x (px)")
            ax.set_ylabel("r_y (px)")
            fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    return fig
