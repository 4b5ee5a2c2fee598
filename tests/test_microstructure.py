import numpy as np
import pytest
import torch

from lgtutorial.microstructure import check_microstructure, labels_to_one_hot, one_hot_to_labels


def test_round_trip_2d_and_batched():
    labels = np.array([[0, 1, 2], [2, 2, 0]], dtype=np.uint8)
    one_hot = labels_to_one_hot(labels)
    assert one_hot.shape == (1, 3, 2, 3)
    assert torch.equal(one_hot.sum(1), torch.ones(1, 2, 3))
    assert one_hot_to_labels(one_hot)[0].tolist() == labels.tolist()
    batch = labels_to_one_hot(np.stack([labels, labels[::-1]]))
    assert batch.shape == (2, 3, 2, 3)
    assert one_hot_to_labels(batch)[1].tolist() == labels[::-1].tolist()


def test_3d_and_explicit_phase_count():
    labels = torch.zeros(4, 5, 6, dtype=torch.int64)
    labels[1, 2, 3] = 1
    cube = labels_to_one_hot(labels, spatial_dims=3, n_phases=4)
    assert cube.shape == (1, 4, 4, 5, 6)
    assert float(cube[0, 1].sum()) == 1.0 and float(cube[0, 2:].sum()) == 0.0


def test_whole_float_labels_are_accepted():
    assert labels_to_one_hot(np.array([[0.0, 1.0]])).shape == (1, 2, 1, 2)


@pytest.mark.parametrize(
    "labels, message",
    [
        (np.array([[0.5, 1.0]]), "non-integer"),
        (np.array([[np.nan, 1.0]]), "NaN"),
        (np.array([[-1, 1]]), ">= 0"),
        (np.zeros((2, 2, 2, 2), dtype=int), "label image of shape"),
        (np.zeros(5, dtype=int), "label image of shape"),
    ],
)
def test_bad_labels_are_rejected_with_a_clear_message(labels, message):
    with pytest.raises(ValueError, match=message):
        labels_to_one_hot(labels)


def test_too_few_phases_requested():
    with pytest.raises(ValueError, match="n_phases=2"):
        labels_to_one_hot([[0, 2]], n_phases=2)


@pytest.mark.parametrize(
    "array, message",
    [
        (torch.full((1, 2, 3, 3), 0.5), "one-hot values"),
        (torch.ones(1, 2, 3, 3), "sum to 1"),
        (torch.zeros(2, 3, 3), "shape"),
        (torch.tensor([[[[float("nan")]], [[1.0]]]]), "NaN"),
    ],
)
def test_check_microstructure_rejects(array, message):
    with pytest.raises(ValueError, match=message):
        check_microstructure(array)


def test_check_microstructure_accepts_numpy_integers():
    m = check_microstructure(np.eye(2, dtype=np.int64).reshape(1, 2, 1, 2))
    assert m.dtype == torch.float32


@pytest.mark.parametrize("height", [5, 4])
def test_top_and_bottom_halves_leave_out_the_last_row_of_an_odd_height(height):
    from lgtutorial.microstructure import top_and_bottom_halves

    rows = torch.arange(height)[:, None].expand(height, 3)  # row k holds phase k
    top, bottom = top_and_bottom_halves(labels_to_one_hot(rows, n_phases=height))
    assert one_hot_to_labels(top)[0, :, 0].tolist() == [0, 1]
    assert one_hot_to_labels(bottom)[0, :, 0].tolist() == [2, 3]  # 5 rows: the last, 4, is in neither half
    with pytest.raises(ValueError, match="H >= 6"):
        top_and_bottom_halves(labels_to_one_hot(rows, n_phases=height), min_height=6)
