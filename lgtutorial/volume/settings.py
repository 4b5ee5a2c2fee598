"""Options of 3D generation (``lgtutorial generate --dims 3``), on top of the hybrid's.

The command-line options are generated from these dataclasses (:mod:`lgtutorial.cli.options`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from lgtutorial._checks import (
    check_settings,
    one_of,
    positive_int,
    positive_number,
)
from lgtutorial.score.schedules import annealed_levels

__all__ = ["VolumeSettings", "SCHEMES", "ANNEALED_PASSES", "FINAL_SIGMA", "FINAL_DRAWS"]

#: How the orientations are combined: one at a time (``"passes"``) or averaged in every evaluation (``"mean"``).
SCHEMES = ("passes", "mean")


#: Levels for annealed passes (``sigma_pass=ANNEALED_PASSES``): eleven later passes, re-noising geometrically
#: less from 0.6 to 0.15. At 64^3 closer to the micrograph than two rounds at :attr:`VolumeSettings.sigma_pass`, for
#: about 1.9 times the time (``benchmarks/results/volume_quality_cpu_annealed.md``).
ANNEALED_PASSES = annealed_levels(0.6, 0.15, 11)
#: Where the final denoising step of all three orientations starts (``final_sigma=FINAL_SIGMA``), and how
#: many noise draws it averages (``final_draws``): after annealed passes, one voxel the orientations
#: disagree on is decided by their mean (``benchmarks/results/volume_quality_cpu_final.md``).
FINAL_SIGMA = 0.45
FINAL_DRAWS = 16


@dataclass(frozen=True)
class VolumeSettings:
    """3D volumes from one 2D micrograph (``lgtutorial generate --dims 3``, :class:`lgtutorial.volume.generator.VolumeGenerator`;
    its defaults, tested to agree). The hybrid's options of :class:`HybridSettings` apply as well."""

    dims: int = 2
    """2: square samples (the paper's method); 3: cubic volumes of side --size (default 64) from the 2D statistics under isotropy, refined slice by slice by the 2D score model: two phases, equiaxed or randomly oriented features only (book chapter 10)"""
    scheme: str = "passes"
    """--dims 3: 'passes' (one slice orientation at a time, xy, xz, yz, --rounds times) or 'mean' (the three orientations' scores averaged: turns grey; for comparison)"""
    rounds: int = 2
    """--dims 3, scheme 'passes': how many times the three orientations are visited"""
    sigma_pass: float = 0.3
    """--dims 3, scheme 'passes': the noise level every pass after the first re-noises the volume to"""
    annealed: bool = False
    """--dims 3, scheme 'passes': annealed passes instead of --rounds at --sigma-pass (eleven later passes re-noising geometrically less, 0.6 to 0.15) and a final denoising step of all three orientations at once (from 0.45, 16 noise draws): slices closer to the micrograph for about twice the time (book chapter 10)"""

    def __post_init__(self):
        check_settings(self, {
            "dims": (one_of(2, 3), "2 (square samples) or 3 (cubic volumes)"),
            "scheme": (one_of(*SCHEMES), "'passes' or 'mean'"),
            "rounds": (positive_int, "a positive integer"),
            "sigma_pass": (positive_number, "a positive finite noise level"),
        })
        if self.annealed:
            clashes = [f"--{name.replace('_', '-')}" for name in ("scheme", "rounds", "sigma_pass")
                       if getattr(self, name) != getattr(type(self), name)]
            if clashes:
                raise ValueError(f"--annealed sets the passes itself (scheme 'passes'); leave out {', '.join(clashes)}")
        if self.dims == 2:
            changed = [f"--{f.name.replace('_', '-')}" for f in dataclasses.fields(self)
                       if f.name != "dims" and getattr(self, f.name) != f.default]
            if changed:
                raise ValueError(f"{', '.join(changed)}: options of 3D volumes; add --dims 3 (or leave them out)")
