"""Denoising score matching, the trainer (EMA, resume, checkpoints), sampling and the report, at tiny sizes.

The tests that take ``device`` run on the CPU, the fake GPU and a real one where present (``tests/conftest.py``);
on the fake GPU, whose random draws are the CPU's, a run is compared with the CPU's bit for bit.
"""

from __future__ import annotations

import copy
import dataclasses
import math

import pytest
import torch

from lgtutorial.evaluation.training_report import sample_unconditional, training_report
from lgtutorial.score.channels import segment_model_output
from lgtutorial.score.checkpoints import load_checkpoint
from lgtutorial.score.loss import denoising_score_matching_loss
from lgtutorial.score.schedules import shortened_schedule
from lgtutorial.score.settings import TRAINING_PRESETS, TrainingSettings, UNetSettings
from lgtutorial.score.step import _update_ema
from lgtutorial.score.training import train_score_model
from lgtutorial.score.unet import ScoreUNet
from tests.conftest import cpu_streams

CPU = torch.device("cpu")
TINY_MODEL = UNetSettings(channels=1, latent_channels=6, depth=1, num_blocks=1)
TINY = TrainingSettings(patch_size=16, n_patches=120, batch_size=8, steps=16, eval_every=8, checkpoint_every=8,
                        device="cpu")


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("run")
    run = train_score_model("nbsa-proxy", model_settings=TINY_MODEL, training_settings=TINY, output=folder,
                            progress=False)
    return run, folder


def test_presets_hold_the_papers_recipe():
    case1, case2 = TrainingSettings.preset("case1"), TrainingSettings.preset("case2")
    assert (case1.batch_size, case1.steps, case1.patch_size, case1.n_patches, case1.sigma_max) == (128, 500_000, 40, 4000, 20.0)
    assert (case2.batch_size, case2.steps, case2.patch_size, case2.n_patches, case2.sigma_max) == (128, 750_000, 64, 8000, 50.0)
    assert TRAINING_PRESETS["case1-cpu"].batch_size == 32 and TRAINING_PRESETS["case2-cpu"].patch_size == 48
    assert UNetSettings.preset("case2-cpu").latent_channels == 48 and UNetSettings.preset("case2-cpu").depth == 2
    with pytest.raises(ValueError, match="unknown training preset 'fast'"):
        TrainingSettings.preset("fast")


def test_loss_is_the_sigma_weighted_score_matching_objective(device):
    model = ScoreUNet(TINY_MODEL, generator=torch.Generator().manual_seed(0)).eval().to(device)
    clean = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(1)).to(device)
    sigmas = torch.tensor([3.0, 1.0, 0.1], device=device)
    loss = denoising_score_matching_loss(model, clean, sigmas, generator=torch.Generator(device=device).manual_seed(5))
    assert loss.device.type == device.type and loss.ndim == 0
    # the same draws (the same device's generator), written as (1/2) sigma^2 || s(x~, sigma) + (x~ - x) / sigma^2 ||^2
    generator = torch.Generator(device=device).manual_seed(5)
    sigma = sigmas[torch.randint(3, (4,), generator=generator, device=device)].view(-1, 1, 1, 1)
    noisy = clean + sigma * torch.randn(clean.shape, generator=generator, device=device)
    with torch.no_grad():
        direct = 0.5 * (sigma**2 * (model.score(noisy, sigma.flatten()) + (noisy - clean) / sigma**2).square()).sum((1, 2, 3))
    torch.testing.assert_close(loss.detach(), direct.mean(), rtol=1e-5, atol=1e-5)


def test_ema_warm_up(device):
    model, ema = ScoreUNet(TINY_MODEL).to(device), ScoreUNet(TINY_MODEL).to(device)
    before = [p.clone() for p in ema.parameters()]
    _update_ema(ema, model, 0, 0.999)  # decay (1 + 0) / (10 + 0) = 0.1
    for old, new, target in zip(before, ema.parameters(), model.parameters()):
        torch.testing.assert_close(new, 0.1 * old + 0.9 * target)
        assert new.device.type == device.type
    _update_ema(ema, model, 10**6, 0.999)  # capped at 0.999 late in training
    assert min(0.999, (1 + 10**6) / (10 + 10**6)) == 0.999


@pytest.mark.requires_data("nbsa-proxy")
def test_training_reduces_the_test_loss_and_learns_to_denoise(trained):
    run, _ = trained
    initial, final = run.history["test_loss"][0], run.history["test_loss"][-1]
    assert run.history["step"] == [0, 8, 16] and math.isnan(run.history["train_loss"][0])
    assert final < 0.75 * initial, run.history["test_loss"]
    # the learned score points from a noisy patch back toward the clean one
    clean = run.patches.test.batch(torch.arange(len(run.patches.test)))
    noise = torch.randn(clean.shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        score = run.model.score(clean + noise, 1.0)
    cosine = torch.nn.functional.cosine_similarity(score.flatten(1), -noise.flatten(1)).mean()
    assert cosine > 0.3, cosine
    assert not all(torch.equal(a, b) for a, b in zip(run.model.parameters(), run.raw_model.parameters()))


@pytest.mark.requires_data("nbsa-proxy")
def test_checkpoint_round_trip_with_weights_only(trained, device):
    run, folder = trained
    state = torch.load(folder / "checkpoint.pt", map_location="cpu", weights_only=True)
    assert state["step"] == 16 and state["model_settings"] == dataclasses.asdict(TINY_MODEL)
    assert state["training_settings"] == dataclasses.asdict(TINY)
    provenance = state["provenance"]
    assert provenance["reference"]["name"] == "nbsa-proxy" and len(provenance["reference"]["sha256"]) == 64
    assert provenance["seed"] == 0 and provenance["device"] == "cpu" and provenance["wall_time_s"] > 0
    assert provenance["torch_version"] == str(torch.__version__)
    model, sigmas, _ = load_checkpoint(folder)
    assert len(sigmas) == 1000 and not model.training
    x = torch.rand(2, 1, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(model(x), run.model(x))
    raw, _, _ = load_checkpoint(folder / "checkpoint.pt", weights="model")
    assert all(torch.equal(a, b) for a, b in zip(raw.parameters(), run.raw_model.parameters()))
    # loaded onto the device: the same weights there, the levels beside them
    moved, moved_sigmas, _ = load_checkpoint(folder, device=device)
    assert next(moved.parameters()).device.type == moved_sigmas.device.type == device.type
    assert all(torch.equal(a.cpu(), b) for a, b in zip(moved.parameters(), model.parameters()))
    with torch.no_grad():
        torch.testing.assert_close(moved(x.to(device)).cpu(), run.model(x), rtol=1e-4, atol=1e-4)


def _interrupt_at(step):
    def callback(info):
        if info["step"] == step:
            raise KeyboardInterrupt

    return callback


@pytest.mark.requires_data("nbsa-proxy")
def test_interrupted_and_resumed_run_equals_an_uninterrupted_one(tmp_path, device_kind, device):
    """On another device than the CPU the run is interrupted on one and resumed on the other, both ways: the
    checkpoint's state (weights, EMA, Adam, scheduler, running loss) moves between devices."""
    settings = dataclasses.replace(TINY, steps=8, eval_every=3, checkpoint_every=4)
    whole = train_score_model("nbsa-proxy", model_settings=TINY_MODEL, training_settings=settings,
                              output=tmp_path / "whole", progress=False)
    for first, then in [(CPU, CPU)] if device.type == "cpu" else [(device, CPU), (CPU, device)]:
        folder = tmp_path / f"{first.type}-{then.type}"
        with pytest.raises(KeyboardInterrupt):
            train_score_model("nbsa-proxy", model_settings=TINY_MODEL, progress=False, output=folder,
                              training_settings=dataclasses.replace(settings, device=str(first)),
                              callback=_interrupt_at(5))
        state = torch.load(folder / "checkpoint.pt", map_location="cpu", weights_only=True)
        assert state["step"] == 5 and state["provenance"]["device"] == str(first)
        resumed = train_score_model("nbsa-proxy", model_settings=TINY_MODEL, output=folder, resume=True,
                                    training_settings=dataclasses.replace(settings, device=str(then)), progress=False)
        assert all(p.device.type == then.type for p in resumed.model.parameters())
        assert whole.history["step"] == resumed.history["step"] == [0, 3, 6, 8]
        if cpu_streams(device_kind):  # the CPU's draws on either device: the uninterrupted run's weights
            for name in ("model", "raw_model"):
                for a, b in zip(getattr(whole, name).parameters(), getattr(resumed, name).parameters()):
                    torch.testing.assert_close(a, b.cpu(), rtol=0, atol=1e-6)
            torch.testing.assert_close(torch.tensor(whole.history["test_loss"]),
                                       torch.tensor(resumed.history["test_loss"]))
        else:  # a GPU draws other batches and noise: the history up to the checkpoint is the one it carried
            assert all(math.isfinite(v) for v in resumed.history["test_loss"])
            if first.type == "cpu":
                assert resumed.history["test_loss"][:2] == whole.history["test_loss"][:2]


@pytest.mark.requires_data("nbsa-proxy", "ti-alpha-beta", "nbsa-authors-checkpoint")
def test_refusals_say_what_is_wrong(trained, tmp_path):
    run, folder = trained
    with pytest.raises(ValueError, match="already exists; pass resume=True"):
        train_score_model("nbsa-proxy", model_settings=TINY_MODEL, training_settings=TINY, output=folder, progress=False)
    changed = dataclasses.replace(TINY, batch_size=4)
    with pytest.raises(ValueError, match="other settings \\(batch_size: 8 -> 4\\)"):
        train_score_model("nbsa-proxy", model_settings=TINY_MODEL, training_settings=changed, output=folder,
                          resume=True, progress=False)
    with pytest.raises(ValueError, match="a 3-phase reference needs a model with 3 channel"):
        train_score_model("ti-alpha-beta", model_settings=TINY_MODEL, training_settings=TINY, progress=False)
    from lgtutorial.data import fetch

    with pytest.raises(ValueError, match="not an lgtutorial score-model checkpoint.*load_authors_checkpoint"):
        load_checkpoint(fetch("nbsa-authors-checkpoint"))
    from lgtutorial.score.registry import load_authors_checkpoint

    # every score-model loader also takes a training checkpoint: it hands back the EMA weights
    via_loader, _ = load_authors_checkpoint(folder / "checkpoint.pt")
    ema, _, _ = load_checkpoint(folder / "checkpoint.pt")
    for name, tensor in ema.state_dict().items():
        torch.testing.assert_close(via_loader.state_dict()[name], tensor)
    with pytest.raises(FileNotFoundError, match="no checkpoint file"):
        load_checkpoint(tmp_path / "nothing.pt")


def test_segmentation_of_model_output():
    x = torch.tensor([[[[0.2, 0.7], [5.0, -4.0]]]])
    assert segment_model_output(x)[0, 1].tolist() == [[0.0, 1.0], [1.0, 0.0]]
    three = torch.zeros(1, 3, 1, 2)
    three[0, 2, 0, 0], three[0, 0, 0, 1] = 1.0, 1.0
    assert segment_model_output(three).argmax(1).tolist() == [[[2, 0]]]


def test_shortened_schedule_caps_the_step_ratio():
    from lgtutorial.score.schedules import geometric_sigmas

    sigmas = geometric_sigmas(20.0, 0.01, 1000)
    levels, steps = shortened_schedule(sigmas, 100)
    assert len(levels) == len(steps) == 100
    torch.testing.assert_close(steps / levels**2, torch.full((100,), 1.0))  # 10x wanted, capped at 5x
    levels, steps = shortened_schedule(sigmas, 500)
    torch.testing.assert_close(steps / levels**2, torch.full((500,), 0.4))  # 2x


def _report(run, device, levels, steps):
    """The training report of a copy of the run's model, with copies of its patch sets kept on ``device`` (as
    the trainer keeps them)."""
    model = copy.deepcopy(run.model).to(device)
    train, test = (copy.deepcopy(patches).to(device) for patches in (run.patches.train, run.patches.test))
    return training_report(model, train, sigmas=levels, step_sizes=steps, n_samples=3, test_patches=test,
                           generator=torch.Generator(device=device).manual_seed(0))


@pytest.mark.requires_data("nbsa-proxy")
def test_unconditional_samples_and_report(trained, device_kind, device):
    run, _ = trained
    levels, steps = shortened_schedule(run.sigmas, 20)
    model = copy.deepcopy(run.model).to(device)  # the module-wide run stays on the CPU
    samples = sample_unconditional(model, n_samples=3, shape=(16, 32), sigmas=levels, step_sizes=steps,
                                   generator=torch.Generator(device=device).manual_seed(0))
    assert samples.shape == (3, 2, 16, 32) and torch.equal(samples.sum(1), torch.ones(3, 16, 32, device=device))
    report = _report(run, device, levels, steps)
    summary = report.summary
    assert report.samples.device.type == "cpu"
    if cpu_streams(device_kind) and device.type == "cuda":  # the fake GPU: the CPU's report, number for number
        on_cpu = _report(run, CPU, levels, steps)
        assert torch.equal(report.samples, on_cpu.samples) and summary == on_cpu.summary
    assert report.samples.shape == (3, 2, 16, 16)
    assert summary["volume_fraction"]["training_mean"][1] == pytest.approx(0.37, abs=0.05)
    assert sum(summary["volume_fraction"]["samples_mean"]) == pytest.approx(1.0)
    assert len(summary["nearest_training_distance"]["samples"]) == 3
    assert summary["nearest_training_distance"]["test_median"] > 0
    assert "| volume fraction | 1 |" in report.markdown()


@pytest.mark.requires_data("nbsa-proxy")
def test_cli_train_writes_checkpoint_and_report(tmp_path):
    from lgtutorial.cli.main import main

    out = tmp_path / "cli"
    assert main(["train", "nbsa-proxy", "--preset", "case1-cpu", "--steps", "2", "--batch-size", "4",
                 "--report-samples", "2", "--report-levels", "10", "--output", str(out)]) == 0
    for name in ("checkpoint.pt", "summary.json", "report.md", "report.json", "samples.png"):
        assert (out / name).is_file(), name
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["step"] == 2 and state["training_settings"]["batch_size"] == 4
    assert state["model_settings"]["latent_channels"] == 40


def test_dihedral_augmentation_draws_every_symmetry_and_keeps_each_patch_whole(device_kind, device):
    from lgtutorial.score.step import dihedral_augment

    patches = torch.rand(4000, 3, 5, 5, generator=torch.Generator().manual_seed(1)).to(device)
    out = dihedral_augment(patches, generator=torch.Generator(device=device).manual_seed(0))
    assert out.device.type == device.type
    if cpu_streams(device_kind) and device.type == "cuda":  # the fake GPU draws the CPU's symmetries
        assert torch.equal(out.cpu(), dihedral_augment(patches.cpu(), generator=torch.Generator().manual_seed(0)))
    # each output is one of the 8 images of its own patch, and the 8 are drawn about equally often
    images = torch.stack([patches, patches.flip(-1), patches.flip(-2), patches.flip(-1, -2), patches.mT,
                          patches.mT.flip(-1), patches.mT.flip(-2), patches.mT.flip(-1, -2)])
    which = (images == out).flatten(2).all(-1).float().argmax(0)
    assert ((images == out).flatten(2).all(-1).sum(0) == 1).all()
    counts = torch.bincount(which, minlength=8)
    assert counts.min() > 400 and counts.max() < 600, counts  # statistical: any device's draws
    torch.testing.assert_close(out.sum(dim=(2, 3)), patches.sum(dim=(2, 3)))
    with pytest.raises(ValueError, match="square patches"):
        dihedral_augment(torch.rand(2, 1, 4, 6))


@pytest.mark.requires_data("nbsa-proxy")
def test_augmented_training_differs_and_resumes_checkpoints_written_before_the_setting(tmp_path):
    settings = dataclasses.replace(TINY, steps=4, eval_every=2, checkpoint_every=2)
    plain = train_score_model("nbsa-proxy", model_settings=TINY_MODEL, training_settings=settings,
                              output=tmp_path / "plain", progress=False)
    turned = train_score_model("nbsa-proxy", model_settings=TINY_MODEL,
                               training_settings=dataclasses.replace(settings, augment=True), progress=False)
    assert not all(torch.equal(a, b) for a, b in zip(plain.raw_model.parameters(), turned.raw_model.parameters()))
    # a checkpoint from before the setting existed resumes as augment=False, and refuses augment=True
    path = tmp_path / "plain" / "checkpoint.pt"
    state = torch.load(path, weights_only=False)
    del state["training_settings"]["augment"]
    torch.save(state, path)
    with pytest.raises(ValueError, match="augment: False -> True"):
        train_score_model("nbsa-proxy", model_settings=TINY_MODEL, training_settings=dataclasses.replace(
            settings, augment=True), output=tmp_path / "plain", resume=True, progress=False)
    resumed = train_score_model("nbsa-proxy", model_settings=TINY_MODEL, training_settings=settings,
                                output=tmp_path / "plain", resume=True, progress=False)
    assert resumed.history["step"][-1] == 4
    with pytest.raises(ValueError, match="augment.*expected true or false, got 'yes'"):
        TrainingSettings(augment="yes")


class _NoiseRecorder(torch.nn.Module):
    """A stand-in network that returns zeros and keeps what it was given (clean patches are zeros, so its
    input is the noise itself, ``sigma z``)."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, x):
        self.seen.append(x.detach().clone())
        return torch.zeros_like(x)


def test_log_normal_noise_levels_follow_their_law_inside_the_trained_range(device):
    # statistical: it holds on every device's random streams
    sigmas = torch.exp(torch.linspace(math.log(50.0), math.log(0.01), 1000, device=device))
    clean = torch.zeros(4000, 1, 24, 24, device=device)
    recorder = _NoiseRecorder()
    mean, std = math.log(0.45), 1.2
    denoising_score_matching_loss(recorder, clean, sigmas, generator=torch.Generator(device=device).manual_seed(0),
                                  log_normal=(mean, std))
    assert recorder.seen[0].device.type == device.type
    drawn = recorder.seen[0].flatten(1).std(dim=1)  # each patch's noise level, to about 3 %
    log_drawn = drawn.log()
    # inside the range the draws follow N(mean, std) in ln sigma; the tails are clamped to the range's ends
    assert abs(float(log_drawn.median()) - mean) < 0.08
    inside = float(((drawn > 0.16) & (drawn < 1.0)).float().mean())
    law = 0.5 * (math.erf((0.0 - mean) / (std * 2**0.5)) - math.erf((math.log(0.16) - mean) / (std * 2**0.5)))
    assert abs(inside - law) < 0.03, (inside, law)
    assert float(drawn.max()) < 50.0 * 1.15 and float(drawn.min()) > 0.01 * 0.85
    # the paper's uniform draw over the levels puts far fewer patches there
    uniform = _NoiseRecorder()
    denoising_score_matching_loss(uniform, clean, sigmas, generator=torch.Generator(device=device).manual_seed(0))
    spread = uniform.seen[0].flatten(1).std(dim=1)
    assert float(((spread > 0.16) & (spread < 1.0)).float().mean()) < inside / 2


def test_log_normal_setting_is_checked_and_named_in_the_model_card():
    assert TrainingSettings(noise_log_normal=[-0.5, 1.0]).noise_log_normal == (-0.5, 1.0)  # from JSON or a file
    for bad in ((0.0, -1.0), (0.0,), "wide", (0.0, float("nan"))):
        with pytest.raises(ValueError, match="noise_log_normal.*the \\(mean, positive std\\) of ln sigma"):
            TrainingSettings(noise_log_normal=bad)
    # the model card names the law in words, and reads a card from before the setting as the paper's draw
    from lgtutorial.score.model_card import paper_differences
    model = dataclasses.asdict(UNetSettings.preset("case2-cpu"))
    drawn = dataclasses.replace(TrainingSettings.preset("case2-cpu"), noise_log_normal=(math.log(0.45), 1.2))
    rows = {label: (paper, ours) for label, paper, ours in paper_differences(model, dataclasses.asdict(drawn))}
    assert rows["noise level of each patch"] == ("uniform over the trained levels",
                                                 "log-normal: median 0.45, std of ln sigma 1.2")
    old = dataclasses.asdict(TrainingSettings.preset("case2-cpu"))
    del old["noise_log_normal"]
    assert "noise level of each patch" not in {label for label, *_ in paper_differences(model, old)}
