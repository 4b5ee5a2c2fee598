"""Statistics that travel with a model, the offline default of ``generate``, and hybrid-range models.

None of these tests needs the reference data folder: they use the shipped model and synthetic
micrographs.
"""

from __future__ import annotations

import dataclasses
import json
import shutil

import pytest
import torch

from lgtutorial import data
from lgtutorial.cli.main import main
from lgtutorial.grf.field import statistics_row
from lgtutorial.grf.material import MaterialStatistics
from lgtutorial.sampling.hybrid import HybridGenerator
from lgtutorial.score import registry as pretrained
from lgtutorial.score.checkpoints import load_checkpoint
from lgtutorial.score.export import attach_statistics
from lgtutorial.score.settings import TrainingSettings, UNetSettings
from lgtutorial.score.training import train_score_model, trained_levels
from lgtutorial.synthetic import blobs


@pytest.mark.parametrize("n_phases", [2, 3, 4])
def test_statistics_round_trip_and_rebuild_the_row(n_phases, tmp_path):
    micro = blobs(48, 1.5, fractions=[1 / n_phases] * n_phases)
    stats = MaterialStatistics.from_microstructure(micro, name="blobs", periodic=True,
                                                   provenance={"source": "synthetic"})
    assert stats.row.shape == (n_phases - 1, 48, 48)  # the last channel is implied, not stored
    assert torch.allclose(stats.statistics_row(), statistics_row(micro.double()), atol=1e-6)
    stats.save(tmp_path / "s.pt")
    again = MaterialStatistics.load(tmp_path / "s.pt")
    assert again.name == "blobs" and again.periodic and again.provenance["source"] == "synthetic"
    assert torch.equal(again.row, stats.row) and again.mean_chord_lengths == stats.mean_chord_lengths
    assert torch.allclose(again.volume_fractions.sum(), torch.tensor(1.0, dtype=torch.float64))


def test_bad_statistics_files_are_refused(tmp_path):
    (tmp_path / "x.pt").write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="could not read it as material statistics"):
        MaterialStatistics.load(tmp_path / "x.pt")
    torch.save({"format": "something else"}, tmp_path / "y.pt")
    with pytest.raises(ValueError, match="not lgtutorial material statistics"):
        MaterialStatistics.load(tmp_path / "y.pt")
    payload = MaterialStatistics.from_microstructure(blobs(48, 1.5, fractions=[1 / 3] * 3), name="b",
                                                     periodic=True).to_payload()
    payload["row"] = payload["row"][:1, :10]
    with pytest.raises(ValueError, match="does not fit"):
        MaterialStatistics.from_payload(payload)


def test_the_default_model_carries_its_training_micrographs_statistics():
    stats = pretrained.load_statistics("lgtutorial-case1")
    model = pretrained.load("lgtutorial-case1")
    assert stats.name == model.provenance["reference"]["name"] == "nbsa-proxy"
    assert stats.provenance["source_sha256"] == model.provenance["reference"]["sha256"]
    row = stats.statistics_row()
    assert row.shape == (2, 256, 256)
    # f_00(0) is the matrix fraction, the cross term vanishes at zero lag, and the row's mean is v_0^2
    assert abs(float(row[0, 0, 0]) - float(stats.volume_fractions[0])) < 1e-6 and abs(float(row[1, 0, 0])) < 1e-6
    assert abs(float(row[0].mean()) - float(stats.volume_fractions[0]) ** 2) < 1e-5
    assert 0.3 < float(stats.volume_fractions[1]) < 0.45
    assert "## Statistics of the training micrograph" in pretrained.model_card("lgtutorial-case1")


def test_generate_with_no_arguments_needs_no_data_files(tmp_path, monkeypatch):
    monkeypatch.setenv("LGTUTORIAL_DATA", str(tmp_path / "empty"))
    monkeypatch.setenv("LGTUTORIAL_CACHE", str(tmp_path / "cache"))

    def no_files(*args, **kwargs):
        raise AssertionError("the default generation must not look for registered files")

    monkeypatch.setattr(data, "fetch", no_files)
    out = tmp_path / "out"
    assert main(["generate", "--n-samples", "1", "--size", "32", "--output", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["model"] == "lgtutorial-case1"
    assert summary["statistics_source"]["micrograph"] == "nbsa-proxy"
    assert summary["mean_x_chord_lengths_px"]["reference"][1] > 1
    assert abs(summary["achieved_volume_fractions_mean"][1] - summary["target_volume_fractions"][1]) < 0.03


def test_attach_statistics_rewrites_hash_index_and_card(tmp_path):
    shutil.copytree(pretrained.pretrained_directory(), tmp_path / "shipped")
    directory = tmp_path / "shipped"
    stats = MaterialStatistics.from_microstructure(blobs(32, 1.5), name="blobs", periodic=True)
    attach_statistics("lgtutorial-case1", stats, directory=directory)
    again = pretrained.load_statistics("lgtutorial-case1", directory=directory)  # hash-checked load
    assert again.name == "blobs" and again.shape == (32, 32)
    card = pretrained.model_card("lgtutorial-case1", directory=directory)
    assert card.count("## Statistics of the training micrograph") == 1 and "`blobs`" in card
    index = (directory / "index.toml").read_text()
    assert pretrained._read_index(directory)["lgtutorial-case1"]["sha256"] in card and "lgtutorial-case1" in index
    # the shipped package itself is untouched
    assert pretrained.load_statistics("lgtutorial-case1").name == "nbsa-proxy"


def test_trained_levels_keep_only_the_hybrid_range():
    sigmas = torch.logspace(1, -2, 50)
    assert torch.equal(trained_levels(sigmas, None), sigmas)
    kept = trained_levels(sigmas, 1.5)
    assert float(kept.max()) <= 1.5 and float(kept.min()) == float(sigmas.min()) and len(kept) < len(sigmas)
    with pytest.raises(ValueError, match="train_sigma_max"):
        trained_levels(sigmas, float("nan"))
    with pytest.raises(ValueError, match="train_sigma_max"):
        trained_levels(sigmas, 0.001)


def test_a_hybrid_range_model_records_its_range_and_refuses_to_start_above_it(tmp_path):
    torch.set_num_threads(min(2, torch.get_num_threads()))
    micro = blobs(40, 1.5)
    tiny = UNetSettings(channels=1, latent_channels=6, depth=1, num_blocks=1)
    settings = TrainingSettings(patch_size=16, n_patches=60, batch_size=4, steps=4, eval_every=4, checkpoint_every=4,
                                device="cpu", train_sigma_max=1.0)
    train_score_model(micro, model_settings=tiny, training_settings=settings, output=tmp_path, progress=False)
    model, sigmas, state = load_checkpoint(tmp_path)
    assert model.trained_sigma_max == 1.0 and state["training_settings"]["train_sigma_max"] == 1.0
    assert float(sigmas.max()) == pytest.approx(settings.sigma_max)  # the schedule itself stays whole
    row = statistics_row(micro.double())
    generator = HybridGenerator.from_statistics(row, model, sigmas=sigmas, sigma_c=0.75, sampler="fast")
    assert float(generator.sigmas[0]) <= 1.0
    with pytest.raises(ValueError, match=r"trained on noise levels up to sigma=1 only .*sigma_c=1.5"):
        HybridGenerator.from_statistics(row, model, sigmas=sigmas, sigma_c=1.5)
    with pytest.raises(ValueError, match="pure noise"):
        HybridGenerator.from_statistics(row, model, sigmas=sigmas, sigma_c=None)
    full = dataclasses.replace(settings, train_sigma_max=None)
    train_score_model(micro, model_settings=tiny, training_settings=full, output=tmp_path / "full", progress=False)
    assert load_checkpoint(tmp_path / "full")[0].trained_sigma_max is None


def test_the_shipped_stand_in_loads_without_data_and_replaces_the_proxy_with_a_warning(tmp_path, monkeypatch):
    monkeypatch.setenv("LGTUTORIAL_DATA", str(tmp_path / "empty"))
    monkeypatch.setenv("LGTUTORIAL_CACHE", str(tmp_path / "cache"))
    standin, meta = data.load_reference("nbsa-standin")  # hash-checked, from the package
    assert standin.shape == (1, 2, 256, 256) and meta["periodic"]
    assert round(float(standin[0, 1].mean()), 4) == 0.3766
    with pytest.raises(data.DataNotFoundError):
        data.fetch("nbsa-proxy")  # the registry lookup itself never substitutes
    with pytest.warns(UserWarning, match="using the shipped nbsa-standin instead"):
        micro, meta = data.load_reference("nbsa-proxy")
    assert meta["name"] == "nbsa-standin" and meta["stands_in_for"] == "nbsa-proxy"
    assert torch.equal(micro, standin)
    # a stand-in drawn from the same model has the proxy's kind of statistics: the shipped ones are close
    carried = pretrained.load_statistics("lgtutorial-case1")
    assert abs(float(carried.volume_fractions[1]) - float(standin[0, 1].mean())) < 0.01
