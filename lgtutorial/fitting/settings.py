"""Options of fitting your own micrograph (``lgtutorial fit``, :func:`lgtutorial.fitting.fit.fit`).

The command-line options are generated from :class:`FitSettings` (:mod:`lgtutorial.cli.options`), and
:func:`~lgtutorial.fitting.fit.fit` builds one from its arguments before it loads, plans or trains
anything: a bad option fails at once, naming the command-line option, and leaves no folder behind.

>>> FitSettings().minutes, FitSettings().sampler is None
(15.0, True)
>>> FitSettings(size=0)
Traceback (most recent call last):
...
ValueError: --size (size): expected a side of at least 2 pixels, or none (the micrograph's), got 0
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lgtutorial._checks import (
    check_settings,
    is_int,
    non_negative_int,
    one_of,
    optional,
    positive_int,
    positive_number,
)
from lgtutorial.sampling.samplers import SAMPLERS

__all__ = ["FitSettings"]


@dataclass(frozen=True)
class FitSettings:
    """From one segmented micrograph to a model bundle and a report (``lgtutorial fit``)."""

    minutes: float = 15.0
    """training budget (min) on this machine: the steps are measured to fit it (on a GPU the same minutes go much further)"""
    name: str | None = None
    """the model's name; none: from the micrograph's file name"""
    samples: int = 4
    """GRF and hybrid samples for the report (n_samples in Python)"""
    size: int | None = None
    """side (px) of the square samples; none: the micrograph's size"""
    sampler: str | None = None
    """the hybrid's sampler ({sampler_help}); none: chosen from the feature sizes, fast, or fast-fine for two phases with features under 4 px (oriented with the oriented global layer)"""
    global_layer: str = "auto"
    """'grf' (the paper's global layer), 'oriented' (laths painted into the GRF's colonies: this book's extension) or 'auto' (oriented where the micrograph's laths are clearly more coherent than GRF samples of its statistics)"""
    patch_size: int | None = None
    """side (px) of the training patches; none: chosen from the feature sizes"""
    periodic: bool | None = None
    """treat the micrograph as periodic or not; none: as the periodicity check says"""
    device: str = "auto"
    """'auto' (GPU when there is one), 'cpu', 'cuda', ..."""
    seed: int = 0
    """seed of the samples"""
    resume: bool = False
    """continue the training in --output (the plan saved there is reused) for what is left of its budget"""
    output: Path | None = None
    """folder; none: lgtutorial-output/fit-NAME (a new numbered one unless --resume)"""

    def __post_init__(self):
        check_settings(self, {
            "minutes": (positive_number, "a positive finite number of minutes"),
            "name": (optional(lambda v: isinstance(v, str) and v.strip() != ""), "a non-empty name, or none"),
            "samples": (positive_int, "a positive integer"),
            "size": (optional(lambda v: is_int(v) and v >= 2), "a side of at least 2 pixels, or none (the micrograph's)"),
            "global_layer": (one_of("grf", "oriented", "auto"), "'grf', 'oriented' or 'auto'"),
            "sampler": (optional(one_of(*SAMPLERS)), "one of " + ", ".join(SAMPLERS) + ", or none (chosen by the plan)"),
            "patch_size": (optional(lambda v: is_int(v) and v >= 8), "a side of at least 8 pixels, or none"),
            "periodic": (lambda v: v is None or isinstance(v, bool), "true, false or none"),
            "seed": (non_negative_int, "a non-negative integer"),
            "resume": (lambda v: isinstance(v, bool), "true or false"),
            "output": (optional(lambda v: isinstance(v, (str, Path)) and str(v) != ""), "a folder, or none"),
        })
