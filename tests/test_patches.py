"""Latin-hypercube patches, the train/test split and the patch dataset."""

from __future__ import annotations

import pytest
import torch

from lgtutorial.microstructure import labels_to_one_hot
from lgtutorial.score.patches import (
    PatchDataset,
    extract_patches,
    latin_hypercube_centres,
    make_patch_datasets,
    split_indices,
)


def _coded_image(height=30, width=40, n_phases=3):
    labels = (torch.arange(height)[:, None] * 7 + torch.arange(width)[None, :] * 3) % n_phases
    return labels, labels_to_one_hot(labels, n_phases=n_phases)


def test_centres_are_latin_hypercube_stratified_and_seeded():
    centres = latin_hypercube_centres((109, 109), n_patches=10, patch_size=10, seed=5)
    # 100 allowed positions per axis (5..104) in 10 strata of 10: one centre in each stratum
    for axis in range(2):
        strata = ((centres[:, axis] - 5) // 10).sort().values
        assert strata.tolist() == list(range(10))
    assert torch.equal(centres, latin_hypercube_centres((109, 109), n_patches=10, patch_size=10, seed=5))
    assert not torch.equal(centres, latin_hypercube_centres((109, 109), n_patches=10, patch_size=10, seed=6))


def test_non_periodic_patches_stay_inside_and_periodic_ones_may_wrap():
    centres = latin_hypercube_centres((30, 40), n_patches=200, patch_size=9, seed=0)
    assert centres[:, 0].min() >= 4 and centres[:, 0].max() <= 30 - 5
    assert centres[:, 1].min() >= 4 and centres[:, 1].max() <= 40 - 5
    wrapped = latin_hypercube_centres((30, 40), n_patches=200, patch_size=9, seed=0, periodic=True)
    assert wrapped[:, 0].min() < 4 or wrapped[:, 0].max() > 25


def test_extracted_patches_are_the_image_windows():
    labels, image = _coded_image()
    centres = torch.tensor([[10, 12], [4, 4], [25, 35]])
    patches = extract_patches(image, centres, patch_size=8)
    assert patches.shape == (3, 3, 8, 8)
    for patch, (row, col) in zip(patches, centres.tolist()):
        assert torch.equal(patch.argmax(0), labels[row - 4:row + 4, col - 4:col + 4])
    wrapped = extract_patches(image, torch.tensor([[0, 0]]), patch_size=4, periodic=True)
    expected = labels.roll((2, 2), dims=(0, 1))[:4, :4]
    assert torch.equal(wrapped[0].argmax(0), expected)
    with pytest.raises(ValueError, match="leave the 30x40 image"):
        extract_patches(image, torch.tensor([[1, 1]]), patch_size=8)


def test_split_is_disjoint_complete_and_85_15():
    train, test = split_indices(200, train_fraction=0.85, seed=1)
    assert len(train) == 170 and len(test) == 30
    assert sorted(torch.cat([train, test]).tolist()) == list(range(200))
    with pytest.raises(ValueError, match=r"train_fraction must be in \(0, 1\]"):
        split_indices(10, train_fraction=1.5)


def test_two_phase_patches_become_one_channel_and_three_phase_three():
    _, two = _coded_image(n_phases=2)
    split = make_patch_datasets(two, patch_size=8, n_patches=20, seed=0)
    assert (len(split.train), len(split.test)) == (17, 3)
    batch = split.train.batch([0, 1, 2])
    assert batch.shape == (3, 1, 8, 8) and batch.dtype == torch.float32
    assert torch.equal(batch[:, 0], split.train.one_hot([0, 1, 2])[:, 1])  # channel = phase 1
    _, three = _coded_image(n_phases=3)
    dataset = make_patch_datasets(three, patch_size=8, n_patches=20, seed=0).train
    assert dataset[0].shape == (3, 8, 8)
    assert torch.allclose(dataset.batch(range(len(dataset))).sum(1), torch.ones(1))


def test_dataset_validates_its_input():
    with pytest.raises(ValueError, match="expected one-hot values"):
        PatchDataset(torch.full((2, 2, 4, 4), 0.5))
    _, three = _coded_image(n_phases=3)
    with pytest.raises(ValueError, match="a 1-channel model cannot take a 3-phase microstructure"):
        PatchDataset(extract_patches(three, torch.tensor([[8, 8]]), patch_size=4), channels=1)


@pytest.mark.requires_data("nbsa-proxy")
def test_reference_patches_keep_its_volume_fraction():
    from lgtutorial.data import load_reference

    reference, meta = load_reference("nbsa-proxy")
    split = make_patch_datasets(reference, patch_size=40, n_patches=400, seed=0, periodic=meta["periodic"])
    fraction = split.train.batch(range(len(split.train))).mean().item()
    assert abs(fraction - reference[:, 1].mean().item()) < 0.02
