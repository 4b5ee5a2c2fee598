"""``lgtutorial.generate``: the library function behind ``lgtutorial generate`` (the CLI only adds files)."""

from __future__ import annotations

import pytest
import torch

import lgtutorial as lg
from lgtutorial.sampling.settings import HybridSettings


def test_generate_with_no_arguments_uses_the_default_model_and_its_statistics():
    torch.set_num_threads(min(2, torch.get_num_threads()))
    result = lg.generate(n_samples=1, size=32, progress=False, seed=3)
    assert result.model == lg.generation.DEFAULT_MODEL and result.material is not None
    assert result.samples.microstructures.shape == (1, 2, 32, 32)
    assert result.shape == (32, 32) and result.reference is None
    achieved = float(result.samples.achieved_volume_fractions[0, 1])
    assert abs(achieved - float(result.material.volume_fractions[1])) < 0.1
    assert result.generator.evaluations >= result.generator.evaluations_per_sample


def test_generate_takes_settings_and_overrides_and_refuses_unknown_ones():
    base = HybridSettings(n_samples=1, size=32)
    with pytest.raises(TypeError, match="unknown settings"):
        lg.generate(base, sampels=2)
    with pytest.raises(ValueError, match="size"):
        lg.generate(base, size=1, progress=False)
