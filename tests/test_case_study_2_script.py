"""book/figures/make_case_study_2.py (chapter 8's full-size render) at a tiny size, in a temporary folder."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "book" / "figures" / "make_case_study_2.py"
FIGURES = ["volume_fractions", "chord_lengths_x", "chord_lengths_y", "samples", "pairs"] + [
    f"{kind}_phase{k}" for kind in ("two_point_slices", "autocorrelation_error", "three_point_pca") for k in range(3)
]


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("make_case_study_2", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def rendered(script, tmp_path_factory):
    folder = tmp_path_factory.mktemp("case2") / "out"
    arguments = ["--size", "32", "32", "--samples", "2", "--sbg-samples", "1", "--levels", "24",
                 "--device", "cpu", "--output", str(folder)]
    written = script.main(arguments)
    return script, written, json.loads((written / "summary.json").read_text())


@pytest.mark.requires_data("ti-alpha-beta")
def test_writes_every_figure_the_table_and_the_summary(rendered):
    _, folder, summary = rendered
    missing = [stem for stem in FIGURES if not (folder / f"{stem}.png").is_file()]
    assert not missing, f"figures not written: {missing}"
    table = (folder / "table.md").read_text()
    assert "| hybrid, paper | 3 ± 2.8 | 2.1 ± 1.6 | 53 ± 46 |" in table, "the paper's Table 1 rows sit beside ours"
    assert "| GRF, ours (n = 2) |" in table
    assert summary["size"] == [32, 32] and summary["n_samples"] == 2
    assert summary["sampling"]["levels"] == 24 and summary["sampling"]["evaluations_per_sample"] > 0


@pytest.mark.requires_data("ti-alpha-beta")
def test_summary_numbers_are_consistent(rendered):
    script, _, summary = rendered
    # the GRF ensemble is segmented to the target volume fractions exactly (up to one pixel in 32 x 32)
    for got, target in zip(summary["volume_fractions"]["GRF"]["mean"], summary["target_volume_fractions"]):
        assert abs(got - target) <= 1 / 1024 + 1e-9
    assert summary["volume_fractions"]["GRF"]["std"] == [0.0, 0.0, 0.0]
    # the reference's x-chords are the paper's to a few tenths of a pixel (non-periodic, edge chords dropped)
    for phase in script.FINE_PHASES:
        assert abs(summary["chords"]["x"]["reference"]["mean"][phase] - script.PAPER["x_chord"]["reference"][phase][0]) < 0.2
    # the verdict follows from the recorded numbers
    criterion = summary["done_criterion"]
    for entry in criterion["chords"].values():
        closer = abs(entry["hybrid"] - entry["reference"]) < abs(entry["GRF"] - entry["reference"])
        assert entry["hybrid_closer"] == closer
    assert criterion["hybrid_chords_closer_for_every_fine_phase"] == all(
        entry["hybrid_closer"] for entry in criterion["chords"].values())
    for phase, entry in enumerate(criterion["volume_fractions"].values()):
        hybrid, reference = summary["volume_fractions"]["hybrid"]["mean"][phase], summary["reference_volume_fractions"][phase]
        assert entry["error"] == pytest.approx(hybrid - reference)
        assert entry["within"] == (abs(entry["error"]) <= entry["allowed"])


@pytest.mark.requires_data("ti-alpha-beta")  # the script reads the reference before it checks the size
def test_rejects_a_size_the_network_cannot_take(script, tmp_path):
    # 30 + 2 * 16 = 62 is not a multiple of 2**depth = 4
    with pytest.raises(ValueError, match="divisible by 2\\*\\*depth"):
        script.main(["--size", "30", "30", "--samples", "2", "--device", "cpu", "--output", str(tmp_path / "bad")])
    assert not (tmp_path / "bad").exists(), "nothing is written before the size is checked"
