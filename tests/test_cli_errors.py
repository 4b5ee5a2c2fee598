"""Bad invocations of every subcommand: a one-line message naming what was expected, the right exit
code (2 usage, 1 failed run, 130 interrupted), never a traceback; and no work lost on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from PIL import Image

from lgtutorial.cli.main import COMMANDS, main
from lgtutorial.synthetic import lamellae


@pytest.fixture
def files(tmp_path):
    """Small inputs: a good 2-phase micrograph, broken files of several kinds."""
    labels = lamellae(48, period=7, angle=45).argmax(1)[0].numpy().astype(np.uint8)  # diagonal bands
    np.save(tmp_path / "good.npy", labels)
    Image.fromarray(labels * 255).save(tmp_path / "good.png")
    (tmp_path / "garbage.png").write_bytes(b"this is not an image")
    np.save(tmp_path / "empty.npy", np.zeros((0,)))
    np.save(tmp_path / "one_phase.npy", np.zeros((16, 16), dtype=np.uint8))
    (tmp_path / "a_file").write_text("not a folder")
    (tmp_path / "design.yaml").write_text("name: x\nsources: {}\n")
    return tmp_path


def missing_gpu() -> tuple[str, str]:
    """A CUDA device this machine lacks and a piece of the refusal: ``cuda`` where there is no GPU, else the
    index one past the last GPU (read when the test runs, so that the table holds on a GPU machine too)."""
    if not torch.cuda.is_available():
        return "cuda", "no CUDA GPU"
    count = torch.cuda.device_count()
    return f"cuda:{count}", f"this machine has {count} CUDA GPU(s)"


# (subcommand words, expected exit code, a piece of the message); {d} is the files folder, {gpu} a CUDA device
# this machine lacks and {no_gpu} what the refusal of it says (missing_gpu)
CASES = [
    (["data", "fetch", "no-such-reference"], 2, "unknown reference 'no-such-reference'"),
    (["stats", "{d}/missing.npy"], 2, "neither a registered reference"),
    (["stats", "{d}/garbage.png"], 2, "could not read it as a .png micrograph"),
    (["stats", "{d}/empty.npy"], 2, "empty array"),
    (["stats", "{d}/one_phase.npy"], 2, "found a single phase"),
    (["grf", "--reference", "{d}/good.npy", "--filter-sigma", "nan"], 2, "--filter-sigma (filter_sigma): expected a positive"),
    (["grf", "--reference", "{d}/good.npy", "--n-samples", "0"], 2, "--n-samples (n_samples): expected a positive integer"),
    (["grf", "--reference", "{d}/good.npy", "--reference-phase", "5"], 2, "reference_phase must be in 0..1"),
    (["grf", "--reference", "{d}/good.npy", "--segmentation", "otsu"], 2, "--segmentation (segmentation): expected"),
    (["grf", "--reference", "{d}/good.npy", "--device", "{gpu}"], 2, "{no_gpu}"),
    (["grf", "--reference", "{d}/good.npy", "--device", "tpu"], 2, "--device: expected"),
    (["grf", "--reference", "{d}/good.npy", "--output", "{d}/a_file/sub"], 2, "a_file"),
    (["demo", "--output", "{d}/a_file"], 2, "a_file"),
    (["evaluate", "{d}/good.npy", "--ensemble", "nameless.npy"], 2, "--ensemble expects NAME=PATH"),
    (["evaluate", "{d}/good.npy", "--ensemble", "A={d}/missing.npy"], 2, "no such file"),
    (["evaluate", "{d}/good.npy", "--ensemble", "A={d}/good.npy", "--n-components", "0"], 2, "--n-components"),
    (["generate", "--step-lr", "nan"], 2, "--step-lr (step_lr): expected a positive finite step size, or none, got nan"),
    (["generate", "--step-lr", "-1"], 2, "--step-lr (step_lr)"),
    (["generate", "--n-samples", "0"], 2, "--n-samples (n_samples)"),
    (["generate", "--sampler", "quick"], 2, "--sampler (sampler): expected one of faithful, fast"),
    (["generate", "--guard", "2"], 2, "--guard (guard)"),
    (["generate", "--sigma-c", "inf"], 2, "--sigma-c (sigma_c)"),
    (["generate", "--model", "{d}/garbage.png"], 2, "garbage.png"),
    (["train", "{d}/good.npy", "--batch-size", "0"], 2, "--batch-size (batch_size): expected a positive integer"),
    (["train", "{d}/good.npy", "--steps", "-5"], 2, "--steps (steps)"),
    (["train", "{d}/good.npy", "--device", "cuda:3"], 2, "CUDA GPU"),
    (["train", "{d}/good.npy", "--resume", "--output", "{d}/never-trained"], 2, "nothing to resume"),
    (["pretrained", "export", "{d}/missing.pt", "x"], 2, "no checkpoint file"),
    (["pretrained", "export", "{d}/good.npy", "Bad Name"], 2, "name must be lower-case"),
    (["train", "{d}/good.npy", "--report-levels", "1"], 2, "--report-levels (report_levels): expected an integer from 2"),
    (["train", "{d}/good.npy", "--report-samples", "-1"], 2, "--report-samples (report_samples)"),
    (["train", "{d}/good.npy", "--preset", "fast"], 2, "--preset (preset): expected one of case1, case2"),
    (["fit", "{d}/good.npy", "--minutes", "0"], 2, "--minutes (minutes): expected a positive finite number"),
    (["fit", "{d}/good.npy", "--samples", "0"], 2, "--samples (samples): expected a positive integer"),
    (["fit", "{d}/good.npy", "--sampler", "bogus"], 2, "--sampler (sampler): expected one of faithful, fast"),
    (["fit", "{d}/good.npy", "--size", "0"], 2, "--size (size): expected a side of at least 2 pixels"),
    (["fit", "{d}/good.npy", "--patch-size", "96"], 2, "--patch-size (patch_size): the patch size must be between"),
    (["fit", "{d}/good.npy", "--resume", "--output", "{d}/nothing"], 2, "nothing to resume"),
    (["fit", "{d}/garbage.png"], 2, "could not read it"),
    (["sweep", "{d}/missing.yaml"], 2, "missing.yaml"),
    (["sweep", "{d}/design.yaml", "--workers", "0"], 2, "--workers must be a positive integer"),
]


def test_the_table_covers_every_subcommand():
    assert {case[0][0] for case in CASES} == set(COMMANDS)


def _check_bad_invocation(words, code, message, folder, capsys):
    gpu, no_gpu = missing_gpu()

    def fill(text: str) -> str:
        return text.replace("{d}", str(folder)).replace("{gpu}", gpu).replace("{no_gpu}", no_gpu)

    assert main([fill(w) for w in words]) == code
    err = capsys.readouterr().err
    assert fill(message) in err, err
    assert "Traceback" not in err and err.startswith("lgtutorial ")


@pytest.mark.parametrize(("words", "code", "message"), CASES, ids=[" ".join(c[0][:3]) for c in CASES])
def test_bad_invocations_give_one_line_errors(words, code, message, files, capsys, monkeypatch):
    monkeypatch.chdir(files)
    _check_bad_invocation(words, code, message, files, capsys)


def test_the_table_holds_on_a_machine_with_a_gpu(files, capsys, monkeypatch, fake_cuda):
    """``make test`` on a GPU machine: with ``torch.cuda.is_available()`` true (the fake GPU, one device), every
    row still gives its error; ``--device cuda`` is then a device the machine has, so the row asks for ``cuda:1``."""
    monkeypatch.chdir(files)
    assert torch.cuda.is_available() and missing_gpu()[0] == "cuda:1"
    for words, code, message in CASES:
        _check_bad_invocation(words, code, message, files, capsys)


def test_debug_shows_the_traceback(files):
    with pytest.raises(ValueError, match="--step-lr"):
        main(["--debug", "generate", "--step-lr", "nan"])


def _train_then_sigterm(command, env, seconds):
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(seconds)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    return process.returncode, err


def test_sigterm_keeps_the_training_and_resume_continues_it(files, tmp_path):
    """A training stopped by SIGTERM writes its checkpoint and exits 130; --resume goes on from there."""
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "lgtutorial.cli.main", "train", str(files / "good.npy"), "--steps", "4000",
               "--report-samples", "0", "--output", str(out)]
    code, err = _train_then_sigterm(command, env, 12)
    assert code == 130, err
    assert "interrupted at step" in err and "--resume" in err and "Traceback" not in err
    first = torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=True)["step"]
    assert 0 < first < 4000  # the first periodic checkpoint (step 500) was never reached: nothing lost all the same
    code, err = _train_then_sigterm(command + ["--resume"], env, 12)
    assert code == 130, err
    second = torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=True)["step"]
    assert second > first


def test_outputs_follow_the_umask(tmp_path):
    from lgtutorial._io import atomic_write

    previous = os.umask(0o027)
    try:
        with atomic_write(tmp_path / "x.txt", "w") as handle:
            handle.write("x")
    finally:
        os.umask(previous)
    assert (tmp_path / "x.txt").stat().st_mode & 0o777 == 0o640


def test_png_phases_may_differ_only_in_transparency(tmp_path):
    from lgtutorial.data import load_micrograph

    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 3] = 255
    rgba[:3, :, 3] = 90  # the same colour, another alpha: another phase
    Image.fromarray(rgba, "RGBA").save(tmp_path / "alpha.png")
    micro, meta = load_micrograph(tmp_path / "alpha.png")
    assert micro.shape == (1, 2, 8, 8) and float(micro[0, 0].mean()) == pytest.approx(3 / 8)
