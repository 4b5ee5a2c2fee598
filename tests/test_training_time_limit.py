"""The wall-clock limit of ``train_score_model``: it stops early, saves, and a resume finishes the plan."""

import torch

from lgtutorial.score.settings import TrainingSettings, UNetSettings
from lgtutorial.score.training import train_score_model
from lgtutorial.synthetic import blobs


def _settings(steps):
    model = UNetSettings(channels=1, latent_channels=4, depth=1, num_blocks=1)
    training = TrainingSettings(patch_size=16, n_patches=64, batch_size=4, steps=steps, eval_every=50,
                                checkpoint_every=1000, device="cpu")
    return model, training


def test_time_limit_stops_early_saves_and_resumes(tmp_path):
    model, training = _settings(100_000)
    run = train_score_model(blobs(32, 1.5), model_settings=model, training_settings=training, output=tmp_path,
                            progress=False, time_limit_s=0.5)
    assert run.stopped_at_time_limit
    done = run.history["step"][-1]
    assert 0 < done < training.steps
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    assert state["step"] == done  # the checkpoint holds the step it stopped at
    assert abs(run.wall_time_s - state["provenance"]["wall_time_s"]) < 1.0  # fit reports it without reloading


def test_no_limit_runs_the_plan(tmp_path):
    model, training = _settings(3)
    run = train_score_model(blobs(32, 1.5), model_settings=model, training_settings=training, progress=False)
    assert not run.stopped_at_time_limit
    assert run.history["step"][-1] == 3


def test_bad_limit_is_refused():
    import pytest

    model, training = _settings(3)
    with pytest.raises(ValueError, match="time_limit_s"):
        train_score_model(blobs(32, 1.5), model_settings=model, training_settings=training, progress=False, time_limit_s=-1)
