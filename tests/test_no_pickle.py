"""No file a user or an output folder supplies can run code: every loader reads with torch's safe unpickler."""

from __future__ import annotations

import json
import pathlib
import re

import numpy as np
import pytest
import torch
from PIL import Image

import lgtutorial
from lgtutorial.synthetic import lamellae


class _Payload:
    """Unpickling this object creates ``marker``: proof that the file ran code."""

    def __init__(self, marker: pathlib.Path):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


@pytest.fixture
def evil(tmp_path):
    marker = tmp_path / "code-ran"
    path = tmp_path / "evil.pt"
    torch.save({"format": "lgtutorial-score-model", "version": 1, "provenance": {"wall_time_s": _Payload(marker)}},
               path)
    # the file really is a payload: the unsafe loader runs it
    torch.load(path, weights_only=False)
    assert marker.exists()
    marker.unlink()
    return path, marker


def test_fit_resume_does_not_run_code_from_the_output_folder(evil, tmp_path):
    path, marker = evil
    folder = tmp_path / "out"
    folder.mkdir()
    path.rename(folder / "checkpoint.pt")
    (folder / "plan.json").write_text(json.dumps({"minutes": 1, "periodic": True, "patch_size": 32, "steps": 2,
                                                  "batch_size": 2, "depth": 1, "sampler": "fast"}))
    stripes = (lamellae(64, period=8).argmax(1)[0].numpy() * 255).astype(np.uint8)
    Image.fromarray(stripes).save(tmp_path / "stripes.png")
    with pytest.raises(ValueError, match="could not read it as a checkpoint"):
        lgtutorial.fit(tmp_path / "stripes.png", output=folder, resume=True, device="cpu", progress=False)
    assert not marker.exists()


def test_no_loader_runs_code_from_a_file(evil):
    from lgtutorial.data import load
    from lgtutorial.grf.material import MaterialStatistics
    from lgtutorial.score.registry import load_score_model

    path, marker = evil
    for loader in (lgtutorial.load_checkpoint, load_score_model, MaterialStatistics.load, load):
        with pytest.raises((ValueError, RuntimeError, OSError)):
            loader(path)
        assert not marker.exists(), loader


def test_the_package_never_asks_for_the_unsafe_loader():
    package = pathlib.Path(lgtutorial.__file__).parent
    unsafe = [f"{file.relative_to(package)}:{number}" for file in sorted(package.rglob("*.py"))
              for number, line in enumerate(file.read_text().splitlines(), 1)
              if re.search(r"weights_only\s*=\s*False|pickle\.loads?\(|allow_pickle\s*=\s*True", line)]
    assert not unsafe, unsafe


def _run_cli(argv) -> int:
    from lgtutorial.cli.main import main

    return main([str(a) for a in argv])


def test_no_command_line_path_runs_code_from_a_file(evil, tmp_path, capsys):
    """``train --resume``, ``generate --model`` (2D and 3D), ``generate --statistics``, ``evaluate``: an error,
    and nothing ran."""
    path, marker = evil
    folder = tmp_path / "train"
    folder.mkdir()
    (folder / "checkpoint.pt").write_bytes(path.read_bytes())
    runs = {
        "train --resume": ["train", "nbsa-proxy", "--resume", "--device", "cpu", "--report-samples", "0",
                           "--output", folder],
        "generate --model": ["generate", "--model", path, "--n-samples", "1", "--output", tmp_path / "g1"],
        "generate --dims 3 --model": ["generate", "--dims", "3", "--size", "8", "--model", path, "--n-samples", "1",
                                      "--output", tmp_path / "g2"],
        "generate --statistics": ["generate", "--statistics", path, "--n-samples", "1", "--output", tmp_path / "g3"],
    }
    for name, argv in runs.items():
        assert _run_cli(argv) != 0, name
        assert not marker.exists(), name
        err = capsys.readouterr().err
        assert "Traceback" not in err and "weights_only=False" not in err, (name, err)


def test_a_sweep_does_not_run_code_from_its_model_or_its_statistics(evil, tmp_path):
    from lgtutorial.sweep.parsing import parse_design
    from lgtutorial.sweep.run import run_sweep

    path, marker = evil
    design = {"name": "evil", "seed": 0, "theta": [0.0, 1.0], "samples_per_point": 1, "shape": [16, 16]}
    rows = []
    for k in range(2):  # 2-point statistics files; the second holds a pickled object array
        row = tmp_path / f"row{k}.npy"
        np.save(row, np.full((2, 2, 8, 8), 0.25, dtype=np.float32))
        rows.append(str(row))
    with pytest.raises((ValueError, RuntimeError, OSError)):
        run_sweep(parse_design({**design, "statistics": rows, "model": str(path)}), tmp_path / "s1.zarr",
                  progress=False)
    assert not marker.exists()
    np.save(tmp_path / "row1.npy", np.array([_Payload(marker)], dtype=object), allow_pickle=True)
    with pytest.raises((ValueError, RuntimeError, OSError)):
        run_sweep(parse_design({**design, "statistics": rows, "model": "none"}), tmp_path / "s2.zarr", progress=False)
    assert not marker.exists()
