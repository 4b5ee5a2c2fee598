"""The data registry: lookup order, hash checks, clear errors, and users' own files."""

import hashlib
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from lgtutorial import data
from lgtutorial.statistics.two_point import volume_fractions


def test_registry_entries_are_complete():
    entries = data.registry()
    assert {"ti-alpha-beta", "nbsa", "nbsa-proxy", "nbsa-authors-checkpoint"} <= set(entries)
    for entry in entries.values():
        assert entry.sha256 or entry.git_sha1, entry.name
        assert entry.licence and entry.description and entry.filename
        # every file can be had: downloaded, shipped in the package, or (the proxy) replaced by a shipped stand-in
        assert entry.url or entry.shipped or entry.name == "nbsa-proxy", entry.name
        if entry.shipped:
            assert (data.shipped_directory() / entry.filename).is_file(), entry.name
        if entry.fallback:
            assert entries[entry.fallback].shipped and entries[entry.fallback].kind == entry.kind, entry.name
        assert not entry.citation_text.startswith(entry.citation) or entry.citation == entry.citation_text


@pytest.mark.requires_data("ti-alpha-beta", "nbsa-proxy", "ngrf-two-phase-elongated")
def test_case_study_references_load():
    ti, meta = data.load_reference("ti-alpha-beta")
    assert ti.shape == (1, 3, 400, 512) and len(meta["phases"]) == 3
    assert torch.allclose(volume_fractions(ti)[0], torch.tensor([0.2544, 0.5638, 0.1818]), atol=1e-4)
    proxy, meta = data.load_reference("nbsa-proxy")
    assert proxy.shape == (1, 2, 256, 256) and meta["periodic"]
    assert float(volume_fractions(proxy)[0, 1]) == pytest.approx(0.3726, abs=1e-4)
    two, _ = data.load_reference("ngrf-two-phase-elongated")
    assert two.shape == (1, 2, 201, 201)


# the real case-study-1 micrograph `nbsa` is not in the shared folder (see README)
MICROGRAPHS = [entry.name for entry in data.list_references("micrograph") if entry.name != "nbsa"]


@pytest.mark.requires_data(*MICROGRAPHS)
def test_every_registered_micrograph_in_the_data_folder_verifies():
    for name in MICROGRAPHS:
        micro, _ = data.load_reference(name)
        assert micro.ndim == 4 and torch.all(micro.sum(1) == 1)


def test_a_corrupt_file_is_refused(tmp_path, monkeypatch):  # needs no real data: the corrupt file is made here
    entry = data.registry()["nbsa-proxy"]
    target = tmp_path / entry.filename
    target.parent.mkdir(parents=True)
    np.save(target, np.zeros((4, 4), dtype=np.uint8))
    monkeypatch.setenv("LGTUTORIAL_DATA", str(tmp_path))
    with pytest.raises(ValueError, match="does not match the registry entry 'nbsa-proxy'"):
        data.fetch("nbsa-proxy")


def test_missing_file_offline_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setenv("LGTUTORIAL_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("LGTUTORIAL_CACHE", str(tmp_path / "cache"))
    with pytest.raises(data.DataNotFoundError, match="looked in: .*data.*cache"):
        data.fetch("nbsa-proxy")


def test_failed_download_is_reported(tmp_path, monkeypatch):
    monkeypatch.setenv("LGTUTORIAL_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("LGTUTORIAL_CACHE", str(tmp_path / "cache"))
    entries, citations = data._load_registry()
    broken = data.ReferenceEntry(**{**entries["li2018-alloy"].__dict__, "url": "http://127.0.0.1:9/none.npy"})
    monkeypatch.setattr(data, "_load_registry", lambda: ({**entries, "li2018-alloy": broken}, citations))
    with pytest.raises(data.DataNotFoundError, match="downloading http://127.0.0.1:9/none.npy failed"):
        data.fetch("li2018-alloy")


@pytest.mark.requires_data("li2018-composite")
def test_cache_is_searched_after_the_data_folder(tmp_path, monkeypatch):
    source = data.fetch("li2018-composite")
    cache = tmp_path / "cache"
    copy = cache / data.registry()["li2018-composite"].filename
    copy.parent.mkdir(parents=True)
    shutil.copy(source, copy)
    monkeypatch.setenv("LGTUTORIAL_DATA", str(tmp_path / "nothing-here"))
    monkeypatch.setenv("LGTUTORIAL_CACHE", str(cache))
    assert data.fetch("li2018-composite") == copy
    micro, _ = data.load_reference("li2018-composite")
    assert micro.shape == (1, 3, 256, 256)


def test_git_blob_hash_is_checked(tmp_path):
    payload = b"some bytes"
    path = tmp_path / "file.bin"
    path.write_bytes(payload)
    good = hashlib.sha1(b"blob %d\0" % len(payload) + payload).hexdigest()
    entry = data.ReferenceEntry(
        "x", "micrograph", "d", "file.bin", "torch-one-hot", "MIT", "c", git_sha1=good
    )
    data._verify(entry, path)
    wrong = data.ReferenceEntry(
        "x", "micrograph", "d", "file.bin", "torch-one-hot", "MIT", "c", git_sha1="0" * 40
    )
    with pytest.raises(ValueError, match="git_sha1"):
        data._verify(wrong, path)


def test_unknown_and_wrong_kind():
    with pytest.raises(KeyError, match="registered names"):
        data.fetch("no-such-reference")
    with pytest.raises(ValueError, match="not a micrograph"):
        data.load_reference("nbsa-authors-config")


def test_user_png_grey_levels_become_phases(tmp_path):
    image = np.zeros((6, 8), dtype=np.uint8)
    image[:, 3:] = 128
    image[4:, 6:] = 255
    Image.fromarray(image).save(tmp_path / "m.png")
    micro, meta = data.load_micrograph(tmp_path / "m.png")
    assert micro.shape == (1, 3, 6, 8)
    assert meta["phases"] == ["value 0", "value 128", "value 255"]
    assert int(micro[0, 2].sum()) == 4


def test_user_colour_image(tmp_path):
    image = np.zeros((4, 4, 3), dtype=np.uint8)
    image[:2] = (255, 0, 0)
    Image.fromarray(image).save(tmp_path / "m.tif")
    micro, meta = data.load_micrograph(tmp_path / "m.tif")
    assert micro.shape == (1, 2, 4, 4) and meta["phases"][1] == "value (255, 0, 0)"


def test_user_arrays_and_tensors(tmp_path):
    labels = np.array([[0, 5], [5, 9]])
    np.save(tmp_path / "labels.npy", labels)
    micro, meta = data.load_micrograph(tmp_path / "labels.npy")
    assert micro.shape == (1, 3, 2, 2) and meta["phases"] == ["label 0", "label 5", "label 9"]
    one_hot_last = np.moveaxis(micro[0].numpy(), 0, -1)
    np.save(tmp_path / "last.npy", one_hot_last)
    assert torch.equal(data.load_micrograph(tmp_path / "last.npy")[0], micro)
    torch.save(micro, tmp_path / "m.pt")
    assert torch.equal(data.load_micrograph(tmp_path / "m.pt")[0], micro)


def test_user_file_errors(tmp_path):
    noisy = (np.arange(400).reshape(20, 20) % 97).astype(np.uint8)
    Image.fromarray(noisy).save(tmp_path / "grey.png")
    with pytest.raises(ValueError, match="Segment the image first"):
        data.load_micrograph(tmp_path / "grey.png")
    (tmp_path / "m.jpg2").write_bytes(b"")
    with pytest.raises(ValueError, match="unsupported file type"):
        data.load_micrograph(tmp_path / "m.jpg2")
    np.save(tmp_path / "half.npy", np.full((3, 3), 0.5))
    with pytest.raises(ValueError, match="integer phase labels"):
        data.load_micrograph(tmp_path / "half.npy")
    with pytest.raises(FileNotFoundError):
        data.load_micrograph(tmp_path / "absent.npy")


def test_three_dimensional_arrays_must_be_one_hot(tmp_path):
    np.save(tmp_path / "soft.npy", np.full((3, 4, 4), 0.2))
    with pytest.raises(ValueError, match="must be one-hot"):
        data.load_micrograph(tmp_path / "soft.npy")
