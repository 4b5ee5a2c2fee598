"""This project's shipped score models: export -> load round trip, hash checks, clear errors."""

from __future__ import annotations

import json

import pytest
import torch

from lgtutorial.cli.main import main
from lgtutorial.microstructure import labels_to_one_hot
from lgtutorial.score import registry as pretrained
from lgtutorial.score.checkpoints import load_checkpoint
from lgtutorial.score.export import export_pretrained
from lgtutorial.score.settings import TrainingSettings, UNetSettings
from lgtutorial.score.training import train_score_model

# The tiny models are trained on an in-memory image, so every export says it ships without statistics;
# test_statistics_follow_the_export checks that warning once.
pytestmark = pytest.mark.filterwarnings("ignore:the training micrograph 'in-memory tensor':UserWarning")

TINY_MODEL = UNetSettings(channels=1, latent_channels=4, depth=1, num_blocks=1)
TINY_TRAINING = TrainingSettings(patch_size=8, n_patches=24, batch_size=4, steps=4, eval_every=2,
                                 checkpoint_every=2, device="cpu", seed=3)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A 4-step training checkpoint of a tiny U-Net on a random 2-phase 16x16 image."""
    labels = torch.randint(0, 2, (16, 16), generator=torch.Generator().manual_seed(0))
    reference = labels_to_one_hot(labels[None], n_phases=2)
    folder = tmp_path_factory.mktemp("run")
    train_score_model(reference, model_settings=TINY_MODEL, training_settings=TINY_TRAINING, output=folder,
                      progress=False)
    return folder / "checkpoint.pt"


def test_export_then_load_gives_the_checkpoints_ema_model(checkpoint, tmp_path):
    shipped = tmp_path / "shipped"
    path = export_pretrained(checkpoint, "tiny", directory=shipped)
    assert path == shipped / "tiny.pt" and pretrained.available(directory=shipped) == ["tiny"]
    ema, sigmas, state = load_checkpoint(checkpoint, weights="ema")
    raw, _, _ = load_checkpoint(checkpoint, weights="model")
    model, loaded_sigmas = pretrained.load_with_sigmas("tiny", directory=shipped)
    assert not model.training and model.settings == TINY_MODEL
    x = torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(model(x), ema(x), rtol=0, atol=0)
        assert not torch.allclose(model(x), raw(x))  # the EMA weights, not the optimized ones
    torch.testing.assert_close(loaded_sigmas, sigmas)
    assert torch.equal(model.sigmas, loaded_sigmas) and "sigmas" not in model.state_dict()
    assert all(v.dtype == torch.float32 for v in model.state_dict().values())
    provenance = model.provenance
    assert (provenance["steps_done"], provenance["steps_planned"], provenance["seed"]) == (4, 4, 3)
    assert provenance["reference"]["sha256"] == state["provenance"]["reference"]["sha256"]
    assert provenance["device"] == "cpu" and provenance["torch_version"] == str(torch.__version__)
    assert provenance["preset"] == "custom" and provenance["wall_time_s"] > 0
    # the model card: the training, how it differs from the paper, how to re-export
    card = pretrained.model_card("tiny", directory=shipped)
    assert card == (shipped / "tiny.md").read_text()
    assert "| batch size | 128 | 4 |" in card and "| latent channels L_c | 40 | 4 |" in card
    assert "| patch size (px) | 40 | 8 |" in card and "4 of 4 planned" in card
    assert f"lgtutorial pretrained export {checkpoint.as_posix()} tiny" in card  # (outside the working folder)
    # a finished run (4 of 4 steps) with no training report beside the checkpoint
    assert "Interim weights" not in card and "None: the run ended without writing" in card
    assert "After training ends" not in card and "From the checkpoint it was exported from" in card
    # the same model through the generic loader (what load_score_model and the CLI use), also by file
    from lgtutorial.score.registry import load_score_model

    for source in (path, checkpoint):
        other, other_sigmas = load_score_model(str(source))
        with torch.no_grad():
            torch.testing.assert_close(other(x), ema(x), rtol=0, atol=0)
        torch.testing.assert_close(other_sigmas, sigmas)


def test_a_training_report_beside_the_checkpoint_goes_into_the_card(checkpoint, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.pt").write_bytes(checkpoint.read_bytes())
    report = {"n_samples": 2, "n_levels": 10, "volume_fraction": {"samples_mean": [0.6, 0.4]}}
    (run / "summary.json").write_text(json.dumps({"preset": "case1-cpu", "provenance": {"steps_done": 4}}))
    (run / "report.json").write_text(json.dumps(report))
    (run / "report.md").write_text("| statistic | phase | samples | training |\n|---|---|---|---|\n| vf | 1 | 0.4 | 0.37 |\n")
    export_pretrained(run, "with-report", directory=tmp_path / "shipped")
    card = (tmp_path / "shipped" / "with-report.md").read_text()
    assert "| vf | 1 | 0.4 | 0.37 |" in card and "2 unconditional samples" in card and "`case1-cpu`" in card
    assert pretrained.load("with-report", directory=tmp_path / "shipped").provenance["preset"] == "case1-cpu"
    # a report of another step (the run went on after this checkpoint) is left out
    (run / "summary.json").write_text(json.dumps({"preset": "case1-cpu", "provenance": {"steps_done": 8}}))
    with pytest.raises(ValueError, match="exists already"):  # a name is never replaced by accident
        export_pretrained(run, "with-report", directory=tmp_path / "shipped")
    card_path = tmp_path / "shipped" / "with-report.md"
    card_path.write_text(card_path.read_text().replace("## Licence", "## Known limit: no laths\n\nWritten by hand.\n\n"
                                                                     "## Licence"))
    export_pretrained(run, "with-report", directory=tmp_path / "shipped", overwrite=True)
    card = card_path.read_text()
    assert "None: the run ended" in card and "2 unconditional samples" not in card  # regenerated...
    # ...but what the maintainers wrote by hand survives the re-export, once, before the licence
    assert card.count("## Known limit: no laths\n\nWritten by hand.\n") == 1
    assert card.index("## Known limit") < card.index("## Licence") and card.count("## Training report") == 1


def test_statistics_follow_the_export(checkpoint, tmp_path):
    from lgtutorial.grf.material import MaterialStatistics

    shipped = tmp_path / "shipped"
    labels = torch.randint(0, 2, (16, 16), generator=torch.Generator().manual_seed(0))
    stats = MaterialStatistics.from_microstructure(labels_to_one_hot(labels[None], n_phases=2), name="speckle",
                                                   periodic=True)
    export_pretrained(checkpoint, "tiny", directory=shipped, statistics=stats)
    assert "## Statistics of the training micrograph" in pretrained.model_card("tiny", directory=shipped)
    assert pretrained.load_statistics("tiny", directory=shipped).name == "speckle"
    # re-exported where the micrograph cannot be loaded: a warning, and the old card's section does not
    # survive to describe statistics the new file lacks
    with pytest.warns(UserWarning, match="ships without its statistics"):
        export_pretrained(checkpoint, "tiny", directory=shipped, overwrite=True)
    assert "## Statistics of the training micrograph" not in pretrained.model_card("tiny", directory=shipped)


def test_unknown_missing_and_corrupt_models_give_clear_errors(checkpoint, tmp_path):
    shipped = tmp_path / "shipped"
    path = export_pretrained(checkpoint, "tiny", directory=shipped)
    with pytest.raises(ValueError, match=r"unknown pretrained model 'nope'; expected one of: tiny"):
        pretrained.load("nope", directory=shipped)
    with pytest.raises(ValueError, match=r"expected one of: none"):
        pretrained.load("tiny", directory=tmp_path / "empty")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"tiny.pt does not match the index entry of 'tiny': expected sha256"):
        pretrained.load("tiny", directory=shipped)
    path.unlink()
    with pytest.raises(FileNotFoundError, match=r"'tiny' is listed in .*index.toml but its weights .* are missing"):
        pretrained.load("tiny", directory=shipped)
    with pytest.raises(ValueError, match=r"name must be lower-case letters"):
        export_pretrained(checkpoint, "Bad Name", directory=shipped)
    with pytest.raises(ValueError, match=r"no shipped score model for 4-phase statistics"):
        pretrained.default_model(4)


def test_the_cli_exports_into_a_folder(checkpoint, tmp_path, capsys):
    assert main(["pretrained", "export", str(checkpoint), "tiny-cli", "--directory", str(tmp_path)]) == 0
    assert "wrote" in capsys.readouterr().out and pretrained.available(directory=tmp_path) == ["tiny-cli"]
    assert main(["pretrained", "list"]) == 0
    assert "lgtutorial-case1" in capsys.readouterr().out


@pytest.mark.parametrize(("name", "channels", "reference", "sigma_max"),
                         [("lgtutorial-case1", 1, "nbsa-proxy", 20.0), ("lgtutorial-case2", 3, "ti-alpha-beta", 50.0)])
def test_the_shipped_models_load_with_their_settings(name, channels, reference, sigma_max):
    from lgtutorial.score.registry import load_score_model

    assert name in pretrained.available()
    model, sigmas = load_score_model(name)  # the hybrid generator's loader takes the names
    assert model.settings.channels == channels and not model.training
    assert model.provenance["reference"]["name"] == reference and model.provenance["steps_done"] > 0
    assert len(sigmas) == 1000 and float(sigmas[0]) == pytest.approx(sigma_max) and float(sigmas[-1]) == pytest.approx(0.01)
    side = 4 * model.size_multiple
    x = torch.rand(1, channels, side, side, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        score = model.score(x, 0.75)
    assert score.shape == x.shape and bool(torch.isfinite(score).all())
    assert pretrained.default_model(2 if channels == 1 else channels) == name
