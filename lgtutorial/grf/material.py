"""What a generator needs to know of a micrograph without the micrograph: its 1- and 2-point statistics.

A shipped score model carries the :class:`MaterialStatistics` of the micrograph it was trained on
(measured by this package; the micrograph itself is not stored), so that the model alone is enough to
generate its material offline (``lgtutorial generate`` with no arguments) and to compare the result
with the reference: volume fractions, a row of the periodic 2-point statistics, chord lengths.

>>> import torch
>>> from lgtutorial.synthetic import lamellae
>>> stripes = lamellae(8, period=4)                                 # stripes, 2 px wide
>>> stats = MaterialStatistics.from_microstructure(stripes, name="stripes", periodic=True)
>>> stats.volume_fractions.tolist(), stats.mean_chord_lengths["x"]
([0.5, 0.5], [2.0, 2.0])
>>> bool(torch.allclose(stats.statistics_row().sum(0), torch.tensor(0.5, dtype=torch.float64)))
True
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch

from lgtutorial.data import read_torch_file

__all__ = ["MaterialStatistics", "STATISTICS_FORMAT", "compare_with_training_material", "row_summary"]

STATISTICS_FORMAT = "lgtutorial-material-statistics"
STATISTICS_VERSION = 1
AXES = ("x", "y")


@dataclass
class MaterialStatistics:
    """The 1- and 2-point statistics and chord lengths of one segmented micrograph.

    Attributes:
        name: the micrograph's registry name or file name.
        phases: one name per phase.
        shape: ``(H, W)`` of the micrograph (and of the statistics grid).
        periodic: whether the micrograph is periodic (chords wrap around its edges).
        volume_fractions: ``(N,)`` float64.
        row: ``(N - 1, H, W)`` float32, ``f_0n`` for ``n < N - 1`` in FFT order (zero lag at ``[0, 0]``);
            the last channel is implied by ``sum_n f_0n(r) = v_0`` and is not stored.
        mean_chord_lengths: ``{"x": [N floats], "y": [N floats]}`` in pixels (NaN: no chords).
        chord_distributions: ``{"x": (N, L) float32, "y": ...}``: fraction of chords of length ``1..L``.
        provenance: plain facts: source, its SHA-256 and licence, package version, date.
    """

    name: str
    phases: list
    shape: tuple
    periodic: bool
    volume_fractions: torch.Tensor
    row: torch.Tensor
    mean_chord_lengths: dict
    chord_distributions: dict
    provenance: dict = field(default_factory=dict)

    @property
    def n_phases(self) -> int:
        return int(self.volume_fractions.numel())

    @classmethod
    def from_microstructure(cls, microstructure, *, name: str, phases=None, periodic: bool = False,
                            provenance: dict | None = None, max_chord: int = 128) -> MaterialStatistics:
        """Measure a one-hot micrograph ``(1, N, H, W)`` (or ``(N, H, W)``)."""
        from lgtutorial._version import __version__
        from lgtutorial.grf.field import statistics_row
        from lgtutorial.microstructure import check_microstructure
        from lgtutorial.statistics.chords import chord_lengths

        micro = torch.as_tensor(microstructure)
        micro = check_microstructure(micro[None] if micro.ndim == 3 else micro).detach().cpu()
        if micro.shape[0] != 1 or micro.ndim != 4:
            raise ValueError(f"expected one 2-D micrograph (1, N, H, W), got {tuple(micro.shape)}")
        n_phases = micro.shape[1]
        row = statistics_row(micro.double())
        fractions = micro.double().mean(dim=(0, 2, 3))
        means, distributions = {}, {}
        for axis in AXES:
            chords = chord_lengths(micro, axis=axis, periodic=periodic)
            means[axis] = [None if math.isnan(c.mean()) else round(c.mean(), 4) for c in chords]
            longest = min(max_chord, micro.shape[3] if axis == "x" else micro.shape[2])
            distributions[axis] = torch.stack([c.distribution(longest).float() for c in chords])
        facts = {"computed_by": f"lgtutorial {__version__}", "computed_at": time.strftime("%Y-%m-%d"),
                 **(provenance or {})}
        return cls(name=str(name), phases=list(phases or [f"phase {n}" for n in range(n_phases)]),
                   shape=tuple(int(s) for s in micro.shape[2:]), periodic=bool(periodic),
                   volume_fractions=fractions, row=row[:-1].float().contiguous(), mean_chord_lengths=means,
                   chord_distributions=distributions, provenance=facts)

    def statistics_row(self) -> torch.Tensor:
        """The whole row ``(N, H, W)`` float64 (the last channel from ``sum_n f_0n = v_0``)."""
        stored = self.row.double()
        last = self.volume_fractions[0].double() - stored.sum(0, keepdim=True)
        return torch.cat([stored, last])

    def to_payload(self) -> dict:
        """Plain tensors, lists and strings (``torch.load(..., weights_only=True)`` reads them)."""
        return {"format": STATISTICS_FORMAT, "version": STATISTICS_VERSION, "name": self.name,
                "phases": list(self.phases), "shape": list(self.shape), "periodic": self.periodic,
                "volume_fractions": self.volume_fractions.double(), "row": self.row.float(),
                "mean_chord_lengths": self.mean_chord_lengths,
                "chord_distributions": {k: v.float() for k, v in self.chord_distributions.items()},
                "provenance": dict(self.provenance)}

    @classmethod
    def from_payload(cls, payload: dict) -> MaterialStatistics:
        if not isinstance(payload, dict) or payload.get("format") != STATISTICS_FORMAT:
            raise ValueError(f"not lgtutorial material statistics (no format '{STATISTICS_FORMAT}')")
        if payload.get("version") != STATISTICS_VERSION:
            raise ValueError(f"material statistics version {payload.get('version')!r}, this package reads "
                             f"{STATISTICS_VERSION}")
        row, fractions = payload["row"], payload["volume_fractions"]
        if row.ndim != 3 or row.shape[0] != fractions.numel() - 1 or list(row.shape[1:]) != list(payload["shape"]):
            raise ValueError(f"material statistics: a row of shape {tuple(row.shape)} does not fit "
                             f"{fractions.numel()} phases on a {payload['shape']} grid")
        return cls(name=payload["name"], phases=list(payload["phases"]), shape=tuple(payload["shape"]),
                   periodic=bool(payload["periodic"]), volume_fractions=fractions.double(), row=row.float(),
                   mean_chord_lengths=dict(payload["mean_chord_lengths"]),
                   chord_distributions=dict(payload["chord_distributions"]), provenance=dict(payload["provenance"]))

    def save(self, path) -> None:
        """Write to a ``.pt`` file atomically."""
        from lgtutorial._io import atomic_write

        with atomic_write(path) as handle:
            torch.save(self.to_payload(), handle)

    @classmethod
    def load(cls, path) -> MaterialStatistics:
        return cls.from_payload(read_torch_file(path, "material statistics"))

    def summary(self) -> str:
        """One line per phase: volume fraction and mean chord lengths."""
        lines = [f"{self.name}: {self.n_phases} phases on {self.shape[0]}x{self.shape[1]} px"
                 f"{' (periodic)' if self.periodic else ''}"]
        for n, phase in enumerate(self.phases):
            x, y = self.mean_chord_lengths["x"][n], self.mean_chord_lengths["y"][n]
            lines.append(f"  {phase}: volume fraction {float(self.volume_fractions[n]):.4f}, mean chord x {x} px, y {y} px")
        return "\n".join(lines)


def row_summary(row: torch.Tensor) -> dict:
    """Volume fractions and phase 0's mean chord lengths implied by a periodic statistics row ``(N, H, W)``.

    For one-hot data ``v_0 - f_00(one pixel along x)`` is the share of pixels where a phase-0 chord
    ends, so the mean phase-0 chord along x is ``v_0 / (v_0 - f_00(0, 1))`` (periodic, exact).
    """
    row = torch.as_tensor(row, dtype=torch.float64)
    v0 = float(row[0, 0, 0])
    fractions = (row.flatten(1).mean(1) / v0).tolist()
    lines = {"x": row.shape[2], "y": row.shape[1]}  # a phase that never ends along a line: the line's length
    chords = {axis: min(v0 / max(v0 - float(row[0][index]), 1e-12), float(lines[axis]))
              for axis, index in (("x", (0, 1)), ("y", (1, 0)))}
    return {"volume_fractions": fractions, "mean_chords_phase0": chords}


def compare_with_training_material(material: MaterialStatistics, row: torch.Tensor, name: str,
                                   *, vf_limit: float = 0.15, size_limit: float = 2.0) -> tuple[str | None, bool]:
    """Is a model trained on ``material`` fit to generate statistics ``row`` (of ``name``)?

    Returns ``(message, gross)``: no message when the statistics are the model's own micrograph's; a
    warning naming both otherwise; ``gross`` when a volume fraction differs by more than
    ``vf_limit`` or phase 0's mean chord length by more than a factor ``size_limit`` (the model then
    has never seen features like these).
    """
    if name == material.name:
        return None, False
    own, asked = row_summary(material.statistics_row()), row_summary(row)
    if len(own["volume_fractions"]) != len(asked["volume_fractions"]):
        return None, False  # the generator refuses a model whose channels do not fit, with its own message
    vf_gap = max(abs(a - b) for a, b in zip(own["volume_fractions"], asked["volume_fractions"]))
    ratios = [asked["mean_chords_phase0"][axis] / own["mean_chords_phase0"][axis] for axis in ("x", "y")]
    worst = max(max(r, 1 / r) for r in ratios)
    gross = vf_gap > vf_limit or worst > size_limit
    message = (f"the score model was trained on {material.name}, not on {name}: volume fractions differ by up to "
               f"{vf_gap:.3f} and phase-0 mean chord lengths by a factor of up to {worst:.2f} (x: "
               f"{own['mean_chords_phase0']['x']:.1f} -> {asked['mean_chords_phase0']['x']:.1f} px, y: "
               f"{own['mean_chords_phase0']['y']:.1f} -> {asked['mean_chords_phase0']['y']:.1f} px)")
    return message, gross
