import pytest
import torch

from lgtutorial.grf.field import statistics_row
from lgtutorial.grf.interpolation import interpolated_field, resize_microstructure
from lgtutorial.statistics.two_point import two_point_statistics, volume_fractions
from lgtutorial.synthetic import blobs


def test_resize_keeps_one_hot_and_fractions_roughly():
    m = blobs((20, 30), 2.0, 0).double()
    big = resize_microstructure(m, (40, 60))
    assert big.shape == (1, 2, 40, 60) and torch.all(big.sum(1) == 1)
    assert torch.allclose(volume_fractions(big), volume_fractions(m), atol=1e-12)  # exact 2x
    with pytest.raises(ValueError, match="2 entries"):
        resize_microstructure(m, (40,))


def test_end_points_reproduce_each_reference():
    a, b = blobs((32, 32), 1.5, 1).double(), blobs((24, 24), 3.0, 2, fractions=(0.7, 0.3)).double()
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
    a, b = blobs((32, 32), 1.0, 4).double(), blobs((32, 32), 4.0, 5).double()
    rows = [interpolated_field(a, b, t, dtype=torch.float64) for t in (0.0, 0.5, 1.0)]
    # correlation length grows with theta: the autocorrelation at lag 3 rises monotonically
    lag3 = [float(torch.fft.ifftn(f.spectrum).real[3, 0]) for f in rows]
    assert lag3[0] < lag3[1] < lag3[2]


def test_mismatched_phases_are_rejected():
    a = blobs((8, 8), 1.0, 0).double()
    three = torch.nn.functional.one_hot(torch.zeros(1, 8, 8, dtype=torch.long), 3).movedim(-1, 1).float()
    with pytest.raises(ValueError, match="same phases"):
        interpolated_field(a, three, 0.5)


def test_local_volume_fractions_match_brute_force():
    from lgtutorial.grf.interpolation import local_volume_fractions

    m = blobs((12, 10), 1.0, 7).double()
    window = 4
    periodic = local_volume_fractions(m, window=window)
    valid = local_volume_fractions(m, window=window, periodic=False, stride=2)
    assert periodic.shape == (1, 12, 10) and valid.shape == (1, 5, 4)
    phase = m[0, 1]
    for i in range(12):
        for j in range(10):
            rolled = phase.roll((-i, -j), dims=(0, 1))[:window, :window]
            assert abs(float(periodic[0, i, j]) - float(rolled.mean())) < 1e-12
    assert abs(float(valid[0, 2, 3]) - float(phase[4:8, 6:10].mean())) < 1e-12
    # every pixel lies in window^2 periodic neighbourhoods: their mean is the global fraction
    assert abs(float(periodic.mean()) - float(volume_fractions(m)[0, 1])) < 1e-12


def test_local_volume_fractions_validation():
    from lgtutorial.grf.interpolation import local_volume_fractions

    m = blobs((8, 8), 1.0, 0).double()
    with pytest.raises(ValueError, match="larger than the domain"):
        local_volume_fractions(m, window=9)
    with pytest.raises(ValueError, match="phase must be in 0..1"):
        local_volume_fractions(m, phase=2, window=2)
    with pytest.raises(ValueError, match="stride must be a positive integer"):
        local_volume_fractions(m, window=2, stride=0)


def test_two_point_error_separates_short_and_long_range():
    from lgtutorial.grf.interpolation import two_point_error

    m = blobs((16, 16), 1.5, 3).double()
    own = statistics_row(m)
    assert float(two_point_error(m, own).max()) < 1e-12
    shifted = own.clone()
    lag = torch.fft.fftfreq(16, d=1.0 / 16).abs()
    far = (lag[:, None] ** 2 + lag[None, :] ** 2).sqrt() > 4
    shifted[:, far] += 0.01  # the target differs only beyond 4 px
    assert float(two_point_error(m, shifted, max_lag=4)) < 1e-12
    assert abs(float(two_point_error(m, shifted, min_lag=4.5)) - 0.01) < 1e-9
    with pytest.raises(ValueError, match="same grid"):
        two_point_error(m, own[:, :8])
    with pytest.raises(ValueError, match="no lag lies"):
        two_point_error(m, own, min_lag=100)


def test_normalised_two_point_error_ignores_a_volume_fraction_offset():
    from lgtutorial.grf.interpolation import two_point_error

    lean = blobs((24, 24), 1.5, 8, fractions=(0.67, 0.33)).double()
    # the same features with every precipitate grown by one pixel: more phase 1, similar shape
    grown = lean.clone()
    grown[:, 1] = torch.nn.functional.max_pool2d(lean[:, 1:2], 3, stride=1, padding=1)[:, 0]
    grown[:, 0] = 1 - grown[:, 1]
    target = statistics_row(lean)
    c = two_point_error(lean, target, normalise=True)
    assert float(c) < 1e-12
    # c_pp(0) = 1 and c_pn(0) = -1 on both sides: lag zero never differs
    assert float(two_point_error(grown, target, normalise=True, max_lag=0)) < 1e-12
    assert float(two_point_error(grown, target, max_lag=0)) > 0.05
    smooth = blobs((24, 24), 4.0, 8, fractions=(0.67, 0.33)).double()  # other features: the shapes differ
    assert float(two_point_error(smooth, target, normalise=True, max_lag=3)) > 0.05
