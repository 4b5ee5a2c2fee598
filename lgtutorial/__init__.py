"""lgtutorial: local-global decompositions for conditional microstructure generation.

A Gaussian random field matches chosen 1- and 2-point statistics (the global layer); a small
score-based denoiser trained on patches of one micrograph makes it look real up close (the local
layer). Robertson, Kelly, Buzzy, Kalidindi, Acta Materialia 253 (2023) 118966.
"""

from .comparison import compare
from .conditioning import volume_fraction_posterior
from .data import list_references, load_micrograph, load_reference
from .extrapolation import interpolated_field
from .fitting import fit
from .generation import Generation, generate
from .grf import (
    GaussianRandomField,
    interpolate_statistics,
    segment_argmax,
    segment_preserving_fractions,
)
from .hybrid import HybridGenerator
from .metrics import chord_lengths, feature_size, three_point_statistics
from .microstructure import check_microstructure, labels_to_one_hot, one_hot_to_labels
from .pretrained import load_authors_checkpoint
from .sampling import annealed_langevin
from .statistics import centre, two_point_statistics, volume_fractions
from .training import load_checkpoint, sample_unconditional, train_score_model
from .unet import ScoreUNet

__version__ = "0.1.0"

__all__ = [
    "generate",
    "Generation",
    "fit",
    "GaussianRandomField",
    "HybridGenerator",
    "ScoreUNet",
    "annealed_langevin",
    "centre",
    "check_microstructure",
    "chord_lengths",
    "compare",
    "feature_size",
    "interpolate_statistics",
    "interpolated_field",
    "labels_to_one_hot",
    "list_references",
    "load_authors_checkpoint",
    "load_checkpoint",
    "load_micrograph",
    "load_reference",
    "one_hot_to_labels",
    "sample_unconditional",
    "segment_argmax",
    "segment_preserving_fractions",
    "three_point_statistics",
    "train_score_model",
    "two_point_statistics",
    "volume_fraction_posterior",
    "volume_fractions",
]

# 3D generation from one 2D micrograph (lgtutorial.volume*)
from .volume import VolumeGenerator  # noqa: E402
from .volume_export import save_tiff_stack  # noqa: E402
from .volume_slices import slice_statistics  # noqa: E402
from .volume_statistics import isotropic_statistics  # noqa: E402

__all__ += ["VolumeGenerator", "isotropic_statistics", "save_tiff_stack", "slice_statistics"]
