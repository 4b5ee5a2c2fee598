"""Tests that need reference files skip without them (a reason saying how to get them), fail in CI."""

from __future__ import annotations

import doctest
import json
import re
from pathlib import Path

import pytest

from lgtutorial import data

from . import conftest as helpers

BOOK = Path(__file__).resolve().parents[1] / "book"


@pytest.fixture
def fresh(monkeypatch):
    """An empty per-session cache, and the environment variable unset."""
    monkeypatch.setattr(helpers, "_checked", {})
    monkeypatch.delenv(helpers.REQUIRE_DATA_ENV, raising=False)
    return monkeypatch


def _missing(name, *, download_error=None):
    def fetch(requested, **_):
        error = data.DataNotFoundError(f"could not find it ({requested})")
        if download_error is not None:
            raise error from download_error
        raise error

    return fetch


def test_a_missing_file_skips_with_the_entry_the_file_and_where_to_get_it(fresh):
    fresh.setattr(data, "fetch", _missing("li2018-alloy", download_error=ConnectionError("offline")))
    entry = data.registry()["li2018-alloy"]
    with pytest.raises(pytest.skip.Exception) as skipped:
        helpers.require_reference("li2018-alloy")
    reason = str(skipped.value)
    for part in ("registry entry 'li2018-alloy'", entry.filename, "LGTUTORIAL_DATA", entry.url, "ConnectionError"):
        assert part in reason


def test_an_entry_without_url_says_so(fresh):
    fresh.setattr(data, "fetch", _missing("nbsa-proxy"))
    with pytest.raises(pytest.skip.Exception, match=r"'nbsa-proxy'.*nbsa_proxy_256.npy.*no download URL"):
        helpers.require_reference("nbsa-proxy")


@pytest.mark.parametrize("value", ["1", "yes"])
def test_ci_fails_instead_of_skipping(fresh, value):
    fresh.setattr(data, "fetch", _missing("ti-alpha-beta"))
    fresh.setenv(helpers.REQUIRE_DATA_ENV, value)
    with pytest.raises(pytest.fail.Exception, match=r"registry entry 'ti-alpha-beta'.*LGTUTORIAL_REQUIRE_DATA is set"):
        helpers.require_reference("ti-alpha-beta")
    fresh.setenv(helpers.REQUIRE_DATA_ENV, "0")  # 0 means off
    with pytest.raises(pytest.skip.Exception):
        helpers.require_reference("ti-alpha-beta")


def test_available_files_pass_and_each_name_is_fetched_once(fresh, tmp_path):
    calls = []
    fresh.setattr(data, "fetch", lambda name, **_: calls.append(name) or tmp_path)
    fresh.setenv(helpers.REQUIRE_DATA_ENV, "1")
    helpers.require_reference("ti-alpha-beta", "nbsa-proxy")
    helpers.require_reference("ti-alpha-beta")
    assert calls == ["ti-alpha-beta", "nbsa-proxy"]


def test_only_data_not_found_is_turned_into_a_skip(fresh):
    with pytest.raises(KeyError, match="unknown reference"):  # a typo in a marker is an error, not a skip
        helpers.require_reference("no-such-reference")

    def corrupt(name, **_):
        raise ValueError("does not match the registry entry")

    fresh.setattr(data, "fetch", corrupt)
    with pytest.raises(ValueError, match="does not match"):
        helpers.require_reference("ti-alpha-beta")


def test_a_doctest_stopped_by_missing_data_is_recognised():
    from conftest import _data_not_found  # the project-level conftest.py

    example = doctest.Example("load()", "")
    error = data.DataNotFoundError("could not find 'x' (ti-alpha-beta)")
    stopped = doctest.UnexpectedException(None, example, (type(error), error, None))
    assert _data_not_found(stopped) is error
    other = doctest.UnexpectedException(None, example, (ValueError, ValueError("no"), None))
    assert _data_not_found(other) is None and _data_not_found(RuntimeError("no")) is None


@pytest.mark.parametrize("notebook", sorted(BOOK.glob("*.ipynb")), ids=lambda path: path.stem)
def test_every_notebook_lists_the_registered_files_it_loads(notebook):
    content = json.loads(notebook.read_text(encoding="utf-8"))
    listed = content["metadata"]["lgtutorial"]["requires_data"]
    assert set(listed) <= set(data.registry()), listed
    code = "\n".join("".join(cell["source"]) for cell in content["cells"] if cell["cell_type"] == "code")
    used = {name for name in data.registry() if re.search(rf"[\"']{re.escape(name)}[\"']", code)}
    assert used <= set(listed), f"{notebook.name} loads {sorted(used - set(listed))} but does not list them"
