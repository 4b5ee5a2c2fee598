"""Options of a Gaussian-random-field job (``lgtutorial grf``), frozen and checked where they are made.

The command-line options are generated from these dataclasses (:mod:`lgtutorial.cli.options`).
"""

from __future__ import annotations

from dataclasses import dataclass

from lgtutorial._checks import (
    check_settings,
    non_negative_int,
    one_of,
    optional,
    positive_int,
    positive_number,
)


@dataclass(frozen=True)
class GRFSettings:
    """Sampling a Gaussian random field from a reference's 2-point statistics."""

    reference: str = "nbsa-proxy"
    """registry name or path of the reference micrograph"""
    n_samples: int = 4
    """number of samples"""
    reference_phase: int = 0
    """phase whose autocorrelation defines the field"""
    filter_sigma: float | None = None
    """width (px) of an optional Gaussian low-pass; none by default"""
    segmentation: str = "auto"
    """'auto' (the volume-fraction-preserving rule that keeps the 2-point statistics better, measured per field), 'preserve' (3x3 local mean first), 'quantile' (none), 'argmax' or 'none'"""
    seed: int = 0
    """seed of the torch.Generator"""
    device: str = "auto"
    """'auto' (GPU when there is one), 'cpu', 'cuda', ..."""

    def __post_init__(self):
        check_settings(self, {
            "n_samples": (positive_int, "a positive integer"),
            "reference_phase": (non_negative_int, "a phase index 0, 1, ..."),
            "filter_sigma": (optional(positive_number), "a positive width in pixels, or none"),
            "segmentation": (one_of("auto", "preserve", "quantile", "argmax", "none"),
                             "'auto', 'preserve', 'quantile', 'argmax' or 'none'"),
            "seed": (non_negative_int, "a non-negative integer"),
        })
