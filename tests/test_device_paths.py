"""The package's GPU paths on a machine without a GPU: the main flows under the fake CUDA layer (issue #43).

Every test here runs under ``fake_cuda`` (:mod:`tests.fake_cuda`): tensors on ``"cuda"`` hold CPU data, and an op
that meets tensors of two devices raises as on a GPU. The first part holds the regression tests of the paths
that raised on CUDA; the second runs the main flows at tiny sizes (training, the hybrid's ``fast`` and
``faithful`` samplers, 3D generation, ``compare``, the command line). Each flow also checks that every tensor
factory the package called without a device (a CPU tensor whatever the inputs' device) is one of
:data:`ALLOWED`, which says why it may stay on the CPU. What the layer cannot show (kernels, numerics under
autocast, memory, streams): the module docstring of :mod:`tests.fake_cuda`.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from lgtutorial import synthetic
from lgtutorial.grf.field import statistics_row
from lgtutorial.grf.interpolation import interpolate_statistics, statistics_row_for_shape
from lgtutorial.sampling.hybrid import HybridGenerator
from lgtutorial.score.settings import TrainingSettings, UNetSettings
from lgtutorial.score.unet import ScoreUNet
from lgtutorial.statistics.chords import chord_distribution_distance, chord_lengths
from lgtutorial.volume.generator import VolumeGenerator
from lgtutorial.volume.slices import slice_statistics
from lgtutorial.volume.statistics import isotropic_statistics, transversely_isotropic_statistics
from tests.fake_cuda import CUDA

#: Tensor factories the package calls without a device, (file, function, factory) -> why they stay on the CPU.
ALLOWED = {
    ("lgtutorial/score/unet.py", "__init__", "ones"): "normalisation weights: made with the module on the CPU "
    "(its seeded initial weights the same on every device) and moved with it by .to(device)",
    ("lgtutorial/score/unet.py", "__init__", "zeros"): "normalisation biases: made and moved with the module, as "
    "the weights",
    ("lgtutorial/score/step.py", "__init__", "Generator"): "the generator of the initial weights: a CPU one, so "
    "that a seed gives the same network on every device before it is moved",
    ("lgtutorial/score/schedules.py", "geometric_sigmas", "linspace"): "the noise levels are computed in float64 "
    "on the CPU (MPS has none) and moved to the asked device on the next line",
    ("lgtutorial/score/schedules.py", "subsample", "linspace"): "indices of the kept levels, moved to the levels' "
    "device in the same expression",
    ("lgtutorial/score/patches.py", "extract_patches", "arange"): "patch offsets into the micrograph, which is cut "
    "into patches on the CPU (the patch set lives there; batches are moved per step)",
    ("lgtutorial/score/patches.py", "split_indices", "Generator"): "the seeded train/test split of the patches: a "
    "CPU generator, so that a seed gives the same split on every device",
    ("lgtutorial/score/patches.py", "split_indices", "randperm"): "the permutation of that split, drawn with it on "
    "the CPU",
    ("lgtutorial/score/training.py", "train_score_model", "arange"): "indices into the CPU patch set; the batch "
    "they select is moved to the device",
    ("lgtutorial/evaluation/training_report.py", "training_report", "arange"): "indices into the CPU patch sets "
    "whose nearest-patch distances the report measures",
    ("lgtutorial/statistics/two_point.py", "two_point_statistics", "tensor"): "the pixel count of the grid, read "
    "back at once as a Python float",
    ("lgtutorial/statistics/two_point.py", "_keep_lags", "arange"): "lag indices, moved to the statistics' device "
    "in the same expression",
    ("lgtutorial/score/step.py", "seconds_per_step", "randint"): "the timing patches are drawn on the host, as "
    "the trainer's patch set is, then moved to the device with PatchDataset.to",
    ("lgtutorial/score/step.py", "seconds_per_step", "Generator"): "the fixed CPU generator of those host-side "
    "timing patches (the same patches on every device)",
    ("lgtutorial/sweep/store.py", "sample_summary", "arange"): "the summary of a sample's labels, which the task "
    "has already read back to the host as a uint8 array for the store",
    ("lgtutorial/volume/slices.py", "<dictcomp>", "tensor"): "a table of Python floats (chord distances already "
    "read back from the device) kept on the CPU for the report",
    ("lgtutorial/sampling/conditioning.py", "volume_fraction_posterior", "as_tensor"): "targets given as Python "
    "numbers are checked on the host, then moved to each iterate's device and type once (on_device)",
    **{("lgtutorial/grf/oriented.py", function, factory): "the oriented layer is measured from the micrograph on "
       "the host, once per run (scipy labels its colonies and picks its windows)"
       for function, factory in (("measure_oriented_layer", "fft.fftfreq"), ("measure_oriented_layer", "hann_window"),
                                 ("measure_oriented_layer", "tensor"), ("measure_oriented_layer", "zeros"))},
    **{("lgtutorial/grf/oriented.py", function, factory): "laths are painted into the starts on the host, once per "
       "batch (scipy labels the colonies), from a host generator seeded by the sampler's; the start then moves to "
       "the device" for function, factory in (("paint", "Generator"), ("paint", "zeros"), ("_field_at", "randn"),
                                              ("_draw_angles", "rand"), ("_orientation_field", "randn"),
                                              ("_orientation_field", "fft.fftfreq"))},
}


def unexplained(layer) -> list:
    """The device-less factory calls of the package recorded by the fake layer that :data:`ALLOWED` does not explain."""
    return sorted(key for key in layer.factories.calls if key not in ALLOWED)


def blobs(size=32, seed=0) -> torch.Tensor:
    """A periodic 2-phase micrograph ``(1, 2, size, size)``: features about 3 px across, 35 % phase 1."""
    return synthetic.blobs(size, (1.4, 1.4), seed, fractions=(0.65, 0.35))


@pytest.fixture(scope="module")
def micro() -> torch.Tensor:
    """:func:`blobs` of 32 px, made before the fake layer is on (the inputs' own factories are not the flows')."""
    return blobs()


@pytest.fixture(scope="module")
def others() -> dict:
    """More inputs made before the fake layer is on: micrographs of other seeds and sizes, a 3-phase one, a volume."""
    return {"seed 1": blobs(seed=1), "seed 2": blobs(seed=2), "16 px": blobs(16),
            "3 phases": synthetic.blobs(48, 2.0, 0, fractions=(0.5, 0.3, 0.2)),
            "volume": synthetic.blobs((8, 8, 8), 1.4, 0, fractions=(0.65, 0.35))}


def tiny_model(seed: int = 0) -> ScoreUNet:
    settings = UNetSettings(channels=1, latent_channels=4, depth=1, num_blocks=0)
    return ScoreUNet(settings, generator=torch.Generator().manual_seed(seed)).eval()


def test_every_allowed_factory_call_says_why_and_is_still_made():
    root = Path(__file__).resolve().parents[1]
    for (path, function, factory), reason in ALLOWED.items():
        assert len(reason.split()) >= 6, (path, function, factory)
        source = (root / path).read_text()
        assert function.startswith("<") or re.search(rf"def {function}\(", source), (path, function)
        assert f"torch.{factory}(" in source, (path, factory)


# -- the paths that raised on CUDA (each test failed before its fix) ------------------------------------------------


def test_a_statistics_row_moves_to_another_grid_on_its_own_device(fake_cuda, micro):
    row = statistics_row(micro)
    moved = statistics_row_for_shape(row.cuda(), (24, 20))
    assert moved.device == CUDA and torch.equal(moved.cpu(), statistics_row_for_shape(row, (24, 20)))
    from_reference = HybridGenerator.from_reference(micro.cuda(), tiny_model(), shape=(16, 16), device="cuda")
    from_statistics = HybridGenerator.from_statistics(row.cuda(), tiny_model(), shape=(20, 20), device="cuda")
    assert from_reference.shape == (16, 16) and from_statistics.shape == (20, 20)
    assert from_reference.device.type == from_statistics.device.type == "cuda"
    assert not unexplained(fake_cuda)


def test_statistics_of_two_devices_interpolate_on_the_first_ones(fake_cuda, micro, others):
    a, b = statistics_row(micro), statistics_row(others["seed 1"])
    mixed = interpolate_statistics(a.cuda(), b, 0.25)
    assert mixed.device == CUDA and torch.equal(mixed.cpu(), interpolate_statistics(a, b, 0.25))
    assert interpolate_statistics(a, b.cuda(), 0.25).device.type == "cpu"


def test_volume_statistics_of_a_gpu_micrograph_are_made_on_the_gpu(fake_cuda, micro):
    for extend in (isotropic_statistics, transversely_isotropic_statistics):
        on_gpu, on_cpu = extend(micro.cuda(), (8, 8, 8)), extend(micro, (8, 8, 8))
        assert on_gpu.row.device == CUDA and torch.equal(on_gpu.row.cpu(), on_cpu.row), extend.__name__
        assert on_gpu.clipped_fraction == on_cpu.clipped_fraction and "isotropic" in on_gpu.report()
    generator = VolumeGenerator.from_micrograph(micro.cuda(), tiny_model(), shape=(8, 8, 8), device="cuda")
    assert generator.device.type == "cuda" and generator.statistics.row.device == CUDA
    assert not unexplained(fake_cuda)


def test_chords_of_gpu_volumes_compare_with_a_cpu_micrograph(fake_cuda, micro, others):
    gpu_chords = chord_lengths(micro.cuda(), axis="x", periodic=True)[1]
    cpu_chords = chord_lengths(micro, axis="x", periodic=True)[1]
    assert chord_distribution_distance(gpu_chords, cpu_chords) == 0.0
    assert chord_distribution_distance(gpu_chords, cpu_chords, per_sample=True).device == CUDA
    measured = slice_statistics(others["volume"].cuda(), micro)
    assert set(measured.profiles) == {"reference", "xy", "xz", "yz"} and "| xy |" in measured.table()
    assert not unexplained(fake_cuda)


def test_a_fit_begun_on_the_cpu_resumes_on_a_gpu_with_the_network_it_planned(fake_cuda, others, tmp_path,
                                                                               monkeypatch):
    """The width of a network of three phases is chosen by the device kind (L_c = 48 on a CPU, 100 on a GPU); a
    resume re-plans on its own device, so ``plan.json`` must carry the width, or the checkpoint is refused."""
    from lgtutorial.fitting import plan as plan_module
    from lgtutorial.fitting.fit import fit
    from lgtutorial.score import training

    class Planned(Exception):
        pass

    networks = []

    def record(reference, *, model_settings, training_settings, **_):
        networks.append((model_settings, training_settings.batch_size))
        raise Planned

    monkeypatch.setattr(training, "train_score_model", record)  # the plan is what is tested: no training
    monkeypatch.setattr(plan_module, "_steps_for", lambda model, settings, minutes: 50)  # no timing of steps
    path = tmp_path / "three.npy"
    np.save(path, others["3 phases"].argmax(1)[0].numpy().astype(np.uint8))
    output = tmp_path / "fit"
    with pytest.raises(Planned):
        fit(path, minutes=1.0, output=output, device="cpu", progress=False)
    with pytest.raises(Planned):
        fit(path, resume=True, output=output, device="cuda", progress=False)
    (first, first_batch), (resumed, resumed_batch) = networks
    assert first.latent_channels == 48 and resumed == first and resumed_batch == first_batch


def test_auto_is_cuda_else_the_cpu_and_mps_only_when_named(monkeypatch):
    """The package computes in float64, which Apple's MPS lacks: "auto" never picks it."""
    from lgtutorial._checks import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert resolve_device("auto") == resolve_device(None) == torch.device("cpu")
    assert resolve_device("mps") == torch.device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")


# -- the main flows at tiny sizes ----------------------------------------------------------------------------------


def test_training_on_the_gpu_writes_a_checkpoint_the_cpu_loads(fake_cuda, micro, tmp_path):
    from lgtutorial.score.checkpoints import load_checkpoint
    from lgtutorial.score.training import train_score_model

    settings = TrainingSettings(patch_size=16, n_patches=24, batch_size=4, steps=2, eval_every=2, checkpoint_every=2,
                                device="cuda")
    run = train_score_model(micro, model_settings=UNetSettings(channels=1, latent_channels=4, depth=1, num_blocks=0),
                            training_settings=settings, output=tmp_path, progress=False)
    assert run.history["step"][-1] == 2 and all(np.isfinite(run.history["test_loss"]))
    assert all(p.device == CUDA for p in run.model.parameters())
    state = torch.load(tmp_path / "checkpoint.pt", map_location="cpu", weights_only=True)
    assert state["provenance"]["device"].startswith("cuda")
    model, sigmas, _ = load_checkpoint(tmp_path / "checkpoint.pt", device="cuda")
    assert next(model.parameters()).device == sigmas.device == CUDA
    assert not unexplained(fake_cuda)


@pytest.mark.parametrize(("sampler", "levels"), [("fast", None), ("faithful", 24)])
def test_hybrid_samples_are_drawn_on_the_gpu(fake_cuda, others, sampler, levels):
    generator = HybridGenerator.from_reference(others["16 px"], tiny_model(), device="cuda", sampler=sampler, levels=levels,
                                               padding=4)
    samples = generator.sample(2, seed=0, return_grf=True, progress=False)
    assert samples.microstructures.device == samples.grf.device == CUDA
    assert samples.microstructures.shape == (2, 2, 16, 16) and torch.all(samples.microstructures.sum(1) == 1)
    assert "target" in samples.report() and generator.evaluations >= 2 * generator.evaluations_per_sample
    assert not unexplained(fake_cuda)


def test_volumes_are_drawn_on_the_gpu_and_measured_against_a_cpu_micrograph(fake_cuda, micro):
    generator = VolumeGenerator.from_micrograph(micro, tiny_model(), shape=(8, 8, 8), device="cuda", sampler="fast",
                                                levels=20, rounds=1)
    samples = generator.sample(1, seed=0, return_grf=True, progress=False)
    assert samples.volumes.device == CUDA and samples.volumes.shape == (1, 2, 8, 8, 8)
    assert torch.all(samples.volumes.sum(1) == 1)
    measured = slice_statistics(samples.volumes, micro)
    assert "| yz |" in measured.table() and measured.isotropy_error >= 0
    assert not unexplained(fake_cuda)


def test_compare_measures_gpu_ensembles(fake_cuda, micro, others):
    from lgtutorial.evaluation.compare import compare

    ensembles = {"GRF": others["seed 1"].repeat(2, 1, 1, 1).cuda(), "hybrid": others["seed 2"].cuda()}
    comparison = compare(micro, ensembles, device="cuda", patch_size=8, three_point_cutoff=3, n_components=2)
    assert {row["model"] for row in comparison.rows} == {"reference", "GRF", "hybrid"}
    assert "| GRF |" in comparison.to_markdown()
    assert not unexplained(fake_cuda)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Files for the command line: a 48 x 48 micrograph, a tiny checkpoint trained on the CPU, an ensemble."""
    from lgtutorial.score.training import train_score_model

    folder = tmp_path_factory.mktemp("inputs")
    micro = synthetic.blobs(48, (1.4, 1.4), 0, fractions=(0.65, 0.35))
    np.save(folder / "micro.npy", micro.argmax(1)[0].numpy().astype(np.uint8))
    np.save(folder / "ensemble.npy", synthetic.blobs(48, (1.4, 1.4), 1, fractions=(0.65, 0.35)).numpy())
    settings = TrainingSettings(patch_size=16, n_patches=16, batch_size=4, steps=1, eval_every=1, checkpoint_every=1,
                                device="cpu")
    train_score_model(micro, model_settings=UNetSettings(channels=1, latent_channels=4, depth=1, num_blocks=0),
                      training_settings=settings, output=folder / "model", progress=False)
    return folder


@pytest.mark.parametrize("words", [
    ["grf", "--reference", "{d}/micro.npy", "--n-samples", "2"],
    ["generate", "--model", "{d}/model/checkpoint.pt", "--reference", "{d}/micro.npy", "--size", "16",
     "--n-samples", "1", "--padding", "4", "--levels", "20", "--force"],
    ["train", "{d}/micro.npy", "--steps", "1", "--batch-size", "2", "--report-samples", "1", "--report-levels", "2"],
    ["evaluate", "{d}/micro.npy", "--ensemble", "A={d}/ensemble.npy", "--patch-size", "8", "--three-point-cutoff",
     "3", "--n-components", "2"],
], ids=lambda words: words[0])
def test_the_command_line_runs_on_the_gpu(fake_cuda, inputs, tmp_path, words, capsys, monkeypatch):
    from lgtutorial.cli.main import main
    from lgtutorial.score.settings import TRAINING_PRESETS, UNET_PRESETS

    # train's default preset shrunk to a tiny network and patch set: the command's path is what is tested here
    monkeypatch.setitem(UNET_PRESETS, "case1-cpu", UNetSettings(channels=1, latent_channels=4, depth=1, num_blocks=0))
    monkeypatch.setitem(TRAINING_PRESETS, "case1-cpu", dataclasses.replace(
        TRAINING_PRESETS["case1-cpu"], patch_size=16, n_patches=24, eval_every=1, checkpoint_every=1))

    argv = [word.replace("{d}", str(inputs)) for word in words] + ["--device", "cuda", "--output", str(tmp_path / "out")]
    assert main(argv) == 0, capsys.readouterr().err
    summary = (tmp_path / "out" / "summary.json").read_text()
    assert "cuda" in summary or words[0] == "evaluate"
    assert not unexplained(fake_cuda)


def test_the_books_clock_waits_for_the_gpu_before_reading_the_time(fake_cuda):
    """Chapter 7 times the GRF, hybrid and SBG draws with lgtutorial._book.clock (issue #43: without a
    synchronize a GPU timing measures only the kernel launches)."""
    from lgtutorial._book import clock

    before = fake_cuda.synchronizations
    clock("cpu")
    assert fake_cuda.synchronizations == before
    clock("cuda")
    assert fake_cuda.synchronizations == before + 1


def test_a_sweep_task_with_device_cuda_draws_on_the_gpu(fake_cuda, inputs, micro):
    """The task each dask worker runs, for a design that names the GPU (a hybrid with the tiny checkpoint)."""
    from lgtutorial.sweep.parsing import parse_design
    from lgtutorial.sweep.run import generate_sample

    row = statistics_row(micro).cuda()
    design = parse_design({"name": "gpu", "seed": 0, "references": [str(inputs / "micro.npy")] * 2, "theta": [0.0],
                           "samples_per_point": 1, "model": str(inputs / "model" / "checkpoint.pt"), "device": "cuda",
                           "sampler": {"name": "fast", "padding": 4}})
    result = generate_sample(row, seed=1, design=design)
    assert result["device"].startswith("cuda") and result["labels"].shape == (32, 32)
    assert set(np.unique(result["labels"])) <= {0, 1}
    assert not unexplained(fake_cuda)


def test_fit_with_a_ten_second_budget_runs_on_the_gpu(fake_cuda, inputs, tmp_path):
    """``fit`` end to end on the GPU: plan (the GPU's batch), train within its budget, export, generate, report."""
    import json

    import lgtutorial as lg

    result = lg.fit(inputs / "micro.npy", minutes=10 / 60, n_samples=1, size=32, device="cuda", progress=False,
                    output=tmp_path / "fit")
    summary = json.loads((result.output / "summary.json").read_text())
    assert result.training["steps_done"] >= 1 and (result.output / "report.md").is_file()
    assert result.plan.training_settings.device.startswith("cuda") and "cuda" in json.dumps(summary)
    assert not unexplained(fake_cuda)
