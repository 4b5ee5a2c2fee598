"""``lgtutorial generate --dims 3``: the files written, the 2D default untouched, clear errors."""

import inspect
import json

import numpy as np
import pytest
import torch

from lgtutorial.cli import generate as cli_generate
from lgtutorial.cli.main import build_parser, main
from lgtutorial.cli.options import from_arguments
from lgtutorial.sampling.settings import HybridSettings
from lgtutorial.volume.export import load_tiff_stack
from lgtutorial.volume.generator import VolumeGenerator
from lgtutorial.volume.settings import VolumeSettings
from lgtutorial.volume.statistics import ORIENTATIONS


@pytest.mark.requires_data("nbsa-proxy")  # the slices are measured against the model's training micrograph
def test_dims_3_writes_volumes_tiff_stacks_slice_figures_and_a_summary(tmp_path, capsys):
    out = tmp_path / "volumes"
    assert main(["generate", "--dims", "3", "--size", "16", "--n-samples", "1", "--output", str(out)]) == 0
    samples, grf = np.load(out / "samples.npy"), np.load(out / "grf.npy")
    assert samples.shape == grf.shape == (1, 2, 16, 16, 16)
    assert np.all(samples.sum(1) == 1) and np.all(grf.sum(1) == 1)
    assert torch.equal(load_tiff_stack(out / "sample_0.tif", n_phases=2), torch.from_numpy(samples[:1]))
    for figure in ("sample_0_slices.png", "grf_0_slices.png"):
        assert (out / figure).read_bytes()[:4] == b"\x89PNG"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["shape"] == [16, 16, 16] and summary["model"] == "lgtutorial-case1"
    assert summary["volume_settings"] == {"dims": 3, "scheme": "passes", "rounds": 2, "sigma_pass": 0.3,
                                          "annealed": False}
    assert 0 <= summary["statistics"]["clipped_fraction"] < 0.1 and summary["statistics"]["assumption"] == "isotropic"
    assert summary["target_volume_fractions"][1] == pytest.approx(0.3726, abs=1e-3)
    # the GRF start keeps the target volume fraction; every orientation counts every voxel once
    assert grf[:, 1].mean() == pytest.approx(summary["target_volume_fractions"][1], abs=1e-3)
    slices = summary["slice_statistics"]
    assert slices["reference"] == "nbsa-proxy" and set(slices) >= {"hybrid", "GRF"}
    for model, volumes in (("hybrid", samples), ("GRF", grf)):
        for orientation in ORIENTATIONS:
            measured = slices[model]["orientations"][orientation]
            assert measured["volume_fractions_mean"][1] == pytest.approx(float(volumes[:, 1].mean()), abs=1e-9)
            assert 0 <= measured["chord_distance"] <= 1
    printed = capsys.readouterr().out
    assert "| xy |" in printed and "| yz |" in printed and "clipped" in printed and "s per volume" in printed


def test_dims_2_stays_the_default_and_runs_the_2d_generator(monkeypatch):
    args = build_parser().parse_args(["generate"])
    assert from_arguments(VolumeSettings, args) == VolumeSettings() and VolumeSettings().dims == 2
    calls = []
    monkeypatch.setattr(cli_generate, "run_generate", lambda settings, output: calls.append((settings, output)))
    assert main(["generate"]) == 0
    assert calls == [(HybridSettings(), None)]


def test_volume_settings_defaults_are_the_volume_generators():
    defaults = inspect.signature(VolumeGenerator.__init__).parameters
    for name in ("scheme", "rounds", "sigma_pass"):
        assert getattr(VolumeSettings(), name) == defaults[name].default, name
    assert "sampler" not in defaults and "batch_size" not in defaults  # those come whole with the RefinementOptions


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--dims", "4"], "--dims (dims): expected 2 (square samples) or 3 (cubic volumes), got 4"),
        (["--scheme", "mean"], "--scheme: options of 3D volumes; add --dims 3"),
        (["--dims", "3", "--size", "25"], "--size 25: every slice of the volume goes through the network of "
                                          "lgtutorial-case1, which takes sides divisible by 2**depth = 2; try 24 or 26"),
        (["--dims", "3", "--model", "lgtutorial-case2"], "--dims 3 makes two-phase volumes only"),
        (["--dims", "3", "--statistics", "stats.npy"], "--statistics cannot be used with --dims 3"),
        (["--dims", "3", "--periodic", "none"], "--periodic none does not apply to --dims 3"),
        (["--dims", "3", "--scheme", "sum"], "--scheme (scheme): expected 'passes' or 'mean', got 'sum'"),
    ],
)
def test_bad_combinations_give_clear_errors(options, message, tmp_path, capsys):
    assert main(["generate", *options, "--output", str(tmp_path / "never")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "never").exists()


def test_annealed_option_runs_annealed_passes_and_the_final_step(tmp_path, monkeypatch, capsys):
    from lgtutorial.volume import generator as volume_module
    from lgtutorial.volume.settings import ANNEALED_PASSES, FINAL_SIGMA

    built = {}
    original = volume_module.VolumeGenerator.__init__

    def spy(self, *args, **kwargs):
        built.update(kwargs)
        original(self, *args, **kwargs)

    monkeypatch.setattr(volume_module.VolumeGenerator, "__init__", spy)
    out = tmp_path / "volumes"
    assert main(["generate", "--dims", "3", "--size", "16", "--n-samples", "1", "--annealed", "--output", str(out)]) == 0
    assert built["sigma_pass"] == ANNEALED_PASSES and built["final_sigma"] == FINAL_SIGMA
    assert json.loads((out / "summary.json").read_text())["volume_settings"]["annealed"] is True
    assert "annealed passes" in capsys.readouterr().out
    with pytest.raises(ValueError, match="--annealed sets the passes itself.*--rounds"):
        VolumeSettings(dims=3, annealed=True, rounds=3)
    with pytest.raises(ValueError, match="add --dims 3"):
        VolumeSettings(annealed=True)


def test_sides_above_the_checked_one_get_a_warning(tmp_path, monkeypatch, capsys):
    from lgtutorial.cli import volume as cli_volume

    assert cli_volume.size_warning(cli_volume.CHECKED_SIDE) is None
    assert "checked less than 64^3 ones" in cli_volume.size_warning(2 * cli_volume.CHECKED_SIDE)
    # the command prints it: lower the checked side so that a 16^3 run (seconds) lies above it
    monkeypatch.setattr(cli_volume, "CHECKED_SIDE", 8)
    assert main(["generate", "--dims", "3", "--size", "16", "--n-samples", "1", "--output", str(tmp_path / "v")]) == 0
    assert "warning: --size 16: volumes above 8^3 are checked less" in capsys.readouterr().err
