"""lgtutorial: local-global decompositions for conditional microstructure generation.

A Gaussian random field matches chosen 1- and 2-point statistics (the global layer); a small
score-based denoiser trained on patches of one micrograph makes it look real up close (the local
layer). Robertson, Kelly, Buzzy, Kalidindi, Acta Materialia 253 (2023) 118966.
"""

from .data import list_references, load_micrograph, load_reference
from .grf import (
    GaussianRandomField,
    interpolate_statistics,
    segment_argmax,
    segment_preserving_fractions,
)
from .microstructure import check_microstructure, labels_to_one_hot, one_hot_to_labels
from .statistics import centre, two_point_statistics, volume_fractions

__version__ = "0.1.0"

__all__ = [
    "GaussianRandomField",
    "centre",
    "check_microstructure",
    "interpolate_statistics",
    "labels_to_one_hot",
    "list_references",
    "load_micrograph",
    "load_reference",
    "one_hot_to_labels",
    "segment_argmax",
    "segment_preserving_fractions",
    "two_point_statistics",
    "volume_fractions",
]

from .hybrid import HybridGenerator  # noqa: E402  (the hybrid generator of Section 3.3)

__all__ += ["HybridGenerator"]
