"""The score U-Net: sizes, shapes, the sigma scaling, InstanceNorm++, validation."""

from __future__ import annotations

import pytest
import torch

from lgtutorial.score.settings import UNET_PRESETS, UNetSettings
from lgtutorial.score.unet import InstanceNormPlusPlus, ScoreUNet, receptive_field

TINY = UNetSettings(channels=1, latent_channels=6, depth=2, num_blocks=1)


def test_preset_parameter_counts_match_the_paper():
    # the paper: about 105 k (2-phase, L_c = 40, D = 1) and about 1.2 M (3-phase, L_c = 100, D = 3)
    assert 100_000 < ScoreUNet(UNET_PRESETS["case1"]).n_parameters < 110_000
    assert 1_150_000 < ScoreUNet(UNET_PRESETS["case2"]).n_parameters < 1_250_000
    assert ScoreUNet(UNET_PRESETS["case2-cpu"]).n_parameters < ScoreUNet(UNET_PRESETS["case2"]).n_parameters / 4


def test_unet_settings_preset_lookup():
    assert UNetSettings.preset("case2") == UNET_PRESETS["case2"]
    with pytest.raises(ValueError, match="unknown U-Net preset 'case3'"):
        UNetSettings.preset("case3")


@pytest.mark.parametrize("size", [(40, 40), (24, 64)])
def test_fully_convolutional_output_has_the_input_shape(size):
    model = ScoreUNet(UNET_PRESETS["case1"]).eval()
    x = torch.rand(2, 1, *size)
    assert model(x).shape == x.shape


def test_three_channel_model_and_deeper_levels():
    model = ScoreUNet(UNetSettings(channels=3, latent_channels=5, depth=3)).eval()
    x = torch.rand(1, 3, 16, 24)
    assert model(x).shape == (1, 3, 16, 24)


def test_score_is_output_divided_by_sigma():
    model = ScoreUNet(TINY, generator=torch.Generator().manual_seed(1)).eval()
    x = torch.randn(3, 1, 8, 8)
    raw = model(x)
    torch.testing.assert_close(model.score(x, 0.5), raw / 0.5)
    torch.testing.assert_close(model.score(x, torch.tensor(2.0)), raw / 2.0)
    per_sample = torch.tensor([1.0, 2.0, 4.0])
    torch.testing.assert_close(model.score(x, per_sample), raw / per_sample.view(3, 1, 1, 1))


def test_sizes_not_divisible_by_two_to_the_depth_are_refused():
    model = ScoreUNet(TINY)
    with pytest.raises(ValueError, match=r"divisible by 2\*\*depth = 4 .*got 10x12"):
        model(torch.zeros(1, 1, 10, 12))


def test_wrong_channels_and_types_are_refused():
    model = ScoreUNet(TINY)
    with pytest.raises(ValueError, match=r"expected input of shape \(n_samples, 1, H, W\), got \(1, 3, 8, 8\)"):
        model(torch.zeros(1, 3, 8, 8))
    with pytest.raises(TypeError, match="expected a torch.Tensor"):
        model(torch.zeros(1, 1, 8, 8).numpy())
    with pytest.raises(ValueError, match=r"--latent-channels \(latent_channels\): expected a positive integer, got 0"):
        ScoreUNet(UNetSettings(latent_channels=0))
    with pytest.raises(TypeError, match="settings must be a UNetSettings"):
        ScoreUNet({"channels": 1})


def test_seeded_initialization_is_reproducible():
    first = ScoreUNet(TINY, generator=torch.Generator().manual_seed(3)).state_dict()
    second = ScoreUNet(TINY, generator=torch.Generator().manual_seed(3)).state_dict()
    other = ScoreUNet(TINY, generator=torch.Generator().manual_seed(4)).state_dict()
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first if k.endswith("conv.weight"))
    norms = [v for k, v in first.items() if k.endswith(("norm.alpha", "norm.gamma"))]
    assert all((v - 1).abs().max() < 0.15 for v in norms)  # ~ N(1, 0.02)


def test_dropout_only_in_training_mode():
    model = ScoreUNet(TINY, generator=torch.Generator().manual_seed(0))
    x = torch.randn(2, 1, 8, 8)
    model.train()
    assert not torch.equal(model(x), model(x))
    model.eval()
    assert torch.equal(model(x), model(x))


def test_instance_norm_plus_plus_keeps_relative_channel_means():
    norm = InstanceNormPlusPlus(4)
    with torch.no_grad():
        norm.alpha.fill_(1.0)
        norm.gamma.fill_(2.0)
        norm.beta.fill_(0.5)
    x = torch.randn(3, 4, 6, 6) + torch.tensor([0.0, 1.0, 2.0, 5.0]).view(1, 4, 1, 1)
    out = norm(x)
    means = x.mean((2, 3))
    standardized = (means - means.mean(1, keepdim=True)) / (means.var(1, keepdim=True) + 1e-5).sqrt()
    # the normalized part has zero spatial mean, so the output mean is gamma * alpha * standardized + beta
    torch.testing.assert_close(out.mean((2, 3)), 2.0 * standardized + 0.5, atol=1e-5, rtol=1e-5)
    # and the spatial spread is gamma times unit variance
    torch.testing.assert_close(out.var((2, 3), unbiased=False), torch.full((3, 4), 4.0), atol=1e-3, rtol=1e-3)


def test_gradients_reach_every_parameter():
    model = ScoreUNet(TINY)
    model(torch.randn(2, 1, 8, 8)).square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


@pytest.mark.parametrize("depth,num_blocks", [(0, 1), (1, 0), (1, 1), (2, 1), (2, 2), (3, 1)])
def test_receptive_field_is_the_window_the_gradient_reaches(depth, num_blocks):
    settings = UNetSettings(latent_channels=3, depth=depth, num_blocks=num_blocks)
    model = ScoreUNet(settings, generator=torch.Generator().manual_seed(0)).double().eval()
    for module in list(model.modules()):  # the norms' channel means reach everywhere: leave them out
        for name, child in list(module.named_children()):
            if isinstance(child, InstanceNormPlusPlus):
                setattr(module, name, torch.nn.Identity())
    widest = 0
    for offset in range(2**depth):  # every alignment with the coarsest grid
        x = torch.zeros(1, 1, 96, 96, dtype=torch.float64, requires_grad=True)
        model(x)[0, 0, 48 + offset, 40].backward()
        rows = (x.grad[0, 0].abs().sum(1) > 0).nonzero()[:, 0]
        widest = max(widest, int(rows.max() - rows.min()) + 1)
    assert widest == receptive_field(settings)
