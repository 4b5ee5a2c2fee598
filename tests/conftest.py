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


#: What the device-dependent tests of the sampling, hybrid, training and volume files run on (issue #43): the CPU,
#: the fake GPU of :mod:`tests.fake_cuda` (CPU data behind tensors that say ``cuda:0``), and a real GPU where
#: this machine has one (skipped, with the reason, elsewhere). ``benchmarks/gpu_smoke.py`` selects the real GPU's
#: cases with ``-k "cuda and not fake"``.
DEVICE_KINDS = ("cpu", "fake-cuda", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA GPU on this machine")))


@pytest.fixture(params=DEVICE_KINDS)
def device_kind(request) -> str:
    """``"cpu"``, ``"fake-cuda"`` or ``"cuda"``: which of :data:`DEVICE_KINDS` this run of the test is on."""
    return request.param


@pytest.fixture
def device(device_kind, request):
    """The device of this run of a test: the CPU, or CUDA (the fake GPU of ``fake_cuda`` on for the test, or a real one).

    Request it after the fixtures that make the test's inputs, so that they are made on the CPU before the fake
    layer is on. On the CPU and the fake GPU seeded draws are the CPU's (the fake GPU's generators are CPU
    generators), so results can be compared with the CPU's bit for bit there; :func:`cpu_streams` says when.
    On the fake GPU the test then fails if the package called a tensor factory without a device that the
    allow-list of ``tests/test_device_paths.py`` does not explain.
    """
    if device_kind != "fake-cuda":
        yield torch.device(device_kind)
        return
    layer = request.getfixturevalue("fake_cuda")
    yield torch.device("cuda")
    from tests.test_device_paths import unexplained

    left = unexplained(layer)
    assert not left, f"device-less tensor factories in lgtutorial/ not in test_device_paths.ALLOWED: {left}"


def cpu_streams(device_kind: str) -> bool:
    """Whether seeded random draws on this kind of device repeat the CPU's: on the CPU and the fake GPU, not on a
    real GPU (its generators are Philox streams of their own; tests assert statistical properties there)."""
    return device_kind != "cuda"
