"""The comparison table: its columns, and the table as CSV and as Markdown.

:func:`lgtutorial.evaluation.compare.compare` fills one row per model and phase with the keys
:data:`COLUMNS`; :meth:`~lgtutorial.evaluation.compare.Comparison.to_csv` and
:meth:`~lgtutorial.evaluation.compare.Comparison.to_markdown` write them with :func:`table_csv` and
:func:`table_markdown`.
"""

from __future__ import annotations

import io
import math

__all__ = ["COLUMNS", "table_csv", "table_markdown"]

# fmt: off
#: Columns of the tidy table, in order.
COLUMNS = (
    "model", "phase", "n_samples",
    "volume_fraction_mean", "volume_fraction_std", "volume_fraction_error",
    "chord_x_mean", "chord_x_std", "chord_x_relative_error",
    "chord_y_mean", "chord_y_std", "chord_y_relative_error",
    "chord_x_distance", "chord_y_distance",
    "coherence_mean", "coherence_std", "coherence_relative_error",
    "cluster_size_median", "cluster_size_distance",
    "two_point_relative_error", "two_point_relative_error_inside", "two_point_relative_error_outside",
    "feature_size_mean", "feature_size_std", "feature_size_relative_error",
    "three_point_relative_error", "three_point_offset",
)
# fmt: on


def table_csv(rows: list) -> str:
    """The rows of :data:`COLUMNS` as CSV (one row per model and phase, empty cells where a value does not apply)."""
    out = io.StringIO()
    out.write(",".join(COLUMNS) + "\n")
    for row in rows:
        cells = []
        for column in COLUMNS:
            value = row[column]
            if value is None:
                cells.append("")
            elif isinstance(value, float):
                cells.append(f"{value:.6g}")
            else:
                text = str(value)
                cells.append(f'"{text}"' if "," in text else text)
        out.write(",".join(cells) + "\n")
    return out.getvalue()


def table_markdown(rows: list, caption: str) -> str:
    """The rows as Markdown under ``caption``: mean +- std in one cell, relative errors in percent."""

    def pm(mean, std, digits):
        return "" if mean is None else f"{mean:.{digits}f} ± {std:.{digits}f}"

    def percent(value):
        return "" if value is None else ("nan" if math.isnan(value) else f"{100 * value:+.1f} %")

    def share(value):
        return "" if value is None else ("nan" if math.isnan(value) else f"{100 * value:.1f} %")

    def number(value, digits):
        return "" if value is None else f"{value:+.{digits}f}"

    header = [
        "model",
        "phase",
        "n",
        "volume fraction",
        "vf error",
        "x-chord (px)",
        "x-chord err",
        "y-chord (px)",
        "y-chord err",
        "x-CLD dist",
        "y-CLD dist",
        "coherence",
        "coh. err",
        "region size (px)",
        "region dist (dec.)",
        "f_aa err",
        "f_aa err inside",
        "f_aa err outside",
        "feature size (px)",
        "size err",
        "3-pt err",
        "3-pt offset (σ)",
    ]
    lines = [caption, "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        cells = [
            r["model"],
            r["phase"],
            str(r["n_samples"]),
            pm(r["volume_fraction_mean"], r["volume_fraction_std"], 4),
            number(r["volume_fraction_error"], 4),
            pm(r["chord_x_mean"], r["chord_x_std"], 2),
            percent(r["chord_x_relative_error"]),
            pm(r["chord_y_mean"], r["chord_y_std"], 2),
            percent(r["chord_y_relative_error"]),
            "" if r["chord_x_distance"] is None else f"{r['chord_x_distance']:.3f}",
            "" if r["chord_y_distance"] is None else f"{r['chord_y_distance']:.3f}",
            pm(r["coherence_mean"], r["coherence_std"], 3),
            percent(r["coherence_relative_error"]),
            "nan" if math.isnan(r["cluster_size_median"]) else f"{r['cluster_size_median']:.0f}",
            "" if r["cluster_size_distance"] is None else f"{r['cluster_size_distance']:.2f}",
            share(r["two_point_relative_error"]),
            share(r["two_point_relative_error_inside"]),
            share(r["two_point_relative_error_outside"]),
            pm(r["feature_size_mean"], r["feature_size_std"], 2),
            percent(r["feature_size_relative_error"]),
            share(r["three_point_relative_error"]),
            "" if r["three_point_offset"] is None else f"{r['three_point_offset']:.2f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
