"""The case studies' checks and chord tables, read off a :class:`~lgtutorial.evaluation.compare.Comparison`.

Robertson et al. 2023 judge the hybrid by its chord lengths (Table 1, Section 5): a GRF matches the
1- and 2-point statistics, so the mean chord of a periodic 2-phase structure is already fixed, but
the shapes are not; the local layer should bring the chord length *distributions* of the fine
phases (those whose features fit in a training patch) closer to the reference's than the GRF's.
What the chapters, the render scripts and ``lgtutorial fit`` need for that, written once:
:func:`chord_distance` (total-variation distance to the reference's distribution, by
:func:`lgtutorial.statistics.chords.chord_distribution_distance`), :func:`fine_phases` (reference
mean chord at most half the patch), :func:`chords_closer` (per phase and axis, is one model closer
than another, by distribution distance or mean chord), and :func:`chord_table` (one row per model
and phase) and :func:`chord_table_by_phase` (Table 1's layout) as Markdown. Each is also a method of
:class:`~lgtutorial.evaluation.compare.Comparison` (``comparison.chord_table()``).
"""

from __future__ import annotations

from lgtutorial.statistics.chords import chord_distribution_distance

__all__ = ["chord_distance", "fine_phases", "chords_closer", "chord_table", "chord_table_by_phase"]

REFERENCE = "reference"
AXES = ("x", "y")
MEASURES = ("distribution", "mean")


def _phase_index(comparison, phase) -> int:
    """A phase given by index or by name, as an index."""
    if isinstance(phase, str):
        if phase not in comparison.phase_names:
            raise ValueError(f"unknown phase {phase!r}; expected one of {comparison.phase_names}")
        return comparison.phase_names.index(phase)
    index = int(phase)
    if not 0 <= index < len(comparison.phase_names):
        raise ValueError(f"phase {phase} is out of range for {len(comparison.phase_names)} phases")
    return index


def _rows(comparison) -> dict:
    """``{(model, phase index): row}`` of the comparison's tidy table."""
    index = {name: k for k, name in enumerate(comparison.phase_names)}
    return {(row["model"], index[row["phase"]]): row for row in comparison.rows}


def _check_model(comparison, model: str) -> None:
    if model not in comparison.chords:
        raise ValueError(f"unknown model {model!r}; the comparison holds {', '.join(comparison.chords)}")


def chord_distance(comparison, model: str, phase, axis: str) -> float:
    """Total-variation distance between ``model``'s and the reference's chord length distributions
    of ``phase`` (index or name) along ``axis``: 0 equal, 1 disjoint."""
    _check_model(comparison, model)
    if axis not in AXES:
        raise ValueError(f"axis must be 'x' or 'y', got {axis!r}")
    a = _phase_index(comparison, phase)
    return chord_distribution_distance(comparison.chords[REFERENCE][axis][a], comparison.chords[model][axis][a])


def fine_phases(comparison, patch_size: int) -> list[int]:
    """Indices of the phases whose reference mean chord (the larger of x and y) is at most half of
    ``patch_size``: the features a score model trained on such patches can see whole."""
    rows = _rows(comparison)
    return [a for a in range(len(comparison.phase_names))
            if max(rows[REFERENCE, a]["chord_x_mean"], rows[REFERENCE, a]["chord_y_mean"]) <= patch_size / 2]


def chords_closer(comparison, model: str = "hybrid", baseline: str = "GRF", *, phases=None,
                  measure: str = "distribution") -> dict:
    """Is ``model`` closer to the reference's chord lengths than ``baseline``, per phase and axis?

    Args:
        comparison: the :class:`~lgtutorial.evaluation.compare.Comparison` holding the reference, ``model``
            and ``baseline``.
        phases: phase indices or names to check (default: all; e.g. :func:`fine_phases`).
        measure: ``"distribution"`` (total-variation distance of the distributions, as chapter 7)
            or ``"mean"`` (distance of the mean chord lengths, as the paper's Table 1 reads).

    Returns:
        ``{"checks": {(phase name, axis): {model: distance, baseline: distance, "closer": bool}},
        "all": bool}``; ``all`` is true when every check holds (and when there is none).
    """
    if measure not in MEASURES:
        raise ValueError(f"measure must be one of {MEASURES}, got {measure!r}")
    for name in (model, baseline):
        _check_model(comparison, name)
    indices = range(len(comparison.phase_names)) if phases is None else [_phase_index(comparison, p) for p in phases]
    rows = _rows(comparison)
    checks = {}
    for a in indices:
        for axis in AXES:
            if measure == "distribution":
                distances = {m: chord_distance(comparison, m, a, axis) for m in (model, baseline)}
            else:
                key = f"chord_{axis}_mean"
                distances = {m: abs(rows[m, a][key] - rows[REFERENCE, a][key]) for m in (model, baseline)}
            checks[comparison.phase_names[a], axis] = {**distances, "closer": bool(distances[model] < distances[baseline])}
    return {"checks": checks, "all": all(check["closer"] for check in checks.values())}


def chord_table(comparison, models=None, *, volume_fraction: bool = False, feature_size: bool = True) -> str:
    """Table 1 of the paper, one row per model and phase: mean ± std of the x and y chord lengths (px),
    optionally the volume fraction before them and the feature size after them, as Markdown.

    Rows come in the comparison's order (the reference first); ``models`` keeps only the rows of
    those models (default: all).
    """
    header = ["model", "phase", "n"] + (["volume fraction"] if volume_fraction else []) + [
        "x-chord (px)", "y-chord (px)"] + (["feature size (px)"] if feature_size else [])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in comparison.rows:
        if models is not None and row["model"] not in models:
            continue
        cells = [row["model"], row["phase"], str(row["n_samples"])]
        if volume_fraction:
            cells.append(f"{row['volume_fraction_mean']:.4f} ± {row['volume_fraction_std']:.4f}")
        cells += [f"{row['chord_x_mean']:.2f} ± {row['chord_x_std']:.2f}",
                  f"{row['chord_y_mean']:.2f} ± {row['chord_y_std']:.2f}"]
        if feature_size:
            cells.append(f"{row['feature_size_mean']:.2f} ± {row['feature_size_std']:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def chord_table_by_phase(comparison, axis: str = "x", *, models=None, order=None, corner: str | None = None,
                         label: str = "{model}", extra_rows: dict | None = None) -> str:
    """Table 1's layout: one row per model, one column per phase, cells ``mean ± std`` of the
    ``axis`` chord lengths (px, one decimal), as Markdown.

    Args:
        models: the rows, in order (default: the reference, then the comparison's models).
        order: phase indices (or names) of the columns, in order (default: all, as stored).
        corner: the header's first cell (default ``"<axis>-chords (px)"``).
        label: the first cell of a row, formatted with ``model`` and ``n`` (its sample count).
        extra_rows: ``{first cell: [(mean, std) per column]}`` appended after the models (e.g. the
            paper's values), formatted with ``:g``.
    """
    if axis not in AXES:
        raise ValueError(f"axis must be 'x' or 'y', got {axis!r}")
    columns = list(range(len(comparison.phase_names))) if order is None else [_phase_index(comparison, p)
                                                                             for p in order]
    models = [REFERENCE, *comparison.models] if models is None else list(models)
    rows = _rows(comparison)
    corner = f"{axis}-chords (px)" if corner is None else corner
    lines = [f"| {corner} | " + " | ".join(comparison.phase_names[k] for k in columns) + " |",
             "|---" * (len(columns) + 1) + "|"]
    key = f"chord_{axis}"
    for model in models:
        _check_model(comparison, model)
        cells = [f"{rows[model, k][f'{key}_mean']:.1f} ± {rows[model, k][f'{key}_std']:.1f}" for k in columns]
        first = label.format(model=model, n=rows[model, columns[0]]["n_samples"] if columns else 0)
        lines.append(f"| {first} | " + " | ".join(cells) + " |")
    for first, values in (extra_rows or {}).items():
        lines.append(f"| {first} | " + " | ".join(f"{mean:g} ± {std:g}" for mean, std in values) + " |")
    return "\n".join(lines)
