import pytest
import torch

from lgtutorial.extrapolation import interpolated_field, resize_microstructure, statistics_row
from lgtutorial.grf import gaussian_smooth, segment_argmax
from lgtutorial.statistics import two_point_statistics, volume_fractions


def blobs(shape, sigma, seed, bias=0.0):
    noise = torch.randn((1, 2, *shape), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    noise = gaussian_smooth(noise, sigma)
    noise[:, 0] += bias
    return segment_argmax(noise)


def test_resize_keeps_one_hot_and_fractions_roughly():
    m = blobs((20, 30), 2.0, 0)
    big = resize_microstructure(m, (40, 60))
    assert big.shape == (1, 2, 40, 60) and torch.all(big.sum(1) == 1)
    assert torch.allclose(volume_fractions(big), volume_fractions(m), atol=1e-12)  # exact 2x
    with pytest.raises(ValueError, match="2 entries"):
        resize_microstructure(m, (40,))


def test_end_points_reproduce_each_reference():
    a, b = blobs((32, 32), 1.5, 1), blobs((24, 24), 3.0, 2, bias=0.3)
    for theta, expected in ((0.0, a), (1.0, resize_microstructure(b, (32, 32)))):
        field = interpolated_field(a, b, theta, dtype=torch.float64)
        raw = field.sample_raw(2048, generator=torch.Generator().manual_seed(3))
        mean = two_point_statistics(raw)[:, 0].mean(0)
        target = statistics_row(expected)
        assert float((mean - target).abs().max()) < 0.02
        assert torch.allclose(
            field.target_volume_fractions, volume_fractions(expected)[0].to(torch.float64), atol=1e-9
        )


def test_intermediate_theta_moves_between_references():
    a, b = blobs((32, 32), 1.0, 4), blobs((32, 32), 4.0, 5)
    rows = [interpolated_field(a, b, t, dtype=torch.float64) for t in (0.0, 0.5, 1.0)]
    # correlation length grows with theta: the autocorrelation at lag 3 rises monotonically
    lag3 = [float(torch.fft.ifftn(f.spectrum).real[3, 0]) for f in rows]
    assert lag3[0] < lag3[1] < lag3[2]


def test_mismatched_phases_are_rejected():
    a = blobs((8, 8), 1.0, 0)
    three = torch.nn.functional.one_hot(torch.zeros(1, 8, 8, dtype=torch.long), 3).movedim(-1, 1).float()
    with pytest.raises(ValueError, match="same phases"):
        interpolated_field(a, three, 0.5)
