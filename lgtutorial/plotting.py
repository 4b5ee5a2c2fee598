"""Figures used by the book and the CLI, with one colour per model everywhere."""

from __future__ import annotations

import matplotlib
import numpy as np
import torch

from lgtutorial.microstructure import as_tensor, one_hot_to_labels
from lgtutorial.statistics.two_point import centre

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
    # each panel keeps its own phase count (a 2-phase image beside a 3-phase one keeps its colours)
    counts = [n_phases or as_tensor(m).shape[-3] for m in microstructures]
    if axes is None:
        _, axes = plt.subplots(1, len(images), figsize=(size * len(images), size), squeeze=False)
        axes = axes[0]
    for k, (ax, image, count) in enumerate(zip(axes, images, counts)):
        ax.imshow(image, cmap=phase_colormap(count), vmin=-0.5, vmax=count - 0.5, interpolation="nearest")
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
    if cutoff is not None:  # crop before drawing so the colour scale covers the lags shown
        ch, cw = min(cutoff, h // 2), min(cutoff, w // 2)
        f = f[..., h // 2 - ch : h // 2 + ch + 1, w // 2 - cw : w // 2 + cw + 1]
        h, w = f.shape[-2:]
    extent = (-(w // 2) - 0.5, (w - 1) // 2 + 0.5, (h - 1) // 2 + 0.5, -(h // 2) - 0.5)
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols, size * rows), squeeze=False)
    names = phase_names or [str(i) for i in range(cols)]
    for a in range(rows):
        for b in range(cols):
            ax = axes[a, b]
            image = ax.imshow(f[a, b], extent=extent, cmap="viridis")
            ax.set_title(f"f[{names[a] if rows > 1 else names[0]}, {names[b]}]", fontsize=9)
            ax.set_xlabel("r_x (px)")
            ax.set_ylabel("r_y (px)")
            fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    return fig


# -- ensemble comparison figures (Robertson et al. 2023, Figs. 4-6 and 12) -----------------------
# Each takes a :class:`lgtutorial.evaluation.compare.Comparison` and returns a matplotlib Figure.


def _phase_label(comparison, phase: int) -> str:
    return comparison.phase_names[phase]


def _model_label(comparison, name: str) -> str:
    n = len(comparison.volume_fractions[name])
    return f"{name} ({comparison.boundary(name)}, n={n})"


def _all_models(comparison) -> list:
    return ["reference"] + list(comparison.models)


def plot_two_point_slices(comparison, *, phase: int = 0, max_samples: int = 20, zoom: int | None = None, size=4.0):
    """Autocorrelation ``f_aa`` along ``r_y = 0`` and ``r_x = 0``: samples thin, ensemble means bold (Fig. 4)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(2.2 * size, size), squeeze=False)
    lags = np.arange(-comparison.cutoff, comparison.cutoff + 1)
    for ax, axis in zip(axes[0], ("x", "y")):
        for name in _all_models(comparison):
            curves = np.fft.fftshift(comparison.autocorrelation_slices[name][axis][:, phase].cpu().numpy(), axes=-1)
            colour = model_colour(name)
            if name != "reference":
                for curve in curves[:max_samples]:
                    ax.plot(lags, curve, color=colour, linewidth=0.5, alpha=0.2)
            ax.plot(lags, curves.mean(0), color=colour, linewidth=2.2 if name != "reference" else 1.6,
                    label=_model_label(comparison, name), zorder=3 if name == "reference" else 2)
        if comparison.patch_size:
            for side in (-1, 1):
                ax.axvline(side * (comparison.patch_size // 2), color="red", linestyle=":", linewidth=1)
        if zoom is not None:
            ax.set_xlim(-zoom, zoom)
        other = "y" if axis == "x" else "x"
        ax.set_xlabel(f"r_{axis} (px)")
        ax.set_ylabel(f"f_aa, a = {_phase_label(comparison, phase)}")
        ax.set_title(f"slice r_{other} = 0 (bold: ensemble mean)", fontsize=10)
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_autocorrelation_error_maps(comparison, *, phase: int = 0, size=3.5):
    """``|<f_aa> - f_aa(reference)|`` of every ensemble, with the patch box drawn in red (Fig. 5)."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    reference = comparison.autocorrelation_mean["reference"][phase]
    errors = [np.fft.fftshift((comparison.autocorrelation_mean[name][phase] - reference).abs().cpu().numpy())
              for name in comparison.models]
    vmax = max(float(np.nanmax(e)) for e in errors) or 1.0
    c = comparison.cutoff
    extent = (-c - 0.5, c + 0.5, c + 0.5, -c - 0.5)
    fig, axes = plt.subplots(1, len(errors), figsize=(size * len(errors) + 1, size), squeeze=False)
    for ax, name, error in zip(axes[0], comparison.models, errors):
        image = ax.imshow(error, extent=extent, cmap="magma", vmin=0, vmax=vmax)
        if comparison.patch_size:
            half = comparison.patch_size / 2
            ax.add_patch(Rectangle((-half, -half), 2 * half, 2 * half, fill=False, edgecolor="red", linewidth=1.5))
        ax.set_title(f"{name}", color=model_colour(name), fontsize=10)
        ax.set_xlabel("r_x (px)")
        ax.set_ylabel("r_y (px)")
    fig.colorbar(image, ax=list(axes[0]), fraction=0.046, label="absolute error")
    fig.suptitle(f"|<f_aa> - f_aa(reference)|, a = {_phase_label(comparison, phase)} "
                 f"(reference {comparison.boundary('reference')}; red box: patch)", fontsize=9)
    return fig


def plot_chord_length_distributions(comparison, *, axis: str = "x", max_length: int | None = None, size=3.5):
    """Chord length distributions of every phase along ``axis``, one curve per model (Fig. 6a,b)."""
    import matplotlib.pyplot as plt

    n_phases = len(comparison.phase_names)
    if max_length is None:
        tops = [float(np.quantile(c.lengths.cpu().numpy(), 0.99))
                for name in _all_models(comparison) for c in comparison.chords[name][axis] if c.lengths.numel()]
        max_length = max(10, int(max(tops, default=10)) + 1)
    lengths = np.arange(1, max_length + 1)
    fig, axes = plt.subplots(1, n_phases, figsize=(size * n_phases, size), squeeze=False)
    for phase, ax in enumerate(axes[0]):
        for name in _all_models(comparison):
            chords = comparison.chords[name][axis][phase]
            pmf = chords.distribution(max_length).cpu().numpy()
            ax.plot(lengths, pmf, color=model_colour(name), linewidth=1.8 if name == "reference" else 1.4,
                    label=f"{_model_label(comparison, name)}, mean {chords.mean():.1f} px")
        ax.set_xlabel(f"{axis}-chord length (px)")
        ax.set_ylabel("fraction of chords")
        ax.set_title(_phase_label(comparison, phase), fontsize=10)
        ax.legend(fontsize=7)
    fig.suptitle(f"{axis}-chord length distributions (non-periodic: edge chords dropped; periodic: chords wrap)",
                 fontsize=10)
    fig.tight_layout()
    return fig


def plot_three_point_pca(comparison, *, phase: int = 0, components=(0, 1), size=4.0):
    """First principal components of the 3-point subset (``|r1| <= 1``), reference as a star (Fig. 6f-h, 12)."""
    import matplotlib.pyplot as plt

    first, second = components
    scores = comparison.three_point_scores[phase]
    ratio = comparison.three_point_explained[phase].cpu().numpy()
    if max(first, second) >= len(ratio):
        raise ValueError(f"components {components} need {max(first, second) + 1} PCs; only {len(ratio)} were kept")
    fig, ax = plt.subplots(figsize=(size * 1.2, size))
    for name in comparison.models:
        s = scores[name].cpu().numpy()
        ax.scatter(s[:, first], s[:, second], s=14, alpha=0.6, color=model_colour(name),
                   label=_model_label(comparison, name))
    ref = scores["reference"].cpu().numpy()
    ax.scatter(ref[:, first], ref[:, second], marker="*", s=260, color=model_colour("reference"),
               edgecolor="white", zorder=5, label=_model_label(comparison, "reference"))
    ax.set_xlabel(f"PC{first + 1} ({100 * ratio[first]:.1f} % of variance)")
    ax.set_ylabel(f"PC{second + 1} ({100 * ratio[second]:.1f} % of variance)")
    ax.set_title(f"3-point PCA (|r1| <= 1 px): {_phase_label(comparison, phase)}", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_volume_fraction_histograms(comparison, *, bins: int = 20, size=3.5):
    """Histograms of every ensemble's volume fractions, the reference as a vertical line."""
    import matplotlib.pyplot as plt

    n_phases = len(comparison.phase_names)
    fig, axes = plt.subplots(1, n_phases, figsize=(size * n_phases, size), squeeze=False)
    for phase, ax in enumerate(axes[0]):
        values = {name: comparison.volume_fractions[name][:, phase].cpu().numpy() for name in _all_models(comparison)}
        low = min(v.min() for v in values.values())
        high = max(v.max() for v in values.values())
        edges = np.linspace(low - 1e-3, high + 1e-3, bins + 1)
        for name in comparison.models:
            ax.hist(values[name], bins=edges, alpha=0.5, color=model_colour(name), label=_model_label(comparison, name))
        for value in values["reference"]:
            ax.axvline(value, color=model_colour("reference"), linewidth=2, label="reference")
        ax.set_xlabel(f"volume fraction of {_phase_label(comparison, phase)}")
        ax.set_ylabel("samples")
        handles, labels = ax.get_legend_handles_labels()
        unique = dict(zip(labels, handles))
        ax.legend(unique.values(), unique.keys(), fontsize=7)
    fig.tight_layout()
    return fig


__all__ += [
    "model_colour",
    "plot_two_point_slices",
    "plot_autocorrelation_error_maps",
    "plot_chord_length_distributions",
    "plot_three_point_pca",
    "plot_volume_fraction_histograms",
]


def full_resolution_dpi(figure, *, least: float = 100.0) -> float:
    """The dots per inch at which every image shown in ``figure`` gets at least one screen pixel per pixel.

    A 512 px sample in a 3.2-inch panel saved at 100 dpi is shrunk to about 250 px, and features one
    or two pixels wide (laths, thin boundaries) blur into speckle or vanish. Call it after the layout is
    final (``tight_layout``); at least ``least`` dpi.

    >>> import matplotlib.pyplot as plt
    >>> fig, ax = plt.subplots(figsize=(2, 2))
    >>> _ = ax.imshow(np.zeros((512, 256)))
    >>> ax.set_position([0, 0, 1, 1])
    >>> full_resolution_dpi(fig)  # 512 rows in 2 inches
    256.0
    >>> plt.close(fig)
    """
    width, height = figure.get_size_inches()
    dpi = float(least)
    for ax in figure.axes:
        box = ax.get_position()
        for image in ax.get_images():
            rows, cols = image.get_array().shape[:2]
            dpi = max(dpi, cols / (box.width * width), rows / (box.height * height))
    return float(dpi)


__all__ += ["full_resolution_dpi"]
