"""Score functions and a field the sampler tests share (``test_fast_sampler``, ``test_few_step``)."""

from __future__ import annotations

import torch

from lgtutorial.grf.field import GaussianRandomField
from lgtutorial.synthetic import blobs


def gaussian_score(mean: float, std: float):
    """Exact score of N(mean, std^2) smoothed by noise of level sigma."""
    return lambda x, sigma: -(x - mean) / (std**2 + sigma**2)


class CountingScore:
    """A local score (pull toward the neighbours' mean) that counts its evaluations per sample."""

    def __init__(self):
        self.evaluations = 0

    def __call__(self, x, sigma):
        self.evaluations += x.shape[0]
        neighbours = torch.nn.functional.avg_pool2d(x, 3, 1, 1, count_include_pad=False)
        return (neighbours - x) / (0.05 + sigma**2)


def blob_field() -> GaussianRandomField:
    """A periodic 2-phase structure: features about 3 px across, 35 % phase 1."""
    return GaussianRandomField.from_microstructure(blobs(32, 1.4, fractions=(0.65, 0.35)))
