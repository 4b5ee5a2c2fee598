"""Sweep designs: which microstructures a dataset holds, and the statistics of each point.

A design names two or more *sources* (registry micrographs or files of 2-point statistics), a set
of *points* (convex weights over the sources, Section 5.2 of Robertson et al. 2023: any convex
combination of valid 2-point statistics is valid), how many samples to draw at each point, the
domain, the generator (a GRF alone, or a GRF refined by a score model) and one seed. Every sample
gets its own seed derived from (design seed, point index, sample index), so the same design always
gives the same dataset, however the work is split over workers or runs.

:class:`SweepDesign` is a checked design (read from YAML and checked by :mod:`lgtutorial.sweep.parsing`);
:func:`load_sources` and :func:`point_row` give the sources' statistics and each point's row.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from lgtutorial.grf.settings import GRFSettings
from lgtutorial.sampling.settings import RefinementOptions

__all__ = ["SamplerSettings", "SampleTask", "SweepDesign", "load_sources", "point_row", "sample_seed"]


@dataclass(frozen=True)
class SamplerSettings:
    """How each sample is drawn; the defaults are those of ``lgtutorial grf`` and ``lgtutorial generate``."""

    segmentation: str = GRFSettings.segmentation
    """GRF only: 'auto', 'preserve' (3x3 mean, then volume-fraction preserving), 'quantile' or 'argmax'"""
    filter_sigma: float | None = GRFSettings.filter_sigma
    """GRF only: width (px) of a Gaussian low-pass before segmentation"""
    name: str = RefinementOptions.sampler
    """the named sampler of the hybrid (lgtutorial.sampling.samplers.SAMPLERS; 'fast' by default, as for generate)"""
    n_levels: int | None = RefinementOptions.levels
    """levels of the geometric noise schedule (default: the model's); those below sigma_c are run"""
    sigma_c: float = RefinementOptions.sigma_c
    """noise level at which refinement of the GRF sample starts"""
    step_lr: float | None = RefinementOptions.step_lr
    """base Langevin step size (default: the sampler's own)"""
    condition_volume_fraction: bool = RefinementOptions.condition_volume_fraction
    """use the volume-fraction posterior score (Eq. 12)"""
    volume_fraction_estimate: str = RefinementOptions.volume_fraction_estimate
    """'segmented' or 'mean' estimate of the current volume fraction"""
    volume_fraction_shift: float | None = RefinementOptions.volume_fraction_shift
    """offset of the likelihood's target (default: what the model carries, lgtutorial.score.authors.VOLUME_FRACTION_SHIFTS)"""
    periodic: str = RefinementOptions.periodic
    """'embedding', 'circular' or 'none'"""
    padding: int = RefinementOptions.padding
    """width (px) of the periodic embedding"""

    def refinement(self) -> RefinementOptions:
        """The hybrid's :class:`~lgtutorial.sampling.settings.RefinementOptions` (those of ``lgtutorial generate``),
        checked by its rules."""
        return RefinementOptions(sampler=self.name, levels=self.n_levels, sigma_c=self.sigma_c, step_lr=self.step_lr,
                                 condition_volume_fraction=self.condition_volume_fraction,
                                 volume_fraction_estimate=self.volume_fraction_estimate,
                                 volume_fraction_shift=self.volume_fraction_shift, periodic=self.periodic,
                                 padding=self.padding)


@dataclass(frozen=True)
class SampleTask:
    """One sample of a sweep: its fixed slot ``index`` in the store, its point and its seed."""

    index: int
    point: int
    sample: int
    weights: tuple[float, ...]
    seed: int


def sample_seed(design_seed: int, point: int, sample: int) -> int:
    """A 63-bit seed for sample ``sample`` of point ``point``, independent of how the work is split.

    >>> sample_seed(0, 3, 1) == sample_seed(0, 3, 1) != sample_seed(0, 3, 2)
    True
    """
    state = np.random.SeedSequence([design_seed, point, sample]).generate_state(1, dtype=np.uint64)
    return int(state[0]) >> 1


@dataclass(frozen=True)
class SweepDesign:
    """A validated sweep: build with :func:`~lgtutorial.sweep.parsing.load_design` (YAML file) or
    :func:`~lgtutorial.sweep.parsing.parse_design` (mapping).

    Attributes:
        weights: ``(n_points, n_sources)`` convex weights of the sources at every point.
        shape: ``(H, W)`` of the samples, or ``None`` for the first source's grid.
        model: registry name or path of a score model, or ``None`` for GRF samples alone.
        summary_cutoff: lags ``|r| <= c`` of the autocorrelations stored per sample (0: none).
    """

    name: str
    seed: int
    source_kind: str
    sources: tuple[str, ...]
    weights: tuple[tuple[float, ...], ...]
    samples_per_point: int
    shape: tuple[int, int] | None = None
    model: str | None = None
    sampler: SamplerSettings = field(default_factory=SamplerSettings)
    device: str = "auto"
    summary_cutoff: int = 4

    @property
    def n_points(self) -> int:
        return len(self.weights)

    @property
    def n_samples(self) -> int:
        return self.n_points * self.samples_per_point

    def tasks(self) -> list[SampleTask]:
        """Every sample in slot order: ``index = point * samples_per_point + sample``."""
        return [
            SampleTask(point * self.samples_per_point + sample, point, sample, weights,
                       sample_seed(self.seed, point, sample))
            for point, weights in enumerate(self.weights)
            for sample in range(self.samples_per_point)
        ]

    def to_dict(self) -> dict:
        """A JSON-ready mapping (what the store records and compares on resume)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @property
    def sha256(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()


def sha256_of(path) -> str:
    """SHA-256 of a file (hex), read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_of(name_or_path: str) -> Path:
    """The file of a registry name (fetched and verified) or of a path."""
    from lgtutorial import data

    return data.fetch(name_or_path) if name_or_path in data.registry() else Path(name_or_path)


def load_sources(design: SweepDesign) -> tuple[torch.Tensor, list[dict]]:
    """The sources' periodic statistics rows ``(K, N, H, W)`` (float64) on one grid, and their provenance.

    References are resized to the first one's grid by nearest-neighbour sampling
    (:func:`~lgtutorial.grf.interpolation.resize_microstructure`); statistics files must share a grid.
    """
    from lgtutorial import data
    from lgtutorial.grf.field import GaussianRandomField, statistics_row
    from lgtutorial.grf.interpolation import load_statistics_row, resize_microstructure

    rows, provenance = [], []
    for position, source in enumerate(design.sources):
        key = f"{design.source_kind}[{position}]"
        if design.source_kind == "references":
            micro, _ = data.load(source)
            if rows:
                micro = resize_microstructure(micro, tuple(rows[0].shape[1:]))
            row = statistics_row(micro)
        else:
            row = load_statistics_row(source, label=key)
            GaussianRandomField(row)  # invalid statistics: one clear error here, not one per task
            if rows and row.shape[1:] != rows[0].shape[1:]:
                raise ValueError(f"{key}: statistics on a {tuple(row.shape[1:])} grid, but {design.source_kind}[0] "
                                 f"is on {tuple(rows[0].shape[1:])}; give all statistics on one grid")
        if rows and row.shape[0] != rows[0].shape[0]:
            raise ValueError(f"{key} has {row.shape[0]} phases but {design.source_kind}[0] has {rows[0].shape[0]}; "
                             "interpolated statistics need the same phases")
        rows.append(row)
        provenance.append({"source": source, "sha256": sha256_of(file_of(source))})
    return torch.stack(rows), provenance


def point_row(rows: torch.Tensor, weights, shape: tuple[int, int]) -> torch.Tensor:
    """The statistics row ``(N, *shape)`` of one point: ``sum_k w_k f^(k)``, moved onto ``shape``.

    The convex combination is built two sources at a time with
    :func:`~lgtutorial.grf.interpolation.interpolate_statistics`; it is valid whenever the sources are.
    """
    from lgtutorial.grf.interpolation import interpolate_statistics, statistics_row_for_shape

    mixture, total = rows[0], float(weights[0])
    for row, weight in zip(rows[1:], weights[1:]):
        total += float(weight)
        if weight > 0:
            mixture = interpolate_statistics(mixture, row, min(1.0, float(weight) / total))
    return statistics_row_for_shape(mixture, shape)
