"""Ensemble comparison against a reference: the table and figures of Robertson et al. 2023, Section 5.

:func:`compare` measures a reference micrograph and any number of generated ensembles (GRF, hybrid,
...) with the same statistics and returns a :class:`Comparison`: a tidy table (one row per model and
phase; ``to_markdown()`` / ``to_csv()``) and everything the paper's figure types need
(``figures()``): 2-point statistics slices, autocorrelation error maps with the patch box, chord
length distributions, 3-point PCA scatter and volume fraction histograms.

Boundary conditions: a micrograph is not periodic, so its statistics use valid pair counts and its
edge chords are dropped; generated samples are periodic. Both are stated in the table's caption
and in every figure. Images of different sizes are compared over the lags all of them provide.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lgtutorial.evaluation import criteria
from lgtutorial.evaluation.measures import (
    finite_mean,
    finite_std,
    largest_lag,
    measure_ensemble,
    pca_offset,
    relative_error,
    relative_norm_error,
)
from lgtutorial.evaluation.settings import EvaluationSettings
from lgtutorial.evaluation.table import COLUMNS, table_csv, table_markdown
from lgtutorial.microstructure import as_tensor, check_microstructure, labels_to_one_hot
from lgtutorial.statistics.chords import chord_distribution_distance
from lgtutorial.statistics.clusters import cluster_size_distance, common_window, median_cluster_size
from lgtutorial.statistics.pca import fit_project

__all__ = ["Comparison", "compare", "as_ensemble", "REFERENCE"]

#: Name of the reference in every dict of a :class:`Comparison` (and in ``MODEL_COLOURS``).
REFERENCE = "reference"

_DEFAULTS = EvaluationSettings()


def as_ensemble(data, *, n_phases: int | None = None, name: str = "ensemble") -> torch.Tensor:
    """One-hot ``(n, N, H, W)`` float32 from one-hot ``(n, N, H, W)`` or labels ``(n, H, W)`` / ``(H, W)``."""
    t = as_tensor(data)
    if t.ndim == 4:
        t = check_microstructure(t, name=name).to(torch.float32)
    elif t.ndim in (2, 3):
        t = labels_to_one_hot(t, n_phases=n_phases)
    else:
        raise ValueError(
            f"{name}: expected one-hot (n_samples, n_phases, H, W) or labels (n_samples, H, W); "
            f"got shape {tuple(t.shape)}"
        )
    if n_phases is not None and t.shape[1] != n_phases:
        raise ValueError(f"{name}: has {t.shape[1]} phases but the reference has {n_phases}")
    return t


@dataclass
class Comparison:
    """Result of :func:`compare`. Every dict is keyed by model name, ``"reference"`` included.

    Attributes:
        models: the ensembles' names, in the order given.
        phase_names: one name per phase.
        rows: the tidy table, one dict per (model, phase) with the keys
            :data:`~lgtutorial.evaluation.table.COLUMNS`.
        volume_fractions: ``(n, N)`` per model.
        autocorrelation_mean: ``(N, 2c+1, 2c+1)`` ensemble mean ``f_aa`` (FFT order), per model.
        autocorrelation_slices: ``{"x": (n, N, 2c+1), "y": (n, N, 2c+1)}`` per model: ``f_aa`` along
            ``r_y = 0`` and along ``r_x = 0`` of every sample (FFT order).
        chords: ``{"x": [ChordLengths per phase], "y": [...]}`` per model.
        feature_sizes: ``(n, N)`` per model.
        three_point_scores: per phase, ``{model: (n, k)}`` PC scores (basis fit on all models).
        three_point_explained: per phase, the ``(k,)`` explained variance ratios.
        cutoff, three_point_cutoff, patch_size, reference_periodic, ensemble_periodic: the settings used.
        cluster_window: the window in which connected regions were labelled (:mod:`lgtutorial.statistics.clusters`).
    """

    models: list
    phase_names: list
    rows: list
    volume_fractions: dict
    autocorrelation_mean: dict
    autocorrelation_slices: dict
    chords: dict
    feature_sizes: dict
    three_point_scores: list
    three_point_explained: list
    cutoff: int
    three_point_cutoff: int
    patch_size: int | None
    reference_periodic: bool
    ensemble_periodic: bool
    cluster_window: tuple = ()

    def boundary(self, model: str) -> str:
        """``"periodic"`` or ``"non-periodic"``: how ``model``'s statistics were computed."""
        periodic = self.reference_periodic if model == REFERENCE else self.ensemble_periodic
        return "periodic" if periodic else "non-periodic"

    def caption(self) -> str:
        """One line saying what was compared and how."""
        box = f"; patch box |r| <= {self.patch_size // 2} px" if self.patch_size else ""
        return (
            f"Reference {self.boundary(REFERENCE)}, ensembles {self.boundary(self.models[0])}; "
            f"2-point lags |r| <= {self.cutoff} px{box}; 3-point |r1| <= 1, |r2| <= "
            f"{self.three_point_cutoff} px. vf error: model - reference; chord and size errors: (model - reference) / reference; "
            "f_aa and 3-pt errors are ||<model> - reference|| / ||reference|| of the ensemble means; 3-pt offset: "
            "reference's distance from the ensemble mean over the first 3 PCs, each in ensemble standard deviations. "
            f"Region size: the connected region (face neighbours) a pixel of the phase belongs to, in windows of "
            f"{' x '.join(str(w) for w in self.cluster_window)} px; median over the phase's pixels, and the earth "
            "mover's distance of its log10 distribution from the reference's, in decades."
        )

    def to_csv(self) -> str:
        """The table as CSV (one row per model and phase, empty cells where a value does not apply)."""
        return table_csv(self.rows)

    def to_markdown(self) -> str:
        """The table as Markdown, mean +- std in one cell, relative errors in percent."""
        return table_markdown(self.rows, self.caption())

    # -- the case studies' chord checks and tables (lgtutorial.evaluation.criteria) --------------------------
    def chord_distance(self, model: str, phase, axis: str) -> float:
        """Total-variation distance of ``model``'s chord lengths from the reference's (:func:`lgtutorial.evaluation.criteria.chord_distance`)."""
        return criteria.chord_distance(self, model, phase, axis)

    def chords_closer(self, model: str = "hybrid", baseline: str = "GRF", **options) -> dict:
        """Per phase and axis, is ``model`` closer to the reference than ``baseline`` (:func:`lgtutorial.evaluation.criteria.chords_closer`)."""
        return criteria.chords_closer(self, model, baseline, **options)

    def chord_table(self, models=None, **options) -> str:
        """Table 1, one row per model and phase, as Markdown (:func:`lgtutorial.evaluation.criteria.chord_table`)."""
        return criteria.chord_table(self, models, **options)

    def chord_table_by_phase(self, axis: str = "x", **options) -> str:
        """Table 1, one column per phase, as Markdown (:func:`lgtutorial.evaluation.criteria.chord_table_by_phase`)."""
        return criteria.chord_table_by_phase(self, axis, **options)

    def figures(self) -> dict:
        """The paper's figure types, ``{file stem: matplotlib Figure}``."""
        from lgtutorial import plotting

        figures = {"volume_fractions": plotting.plot_volume_fraction_histograms(self)}
        for axis in ("x", "y"):
            figures[f"chord_lengths_{axis}"] = plotting.plot_chord_length_distributions(self, axis=axis)
        for phase in range(len(self.phase_names)):
            figures[f"two_point_slices_phase{phase}"] = plotting.plot_two_point_slices(self, phase=phase)
            figures[f"autocorrelation_error_phase{phase}"] = plotting.plot_autocorrelation_error_maps(
                self, phase=phase
            )
            figures[f"three_point_pca_phase{phase}"] = plotting.plot_three_point_pca(self, phase=phase)
        return figures


def compare(
    reference,
    ensembles: dict,
    *,
    patch_size: int | None = _DEFAULTS.patch_size,
    cutoff: int | None = _DEFAULTS.cutoff,
    reference_periodic: bool = False,
    ensemble_periodic: bool = _DEFAULTS.ensemble_periodic,
    three_point_cutoff: int = _DEFAULTS.three_point_cutoff,
    n_components: int = _DEFAULTS.n_components,
    fit_radius: int = _DEFAULTS.fit_radius,
    phase_names=None,
    device=None,
    batch_size: int = 8,
    coherence_exclude: int | None = None,
) -> Comparison:
    """Compare generated ensembles with a reference (Robertson et al. 2023, Section 5, Figs. 4-6, Table 1).

    Args:
        reference: ``(1, N, H, W)`` one-hot micrograph (or several samples, or a label image).
        ensembles: ``{name: (n, N, H', W')}`` one-hot or ``(n, H', W')`` labels, e.g.
            ``{"GRF": grf_samples, "hybrid": hybrid_samples}``; sizes may differ from the reference.
        patch_size: side of the denoiser's patches; 2-point errors are split at the box
            ``|r_x|, |r_y| <= patch_size // 2`` (inside: what the local layer shapes).
        cutoff: largest lag compared (default: the largest every image provides).
        reference_periodic: the reference is a periodic sample rather than a micrograph.
        ensemble_periodic: the generated samples are periodic (GRF and hybrid samples are).
        three_point_cutoff: largest second displacement of the 3-point statistics.
        n_components: PCs kept for the 3-point statistics (basis fit on all models together).
        fit_radius: slope-fit radius of :func:`lgtutorial.statistics.higher_order.feature_size`.
        phase_names: one label per phase (default ``"phase 0"``, ...).
        device: where to compute (default: the reference's device).
        batch_size: samples per batch (bounds memory).
        coherence_exclude: a phase whose regions the boundary coherence leaves out (pixels whose
            15 px neighbourhood is at least half that phase), e.g. the globular alpha of a Ti
            micrograph so that only the colonies count; see :func:`lgtutorial.statistics.higher_order.boundary_coherence`.

    Returns:
        A :class:`Comparison`.
    """
    if not isinstance(ensembles, dict) or not ensembles:
        raise TypeError(
            f"ensembles must be a non-empty dict {{name: samples}}; got {type(ensembles).__name__}"
        )
    if REFERENCE in ensembles:
        raise ValueError(f"{REFERENCE!r} is reserved for the reference; rename that ensemble")
    ref = as_ensemble(reference, name=REFERENCE)
    device = ref.device if device is None else torch.device(device)
    ref = ref.to(device)
    n_phases = ref.shape[1]
    models = {REFERENCE: ref}
    for name, samples in ensembles.items():
        models[str(name)] = as_ensemble(samples, n_phases=n_phases, name=str(name)).to(device)
    periodic = {name: (reference_periodic if name == REFERENCE else ensemble_periodic) for name in models}
    largest = min(largest_lag(m.shape, periodic[name]) for name, m in models.items())
    if cutoff is None:
        cutoff = largest
    elif not 0 <= int(cutoff) <= largest:
        raise ValueError(
            f"cutoff must be between 0 and {largest} px (the largest lag every image provides); got {cutoff}"
        )
    three_point_cutoff = min(int(three_point_cutoff), int(cutoff))
    if patch_size is not None and int(patch_size) < 1:
        raise ValueError(f"patch_size must be a positive number of pixels, got {patch_size}")
    if phase_names is None:
        phase_names = [f"phase {a}" for a in range(n_phases)]
    elif len(phase_names) != n_phases:
        raise ValueError(f"phase_names has {len(phase_names)} entries but there are {n_phases} phases")

    measured = {
        name: measure_ensemble(
            m,
            periodic=periodic[name],
            cutoff=int(cutoff),
            three_point_cutoff=three_point_cutoff,
            fit_radius=fit_radius,
            batch_size=batch_size,
            dtype=torch.float32 if device.type == "mps" else torch.float64,  # MPS has no float64
            coherence_exclude=coherence_exclude,
        )
        for name, m in models.items()
    }
    scores, explained = [], []
    for a in range(n_phases):
        pca, phase_scores = fit_project(
            {name: s["three_point"][:, a] for name, s in measured.items()}, n_components=n_components
        )
        scores.append(phase_scores)
        explained.append(pca.explained_variance_ratio)

    lags = torch.fft.fftfreq(2 * int(cutoff) + 1, d=1.0 / (2 * int(cutoff) + 1), device=device).abs()
    box = torch.maximum(lags[:, None], lags[None, :])
    inside = None if patch_size is None else box <= int(patch_size) // 2
    # connected regions depend on the window: every image is cut into windows of the smallest one's size
    window = common_window(*models.values())
    base = measured[REFERENCE]
    rows = []
    for name, s in measured.items():
        is_reference = name == REFERENCE
        for a in range(n_phases):
            chords_x, chords_y = s["chords"]["x"][a], s["chords"]["y"][a]
            ref_x, ref_y = base["chords"]["x"][a], base["chords"]["y"][a]
            fractions, sizes = s["volume_fractions"][:, a], s["feature_sizes"][:, a]
            auto, ref_auto = s["autocorrelation_mean"][a], base["autocorrelation_mean"][a]
            triple, ref_triple = s["three_point"][:, a].mean(0), base["three_point"][:, a].mean(0)
            row = {
                "model": name,
                "phase": phase_names[a],
                "n_samples": len(models[name]),
                "volume_fraction_mean": finite_mean(fractions),
                "volume_fraction_std": finite_std(fractions),
                "chord_x_mean": chords_x.mean(),
                "chord_x_std": chords_x.std(),
                "chord_y_mean": chords_y.mean(),
                "chord_y_std": chords_y.std(),
                "feature_size_mean": finite_mean(sizes),
                "feature_size_std": finite_std(sizes),
                "coherence_mean": finite_mean(s["coherence"][:, a]),
                "coherence_std": finite_std(s["coherence"][:, a]),
                "cluster_size_median": median_cluster_size(models[name], a, window=window),
            }
            errors = {
                "volume_fraction_error": row["volume_fraction_mean"] - finite_mean(base["volume_fractions"][:, a]),
                "chord_x_relative_error": relative_error(chords_x.mean(), ref_x.mean()),
                "chord_y_relative_error": relative_error(chords_y.mean(), ref_y.mean()),
                "chord_x_distance": chord_distribution_distance(chords_x, ref_x),
                "chord_y_distance": chord_distribution_distance(chords_y, ref_y),
                "coherence_relative_error": relative_error(row["coherence_mean"], finite_mean(base["coherence"][:, a])),
                "cluster_size_distance": cluster_size_distance(models[name], ref, a, window=window),
                "two_point_relative_error": relative_norm_error(auto, ref_auto),
                "two_point_relative_error_inside": None
                if inside is None
                else relative_norm_error(auto, ref_auto, inside),
                "two_point_relative_error_outside": None
                if inside is None
                else relative_norm_error(auto, ref_auto, ~inside),
                "feature_size_relative_error": relative_error(
                    row["feature_size_mean"], finite_mean(base["feature_sizes"][:, a])
                ),
                "three_point_relative_error": relative_norm_error(triple, ref_triple),
                "three_point_offset": pca_offset(
                    scores[a][name], scores[a][REFERENCE], float(torch.linalg.vector_norm(ref_triple))
                ),
            }
            row.update({key: (None if is_reference else value) for key, value in errors.items()})
            rows.append({column: row[column] for column in COLUMNS})

    return Comparison(
        models=[name for name in models if name != REFERENCE],
        phase_names=list(phase_names),
        rows=rows,
        volume_fractions={name: s["volume_fractions"] for name, s in measured.items()},
        autocorrelation_mean={name: s["autocorrelation_mean"] for name, s in measured.items()},
        autocorrelation_slices={name: s["autocorrelation_slices"] for name, s in measured.items()},
        chords={name: s["chords"] for name, s in measured.items()},
        feature_sizes={name: s["feature_sizes"] for name, s in measured.items()},
        three_point_scores=scores,
        three_point_explained=explained,
        cutoff=int(cutoff),
        three_point_cutoff=three_point_cutoff,
        patch_size=None if patch_size is None else int(patch_size),
        reference_periodic=bool(reference_periodic),
        ensemble_periodic=bool(ensemble_periodic),
        cluster_window=window,
    )
