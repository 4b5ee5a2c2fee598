"""The checks of a fit's report: are the hybrid samples like the reference, and more so than the GRF's?

Per phase: the mean chord from boundary counts (:func:`mean_chords`, :func:`mean_chord_error`); whether
the hybrid's chords are closer to the reference's than the GRF's (:func:`chord_verdicts`: by the
chord-length-distribution distance where it resolves more than the reference's own halves differ by,
by the mean chord where not); the sizes of connected regions (:func:`region_checks`,
:func:`regions_like_reference`); for three or more phases, which phases touch (:func:`phase_contacts`).
:func:`lgtutorial.fitting.fit.fit` collects them; :mod:`lgtutorial.fitting.report` writes them out.
"""

from __future__ import annotations

import math

__all__ = ["CONTACT_LAGS", "REGION_TOLERANCE_DECADES", "chord_verdicts", "mean_chord_error", "mean_chords",
           "phase_contacts", "region_checks", "regions_like_reference"]


def mean_chords(micro, ensembles: dict, phases, *, periodic: bool) -> dict:
    """Per phase, model (``"reference"`` and each ensemble) and axis, the mean chord length from boundary
    counts (:func:`lgtutorial.statistics.chords.boundary_mean_chord`): unbiased on a non-periodic micrograph even for
    chords as long as the image. Ensembles are periodic samples."""
    from lgtutorial.statistics.chords import boundary_mean_chord

    measured = {"reference": (micro, periodic), **{name: (e, True) for name, e in ensembles.items()}}
    per_axis = {name: {axis: boundary_mean_chord(m, axis=axis, periodic=p) for axis in ("x", "y")}
                for name, (m, p) in measured.items()}
    return {phase: {name: {axis: values[axis][a] for axis in ("x", "y")} for name, values in per_axis.items()}
            for a, phase in enumerate(phases)}


def mean_chord_error(means: dict, model: str) -> float:
    """The larger over x and y of ``model``'s relative error of the mean chord against the reference's (for one
    phase of :func:`mean_chords`); NaN where the phase is missing."""
    errors = [abs(means[model][axis] / means["reference"][axis] - 1.0) for axis in ("x", "y")]
    return math.nan if any(e != e for e in errors) else max(errors)


def chord_verdicts(distances: dict, halves: dict, means: dict) -> dict:
    """Per phase, whether the hybrid's chords are closer to the reference's than the GRF's, and by which measure.

    The chord-length-distribution distance decides where it can: where the GRF's or the hybrid's distance
    exceeds what the reference's own top and bottom halves differ by (``halves``). Where both lie within it,
    the distributions of this micrograph cannot tell either ensemble from another piece of the material (a
    phase of a few hundred chords spread over the image width, such as the matrix around sparse particles,
    where two ensembles' distances differ by noise); the mean chord from boundary counts (``means``, of
    :func:`mean_chords`, resolvable there) decides instead.

    >>> means = {"reference": {"x": 110.0, "y": 118.0}, "GRF": {"x": 86.0, "y": 90.0},
    ...          "hybrid": {"x": 100.0, "y": 108.0}}
    >>> chord_verdicts({"matrix": {"GRF": 0.45, "hybrid": 0.48}}, {"matrix": 0.69}, {"matrix": means})["matrix"]
    {'resolved': False, 'judged_by': 'mean chord', 'closer': True}
    >>> chord_verdicts({"matrix": {"GRF": 0.45, "hybrid": 0.48}}, {"matrix": 0.30}, {"matrix": means})["matrix"]
    {'resolved': True, 'judged_by': 'distribution', 'closer': False}
    """
    verdicts = {}
    for phase, d in distances.items():
        resolved = phase not in halves or max(d["GRF"], d["hybrid"]) > halves[phase]
        if resolved:
            closer = d["hybrid"] < d["GRF"]
        else:
            closer = mean_chord_error(means[phase], "hybrid") < mean_chord_error(means[phase], "GRF")
        verdicts[phase] = {"resolved": resolved, "judged_by": "distribution" if resolved else "mean chord",
                           "closer": bool(closer)}
    return verdicts


#: Lags (px) at which the report says which phases touch (:func:`phase_contacts`).
CONTACT_LAGS = (1, 4)


def phase_contacts(micro, ensembles: dict, phases, *, periodic: bool, lags=CONTACT_LAGS) -> dict:
    """Which phases touch, reference against each ensemble: per ordered pair ``"a -> b"`` of distinct phases the
    chance that the pixel ``r`` px from a pixel of ``a`` is of ``b`` (:func:`lgtutorial.statistics.two_point.contact_chances`)
    at each of ``lags``. A reference that keeps two phases apart shows zeros; a GRF cannot hold that."""
    from lgtutorial.statistics.two_point import contact_chances

    side = min(min(micro.shape[2:]), *(min(e.shape[2:]) for e in ensembles.values()))
    lags = [r for r in lags if r <= (side - 1) // 2]
    measured = {"reference": contact_chances(micro, periodic=periodic, lags=lags),
                **{name: contact_chances(e, periodic=True, lags=lags) for name, e in ensembles.items()}}
    return {"lags": lags, **{f"{phases[a]} -> {phases[b]}": {name: m[(a, b)] for name, m in measured.items()}
                             for (a, b) in measured["reference"]}}


#: How far (in decades of region size) the hybrid's connected regions may lie from the reference's
#: beyond what the reference's own halves differ by: 0.1 decade is about 26 % larger or smaller.
REGION_TOLERANCE_DECADES = 0.1


def region_checks(micro, ensembles: dict, phases) -> dict:
    """The connected-region entries of a fit's checks (:mod:`lgtutorial.statistics.clusters`): per phase the median region
    size of the reference and each ensemble, each ensemble's region-size distance to the reference, the
    reference's halves' distance, and whether the hybrid's regions are like the reference's
    (:func:`regions_like_reference`). Every image is cut into windows of the smallest one's size."""
    from lgtutorial.statistics.clusters import (
        cluster_size_distance,
        common_window,
        halves_cluster_distance,
        median_cluster_size,
    )

    window = common_window(micro, *ensembles.values())
    checks = {
        "region_sizes": {p: {"reference": median_cluster_size(micro, a, window=window),
                             **{m: median_cluster_size(e, a, window=window) for m, e in ensembles.items()}}
                         for a, p in enumerate(phases)},
        "region_distances": {p: {m: cluster_size_distance(e, micro, a, window=window) for m, e in ensembles.items()}
                             for a, p in enumerate(phases)},
        "region_distance_halves": dict(zip(phases, halves_cluster_distance(micro))),
        "region_window": list(window),
    }
    checks["hybrid_regions_like_reference_for_every_phase"] = regions_like_reference(
        checks["region_distances"], checks["region_distance_halves"])
    return checks


def regions_like_reference(distances: dict, halves: dict, tolerance: float = REGION_TOLERANCE_DECADES) -> bool:
    """Whether, for every phase, the hybrid's region-size distance to the reference
    (:func:`lgtutorial.statistics.clusters.cluster_size_distance`) is within the reference's own halves' distance plus
    ``tolerance`` decades. A phase missing from the samples (nan) fails.

    >>> regions_like_reference({"grains": {"hybrid": 0.9}}, {"grains": 0.15})  # cells run into one another
    False
    >>> regions_like_reference({"grains": {"hybrid": 0.2}}, {"grains": 0.15})
    True
    """
    return all(d["hybrid"] <= halves[p] + tolerance for p, d in distances.items())


def _judged_by_mean(checks) -> str:
    """The report's note on the phases whose chord check the mean chord decided (:func:`chord_verdicts`)."""
    unresolved = [p for p, v in checks["chord_verdicts"].items() if not v["resolved"]]
    if not unresolved:
        return ""
    return (f" ({', '.join(unresolved)}: the distributions cannot tell GRF and hybrid from the reference's own halves; "
            "judged by the mean chord, below)")
