"""Issue #38: bad input gives one clear line before any work, never garbage or a traceback.

Label images holding NaN, infinity, fractions or complex numbers; GRF draws with a NaN filter width;
sizes the network or the method cannot take; requests that cannot fit in memory; a full disk;
``.pt`` files that are not tensors.
"""

from __future__ import annotations

import errno
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import lgtutorial
from lgtutorial import _io, data
from lgtutorial.cli.main import main
from lgtutorial.grf.field import GaussianRandomField
from lgtutorial.sampling.hybrid import HybridGenerator
from lgtutorial.sampling.sizes import MIN_SIDE, MemoryEstimate, available_memory, check_memory
from lgtutorial.synthetic import blobs, lamellae
from lgtutorial.volume.generator import VolumeGenerator


def _stripes(size: int = 48) -> np.ndarray:
    return lamellae(size, period=8).argmax(1)[0].numpy().astype(np.float64)


# -- 1. label images -------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan, 0.5])
def test_a_label_array_with_a_non_finite_or_fractional_value_is_refused(tmp_path, bad):
    labels = _stripes()
    labels[3, 7] = bad
    labels[10, 2] = bad
    np.save(tmp_path / "m.npy", labels)
    with pytest.raises(ValueError) as caught:
        data.load_micrograph(tmp_path / "m.npy")
    message = str(caught.value)
    assert "\n" not in message
    assert "2 pixel(s)" in message and "the first at (row 3, column 7)" in message and "integer phase labels" in message


def test_complex_labels_are_refused_even_with_integer_values(tmp_path):
    np.save(tmp_path / "c.npy", _stripes(16).astype(np.complex128))
    with pytest.raises(ValueError, match=r"256 pixel\(s\) hold .*complex number, the first at \(row 0, column 0\)"):
        data.load_micrograph(tmp_path / "c.npy")


def test_text_labels_are_refused(tmp_path):
    np.save(tmp_path / "s.npy", np.array([["a", "b"], ["b", "a"]]))
    with pytest.raises(ValueError, match="holds <U1 values; expected numbers"):
        data.load_micrograph(tmp_path / "s.npy")


def test_integer_valued_floats_and_grey_images_still_load(tmp_path):
    labels = _stripes() + 1.0  # 1.0 and 2.0
    np.save(tmp_path / "f.npy", labels)
    micro, meta = data.load_micrograph(tmp_path / "f.npy")
    assert micro.shape == (1, 2, 48, 48) and meta["phases"] == ["label 1.0", "label 2.0"]
    Image.fromarray(labels.astype(np.float32)).save(tmp_path / "f.tif")  # a 32-bit float TIFF ("F")
    assert data.load_micrograph(tmp_path / "f.tif")[1]["phases"] == ["value 1.0", "value 2.0"]
    Image.fromarray((_stripes() * 255).astype(np.uint8)).save(tmp_path / "g.png")  # 8-bit grey
    assert data.load_micrograph(tmp_path / "g.png")[1]["phases"] == ["value 0", "value 255"]


def test_float_images_and_tensors_with_nan_are_refused(tmp_path):
    labels = _stripes().astype(np.float32)
    labels[5, 6] = np.nan
    Image.fromarray(labels).save(tmp_path / "n.tif")
    with pytest.raises(ValueError, match=r"1 pixel\(s\) .* \(row 5, column 6\): nan"):
        data.load_micrograph(tmp_path / "n.tif")
    torch.save(torch.from_numpy(labels), tmp_path / "n.pt")
    with pytest.raises(ValueError, match=r"\(row 5, column 6\)"):
        data.load_micrograph(tmp_path / "n.pt")


def test_a_one_hot_array_with_nan_is_refused_at_its_index(tmp_path):
    one_hot = np.stack([1 - _stripes(), _stripes()])
    one_hot[1, 4, 9] = np.nan
    np.save(tmp_path / "o.npy", one_hot)
    with pytest.raises(ValueError, match=r"1 pixel\(s\) hold NaN, infinity or a complex number, the first at index \(1, 4, 9\)"):
        data.load_micrograph(tmp_path / "o.npy")


@pytest.mark.parametrize("command", [["stats"], ["train", "--steps", "2"], ["fit"]])
def test_every_command_refuses_an_infinite_label_in_one_line(tmp_path, capsys, command):
    labels = _stripes()
    labels[0, 1] = np.inf
    np.save(tmp_path / "inf.npy", labels)
    argv = [command[0], str(tmp_path / "inf.npy"), *command[1:], "--output", str(tmp_path / "out")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "(row 0, column 1): inf" in err and "phases" not in err


# -- 2. the GRF's own arguments ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def field():
    return GaussianRandomField.from_microstructure(blobs(32, 2.0, seed=3))


@pytest.mark.parametrize("sigma", [float("nan"), float("inf"), 0, -1.0, True, "2"])
def test_a_bad_filter_width_is_refused_before_drawing(field, sigma):
    generator = torch.Generator().manual_seed(1)
    state = generator.get_state()
    for draw in (field.sample, field.sample_raw):
        with pytest.raises(ValueError, match="filter_sigma must be a positive finite width"):
            draw(2, generator=generator, filter_sigma=sigma)
    assert torch.equal(generator.get_state(), state)  # nothing was drawn


def test_a_filter_wider_than_the_domain_is_refused(field):
    with pytest.raises(ValueError, match="filter_sigma=40 px is wider than the domain"):
        field.sample(1, filter_sigma=40)
    assert field.sample(1, filter_sigma=2.5, segmentation="argmax").segmented.shape == (1, 2, 32, 32)


@pytest.mark.parametrize("n_samples", [0, -2, 2.0, True, None])
def test_a_bad_number_of_samples_is_refused(field, n_samples):
    with pytest.raises(ValueError, match="n_samples must be a positive integer"):
        field.sample(n_samples)


def test_a_bad_generator_or_segmentation_is_refused_before_drawing(field):
    with pytest.raises(ValueError, match="generator must be a torch.Generator"):
        field.sample(2, generator=7)
    generator = torch.Generator().manual_seed(1)
    state = generator.get_state()
    with pytest.raises(ValueError, match="segmentation must be"):
        field.sample(2, generator=generator, segmentation="otsu")
    assert torch.equal(generator.get_state(), state)


# -- 3. sizes the network and the method cannot take --------------------------------------------------
def _fail(*args, **kwargs):
    raise AssertionError("work was started for a size that should have been refused")


@pytest.mark.parametrize(("options", "message"), [
    (["--dims", "3", "--size", "2"], f"--size (size): expected a side of at least {MIN_SIDE} pixels, voxels for --dims 3"),
    (["--dims", "3", "--size", "7"], "--size (size): expected a side of at least 8 pixels, voxels for --dims 3"),
    (["--size", "4"], "--size (size): expected a side of at least 8 pixels"),
    (["--size", "10"], "--size 10: the periodic embedding (--padding 16 px on each side) may not be wider than the "
                       "sample; use --size 16 or more"),
    (["--size", "17", "--periodic", "circular"], "--size 17: the network of lgtutorial-case1 takes sides divisible "
                                                  "by 2**depth = 2, and 17 is not; try --size 16 or 18"),
])
def test_sizes_below_what_the_method_allows_fail_at_once(options, message, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("lgtutorial.volume.statistics.isotropic_statistics", _fail)
    monkeypatch.setattr(HybridGenerator, "from_statistics", _fail)
    assert main(["generate", *options, "--output", str(tmp_path / "never")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "never").exists()


# -- 4. memory -----------------------------------------------------------------------------------------
def test_a_huge_2d_size_is_refused_quickly_without_building_anything(monkeypatch):
    monkeypatch.setattr(HybridGenerator, "from_statistics", _fail)
    monkeypatch.setattr("lgtutorial.grf.interpolation.statistics_row_for_shape", _fail)
    started = time.perf_counter()
    with pytest.raises(ValueError) as caught:
        lgtutorial.generate(size=100000, device="cpu", progress=False)
    seconds = time.perf_counter() - started
    message = str(caught.value)
    assert message.startswith("--size 100000 with 4 sample(s) in batches of 8 needs about ")
    assert "GB of memory" in message and "GB is free on cpu" in message
    largest = int(message.split("the largest --size that fits here is ")[1].split(";")[0])
    assert 32 <= largest < 100000 and (largest + 32) % 2 == 0
    assert seconds < 1.0, seconds  # the model is loaded; nothing of the asked size is built


def test_a_huge_volume_is_refused_before_its_statistics(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("lgtutorial.volume.statistics.isotropic_statistics", _fail)
    assert main(["generate", "--dims", "3", "--size", "2048", "--output", str(tmp_path / "never")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--size 2048 with 4 volume(s) in batches of 8 needs about" in err
    assert "the largest --size that fits here is" in err or "not even --size" in err


def test_normal_sizes_pass_the_memory_check():
    def volume(side):
        return VolumeGenerator.memory_estimate((side,) * 3, n_phases=2, channels=1, latent_channels=40, batch_size=8,
                                               n_samples=4)

    def square(side):
        return HybridGenerator.memory_estimate((side, side), n_phases=2, channels=1, latent_channels=40, padding=16,
                                               batch_size=8, n_samples=4)

    check_memory(volume, 32, "cpu", sides=range(8, 32, 2), what="--size 32", advice="")
    check_memory(square, 128, "cpu", sides=range(8, 128, 2), what="--size 128", advice="")
    # what the defaults need: well under a gigabyte (a 64^3 volume, four 256^2 samples)
    assert volume(64).total(True) < 1e9 and square(256).total(True) < 1e9


def test_the_estimate_grows_with_every_size_and_names_the_largest_side_that_fits(monkeypatch):
    monkeypatch.setattr("lgtutorial.sampling.sizes.available_memory", lambda device: (10**9, 10**9))

    def estimate(side):
        return MemoryEstimate(side**3, side**3, (("a cube of bytes", side**3),))

    with pytest.raises(ValueError, match=r"--size 2000 needs about 8 GB of memory \(a cube of bytes 8 GB\), "
                                         r"but 1 GB is free on cpu: the largest --size that fits here is 1000; ask"):
        check_memory(estimate, 2000, "cpu", sides=range(8, 10**6, 8), what="--size 2000", advice="ask for less")
    with pytest.raises(ValueError, match="not even --size 8 fits here"):
        check_memory(lambda side: MemoryEstimate(0, 10**10), 16, "cpu", sides=range(8, 17, 8), what="x", advice="y")


def test_what_is_free_is_read_from_the_system(monkeypatch):
    host, device = available_memory("cpu")
    assert host == device and 0 < host < 2**50
    if not os.path.exists("/proc/meminfo"):
        return
    monkeypatch.setitem(sys.modules, "psutil", None)  # not installed: MemAvailable of /proc/meminfo
    fallback, _ = available_memory("cpu")
    assert abs(fallback - host) < 0.5 * host


# -- 5. a full disk -----------------------------------------------------------------------------------
@pytest.fixture
def full_disk(monkeypatch):
    """Atomic writes of files named ``samples.*`` or ``out.*`` go to /dev/full: every write fails with the kernel's ENOSPC."""
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full on this system")
    real = tempfile.mkstemp

    def mkstemp(prefix="", suffix="", dir=None):  # noqa: A002 - tempfile's own argument names
        fd, tmp = real(prefix=prefix, suffix=suffix, dir=dir)
        if prefix.startswith((".samples.", ".out.")) and "lock" not in prefix:  # output folders' locks are written
            os.close(fd)
            fd = os.open("/dev/full", os.O_WRONLY)
        return fd, tmp

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)


def _assert_nothing_written(folder: Path, name: str) -> None:
    assert not (folder / name).exists()
    assert not [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("writer", ["npy", "text", "figure", "torch"])
def test_a_full_disk_says_so_and_leaves_nothing_half_written(tmp_path, full_disk, writer):
    import matplotlib.pyplot as plt

    name = {"npy": "out.npy", "text": "out.json", "figure": "out.png", "torch": "out.pt"}[writer]
    with pytest.raises(OSError) as caught:
        if writer == "npy":
            _io.save_npy(tmp_path / name, np.zeros((64, 64, 64), dtype=np.float32))
        elif writer == "text":
            _io.save_text(tmp_path / name, "x" * 100_000)
        elif writer == "figure":
            _io.save_figure(plt.figure(), tmp_path / name)
        else:
            with _io.atomic_write(tmp_path / name) as handle:
                torch.save({"a": torch.zeros(100_000)}, handle)
    error = caught.value
    assert error.errno == errno.ENOSPC and error.filename == str(tmp_path / name)
    assert "no space left on the device" in str(error) and name in str(error)
    _assert_nothing_written(tmp_path, name)


def test_a_write_error_without_its_number_counts_as_a_full_disk_only_when_the_disk_is_full(tmp_path, monkeypatch):
    def short_write(file, array, **kwargs):  # numpy's C writer on a full disk: half written, errno lost
        file.write(b"\x93NUMPY" + bytes(1000))
        raise OSError("131072 requested and 21472 written")

    monkeypatch.setattr(np, "save", short_write)
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage._replace(free=0))
    with pytest.raises(OSError, match="no space left on the device while writing a.npy"):
        _io.save_npy(tmp_path / "a.npy", np.zeros(10))
    _assert_nothing_written(tmp_path, "a.npy")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage._replace(free=10**12))
    with pytest.raises(OSError, match="^131072 requested and 21472 written$"):  # another cause: left as it is
        _io.save_npy(tmp_path / "a.npy", np.zeros(10))
    _assert_nothing_written(tmp_path, "a.npy")


def test_a_writer_that_fails_mid_write_with_enospc_keeps_an_earlier_file(tmp_path, monkeypatch):
    _io.save_text(tmp_path / "r.txt", "the earlier result")

    def failing(file, array, **kwargs):
        file.write(b"half of it")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "save", failing)
    with pytest.raises(OSError, match="no space left on the device while writing r.txt"):
        _io.save_npy(tmp_path / "r.txt", np.zeros(3))
    assert (tmp_path / "r.txt").read_text() == "the earlier result"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_grf_on_a_full_disk_exits_with_one_line(tmp_path, full_disk, capsys):
    np.save(tmp_path / "m.npy", _stripes().astype(np.uint8))
    out = tmp_path / "out"
    assert main(["grf", "--reference", str(tmp_path / "m.npy"), "--n-samples", "2", "--output", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("lgtutorial grf: error: no space left on the device while writing samples.npy")
    assert str(out / "samples.npy") in err
    _assert_nothing_written(out, "samples.npy")


# -- 6. .pt files that are not tensors -----------------------------------------------------------------
class Opaque:
    """A Python object: torch's safe loader refuses to unpickle it."""


@pytest.fixture
def opaque(tmp_path):
    path = tmp_path / "opaque.pt"
    torch.save({"state_dict": Opaque()}, path)
    return path


def test_every_reader_of_a_users_pt_says_in_one_line_it_is_not_a_file_it_reads(opaque, tmp_path):
    from lgtutorial.grf.material import MaterialStatistics
    from lgtutorial.score.checkpoints import read_checkpoint
    from lgtutorial.score.registry import load_authors_checkpoint, load_score_model

    (tmp_path / "text.pt").write_text("not torch at all")
    for path in (opaque, tmp_path / "text.pt"):
        for reader in (load_authors_checkpoint, load_score_model, read_checkpoint, MaterialStatistics.load,
                       data.load_micrograph):
            with pytest.raises(ValueError) as caught:
                reader(path)
            message = str(caught.value)
            assert "\n" not in message and "weights_only" not in message, (reader, message)
            assert "not a file of tensors this package reads" in message, (reader, message)
    with pytest.raises(ValueError, match=r"it holds Python objects: [\w.]*test_bad_input\.Opaque; they are never unpickled"):
        read_checkpoint(opaque)


def test_generate_with_a_pt_that_is_not_weights_prints_one_line(opaque, tmp_path, capsys):
    assert main(["generate", "--model", str(opaque), "--size", "32", "--output", str(tmp_path / "never")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "weights_only" not in err
    assert "could not read it as score-model weights, not a file of tensors this package reads" in err


def test_the_library_refuses_the_sizes_the_command_refuses():
    from lgtutorial.sampling.settings import HybridSettings
    from lgtutorial.sampling.sizes import MIN_SIDE

    for size in (2, MIN_SIDE - 1):
        with pytest.raises(ValueError, match=f"--size \\(size\\): expected a side of at least {MIN_SIDE}"):
            HybridSettings(size=size)
    assert HybridSettings(size=MIN_SIDE).size == MIN_SIDE
