"""Training patches cut from one micrograph at Latin-hypercube positions (Robertson et al. 2023, Section 3.2).

The local model learns from many small windows of a single reference image: the authors cut
4000 patches of 40x40 from the 256x256 2-phase reference and 8000 of 64x64 from the 400x512
3-phase one, at centres drawn by Latin hypercube sampling (each row band and each column band of
the allowed range holds the same number of centres), and keep 85 % for training.

>>> centres = latin_hypercube_centres((64, 64), n_patches=8, patch_size=16, seed=0)
>>> centres.shape, bool((centres >= 8).all() and (centres <= 56).all())
(torch.Size([8, 2]), True)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from lgtutorial.microstructure import check_microstructure
from lgtutorial.score.channels import to_model_channels

__all__ = ["latin_hypercube_centres", "extract_patches", "split_indices", "PatchDataset", "PatchSplit",
           "make_patch_datasets"]


def latin_hypercube_centres(
    shape: tuple[int, int], *, n_patches: int, patch_size: int, seed: int = 0, periodic: bool = False
) -> torch.Tensor:
    """Integer patch centres ``(n_patches, 2)`` (row, column), spread by Latin hypercube sampling.

    A patch with centre ``c`` covers rows ``c - patch_size // 2`` to ``c - patch_size // 2 + patch_size - 1``.
    Non-periodic images keep every patch inside the image; periodic ones allow any centre (patches
    wrap around).
    """
    from scipy.stats import qmc

    height, width = shape
    if n_patches < 1:
        raise ValueError(f"n_patches must be at least 1, got {n_patches}")
    if not 1 <= patch_size <= min(height, width):
        raise ValueError(f"patch_size must be in 1..{min(height, width)} for a {height}x{width} image, got {patch_size}")
    try:
        sampler = qmc.LatinHypercube(d=2, rng=seed)
    except TypeError:  # scipy < 1.15
        sampler = qmc.LatinHypercube(d=2, seed=seed)
    unit = sampler.random(n_patches)
    half = patch_size // 2
    if periodic:
        low, counts = np.zeros(2, dtype=np.int64), np.array([height, width])
    else:
        low, counts = np.array([half, half]), np.array([height - patch_size + 1, width - patch_size + 1])
    centres = low + np.minimum(np.floor(unit * counts), counts - 1).astype(np.int64)
    return torch.from_numpy(centres)


def extract_patches(microstructure: torch.Tensor, centres: torch.Tensor, *, patch_size: int,
                    periodic: bool = False) -> torch.Tensor:
    """Cut square patches ``(n_patches, n_phases, patch_size, patch_size)`` from ``(1, N, H, W)``.

    Raises:
        ValueError: a non-periodic patch would leave the image.
    """
    microstructure = check_microstructure(microstructure)
    if microstructure.shape[0] != 1:
        raise ValueError(f"expected one micrograph (1, n_phases, H, W), got {tuple(microstructure.shape)}")
    image = microstructure[0]
    height, width = image.shape[1:]
    centres = torch.as_tensor(centres, dtype=torch.long)
    if centres.ndim != 2 or centres.shape[1] != 2:
        raise ValueError(f"centres must have shape (n_patches, 2), got {tuple(centres.shape)}")
    offsets = torch.arange(patch_size) - patch_size // 2
    rows = centres[:, 0, None] + offsets  # (n, p)
    cols = centres[:, 1, None] + offsets
    if periodic:
        rows, cols = rows % height, cols % width
    elif rows.min() < 0 or cols.min() < 0 or rows.max() >= height or cols.max() >= width:
        raise ValueError(f"some {patch_size}x{patch_size} patches leave the {height}x{width} image; "
                         "move the centres or pass periodic=True")
    rows, cols = rows.to(image.device), cols.to(image.device)
    return image[:, rows[:, :, None], cols[:, None, :]].movedim(1, 0)


def split_indices(n_items: int, *, train_fraction: float = 0.85, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded random split of ``range(n_items)`` into training and test indices."""
    if not 0.0 < train_fraction <= 1.0:
        raise ValueError(f"train_fraction must be in (0, 1], got {train_fraction}")
    order = torch.randperm(n_items, generator=torch.Generator().manual_seed(seed))
    n_train = max(1, int(round(train_fraction * n_items)))
    return order[:n_train], order[n_train:]


class PatchDataset(torch.utils.data.Dataset):
    """Patches of an N-phase micrograph as model inputs ``(C, p, p)``, stored compactly as labels.

    2-phase patches become one channel (phase 1, :func:`lgtutorial.score.channels.to_model_channels`);
    N > 2 phases become N channels.

    Args:
        patches: one-hot ``(n_patches, n_phases, p, p)``.
        channels: model channels (default: 1 for 2 phases, else ``n_phases``).
    """

    def __init__(self, patches: torch.Tensor, *, channels: int | None = None):
        patches = check_microstructure(patches)
        self.n_phases = patches.shape[1]
        self.channels = channels if channels is not None else (1 if self.n_phases == 2 else self.n_phases)
        to_model_channels(patches[:1], self.channels)  # validates the pairing early
        self.labels = patches.argmax(1).to(torch.uint8 if self.n_phases <= 255 else torch.int64).cpu()

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def patch_size(self) -> int:
        return int(self.labels.shape[-1])

    def one_hot(self, indices=None, *, device=None) -> torch.Tensor:
        """One-hot patches ``(n, n_phases, p, p)`` (all of them, or ``indices``)."""
        labels = self.labels
        if indices is not None:
            labels = labels[torch.as_tensor(indices, device=labels.device, dtype=torch.long)]
        labels = labels.to(device=device if device is not None else labels.device, dtype=torch.long)
        return torch.nn.functional.one_hot(labels, self.n_phases).movedim(-1, 1).to(torch.float32)

    def batch(self, indices, *, device=None) -> torch.Tensor:
        """Model inputs ``(len(indices), C, p, p)``, float32 on ``device``."""
        return to_model_channels(self.one_hot(indices, device=device), self.channels)

    def to(self, device) -> PatchDataset:
        """Keep the labels on ``device`` (e.g. the GPU, so batches are cut there); returns self."""
        self.labels = self.labels.to(device)
        return self

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.batch([index])[0]


@dataclass
class PatchSplit:
    """Training and test patches of one micrograph, and where they were cut."""

    train: PatchDataset
    test: PatchDataset
    centres: torch.Tensor
    """``(n_patches, 2)`` centres of all patches (training and test)"""


def make_patch_datasets(
    microstructure: torch.Tensor, *, patch_size: int, n_patches: int, train_fraction: float = 0.85,
    seed: int = 0, periodic: bool = False, channels: int | None = None,
) -> PatchSplit:
    """Latin-hypercube patches of one micrograph ``(1, N, H, W)``, split into training and test sets."""
    microstructure = check_microstructure(microstructure)
    centres = latin_hypercube_centres(tuple(microstructure.shape[-2:]), n_patches=n_patches,
                                      patch_size=patch_size, seed=seed, periodic=periodic)
    patches = extract_patches(microstructure, centres, patch_size=patch_size, periodic=periodic)
    train_index, test_index = split_indices(n_patches, train_fraction=train_fraction, seed=seed)
    return PatchSplit(PatchDataset(patches[train_index], channels=channels),
                      PatchDataset(patches[test_index], channels=channels), centres)
