"""One options object: the Python API, ``lg.generate``, the command line and a sweep draw bit-identical
samples from the same settings and seed, in 2D and 3D, for the authors' model with the paper's sampler
(which applies the volume-fraction shift the model carries) and for ``lgtutorial-case1`` with ``fast``."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import lgtutorial as lg
from lgtutorial.cli.main import main
from lgtutorial.data import load_reference
from lgtutorial.grf.field import statistics_row
from lgtutorial.sampling.hybrid import HybridGenerator
from lgtutorial.sampling.settings import HybridSettings, RefinementOptions
from lgtutorial.score.registry import load_score_model
from lgtutorial.sweep.design import load_sources, point_row, sample_seed
from lgtutorial.sweep.parsing import parse_design
from lgtutorial.sweep.run import generate_sample
from lgtutorial.volume.generator import VolumeGenerator
from lgtutorial.volume.statistics import isotropic_statistics

CASES = {
    "authors-faithful": dict(model="nbsa-authors-checkpoint", sampler="faithful", levels=150),
    "case1-fast": dict(model="lgtutorial-case1", sampler="fast", levels=None),
}
pytestmark = pytest.mark.requires_data("nbsa-proxy", "nbsa-authors-checkpoint")


@pytest.fixture(scope="module")
def row_file(tmp_path_factory):
    reference, _ = load_reference("nbsa-proxy")
    path = tmp_path_factory.mktemp("statistics") / "nbsa.npy"
    np.save(path, statistics_row(reference).numpy())
    return path


def _cli(tmp_path, name, arguments) -> torch.Tensor:
    assert main([*arguments, "--device", "cpu", "--output", str(tmp_path / name)]) == 0
    return torch.from_numpy(np.load(tmp_path / name / "samples.npy"))


@pytest.mark.parametrize("case", CASES)
def test_api_generate_cli_and_sweep_draw_the_same_2d_samples(case, row_file, tmp_path):
    model_name, sampler, levels = CASES[case]["model"], CASES[case]["sampler"], CASES[case]["levels"]
    seed = sample_seed(0, 0, 0)  # the sweep's seed of its first sample
    settings = HybridSettings(model=model_name, statistics=str(row_file), sampler=sampler, levels=levels, size=48,
                              n_samples=1, seed=seed, device="cpu")
    model, sigmas = load_score_model(model_name)
    api = HybridGenerator.from_statistics(torch.from_numpy(np.load(row_file)), model, settings, shape=(48, 48),
                                          sigmas=sigmas, device="cpu")
    from_api = api.sample(1, seed=seed, progress=False).microstructures
    if sampler == "faithful":
        assert api.volume_fraction_shift == 0.0073, "the authors' model carries its shift; the paper's sampler applies it"
    from_generate = lg.generate(settings, progress=False).samples.microstructures
    arguments = ["generate", "--model", model_name, "--statistics", str(row_file), "--sampler", sampler, "--size", "48",
                 "--n-samples", "1", "--seed", str(seed)] + (["--levels", str(levels)] if levels else [])
    from_cli = _cli(tmp_path, "cli", arguments)
    design = parse_design({"name": "one", "seed": 0, "statistics": [str(row_file)] * 2, "theta": [0.0],
                           "samples_per_point": 1, "model": model_name, "shape": [48, 48], "device": "cpu",
                           "sampler": {"name": sampler, "n_levels": levels}})
    assert torch.equal(from_api, from_generate)
    assert torch.equal(from_api.float(), from_cli.float())
    row = point_row(load_sources(design)[0], (1.0, 0.0), design.shape)
    from_sweep = generate_sample(row, seed=seed, design=design)["labels"]
    assert np.array_equal(from_api.argmax(1)[0].numpy(), from_sweep)


@pytest.mark.parametrize("case", CASES)
def test_api_and_cli_draw_the_same_volumes(case, tmp_path):
    model_name, sampler, levels = CASES[case]["model"], CASES[case]["sampler"], CASES[case]["levels"]
    settings = HybridSettings(model=model_name, reference="nbsa-proxy", sampler=sampler, levels=levels, size=16,
                              n_samples=1, seed=3, device="cpu")
    model, sigmas = load_score_model(model_name)
    reference, _ = load_reference("nbsa-proxy")
    api = VolumeGenerator.from_statistics(isotropic_statistics(reference, (16, 16, 16)), model, settings,
                                          sigmas=sigmas, device="cpu", rounds=1)
    from_api = api.sample(1, seed=3, progress=False).volumes
    arguments = ["generate", "--dims", "3", "--rounds", "1", "--model", model_name, "--reference", "nbsa-proxy",
                 "--sampler", sampler, "--size", "16", "--n-samples", "1", "--seed", "3"]
    arguments += ["--levels", str(levels)] if levels else []
    assert torch.equal(from_api.float(), _cli(tmp_path, "cli3d", arguments).float())


def test_defaults_are_written_once():
    """The generators take the options whole: no refinement default of their own in their signatures."""
    import inspect

    names = {field.name for field in dataclasses.fields(RefinementOptions)}
    for constructor in (HybridGenerator.__init__, VolumeGenerator.__init__):
        assert not names & set(inspect.signature(constructor).parameters), constructor
    assert issubclass(HybridSettings, RefinementOptions)
    assert RefinementOptions.of(HybridSettings(sampler="faithful", n_samples=2)) == RefinementOptions(sampler="faithful")
