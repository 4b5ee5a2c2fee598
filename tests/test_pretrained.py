"""The converter for the authors' checkpoints, checked against an independent forward pass."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional

from lgtutorial.evaluation.training_report import sample_unconditional
from lgtutorial.score.authors import convert_authors_state_dict
from lgtutorial.score.registry import load_authors_checkpoint
from lgtutorial.score.schedules import langevin_step_sizes, subsample


# -- an independent forward pass that reads the authors' keys directly ----------------------------
def _norm(state, prefix, x):
    """InstanceNorm++ as defined for NCSN, written out by hand."""
    channel_means = x.mean(dim=(2, 3))
    spread = channel_means.var(dim=1, unbiased=True, keepdim=True)
    relative = (channel_means - channel_means.mean(dim=1, keepdim=True)) / torch.sqrt(spread + 1e-5)
    centred = x - channel_means[..., None, None]
    variance = centred.square().mean(dim=(2, 3), keepdim=True)
    h = centred / torch.sqrt(variance + 1e-5)
    h = h + state[prefix + "norm.alpha"][None, :, None, None] * relative[..., None, None]
    return state[prefix + "norm.gamma"][None, :, None, None] * h + state[prefix + "norm.beta"][None, :, None, None]


def _layer(state, prefix, x, *, kind="conv"):
    weight, bias = state[prefix + "conv.weight"], state[prefix + "conv.bias"]
    if kind == "transposed":
        x = functional.conv_transpose2d(x, weight, bias, stride=2)
    elif kind == "down":
        x = functional.conv2d(x, weight, bias, stride=2)
    else:
        x = functional.conv2d(x, weight, bias, padding=weight.shape[-1] // 2)
    if prefix + "norm.alpha" not in state:  # the last layer: no norm, no activation
        return x
    x = _norm(state, prefix, x)
    return functional.prelu(x, state[prefix + "activation.weight"])


def authors_forward(state, x, sigma):
    """The published V-Net (initial -> [skip, down]* -> skip -> [up, cat, combine]* -> final) / sigma."""
    state = {k.replace("module.module.", ""): v.float() for k, v in state.items() if k != "n_averaged"}

    def count(name):
        return len({k.split(".")[1] for k in state if k.startswith(name + ".")})

    depth = count("down_unit")
    for k in range(count("initial")):
        x = _layer(state, f"initial.{k}.", x)
    kept = []
    for k in range(depth + 1):
        inner = sorted({int(key.split(".")[3]) for key in state if key.startswith(f"skip_unit.{k}.model.")})
        skip = x
        for i in inner:
            skip = _layer(state, f"skip_unit.{k}.model.{i}.", skip)
        if k == depth:
            x = skip
        else:
            kept.append(skip)
            x = _layer(state, f"down_unit.{k}.", x, kind="down")
    for k in reversed(range(depth)):
        x = _layer(state, f"up_unit.{k}.", x, kind="transposed")
        x = _layer(state, f"combiner_unit.{k}.", torch.cat([x, kept[k]], dim=1), kind="conv")
    for k in range(count("final")):
        x = _layer(state, f"final.{k}.", x)
    return x / sigma


def synthetic_authors_state(channels, latent, depth, blocks, *, dropout_layer=True, seed=0):
    """A random state dict in the authors' layout (as for their 3-phase model)."""
    generator = torch.Generator().manual_seed(seed)

    def block(prefix, out, inp, kernel, transposed=False, norm=True):
        shape = (inp, out, kernel, kernel) if transposed else (out, inp, kernel, kernel)
        entries = {prefix + "conv.weight": torch.randn(shape, generator=generator) * 0.3,
                   prefix + "conv.bias": torch.randn(out, generator=generator) * 0.1}
        if norm:
            entries[prefix + "activation.weight"] = torch.rand(out, generator=generator) * 0.5
            for leaf, centre in (("alpha", 1.0), ("gamma", 1.0), ("beta", 0.0)):
                entries[prefix + f"norm.{leaf}"] = centre + 0.1 * torch.randn(out, generator=generator)
        return entries

    state = {"n_averaged": torch.tensor(7), "sigmas": torch.logspace(torch.log10(torch.tensor(50.0)), -2, 1000,
                                                                     dtype=torch.float64)}
    state.update(block("initial.0.", latent, channels, 3))
    for k in range(blocks):
        state.update(block(f"initial.{k + 1}.", latent, latent, 3))
        state.update(block(f"final.{k}.", latent, latent, 3))
    state.update(block(f"final.{blocks}.", channels, latent, 3, norm=False))
    second = 2 if dropout_layer else 1
    for k in range(depth + 1):
        state.update(block(f"skip_unit.{k}.model.0.", latent, latent, 3))
        state.update(block(f"skip_unit.{k}.model.{second}.", latent, latent, 3))
    for k in range(depth):
        state.update(block(f"down_unit.{k}.", latent, latent, 2))
        state.update(block(f"up_unit.{k}.", latent, latent, 2, transposed=True))
        state.update(block(f"combiner_unit.{k}.", latent, 2 * latent, 1))
    return {"module.module." + k if k != "n_averaged" else k: v for k, v in state.items()}


# -- tests -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def authors_state():
    from lgtutorial.data import fetch

    return torch.load(fetch("nbsa-authors-checkpoint"), map_location="cpu", weights_only=True)


@pytest.mark.requires_data("nbsa-authors-checkpoint")
def test_authors_case1_model_converts_to_the_same_function(authors_state):
    model, sigmas = load_authors_checkpoint("nbsa-authors-checkpoint")
    s = model.settings
    assert (s.channels, s.latent_channels, s.depth, s.num_blocks) == (1, 40, 1, 1)
    assert 100_000 < model.n_parameters < 110_000
    assert sigmas.shape == (1000,) and sigmas[0].item() == pytest.approx(20.0) and sigmas[-1].item() == pytest.approx(0.01)
    x = torch.rand(2, 1, 40, 40, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = authors_forward(authors_state, x, 0.75)
        torch.testing.assert_close(model.score(x, 0.75), expected, atol=1e-5, rtol=1e-4)
    assert expected.abs().mean() > 1e-2  # a non-trivial output


def test_three_phase_family_member_without_dropout_layer_converts():
    state = synthetic_authors_state(3, 8, 3, 1, dropout_layer=False)
    model, sigmas = convert_authors_state_dict(state)
    s = model.settings
    assert (s.channels, s.latent_channels, s.depth, s.num_blocks, s.dropout) == (3, 8, 3, 1, 0.0)
    assert sigmas.dtype == torch.float32 and sigmas[0].item() == pytest.approx(50.0)
    x = torch.rand(2, 3, 24, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(model.score(x, 2.0), authors_forward(state, x, 2.0), atol=1e-4, rtol=1e-4)


def test_two_blocks_and_unprefixed_keys_convert():
    state = {k.replace("module.module.", ""): v for k, v in synthetic_authors_state(2, 5, 2, 2, seed=3).items()}
    model, _ = convert_authors_state_dict(state)
    assert (model.settings.num_blocks, model.settings.depth, model.settings.dropout) == (2, 2, 0.1)
    x = torch.rand(1, 2, 12, 12)
    with torch.no_grad():
        torch.testing.assert_close(model(x), authors_forward(state, x, 1.0), atol=1e-4, rtol=1e-4)


def test_wrong_checkpoints_give_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="expected a state dict"):
        convert_authors_state_dict(torch.zeros(3))
    with pytest.raises(ValueError, match="not a checkpoint of the authors' score U-Net.*initial.0.conv.weight"):
        convert_authors_state_dict({"layer.weight": torch.zeros(2, 2)})
    state = synthetic_authors_state(1, 4, 1, 1)
    state["module.module.combiner_unit.0.conv.weight"] = torch.zeros(4, 6, 1, 1)
    with pytest.raises(ValueError, match=r"merges.0.conv.weight has shape \(4, 6, 1, 1\)"):
        convert_authors_state_dict(state)
    state = synthetic_authors_state(1, 4, 1, 1)
    del state["module.module.up_unit.0.conv.weight"]
    with pytest.raises(ValueError, match="missing"):
        convert_authors_state_dict(state)
    state = synthetic_authors_state(1, 4, 2, 1)
    state = {k: v for k, v in state.items() if "skip_unit.2." not in k}
    with pytest.raises(ValueError, match="2 'skip_unit' entries for 2 down-sampling levels"):
        convert_authors_state_dict(state)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="junk.pth: could not read it"):
        load_authors_checkpoint(junk)
    with pytest.raises(FileNotFoundError, match="neither a registered checkpoint"):
        load_authors_checkpoint(tmp_path / "missing.pth")


def test_micrograph_name_is_not_a_checkpoint():
    with pytest.raises(ValueError, match="'nbsa-proxy' is a micrograph, not a checkpoint"):
        load_authors_checkpoint("nbsa-proxy")


def _interface_density(one_hot):
    """Share of neighbouring pixel pairs (x and y) that lie in different phases."""
    labels = one_hot.argmax(1)
    return 0.5 * ((labels[:, 1:] != labels[:, :-1]).float().mean() + (labels[:, :, 1:] != labels[:, :, :-1]).float().mean())


@pytest.mark.requires_data("nbsa-authors-checkpoint", "nbsa-proxy")
def test_converted_model_samples_have_the_reference_statistics():
    # Kept cheap: the levels above sigma = 3 only turn noise into other noise (the data lie in
    # [0, 1]), so start there, keep 40 of the remaining levels and take 5x the paper's steps
    # (eps_i / sigma_i^2 = 1). Measured: vf 0.365 / 0.368 for two seeds, interface density
    # 0.16; the full 1000 levels gave vf 0.39 (8 samples of 48x48); a randomly initialized
    # network gives vf 0.83, interface density 0.27. The stand-in reference is a sample of this model.
    from lgtutorial.data import load_reference
    from lgtutorial.score.schedules import truncate

    reference, _ = load_reference("nbsa-proxy")
    model, sigmas = load_authors_checkpoint()
    short = subsample(truncate(sigmas, 3.0), 40)
    samples = sample_unconditional(model, n_samples=4, shape=(40, 40), sigmas=short,
                                   step_sizes=langevin_step_sizes(short, 2e-5) * 5,
                                   generator=torch.Generator().manual_seed(0))
    assert samples.shape == (4, 2, 40, 40)
    fraction = samples[:, 1].mean().item()
    assert abs(fraction - 0.3726) < 0.05, fraction
    # precipitates of the right size: the interface density (0.154 in the reference) is that of
    # compact particles, not of noise (~0.5) or of a uniform field (0)
    assert abs(_interface_density(samples) - _interface_density(reference)) < 0.03
