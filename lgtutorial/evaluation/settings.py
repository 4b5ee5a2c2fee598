"""Options of comparing ensembles with a reference (``lgtutorial evaluate``, :func:`lgtutorial.evaluation.compare.compare`).

The command-line options are generated from these dataclasses (:mod:`lgtutorial.cli.options`).
"""

from __future__ import annotations

from dataclasses import dataclass

from lgtutorial._checks import (
    check_settings,
    non_negative_int,
    optional,
    positive_int,
)


@dataclass(frozen=True)
class EvaluationSettings:
    """Comparing generated ensembles with a reference (``lgtutorial evaluate``, :func:`lgtutorial.evaluation.compare.compare`)."""

    patch_size: int | None = None
    """side (px) of the denoiser's patches: the box on the error maps, splitting 2-point errors inside/outside"""
    cutoff: int | None = None
    """largest lag (px) of the compared 2-point statistics; None: the largest lag every image provides"""
    three_point_cutoff: int = 10
    """largest second displacement (px) of the 3-point statistics"""
    n_components: int = 5
    """principal components kept for the 3-point statistics"""
    fit_radius: int = 2
    """outermost ring (px) of the slope fit for the feature size"""
    reference_periodic: bool | None = None
    """treat the reference as periodic; None: as the registry says (files are non-periodic)"""
    ensemble_periodic: bool = True
    """treat the generated samples as periodic (GRF and hybrid samples are)"""
    device: str = "auto"
    """'auto' (GPU when there is one), 'cpu', 'cuda', ..."""

    def __post_init__(self):
        check_settings(self, {
            "patch_size": (optional(positive_int), "a positive number of pixels, or none"),
            "cutoff": (optional(non_negative_int), "a non-negative number of pixels, or none"),
            "three_point_cutoff": (non_negative_int, "a non-negative number of pixels"),
            "n_components": (positive_int, "a positive integer"),
            "fit_radius": (positive_int, "a positive number of pixels"),
        })
