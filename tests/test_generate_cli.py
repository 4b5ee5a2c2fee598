"""``lgtutorial generate`` and ``lgtutorial demo``: files written, defaults, clear errors."""

import json

import numpy as np
import pytest

from lgtutorial.cli import main as cli
from lgtutorial.cli.main import build_parser, main
from lgtutorial.cli.options import from_arguments
from lgtutorial.sampling.hybrid import HybridGenerator
from lgtutorial.sampling.settings import HybridSettings

SMALL = ["--n-samples", "2", "--size", "32", "--levels", "12"]


@pytest.mark.requires_data("nbsa-authors-checkpoint")  # the default run needs no data; the second run uses the authors' model
def test_generate_writes_samples_grf_inputs_figure_and_summary(tmp_path, capsys):
    out = tmp_path / "hybrid"
    assert main(["generate", *SMALL, "--output", str(out)]) == 0
    samples, grf = np.load(out / "samples.npy"), np.load(out / "grf.npy")
    assert samples.shape == grf.shape == (2, 2, 32, 32)
    assert np.all(samples.sum(1) == 1) and np.all(grf.sum(1) == 1)
    assert (out / "samples.png").stat().st_size > 1000
    summary = json.loads((out / "summary.json").read_text())
    assert summary["target_volume_fractions"][1] == pytest.approx(0.3726, abs=2e-3)
    # the default model: this project's own case-study-1 model, without the authors' likelihood shift
    assert summary["settings"]["model"] is None and summary["model"] == "lgtutorial-case1"
    assert summary["volume_fraction_shift"] == 0.0 and summary["statistics_moved_to_shape"]
    assert set(summary["mean_x_chord_lengths_px"]) == {"hybrid", "GRF", "reference"}
    # the GRF inputs are segmented with the target fractions (2 phases)
    assert grf[:, 1].mean(axis=(1, 2)) == pytest.approx([summary["target_volume_fractions"][1]] * 2, abs=1e-3)
    assert "s per sample" in capsys.readouterr().out
    # a second run never overwrites the first; the authors' model stays selectable, with their +0.0073
    # shift under the paper's sampler (which measures the volume fraction on the noisy iterate)
    options = ["--n-samples", "1", "--size", "32", "--levels", "12", "--model", "nbsa-authors-checkpoint",
               "--sampler", "faithful"]
    assert main(["generate", *options, "--output", str(out)]) == 0
    assert (
        np.load(out / "samples.npy").shape[0] == 2
        and np.load(tmp_path / "hybrid-1" / "samples.npy").shape[0] == 1
    )
    second = json.loads((tmp_path / "hybrid-1" / "summary.json").read_text())
    assert second["model"] == "nbsa-authors-checkpoint" and second["volume_fraction_shift"] == pytest.approx(0.0073)


@pytest.mark.requires_data("nbsa-proxy")
def test_generate_from_a_statistics_file(tmp_path):
    from lgtutorial.data import load_reference
    from lgtutorial.statistics.two_point import two_point_statistics

    reference, _ = load_reference("nbsa-proxy")
    np.save(tmp_path / "stats.npy", two_point_statistics(reference.double())[0].numpy())
    out = tmp_path / "from-stats"
    assert (
        main(
            [
                "generate",
                "--statistics",
                str(tmp_path / "stats.npy"),
                "--n-samples",
                "1",
                "--size",
                "32",
                "--levels",
                "12",
                "--no-condition-volume-fraction",
                "--output",
                str(out),
            ]
        )
        == 0
    )
    summary = json.loads((out / "summary.json").read_text())
    assert (
        summary["phases"] == ["phase 0", "phase 1"] and "reference" not in summary["mean_x_chord_lengths_px"]
    )
    assert summary["settings"]["condition_volume_fraction"] is False


def test_the_parser_defaults_are_the_settings_defaults():
    args = build_parser().parse_args(["generate"])
    assert from_arguments(HybridSettings, args) == HybridSettings()
    assert HybridSettings().model is None and HybridSettings().sigma_c == 0.75  # None: chosen by the phases
    from lgtutorial.score.registry import default_model

    assert default_model(2) == "lgtutorial-case1" and default_model(3) == "lgtutorial-case2"


def test_demo_runs_the_hybrid_generator_with_small_settings(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(cli, "run_generate", lambda settings, output: calls.append((settings, output)))
    assert main(["demo", "--output", str(tmp_path / "demo")]) == 0
    settings, output = calls[0]
    assert settings == HybridSettings(n_samples=2, size=64) and output == tmp_path / "demo"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        pytest.param(["--reference", "ngrf-three-phase-simple", "--model", "lgtutorial-case1"],
                     "1 channel(s) but the statistics describe 3 phases",
                     marks=pytest.mark.requires_data("ngrf-three-phase-simple")),
        (["--sigma-c", "30"], "sigma_c=30.0 lies outside the model's noise schedule"),
        (["--size", "33"], "divisible by 2**depth = 2"),
        (["--periodic", "mirror"], "--periodic (periodic): expected 'embedding', 'circular' or 'none', got 'mirror'"),
        (["--statistics", "missing.npy"], "--statistics: no such file"),
        (["--model", "no-such-model"], "neither a registered checkpoint"),
    ],
)
def test_bad_combinations_give_clear_errors(options, message, tmp_path, capsys):
    assert main(["generate", *options, "--output", str(tmp_path / "never")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "never").exists()


def test_a_statistics_file_of_the_wrong_shape_is_rejected(tmp_path, capsys):
    np.save(tmp_path / "flat.npy", np.zeros((4, 4)))
    assert main(["generate", "--statistics", str(tmp_path / "flat.npy")]) == 2
    assert "expected periodic 2-point statistics of shape (N, N, H, W)" in capsys.readouterr().err


def test_statistics_without_a_shipped_model_ask_for_one(tmp_path, capsys):
    np.save(tmp_path / "four.npy", np.full((4, 4, 8, 8), 1 / 16))  # a 4-phase statistics file
    assert main(["generate", "--statistics", str(tmp_path / "four.npy"), "--output", str(tmp_path / "never")]) == 2
    assert "no shipped score model for 4-phase statistics" in capsys.readouterr().err
    assert not (tmp_path / "never").exists()


def test_degenerate_samples_make_generate_fail_unless_asked_to_keep_going(tmp_path, monkeypatch, capsys):
    import json

    import torch

    from lgtutorial.score import registry
    from lgtutorial.score.schedules import geometric_sigmas

    def broken_model(name, *, device=None):  # a "model" whose score is NaN everywhere
        return (lambda x, sigma: torch.full_like(x, float("nan"))), geometric_sigmas(20.0, 0.01, 1000)

    monkeypatch.setattr(registry, "load_score_model", broken_model)
    options = ["--n-samples", "2", "--size", "32", "--model", "lgtutorial-case1"]
    assert main(["generate", *options, "--output", str(tmp_path / "a")]) == 1
    err = capsys.readouterr().err
    assert "2 of 2 samples are degenerate" in err and "--keep-going" in err and "Traceback" not in err
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())  # the outputs were written all the same
    assert summary["degenerate_samples"] == [0, 1] and summary["recovered_samples"] == []
    assert main(["generate", *options, "--keep-going", "--output", str(tmp_path / "b")]) == 0
    assert "warning: 2 of 2 samples are degenerate" in capsys.readouterr().err


def test_help_states_what_each_sampler_really_spends(capsys):
    import re

    from lgtutorial.grf.field import GaussianRandomField
    from lgtutorial.sampling.samplers import SAMPLERS
    from lgtutorial.score import registry as pretrained

    with pytest.raises(SystemExit):
        main(["generate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    help_of_sampler = text.split("network evaluations per sample", 1)[1].split("--levels LEVELS", 1)[0]
    stated = dict(re.findall(r"(?:: |, )([a-z][a-z0-9-]*) (\d+)", help_of_sampler))
    assert set(SAMPLERS) <= set(stated)
    model, sigmas = pretrained.load_with_sigmas("lgtutorial-case1")  # the 20 -> 0.01, 1000-level schedule
    field = GaussianRandomField(pretrained.load_statistics("lgtutorial-case1").statistics_row())
    for name in SAMPLERS:
        generator = HybridGenerator(field, model, sigmas=sigmas, sampler=name)
        assert int(stated[name]) == generator.evaluations_per_sample, name


def test_help_states_each_samplers_levels(capsys):
    from lgtutorial.sampling.samplers import SAMPLERS

    with pytest.raises(SystemExit):
        main(["generate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    stated = text.rsplit("--levels LEVELS", 1)[1].split("--condition-volume-fraction", 1)[0]  # not the usage line
    for name, configuration in SAMPLERS.items():
        assert f"{name} {configuration.levels or 'the model' + chr(39) + 's'}" in stated, name
