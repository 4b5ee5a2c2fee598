"""``fit`` and ``train`` check every option before any work (issues #38, #39): their options are generated
from :class:`~lgtutorial.fitting.settings.FitSettings` and :class:`~lgtutorial.cli.train.TrainSettings`, a bad
one exits with 2 at once with a one-line message naming it, and nothing is written: no output folder, no
checkpoint. ``fit()`` in Python refuses the same values the same way."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest
from PIL import Image

import lgtutorial as lg
from lgtutorial.cli.main import build_parser, main
from lgtutorial.cli.train import TrainSettings
from lgtutorial.fitting.plan import FINE_FEATURE_PX
from lgtutorial.fitting.settings import FitSettings
from lgtutorial.score.checkpoints import CHECKPOINT_NAME
from lgtutorial.synthetic import blobs


@pytest.fixture
def micrographs(tmp_path):
    labels = blobs(32, 2.0)[0].argmax(0).numpy().astype(np.uint8)
    np.save(tmp_path / "tiny.npy", labels)
    Image.fromarray(labels * 255).save(tmp_path / "tiny.png")
    return tmp_path


FIT_CASES = [
    (["--sampler", "bogus"], "--sampler (sampler): expected one of"),
    (["--size", "0"], "--size (size): expected a side of at least 2 pixels"),
    (["--size", "-5"], "--size (size): expected a side of at least 2 pixels"),
    (["--minutes", "0"], "--minutes (minutes): expected a positive finite number"),
    (["--minutes", "inf"], "--minutes (minutes): expected a positive finite number"),
    (["--samples", "0"], "--samples (samples): expected a positive integer"),
    (["--patch-size", "64"], "--patch-size (patch_size): the patch size must be between 8 px"),  # at planning
]


@pytest.mark.parametrize("suffix", ["png", "npy"])
@pytest.mark.parametrize(("options", "message"), FIT_CASES, ids=[" ".join(c[0]) for c in FIT_CASES])
def test_fit_refuses_a_bad_option_before_any_work(options, message, suffix, micrographs, capsys, monkeypatch):
    monkeypatch.chdir(micrographs)  # the default output folder would be made here
    out = micrographs / "out"
    assert main(["fit", str(micrographs / f"tiny.{suffix}"), *options, "--device", "cpu", "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.startswith("lgtutorial fit: error: ") and err.count("\n") == 1, err
    assert not out.exists() and not (micrographs / "lgtutorial-output").exists()


def test_fit_in_python_checks_its_arguments_first(micrographs, monkeypatch):
    monkeypatch.chdir(micrographs)
    out = micrographs / "out"
    for bad in (dict(sampler="bogus"), dict(size=0), dict(minutes=0), dict(n_samples=0), dict(seed=-1),
                dict(device="tpu"), dict(periodic="yes"), dict(global_layer="lines")):
        with pytest.raises(ValueError, match=r"^--"):
            lg.fit(micrographs / "tiny.npy", output=out, progress=False, **bad)
        assert not out.exists(), bad
    with pytest.raises(ValueError, match="--sampler"):  # before the micrograph is even read
        lg.fit(micrographs / "missing.png", sampler="bogus")


def test_train_refuses_bad_report_options_before_training(micrographs, capsys):
    out = micrographs / "train"
    for options, message in ((["--report-levels", "1"], "--report-levels (report_levels): expected an integer from 2 "
                                                        "to 1000"),
                             (["--report-levels", "1001"], "--report-levels (report_levels)"),
                             (["--report-samples", "-3"], "--report-samples (report_samples)"),
                             (["--steps", "0"], "--steps (steps)"), (["--batch-size", "-1"], "--batch-size (batch_size)")):
        argv = ["train", str(micrographs / "tiny.npy"), "--steps", "2", "--batch-size", "4", *options, "--device", "cpu",
                "--output", str(out)]
        assert main(argv) == 2, options
        err = capsys.readouterr().err
        assert message in err and err.startswith("lgtutorial train: error: ") and err.count("\n") == 1, err
        assert not (out / CHECKPOINT_NAME).exists() and not out.exists()


def test_the_options_are_the_settings_fields():
    """One option per field, the same defaults: the command line and the Python API share the dataclass."""
    parser = build_parser()
    fit = parser.parse_args(["fit", "x.png"])
    assert {f.name: getattr(fit, f.name) for f in dataclasses.fields(FitSettings)} == dataclasses.asdict(FitSettings())
    train = parser.parse_args(["train", "x.png"])
    assert {f.name: getattr(train, f.name) for f in dataclasses.fields(TrainSettings)} == \
        dataclasses.asdict(TrainSettings("x.png"))
    assert (fit.minutes, fit.samples, fit.device, fit.seed, train.preset, train.report_samples) == \
        (15.0, 4, "auto", 0, "case1-cpu", 16)
    # the training settings: the preset's, with the job's overrides
    assert TrainSettings("x.png", steps=3, seed=2).training_settings().steps == 3
    assert TrainSettings("x.png", preset="case2-cpu").model_settings().channels == 3


def test_the_fit_help_names_the_plans_fine_feature_threshold():
    subparsers = next(a for a in build_parser()._actions if a.dest == "command")
    assert f"under {FINE_FEATURE_PX:g} px" in re.sub(r"\s+", " ", subparsers.choices["fit"].format_help())
