"""lgtutorial: local-global decompositions for conditional microstructure generation.

A Gaussian random field matches chosen 1- and 2-point statistics (the global layer); a small
score-based denoiser trained on patches of one micrograph makes it look real up close (the local
layer). Robertson, Kelly, Buzzy, Kalidindi, Acta Materialia 253 (2023) 118966.
"""

from lgtutorial._version import __version__
from lgtutorial.data import list_references, load_micrograph, load_reference
from lgtutorial.evaluation.compare import compare
from lgtutorial.evaluation.training_report import sample_unconditional
from lgtutorial.fitting.fit import fit
from lgtutorial.generation import Generation, generate
from lgtutorial.grf.field import GaussianRandomField
from lgtutorial.grf.interpolation import interpolate_statistics, interpolated_field
from lgtutorial.grf.segmentation import segment_argmax, segment_preserving_fractions
from lgtutorial.microstructure import check_microstructure, labels_to_one_hot, one_hot_to_labels
from lgtutorial.sampling.conditioning import volume_fraction_posterior
from lgtutorial.sampling.hybrid import HybridGenerator
from lgtutorial.sampling.integrators import annealed_langevin
from lgtutorial.score.checkpoints import load_checkpoint
from lgtutorial.score.registry import load_authors_checkpoint
from lgtutorial.score.training import train_score_model
from lgtutorial.score.unet import ScoreUNet
from lgtutorial.statistics.chords import chord_lengths
from lgtutorial.statistics.higher_order import feature_size, three_point_statistics
from lgtutorial.statistics.two_point import centre, two_point_statistics, volume_fractions

__all__ = [
    "__version__",
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

# 3D generation from one 2D micrograph (lgtutorial.volume.generator*)
from lgtutorial.volume.export import save_tiff_stack  # noqa: E402
from lgtutorial.volume.generator import VolumeGenerator  # noqa: E402
from lgtutorial.volume.slices import slice_statistics  # noqa: E402
from lgtutorial.volume.statistics import isotropic_statistics  # noqa: E402

__all__ += ["VolumeGenerator", "isotropic_statistics", "save_tiff_stack", "slice_statistics"]
