"""Annealed Langevin, the truncated schedule, the periodic embedding and circular convolutions.

The tests that take ``device`` run on the CPU, the fake GPU and a real one where present (``tests/conftest.py``).
"""

import pytest
import torch

from lgtutorial.sampling.integrators import (
    annealed_langevin,
    crop_embedding,
    interior_mask,
    periodic_embed,
    refresh_embedding,
    with_circular_padding,
)
from lgtutorial.score.channels import from_model_channels, to_model_channels
from lgtutorial.score.schedules import geometric_sigmas, truncated_schedule
from tests.conftest import cpu_streams


def gaussian_score(mean: float, std: float):
    """Score of N(mean, std^2) smoothed by noise of level sigma."""
    return lambda x, sigma: -(x - mean) / (std**2 + sigma**2)


def local_score(x, sigma):
    """A local, non-periodic score: pull every pixel toward the mean of its 4 neighbours (zero padding)."""
    kernel = torch.tensor(
        [[0.0, 0.25, 0.0], [0.25, -1.0, 0.25], [0.0, 0.25, 0.0]], dtype=x.dtype, device=x.device
    )
    return torch.nn.functional.conv2d(x, kernel.view(1, 1, 3, 3), padding=1)


def test_zero_score_and_zero_noise_is_the_identity():
    x = torch.randn(2, 1, 5, 7, generator=torch.Generator().manual_seed(0))
    sigmas = geometric_sigmas(1.0, 0.01, 10)
    out = annealed_langevin(lambda y, sigma: torch.zeros_like(y), x, sigmas, noise_scale=0.0)
    assert torch.equal(out, x)
    assert out is not x  # the input is not modified in place


def test_langevin_samples_a_gaussian_with_the_right_mean_and_spread(device):
    # statistical: it holds on every device's random streams
    generator = torch.Generator(device=device).manual_seed(1)
    sigmas = geometric_sigmas(5.0, 0.01, 300, device=device)
    x = 5.0 * torch.randn(4000, generator=generator, device=device)
    out = annealed_langevin(gaussian_score(1.0, 0.5), x, sigmas, step_lr=1e-4, generator=generator)
    assert out.device.type == device.type
    assert float(out.mean()) == pytest.approx(1.0, abs=0.05)
    assert float(out.std()) == pytest.approx(0.5, rel=0.1)


def _seeded_run(device, callback=None) -> torch.Tensor:
    return annealed_langevin(gaussian_score(0.0, 1.0), torch.zeros(1, 1, 4, 4, device=device),
                             geometric_sigmas(1.0, 0.01, 6, device=device),
                             generator=torch.Generator(device=device).manual_seed(3), steps_per_level=2,
                             callback=callback)


def test_seeded_runs_repeat_and_the_callback_sees_every_step(device_kind, device):
    seen = []
    runs = [_seeded_run(device, seen.append) for _ in range(2)]
    assert torch.equal(runs[0], runs[1]) and runs[0].device.type == device.type
    assert len(seen) == 2 * 2 * 6
    assert {"i", "sigma", "x", "step_size"} <= set(seen[0])
    assert all(info["x"].device.type == info["sigma"].device.type == device.type for info in seen)
    if cpu_streams(device_kind):  # the fake GPU draws the CPU's numbers: the same run, bit for bit
        assert torch.equal(runs[0].cpu(), _seeded_run(torch.device("cpu")))


def test_shapes_dtypes_and_devices_are_preserved(device):
    x = torch.rand(3, 2, 8, 6, device=device, dtype=torch.float64)
    out = annealed_langevin(
        gaussian_score(0.5, 0.2),
        x,
        geometric_sigmas(1.0, 0.01, 5),
        generator=torch.Generator(device=device).manual_seed(0),
    )
    assert out.shape == x.shape and out.dtype == x.dtype and out.device == x.device
    embedded = periodic_embed(x, 2)
    assert embedded.shape == (3, 2, 12, 10) and embedded.device == x.device
    assert interior_mask((8, 6), 2, device=device).device.type == device.type


def test_bad_schedules_are_rejected():
    with pytest.raises(ValueError, match="non-empty 1-D"):
        annealed_langevin(gaussian_score(0, 1), torch.zeros(3), torch.zeros(2, 2))
    with pytest.raises(ValueError, match="same length"):
        annealed_langevin(gaussian_score(0, 1), torch.zeros(3), torch.ones(3), step_sizes=torch.ones(2))


def test_truncated_schedule_starts_near_sigma_c_and_ends_at_sigma_min():
    sigmas = truncated_schedule(20.0, 0.01, n_levels=1000, sigma_c=0.75)
    assert len(sigmas) == 568
    assert float(sigmas[0]) == pytest.approx(0.75, rel=0.01)
    assert float(sigmas[-1]) == pytest.approx(0.01, rel=1e-5)
    cheap = truncated_schedule(20.0, 0.01, n_levels=100, sigma_c=0.75)
    assert len(cheap) < 60 and float(cheap[0]) == pytest.approx(0.75, rel=0.05)
    assert len(truncated_schedule(20.0, 0.01, n_levels=50, sigma_c=None)) == 50
    with pytest.raises(ValueError, match="outside the model's noise schedule"):
        truncated_schedule(20.0, 0.01, sigma_c=25.0)


def test_periodic_embedding_continues_across_every_edge():
    x = torch.arange(2 * 1 * 5 * 6, dtype=torch.float32).view(2, 1, 5, 6)
    width = 2
    embedded = periodic_embed(x, width)
    assert torch.equal(crop_embedding(embedded, width), x)
    # the frame holds the periodic continuation: embedded[i, j] = x[(i - w) mod H, (j - w) mod W]
    rows = (torch.arange(9) - width) % 5
    cols = (torch.arange(10) - width) % 6
    assert torch.equal(embedded, x[:, :, rows][:, :, :, cols])
    spoiled = embedded.clone()
    spoiled[..., :width, :] = -1.0
    spoiled[..., :, -1] = 99.0
    assert torch.equal(refresh_embedding(spoiled, width), embedded)
    assert interior_mask((5, 6), width).sum() == 30
    with pytest.raises(ValueError, match="exceeds the domain"):
        periodic_embed(x, 6)


def test_embedding_makes_a_non_periodic_local_score_act_periodically(device_kind, device):
    """With the frame re-copied after every step, zero-padded convolutions see a periodic domain:
    the result equals running the same score with circular padding on the bare domain."""
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(2, 1, 12, 10, generator=generator).to(device)
    sigmas = geometric_sigmas(1.0, 0.01, 20, device=device)

    def circular_score(y, sigma):
        return local_score(torch.nn.functional.pad(y, (1, 1, 1, 1), mode="circular"), sigma)[..., 1:-1, 1:-1]

    width = 3
    embedded = annealed_langevin(
        local_score,
        periodic_embed(x, width),
        sigmas,
        step_lr=1e-3,
        noise_scale=0.0,
        project=lambda y: refresh_embedding(y, width),
    )
    reference = annealed_langevin(circular_score, x, sigmas, step_lr=1e-3, noise_scale=0.0)
    plain = annealed_langevin(local_score, x, sigmas, step_lr=1e-3, noise_scale=0.0)
    torch.testing.assert_close(crop_embedding(embedded, width), reference)
    assert not torch.allclose(plain, reference, atol=1e-3)  # without the embedding the edges differ
    assert embedded.device.type == reference.device.type == device.type
    if device_kind == "fake-cuda":  # no noise: the same CPU kernels give the CPU's numbers
        cpu = annealed_langevin(local_score, periodic_embed(x.cpu(), width), sigmas.cpu(), step_lr=1e-3,
                                noise_scale=0.0, project=lambda y: refresh_embedding(y, width))
        assert torch.equal(embedded.cpu(), cpu)


def test_circular_padding_copy_is_shift_equivariant_and_leaves_the_original_alone():
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 3, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(3, 1, 3, padding=1)
    )
    periodic = with_circular_padding(model)
    assert all(m.padding_mode == "zeros" for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    assert all(m.padding_mode == "circular" for m in periodic.modules() if isinstance(m, torch.nn.Conv2d))
    x = torch.rand(1, 1, 8, 8)
    shifted = torch.roll(x, shifts=(3, -2), dims=(2, 3))
    with torch.no_grad():
        torch.testing.assert_close(periodic(shifted), torch.roll(periodic(x), shifts=(3, -2), dims=(2, 3)))
        assert not torch.allclose(
            model(shifted), torch.roll(model(x), shifts=(3, -2), dims=(2, 3)), atol=1e-4
        )
    with pytest.raises(TypeError, match="torch.nn.Module"):
        with_circular_padding(lambda y: y)


def test_model_channels_round_trip_and_reject_mismatches():
    one_hot = torch.nn.functional.one_hot(torch.randint(0, 2, (2, 4, 4)), 2).movedim(-1, 1).float()
    assert torch.equal(from_model_channels(to_model_channels(one_hot, 1), 2), one_hot)
    with pytest.raises(ValueError, match="3-channel model cannot take a 2-phase"):
        to_model_channels(one_hot, 3)
