"""Shared helpers: which registered reference files are available, and small random microstructures.

Tests that read a registered file (``lgtutorial data list``) say so with a marker,

    @pytest.mark.requires_data("ti-alpha-beta", "nbsa-proxy")

or call :func:`require_reference` (in a test or a fixture). Each name is looked up once per session
with :func:`lgtutorial.data.fetch` (``$LGTUTORIAL_DATA``, the download cache, then the registered
URL). A file that cannot be had skips the test with a reason that names the registry entry, the
file and how to get it; with ``LGTUTORIAL_REQUIRE_DATA=1`` (CI) the test fails instead. The
project-level ``conftest.py`` applies the marker, and gives the book's notebooks (their metadata
``lgtutorial.requires_data``) and the package's doctests the same treatment.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from lgtutorial import data
from lgtutorial.microstructure import labels_to_one_hot

#: set to 1 (CI does) to turn a skip for a missing reference file into a failure
REQUIRE_DATA_ENV = "LGTUTORIAL_REQUIRE_DATA"

# registry name -> None (found) or the reason it is missing; filled once per session
_checked: dict[str, str | None] = {}


def data_required() -> bool:
    """True when missing reference files must fail the tests (``LGTUTORIAL_REQUIRE_DATA`` set, not 0)."""
    return os.environ.get(REQUIRE_DATA_ENV, "").strip().lower() not in ("", "0", "false", "no")


def missing_reason(name: str, error: BaseException | None = None) -> str:
    """Why the registered file ``name`` is not available, and how to get it."""
    entry = data.registry()[name]
    how = f"set LGTUTORIAL_DATA to a folder holding {entry.filename}"
    how += f", or download {entry.url} into it" if entry.url else " (the registry has no download URL for it)"
    reason = f"registry entry {name!r}, file {entry.filename!r}: {how}"
    cause = error.__cause__ if error is not None else None
    if cause is not None:
        reason += f" (download failed: {type(cause).__name__})"
    return reason


def reference_missing(name: str) -> str | None:
    """None if the registered file ``name`` can be had (fetched once per session), else the reason."""
    if name not in _checked:
        try:
            data.fetch(name)
        except data.DataNotFoundError as error:  # only "not found": a wrong hash or a bad name is an error
            _checked[name] = missing_reason(name, error)
        else:
            _checked[name] = None
    return _checked[name]


def require_reference(*names: str) -> None:
    """Skip the calling test (fail it under ``LGTUTORIAL_REQUIRE_DATA=1``) unless every file is available."""
    reasons = [reason for reason in map(reference_missing, names) if reason]
    if not reasons:
        return
    message = "reference data missing: " + "; ".join(reasons)
    if data_required():
        pytest.fail(f"{message} [{REQUIRE_DATA_ENV} is set, so missing reference data fail the run]",
                    pytrace=False)
    pytest.skip(message)


def random_labels(shape, n_phases, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, n_phases, shape, generator=generator)


@pytest.fixture
def small_three_phase() -> torch.Tensor:
    """(3, 3, 7, 9): three random 3-phase samples on a non-square grid, float64."""
    return labels_to_one_hot(random_labels((3, 7, 9), 3), n_phases=3, dtype=torch.float64)


@pytest.fixture
def fake_cuda():
    """The fake CUDA device of :mod:`tests.fake_cuda` (one GPU, ``cuda:0``, capability 8.0) for one test.

    Yields the :class:`~tests.fake_cuda.FakeCuda` layer: ``synchronizations`` counts ``torch.cuda.synchronize``,
    ``factories.calls`` the tensor factories called in ``lgtutorial/`` without a device. Skips, with the reason,
    where the installed torch cannot host it.
    """
    from tests.fake_cuda import FakeCuda, unavailable_reason

    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(f"fake CUDA layer unavailable: {reason}")
    with FakeCuda(watch=Path(data.__file__).parent) as layer:  # watches lgtutorial/
        yield layer
