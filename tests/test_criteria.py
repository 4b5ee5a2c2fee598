"""The case studies' chord checks and tables (lgtutorial.criteria), against the code they replace."""

import math

import pytest
import torch

from lgtutorial.comparison import compare
from lgtutorial.criteria import chord_distance, chord_table, chord_table_by_phase, chords_closer, fine_phases
from lgtutorial.microstructure import labels_to_one_hot

PHASES = ["yellow", "teal", "dark blue"]


def _labels(seed: int, n: int, width: float) -> torch.Tensor:
    """``(n, 32, 32)`` labels of three phases: smooth periodic noise cut at two quantiles."""
    generator = torch.Generator().manual_seed(seed)
    k = torch.fft.fftfreq(32, dtype=torch.float64)
    low = torch.exp(-2 * math.pi**2 * width**2 * (k[:, None] ** 2 + k[None, :] ** 2))
    f = torch.fft.ifft2(torch.fft.fft2(torch.randn(n, 32, 32, generator=generator, dtype=torch.float64)) * low).real
    cuts = torch.quantile(f.flatten(1), torch.tensor([0.3, 0.7], dtype=torch.float64), dim=1).T
    return (f > cuts[:, 0, None, None]).long() + (f > cuts[:, 1, None, None]).long()


@pytest.fixture(scope="module")
def comparison():
    reference = labels_to_one_hot(_labels(0, 1, 2.0), n_phases=3)
    ensembles = {"GRF": labels_to_one_hot(_labels(1, 3, 0.7), n_phases=3),  # finer: other chords
                 "hybrid": labels_to_one_hot(_labels(2, 3, 2.0), n_phases=3)}  # the reference's kind
    return compare(reference, ensembles, reference_periodic=True, phase_names=PHASES, three_point_cutoff=2,
                   n_components=2)


# -- the code the chapters and render scripts wrote for themselves (kept here as the specification) --
def _chapter_7_chord_distance(comparison, model, phase, axis):
    ref, other = comparison.chords["reference"][axis][phase], comparison.chords[model][axis][phase]
    longest = max(ref.line_length, other.line_length)
    return 0.5 * float((ref.distribution(longest) - other.distribution(longest)).abs().sum())


PAPER_X = {"reference": ((3.1, 2.8), (48, 52), (2.0, 1.5)), "GRF": ((5.7, 5.3), (13, 20), (5.3, 5.9))}


def _cells(line: str) -> list:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def _rows(comparison):
    index = {name: k for k, name in enumerate(comparison.phase_names)}
    return {(row["model"], index[row["phase"]]): row for row in comparison.rows}


# -- the tests ----------------------------------------------------------------------------------------------
def test_chord_distance_is_the_total_variation_distance_the_chapters_computed(comparison):
    for model in ("reference", "GRF", "hybrid"):
        for phase in range(3):
            for axis in ("x", "y"):
                expected = _chapter_7_chord_distance(comparison, model, phase, axis)
                assert chord_distance(comparison, model, phase, axis) == pytest.approx(expected, abs=1e-12)
                assert comparison.chord_distance(model, PHASES[phase], axis) == pytest.approx(expected, abs=1e-12)
    assert chord_distance(comparison, "reference", 0, "x") == 0.0
    with pytest.raises(ValueError, match="unknown model 'SBG'"):
        chord_distance(comparison, "SBG", 0, "x")
    with pytest.raises(ValueError, match="unknown phase 'green'"):
        chord_distance(comparison, "GRF", "green", "x")


def test_chords_closer_reads_distributions_or_means(comparison):
    by_distribution = comparison.chords_closer("hybrid", "GRF")
    assert set(by_distribution["checks"]) == {(p, a) for p in PHASES for a in ("x", "y")}
    for (phase, axis), check in by_distribution["checks"].items():
        a = PHASES.index(phase)
        assert check["hybrid"] == pytest.approx(_chapter_7_chord_distance(comparison, "hybrid", a, axis))
        assert check["closer"] == (check["hybrid"] < check["GRF"])
    assert by_distribution["all"] == all(c["closer"] for c in by_distribution["checks"].values())
    rows = _rows(comparison)
    by_mean = chords_closer(comparison, phases=[0, "dark blue"], measure="mean")
    assert set(by_mean["checks"]) == {(p, a) for p in ("yellow", "dark blue") for a in ("x", "y")}
    for (phase, axis), check in by_mean["checks"].items():
        a, key = PHASES.index(phase), f"chord_{axis}_mean"
        gaps = {m: abs(rows[m, a][key] - rows["reference", a][key]) for m in ("GRF", "hybrid")}
        assert check["closer"] == (gaps["hybrid"] < gaps["GRF"]) and check["GRF"] == gaps["GRF"]
    swapped = chords_closer(comparison, "GRF", "hybrid", measure="mean", phases=[0, 2])
    assert all(swapped["checks"][k]["closer"] != by_mean["checks"][k]["closer"] for k in by_mean["checks"]
               if by_mean["checks"][k]["GRF"] != by_mean["checks"][k]["hybrid"])
    with pytest.raises(ValueError, match="measure must be one of"):
        chords_closer(comparison, measure="median")


def test_fine_phases_are_those_whose_chords_fit_half_a_patch(comparison):
    rows = _rows(comparison)
    longest = [max(rows["reference", a]["chord_x_mean"], rows["reference", a]["chord_y_mean"]) for a in range(3)]
    for patch in (2, 8, 64):
        assert fine_phases(comparison, patch) == [a for a in range(3) if longest[a] <= patch / 2]
    assert fine_phases(comparison, 10_000) == [0, 1, 2]


def test_chord_tables_are_the_ones_the_chapters_and_render_scripts_wrote(comparison):
    models = ["reference", "GRF", "hybrid"]
    pm = "{:.2f} ± {:.2f}".format
    # chapter 7 (one row per model and phase) and the case-study-1 render script (with the volume fraction)
    for volume_fraction in (False, True):
        lines = chord_table(comparison, models, volume_fraction=volume_fraction).splitlines()
        assert _cells(lines[0]) == ["model", "phase", "n"] + (["volume fraction"] if volume_fraction else []) + [
            "x-chord (px)", "y-chord (px)", "feature size (px)"]
        assert lines[1] == "|" + "---|" * len(_cells(lines[0]))
        assert len(lines) == 2 + len(comparison.rows)
        for line, r in zip(lines[2:], comparison.rows):
            vf = ["{:.4f} ± {:.4f}".format(r["volume_fraction_mean"], r["volume_fraction_std"])] if volume_fraction else []
            assert _cells(line) == [r["model"], r["phase"], str(r["n_samples"]), *vf, pm(r["chord_x_mean"], r["chord_x_std"]),
                                    pm(r["chord_y_mean"], r["chord_y_std"]),
                                    pm(r["feature_size_mean"], r["feature_size_std"])]
    assert comparison.chord_table(["hybrid"]).count("| hybrid |") == 3
    # chapter 8 and the case-study-2 render script: the paper's layout, columns yellow, dark blue, teal
    rows, order = _rows(comparison), (0, 2, 1)
    for axis in ("x", "y"):
        extra = {f"{m}, paper": [PAPER_X[m][k] for k in order] for m in PAPER_X} if axis == "x" else None
        lines = chord_table_by_phase(comparison, axis, models=models, order=order, label="{model}, ours",
                                     extra_rows=extra).splitlines()
        assert lines[0] == f"| {axis}-chords (px) | yellow | dark blue | teal |" and lines[1] == "|---|---|---|---|"
        for line, model in zip(lines[2:5], models):
            assert _cells(line) == [f"{model}, ours"] + ["{:.1f} ± {:.1f}".format(rows[model, k][f"chord_{axis}_mean"],
                                                                             rows[model, k][f"chord_{axis}_std"])
                                                        for k in order]
        assert lines[5:] == ([f"| {m}, paper | " + " | ".join(f"{PAPER_X[m][k][0]:g} ± {PAPER_X[m][k][1]:g}" for k in order)
                              + " |" for m in PAPER_X] if axis == "x" else [])
    labelled = comparison.chord_table_by_phase("x", corner="structures", label="{model}, ours (n = {n})")
    assert labelled.splitlines()[0] == "| structures | yellow | teal | dark blue |"
    assert labelled.splitlines()[3].startswith("| GRF, ours (n = 3) | ")
