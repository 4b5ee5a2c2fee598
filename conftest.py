"""Project-wide pytest hooks: tests, notebooks and doctests that need reference data that is absent.

The helpers live in ``tests/conftest.py`` (:func:`tests.conftest.require_reference`). Here they are
applied to every item that ``make test`` collects (``tests``, ``book``, ``lgtutorial``):

* tests marked ``@pytest.mark.requires_data("name", ...)``;
* every cell of a notebook whose metadata lists ``lgtutorial.requires_data`` (checked before nbval
  starts the kernel);
* doctests that stop on :class:`lgtutorial.data.DataNotFoundError`.

Each is skipped with the reason (registry entry, file, how to get it), or failed when
``LGTUTORIAL_REQUIRE_DATA=1`` (CI).
"""

from __future__ import annotations

import doctest
import functools
import json
from pathlib import Path

import pytest

from lgtutorial import data
from tests.conftest import REQUIRE_DATA_ENV, data_required, require_reference

MARKER = "requires_data"


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        f"{MARKER}(*names): the test reads these registered reference files (`lgtutorial data list`); "
        f"skipped when one is missing, failed instead when {REQUIRE_DATA_ENV}=1",
    )


@functools.cache
def notebook_requirements(path: str) -> tuple[str, ...]:
    """The registry names a notebook loads: its metadata ``lgtutorial.requires_data``."""
    notebook = json.loads(Path(path).read_text(encoding="utf-8"))
    return tuple(notebook.get("metadata", {}).get("lgtutorial", {}).get("requires_data", ()))


def pytest_collection_modifyitems(config, items):
    for item in items:
        path = Path(str(item.path))
        if path.suffix == ".ipynb":
            names = notebook_requirements(str(path))
            if names:
                item.add_marker(pytest.mark.requires_data(*names))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """Before any fixture (or nbval's kernel) is set up."""
    names = [name for mark in item.iter_markers(MARKER) for name in mark.args]
    if names:
        _require(*dict.fromkeys(names))


def _skip_here(reason: str) -> pytest.skip.Exception:
    """A skip reported at the test's (or notebook's) own location, as a skipif mark's is."""
    try:
        return pytest.skip.Exception(reason, _use_item_location=True)
    except TypeError:  # a pytest without that (private) option: reported at the helper's line instead
        return pytest.skip.Exception(reason)


def _require(*names: str) -> None:
    try:
        require_reference(*names)
    except pytest.skip.Exception as skipped:
        raise _skip_here(skipped.msg) from None


def _data_not_found(failure: BaseException) -> data.DataNotFoundError | None:
    """The DataNotFoundError that stopped a doctest, if that is what stopped it."""
    failures = failure.failures if hasattr(failure, "failures") else [failure]  # --doctest-continue-on-failure
    for one in failures:
        if isinstance(one, doctest.UnexpectedException) and isinstance(one.exc_info[1], data.DataNotFoundError):
            return one.exc_info[1]
    return None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    try:
        return (yield)
    except Exception as failure:
        error = _data_not_found(failure)
        if error is None:
            raise
    # outside the except clause, so that the report is the reason alone, not the doctest's traceback too
    names = [name for name in data.registry() if f"({name})" in str(error)]  # fetch's messages name it so
    _require(*names)  # skips (or fails) with the usual reason
    if data_required():  # not one of ours: the error says what is missing
        pytest.fail(str(error), pytrace=False)
    raise _skip_here(f"reference data missing: {error}")
