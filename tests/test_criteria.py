"""The case studies' chord checks and tables (lgtutorial.evaluation.criteria), against the code they replace."""

import importlib.util
from pathlib import Path

import pytest
import torch

from lgtutorial.evaluation.compare import compare
from lgtutorial.evaluation.criteria import (
    chord_distance,
    chord_table,
    chord_table_by_phase,
    chords_closer,
    fine_phases,
)
from lgtutorial.synthetic import blobs

PHASES = ["yellow", "teal", "dark blue"]


SHARES = (0.3, 0.4, 0.3)  # three phases of smooth periodic noise, cut at its 0.3 and 0.7 quantiles


@pytest.fixture(scope="module")
def comparison():
    reference = blobs(32, 2.0, 0, fractions=SHARES)
    ensembles = {"GRF": torch.cat([blobs(32, 0.7, seed, fractions=SHARES) for seed in (1, 2, 3)]),  # finer: other chords
                 "hybrid": torch.cat([blobs(32, 2.0, seed, fractions=SHARES) for seed in (4, 5, 6)])}  # the reference's kind
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


# -- the render scripts (book/figures/make_case_study_{1,2}.py) call these functions -----------------------
FIGURES = Path(__file__).resolve().parents[1] / "book" / "figures"


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, FIGURES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# What the scripts computed for themselves before they called the package (kept as the specification).
def _case_1_done_criterion(comparison, *, patch_size, paper_spread):
    rows = {(r["model"], r["phase"]): r for r in comparison.rows}
    phases, chords_ok = {}, True
    for index, phase in enumerate(comparison.phase_names):
        reference = rows[("reference", phase)]
        fine = max(reference["chord_x_mean"], reference["chord_y_mean"]) <= patch_size / 2
        result = {"fine": fine}
        for axis in ("x", "y"):
            distances = {m: _chapter_7_chord_distance(comparison, m, index, axis) for m in ("GRF", "hybrid")}
            result[f"{axis}_distribution_distance"] = distances
            result[f"{axis}_mean_error_px"] = {m: rows[(m, phase)][f"chord_{axis}_mean"] - reference[f"chord_{axis}_mean"]
                                               for m in ("GRF", "hybrid")}
            result[f"{axis}_hybrid_closer"] = distances["hybrid"] < distances["GRF"]
            chords_ok &= (not fine) or result[f"{axis}_hybrid_closer"]
        phases[phase] = result
    error = rows[("hybrid", comparison.phase_names[-1])]["volume_fraction_error"]
    return {"phases": phases, "chords_closer_for_every_fine_phase": bool(chords_ok), "volume_fraction_error": error,
            "volume_fraction_std": rows[("hybrid", comparison.phase_names[-1])]["volume_fraction_std"],
            "paper_spread": paper_spread, "volume_fraction_within_paper_spread": bool(abs(error) <= paper_spread),
            "holds": bool(chords_ok and abs(error) <= paper_spread)}


def _case_1_chord_table(comparison, models):
    lines = ["| model | phase | n | volume fraction | x-chord (px) | y-chord (px) | feature size (px) |",
             "|---|---|---|---|---|---|---|"]
    for row in comparison.rows:
        if row["model"] in models:
            lines.append(
                f"| {row['model']} | {row['phase']} | {row['n_samples']} | {row['volume_fraction_mean']:.4f} ± "
                f"{row['volume_fraction_std']:.4f} | {row['chord_x_mean']:.2f} ± {row['chord_x_std']:.2f} | "
                f"{row['chord_y_mean']:.2f} ± {row['chord_y_std']:.2f} | {row['feature_size_mean']:.2f} ± "
                f"{row['feature_size_std']:.2f} |")
    return "\n".join(lines)


def _case_2_chord_table(comparison, paper, *, axis):
    rows, order = _rows(comparison), (0, 2, 1)
    lines = ["| structures | " + " | ".join(comparison.phase_names[k] for k in order) + " |", "|---" * 4 + "|"]
    for model in ("reference", *comparison.models):
        cells = [f"{rows[model, k][f'chord_{axis}_mean']:.1f} ± {rows[model, k][f'chord_{axis}_std']:.1f}" for k in order]
        lines.append(f"| {model}, ours (n = {rows[model, 0]['n_samples']}) | " + " | ".join(cells) + " |")
    if axis == "x":
        for model in ("reference", "GRF", "hybrid"):
            lines.append(f"| {model}, paper | " + " | ".join(f"{paper[model][k][0]:g} ± {paper[model][k][1]:g}"
                                                           for k in order) + " |")
    return "\n".join(lines) + "\n"


def _case_2_done_criterion(comparison, fine_phases_, paper_errors):
    rows, chords = _rows(comparison), {}
    for phase in fine_phases_:
        for axis in ("x", "y"):
            key, reference = f"chord_{axis}_mean", rows["reference", phase][f"chord_{axis}_mean"]
            gap = {model: abs(rows[model, phase][key] - reference) for model in ("GRF", "hybrid")}
            chords[f"{comparison.phase_names[phase]} {axis}"] = {
                "reference": reference, "GRF": rows["GRF", phase][key], "hybrid": rows["hybrid", phase][key],
                "hybrid_closer": bool(gap["hybrid"] < gap["GRF"])}
    fractions = {}
    for phase, (mean, std) in enumerate(paper_errors):
        error = rows["hybrid", phase]["volume_fraction_error"]
        fractions[comparison.phase_names[phase]] = {"error": error, "allowed": abs(mean) + std,
                                                    "within": bool(abs(error) <= abs(mean) + std)}
    return {"chords": chords, "volume_fractions": fractions,
            "hybrid_chords_closer_for_every_fine_phase": all(c["hybrid_closer"] for c in chords.values()),
            "volume_fractions_within_paper_spread": all(f["within"] for f in fractions.values())}


def test_case_study_1_script_gives_what_its_own_functions_gave(comparison):
    script = _script("make_case_study_1")
    assert not hasattr(script, "chord_distance") and script.chord_table is chord_table, "the package's, imported"
    for patch in (2, 8, 64):  # no phase fine, some, all
        for spread in (0.0, 1.0):
            assert script.done_criterion(comparison, patch_size=patch, paper_spread=spread) == \
                _case_1_done_criterion(comparison, patch_size=patch, paper_spread=spread)
    models = ["reference", "GRF", "hybrid"]
    assert script.chord_table(comparison, models, volume_fraction=True) == _case_1_chord_table(comparison, models)


def test_case_study_2_script_gives_what_its_own_functions_gave(comparison):
    script = _script("make_case_study_2")
    assert not hasattr(script, "_save_figure") and not hasattr(script, "_save_text")
    for axis in ("x", "y"):
        assert script.chord_table(comparison, axis=axis) == _case_2_chord_table(comparison, script.PAPER["x_chord"],
                                                                               axis=axis)
    assert script.done_criterion(comparison) == _case_2_done_criterion(
        comparison, script.FINE_PHASES, script.PAPER["hybrid_volume_fraction_error"])


def test_the_scripts_writers_are_the_package_s(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lgtutorial._io import atomic_write, save_figure, save_text

    def figure():
        fig, ax = plt.subplots(figsize=(1, 1))
        ax.plot([0, 1], [1, 0])
        return fig

    old = figure()  # what make_case_study_2.py's _save_figure did
    with atomic_write(tmp_path / "old.png") as handle:
        old.savefig(handle, format="png", dpi=100, bbox_inches="tight")
    plt.close(old)
    save_figure(figure(), tmp_path / "new.png", dpi=100)
    assert (tmp_path / "new.png").read_bytes() == (tmp_path / "old.png").read_bytes()
    save_text(tmp_path / "table.md", "| a |\n")
    assert (tmp_path / "table.md").read_text() == "| a |\n"
