"""``lgtutorial evaluate``: the table (CSV, Markdown), the figures and the summary it writes."""

import csv
import json

import numpy as np
import pytest

from lgtutorial.cli.main import main
from lgtutorial.evaluation.table import COLUMNS
from lgtutorial.microstructure import labels_to_one_hot

from .conftest import random_labels


def read_rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_evaluate_a_micrograph_file_against_one_hot_and_label_ensembles(tmp_path, capsys):
    reference = random_labels((30, 28), 3, seed=1).numpy()
    np.save(tmp_path / "reference.npy", reference)
    one_hot = labels_to_one_hot(random_labels((3, 24, 24), 3, seed=2), n_phases=3).numpy()
    np.save(tmp_path / "grf.npy", one_hot)
    np.save(tmp_path / "hybrid.npy", random_labels((2, 20, 20), 3, seed=3).numpy())
    out = tmp_path / "report"
    code = main(
        [
            "evaluate",
            str(tmp_path / "reference.npy"),
            "--ensemble",
            f"GRF={tmp_path / 'grf.npy'}",
            "--ensemble",
            f"hybrid={tmp_path / 'hybrid.npy'}",
            "--patch-size",
            "8",
            "--three-point-cutoff",
            "3",
            "--device",
            "cpu",
            "--output",
            str(out),
        ]
    )
    assert code == 0
    rows = read_rows(out / "comparison.csv")
    assert list(rows[0]) == list(COLUMNS)
    assert [row["model"] for row in rows] == ["reference"] * 3 + ["GRF"] * 3 + ["hybrid"] * 3
    assert rows[3]["n_samples"] == "3" and rows[6]["n_samples"] == "2"
    assert all(row["two_point_relative_error_inside"] != "" for row in rows[3:])
    markdown = (out / "comparison.md").read_text()
    assert "Reference non-periodic, ensembles periodic" in markdown  # a file is a micrograph
    assert "| hybrid |" in markdown and "| hybrid |" in capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert (
        summary["cutoff"] == 9 and summary["reference_periodic"] is False
    )  # 20 px periodic samples: lags <= 9
    for figure in summary["figures"]:
        assert (out / figure).stat().st_size > 1000
    assert {
        "chord_lengths_x.png",
        "autocorrelation_error_phase2.png",
        "three_point_pca_phase0.png",
        "two_point_slices_phase1.png",
        "volume_fractions.png",
    } <= set(summary["figures"])


@pytest.mark.requires_data("nbsa-proxy")
def test_evaluate_registry_reference_against_grf_output(tmp_path):
    grf_out = tmp_path / "grf"
    assert (
        main(
            [
                "grf",
                "--reference",
                "nbsa-proxy",
                "--n-samples",
                "2",
                "--device",
                "cpu",
                "--output",
                str(grf_out),
            ]
        )
        == 0
    )
    out = tmp_path / "evaluate"
    assert (
        main(
            [
                "evaluate",
                "nbsa-proxy",
                "--ensemble",
                f"GRF={grf_out / 'samples.npy'}",
                "--patch-size",
                "40",
                "--cutoff",
                "30",
                "--device",
                "cpu",
                "--output",
                str(out),
            ]
        )
        == 0
    )
    rows = read_rows(out / "comparison.csv")
    assert [row["model"] for row in rows] == ["reference", "reference", "GRF", "GRF"]
    # the GRF preserves the volume fractions and has the reference's size
    assert all(abs(float(row["volume_fraction_error"])) < 1e-3 for row in rows[2:])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["reference_periodic"] is True and summary["cutoff"] == 30  # as the registry says


def test_evaluate_reports_bad_ensemble_options(tmp_path, capsys):
    np.save(tmp_path / "reference.npy", random_labels((12, 12), 2).numpy())
    reference = str(tmp_path / "reference.npy")
    assert main(["evaluate", reference, "--ensemble", "GRF", "--output", str(tmp_path / "a")]) == 2
    assert "--ensemble expects NAME=PATH" in capsys.readouterr().err
    assert main(["evaluate", reference, "--ensemble", f"GRF={tmp_path / 'missing.npy'}"]) == 2
    assert "no such file" in capsys.readouterr().err
    np.save(tmp_path / "continuous.npy", np.full((2, 2, 12, 12), 0.5, dtype=np.float32))
    assert main(["evaluate", reference, "--ensemble", f"GRF={tmp_path / 'continuous.npy'}"]) == 2
    assert "expected one-hot values 0 or 1" in capsys.readouterr().err
