"""2-point statistics against brute-force sums, and the identities they must satisfy."""

import itertools

import numpy as np
import pytest
import torch

from lgtutorial.microstructure import labels_to_one_hot
from lgtutorial.statistics.two_point import centre, two_point_statistics, volume_fractions

from .conftest import random_labels


def brute_force_periodic(m, a, b, shift):
    """(1/S) sum_x m_a(x) m_b(x + r) with indices wrapping."""
    rolled = np.roll(m[b], [-s for s in shift], axis=tuple(range(m[b].ndim)))
    return float((m[a] * rolled).sum() / m[a].size)


def brute_force_non_periodic(m, a, b, shift, mask=None):
    """Average of m_a(x) m_b(x + r) over the pairs with both ends inside the (masked) image."""
    spatial = m.shape[1:]
    if mask is None:
        mask = np.ones(spatial)
    total, pairs = 0.0, 0.0
    for x in itertools.product(*[range(n) for n in spatial]):
        y = tuple(xi + si for xi, si in zip(x, shift))
        if all(0 <= yi < n for yi, n in zip(y, spatial)):
            weight = mask[x] * mask[y]
            total += weight * m[a][x] * m[b][y]
            pairs += weight
    return total / pairs


def test_periodic_matches_brute_force(small_three_phase):
    f = two_point_statistics(small_three_phase)
    assert f.shape == (3, 3, 3, 7, 9)
    m = small_three_phase[1].numpy()
    for a, b, shift in [(0, 0, (0, 0)), (0, 1, (2, 3)), (2, 1, (-3, 4)), (1, 2, (6, -1))]:
        expected = brute_force_periodic(m, a, b, shift)
        assert float(f[1, a, b, shift[0] % 7, shift[1] % 9]) == pytest.approx(expected, abs=1e-12)


def test_non_periodic_matches_brute_force(small_three_phase):
    f = two_point_statistics(small_three_phase, periodic=False)
    assert f.shape == (3, 3, 3, 13, 17)
    m = small_three_phase[2].numpy()
    for a, b, shift in [(0, 0, (0, 0)), (0, 1, (2, 3)), (2, 1, (-3, 4)), (1, 2, (6, -8))]:
        expected = brute_force_non_periodic(m, a, b, shift)
        assert float(f[2, a, b, shift[0] % 13, shift[1] % 17]) == pytest.approx(expected, abs=1e-12)


def test_non_periodic_with_mask_matches_brute_force(small_three_phase):
    mask = (random_labels((7, 9), 4, seed=3) > 0).double()
    f = two_point_statistics(small_three_phase, periodic=False, mask=mask)
    m = small_three_phase[0].numpy()
    for a, b, shift in [(0, 0, (0, 0)), (1, 2, (1, -2)), (2, 0, (-4, 5))]:
        expected = brute_force_non_periodic(m * mask.numpy(), a, b, shift, mask.numpy())
        assert float(f[0, a, b, shift[0] % 13, shift[1] % 17]) == pytest.approx(expected, abs=1e-12)


def test_cutoff_keeps_fft_order_and_values(small_three_phase):
    full = two_point_statistics(small_three_phase, periodic=False)
    cut = two_point_statistics(small_three_phase, periodic=False, cutoff=2)
    assert cut.shape[-2:] == (5, 5)
    for i, j in itertools.product(range(-2, 3), repeat=2):
        assert torch.equal(cut[..., i % 5, j % 5], full[..., i % 13, j % 17])


def test_identities(small_three_phase):
    f = two_point_statistics(small_three_phase)
    v = volume_fractions(small_three_phase)
    # f_aa(0) = v_a
    assert torch.allclose(torch.diagonal(f[..., 0, 0], dim1=1, dim2=2), v)
    # f_ab(r) = f_ba(-r)
    flipped = torch.roll(torch.flip(f, dims=(-2, -1)), shifts=(1, 1), dims=(-2, -1))
    assert torch.allclose(f, flipped.transpose(1, 2))
    # every row sums to v_a at every lag
    assert torch.allclose(f.sum(2), v[:, :, None, None].expand_as(f.sum(2)))


def test_long_range_limit_on_a_large_random_field():
    labels = random_labels((512, 512), 3, seed=1)
    m = labels_to_one_hot(labels, dtype=torch.float64)
    f = centre(two_point_statistics(m))[0]
    v = volume_fractions(m)[0]
    far = f[..., 256 - 200, 256 + 150]  # a lag of (-200, 150) pixels: uncorrelated
    assert torch.allclose(far, torch.outer(v, v), atol=5e-3)
    assert not torch.allclose(f[..., 256, 256], torch.outer(v, v), atol=5e-3)  # but not at the origin


def test_three_dimensional():
    m = labels_to_one_hot(random_labels((4, 5, 6), 2, seed=2), spatial_dims=3, dtype=torch.float64)
    f = two_point_statistics(m)
    assert f.shape == (1, 2, 2, 4, 5, 6)
    assert float(f[0, 1, 0, 1, 2, 3]) == pytest.approx(brute_force_periodic(m[0].numpy(), 1, 0, (1, 2, 3)))
    g = two_point_statistics(m, periodic=False)
    assert g.shape == (1, 2, 2, 7, 9, 11)
    assert float(g[0, 0, 1, 1, -2 % 9, 3]) == pytest.approx(
        brute_force_non_periodic(m[0].numpy(), 0, 1, (1, -2, 3))
    )


def test_float32_agrees_with_float64(small_three_phase):
    f64 = two_point_statistics(small_three_phase, periodic=False)
    f32 = two_point_statistics(small_three_phase.float(), periodic=False)
    assert f32.dtype == torch.float32
    assert torch.allclose(f32.double(), f64, atol=1e-6)


def test_numpy_input_and_errors():
    m = np.eye(2).reshape(1, 2, 1, 2)
    assert two_point_statistics(m).shape == (1, 2, 2, 1, 2)
    with pytest.raises(ValueError, match="n_samples, n_phases, H, W"):
        two_point_statistics(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="non-periodic"):
        two_point_statistics(m, mask=np.ones((1, 2)))
    with pytest.raises(ValueError, match="mask must have shape"):
        two_point_statistics(m, periodic=False, mask=np.ones((3, 3)))


def test_centre_puts_zero_lag_in_the_middle(small_three_phase):
    f = two_point_statistics(small_three_phase)
    c = centre(f)
    assert torch.equal(c[..., 3, 4], f[..., 0, 0])


def test_contact_chances_see_an_exclusion_and_match_counting(small_three_phase):
    from lgtutorial.statistics.two_point import contact_chances

    # rows 0 0 1 1 0 0 2 2: phases 1 and 2 never closer than 3 px along x, never neighbours along y
    kept_apart = labels_to_one_hot([[[0, 0, 1, 1, 0, 0, 2, 2]] * 8])
    chances = contact_chances(kept_apart, periodic=True, lags=(1, 2, 3))
    assert chances[(1, 2)][:2] == [0.0, 0.0] and chances[(1, 2)][2] > 0 and chances[(1, 0)][0] > 0
    # against a count over pixels, in 2D and 3D, periodic
    cubes = torch.randint(0, 3, (2, 7, 7, 7), generator=torch.Generator().manual_seed(1))
    for m in (small_three_phase, torch.nn.functional.one_hot(cubes, 3).movedim(-1, 1)):
        m = torch.as_tensor(m).double()
        n_spatial = m.ndim - 2
        got = contact_chances(m, periodic=True, lags=(1, 2))
        for (a, b), values in got.items():
            for r, value in zip((1, 2), values):
                hits = sum(float((m[:, a] * torch.roll(m[:, b], shifts=-sign * r, dims=1 + axis)).sum())
                           for axis in range(n_spatial) for sign in (1, -1))
                assert value == pytest.approx(hits / (2 * n_spatial) / float(m[:, a].sum()))
    with pytest.raises(ValueError, match="lags must be between 1 and 3 px"):
        contact_chances(kept_apart, periodic=True, lags=(4,))


# -- the non-periodic FFT length and round-off (issue #38) -----------------------------------------
def padded_by_2l_minus_1(m, mask=None):
    """Non-periodic 2-point statistics as first written: NumPy, float64, every axis zero-padded to 2 L - 1."""
    m = np.asarray(m, dtype=np.float64)
    spatial = m.shape[2:]
    axes = tuple(range(2, m.ndim))
    shape = tuple(2 * s - 1 for s in spatial)
    weights = np.ones((1, 1, *spatial)) if mask is None else np.asarray(mask, dtype=np.float64)[None, None]
    m = m * weights
    fm = np.fft.rfftn(m, s=shape, axes=axes)
    f = np.fft.irfftn(np.conj(fm)[:, :, None] * fm[:, None], s=shape, axes=tuple(a + 1 for a in axes))
    fw = np.fft.rfftn(weights, s=shape, axes=axes)
    pairs = np.round(np.fft.irfftn(np.conj(fw) * fw, s=shape, axes=axes))[:, :, None]
    return np.where(pairs > 0, f / np.maximum(pairs, 1), np.nan)  # NaN: a lag without pairs (mask)


def test_fast_fft_size_is_the_smallest_product_of_2_3_and_5_not_below_n():
    import scipy.fft

    from lgtutorial.statistics.two_point import fast_fft_size

    for n in range(1, 1200):
        size = fast_fft_size(n)
        assert size == scipy.fft.next_fast_len(n, real=True)
        assert size >= n
        rest = size
        for prime in (2, 3, 5):
            while rest % prime == 0:
                rest //= prime
        assert rest == 1
    assert [fast_fft_size(2 * side - 1) for side in (256, 201, 37)] == [512, 405, 75]  # not 511, 401, 73
    with pytest.raises(ValueError, match="at least 1"):
        fast_fft_size(0)


@pytest.mark.parametrize("spatial", [(37, 50), (9, 12, 7)])
def test_non_periodic_statistics_are_those_of_the_2l_minus_1_padding(spatial):
    # every axis here pads to a fast size other than 2 L - 1 (73 -> 75, 99 -> 100; 17 -> 18, 23 -> 24, 13 -> 15)
    generator = torch.Generator().manual_seed(4)
    fields = [torch.rand((2, 3, *spatial), generator=generator, dtype=torch.float64),  # continuous
              labels_to_one_hot(torch.randint(0, 3, (2, *spatial), generator=generator), n_phases=3,
                                spatial_dims=len(spatial), dtype=torch.float64)]
    for m in fields:
        f = two_point_statistics(m, periodic=False)
        assert f.shape == (2, 3, 3, *(2 * s - 1 for s in spatial))
        assert np.allclose(f.numpy(), padded_by_2l_minus_1(m.numpy()), rtol=0, atol=1e-12)
    mask = (torch.rand(spatial, generator=generator) > 0.3).double()
    expected = padded_by_2l_minus_1(fields[1].numpy(), mask.numpy())
    got = two_point_statistics(fields[1], periodic=False, mask=mask).numpy()
    assert np.isnan(got).any() and np.array_equal(np.isnan(got), np.isnan(expected))  # lags without pairs
    assert np.allclose(got[np.isfinite(got)], expected[np.isfinite(got)], rtol=0, atol=1e-12)


@pytest.mark.parametrize("spatial", [(5, 7), (64, 48), (256, 256), (12, 10, 9)])
def test_non_periodic_float32_stays_in_0_1_and_equals_float64(spatial):
    generator = torch.Generator().manual_seed(sum(spatial))
    labels = torch.randint(0, 2, (1, *spatial), generator=generator)
    m = labels_to_one_hot(labels, spatial_dims=len(spatial))  # float32, 0/1
    f = two_point_statistics(m, periodic=False)
    expected = padded_by_2l_minus_1(m.double().numpy())  # float64, unclamped
    assert f.dtype == torch.float32
    assert float(f.min()) >= 0.0 and float(f.max()) <= 1.0  # at every lag, a single pair's included
    assert np.abs(f.double().numpy() - expected).max() < 1e-6
    if spatial == (64, 48):  # the same with a mask, whose lags have fewer pairs still
        mask = (torch.rand(spatial, generator=generator) > 0.5).float()
        g = two_point_statistics(m, periodic=False, mask=mask)
        expected = padded_by_2l_minus_1(m.double().numpy(), mask.double().numpy())
        finite = torch.isfinite(g)
        assert float(g[finite].min()) >= 0.0 and float(g[finite].max()) <= 1.0
        assert np.abs(g[finite].double().numpy() - expected[finite.numpy()]).max() < 1e-6


def test_non_periodic_statistics_of_a_field_beyond_0_1_are_not_clamped():
    m = torch.randn((1, 2, 20, 30), generator=torch.Generator().manual_seed(5))  # float32, signed
    f = two_point_statistics(m, periodic=False)
    expected = padded_by_2l_minus_1(m.double().numpy())
    assert float(f.min()) < -0.5 and float(f.max()) > 1.5  # the products of signed values, left as they are
    assert np.allclose(f.double().numpy(), expected, rtol=1e-5, atol=1e-5)


def test_non_periodic_three_point_statistics_in_float32_stay_in_0_1_and_equal_float64():
    # float32 FFTs left values 1.3e-4 below 0 at lags with few valid triples (128 px, two samples)
    from lgtutorial.statistics.higher_order import three_point_statistics

    generator = torch.Generator().manual_seed(0)
    m = labels_to_one_hot((torch.rand(2, 128, 128, generator=generator) < 0.4).long())
    shifts = [(0, 1), (3, 2)]
    f = three_point_statistics(m, periodic=False, first_displacements=shifts)
    exact = three_point_statistics(m.double(), periodic=False, first_displacements=shifts)
    finite = torch.isfinite(f)
    assert f.dtype == torch.float32 and exact.dtype == torch.float64
    assert float(f[finite].min()) >= 0.0 and float(f[finite].max()) <= 1.0
    assert torch.equal(finite, torch.isfinite(exact))
    assert float((f[finite].double() - exact[finite]).abs().max()) < 1e-6
