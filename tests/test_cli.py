"""The command line: data list, stats, grf, and clear errors."""

import json

import numpy as np
import pytest

from lgtutorial.cli.main import main


def test_data_list_shows_registry(capsys):
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    assert "ti-alpha-beta" in out and "nbsa-proxy" in out and "GPL-3.0" in out


@pytest.mark.requires_data("ti-alpha-beta")
def test_stats_prints_the_three_ti_volume_fractions(tmp_path, capsys):
    assert main(["stats", "ti-alpha-beta", "--output", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    for value in ("0.2544", "0.5638", "0.1818"):
        assert value in out
    stats = np.load(tmp_path / "out" / "two_point_statistics.npy")
    assert stats.shape == (3, 3, 799, 1023)  # non-periodic: 2L - 1 lags
    assert stats[0, 0, 0, 0] == pytest.approx(0.2544, abs=1e-4)
    assert (tmp_path / "out" / "two_point_statistics.png").stat().st_size > 1000


def test_stats_of_a_user_file_and_no_silent_overwrite(tmp_path, capsys):
    labels = (np.indices((16, 16)).sum(0) % 3).astype(np.uint8)
    np.save(tmp_path / "mine.npy", labels)
    out = tmp_path / "out"
    assert main(["stats", str(tmp_path / "mine.npy"), "--output", str(out)]) == 0
    assert main(["stats", str(tmp_path / "mine.npy"), "--output", str(out)]) == 0
    assert (tmp_path / "out-1" / "summary.json").exists()  # the first result is kept
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["volume_fractions"]) == 3 and summary["periodic"] is False


@pytest.mark.requires_data("ngrf-three-phase-simple")
def test_grf_writes_samples(tmp_path, capsys):
    out = tmp_path / "grf"
    assert (
        main(["grf", "--reference", "ngrf-three-phase-simple", "--n-samples", "3", "--output", str(out)]) == 0
    )
    samples = np.load(out / "samples.npy")
    assert samples.shape == (3, 3, 201, 201)
    assert np.all(samples.sum(1) == 1)
    summary = json.loads((out / "summary.json").read_text())
    assert np.allclose(
        summary["achieved_volume_fractions_mean"], summary["target_volume_fractions"], atol=1e-4
    )


def test_errors_are_reported_not_raised(capsys):
    assert main(["stats", "no-such-thing"]) == 2
    assert "neither a registered reference" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["grf", "--n-samples", "many"])
