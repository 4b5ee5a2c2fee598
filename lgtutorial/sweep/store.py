"""The Zarr v3 store of a sweep, one chunk per sample: its layout, creation, resumption, writes and check.

============================  ===========================  ==============================================
array                         shape, dtype                  content
============================  ===========================  ==============================================
``microstructures``           (n, H, W) uint8               phase labels
``volume_fractions``          (n, N) float64                of the labels
``target_volume_fractions``   (n, N) float64                of the point's statistics
``autocorrelations``          (n, N, 2c+1, 2c+1) float32    ``f_nn(r)`` for ``|r| <= c``, zero lag at ``[c, c]``
``weights``                   (n, K) float64                the point's weights of the K sources
``point``, ``sample``         (n,) int32                    point index, sample index at that point
``seed``                      (n,) uint64                   the sample's seed (design seed, point, sample)
``done``                      (n,) bool                     set after the sample's data are written
============================  ===========================  ==============================================
"""

from __future__ import annotations

import datetime
import os
import shutil
from pathlib import Path

import numpy as np
import torch

from lgtutorial.sweep.design import SweepDesign, file_of, sample_seed, sha256_of

__all__ = ["STORE_FORMAT", "check_provenance", "check_store", "create_store", "open_store", "sample_summary",
           "store_provenance", "utc_now", "write_sample"]

STORE_FORMAT = "lgtutorial-sweep/1"


def _zarr():
    try:
        import zarr
    except ImportError as error:  # zarr 3 needs Python >= 3.11
        raise ImportError("lgtutorial sweep writes Zarr v3 stores: install zarr >= 3 (Python >= 3.11)") from error
    return zarr


def utc_now() -> str:
    """Now, in UTC, to the second (ISO 8601): the timestamps of the store's records."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def sample_summary(labels: np.ndarray, n_phases: int, cutoff: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Volume fractions ``(N,)`` (float64, exact) and autocorrelations ``(N, 2c+1, 2c+1)`` of one label image."""
    from lgtutorial.microstructure import labels_to_one_hot
    from lgtutorial.statistics.two_point import centre, two_point_statistics, volume_fractions

    one_hot = labels_to_one_hot(torch.from_numpy(labels.astype(np.int64)), n_phases=n_phases, dtype=torch.float64)
    fractions = volume_fractions(one_hot)[0].numpy()
    if not cutoff:
        return fractions, None
    statistics = two_point_statistics(one_hot, periodic=True, cutoff=cutoff)[0]
    phases = torch.arange(n_phases)
    return fractions, centre(statistics[phases, phases]).float().numpy()


def store_provenance(design: SweepDesign, sources: list[dict]) -> dict:
    """The versions (package, torch, numpy, dask, distributed, zarr, Python), the model and its SHA-256,
    and the sources' provenance: what the store records, and what a resumed run must match."""
    import importlib.metadata
    import platform

    from lgtutorial._version import __version__

    versions = {"lgtutorial": __version__, **{package: importlib.metadata.version(package)
                                              for package in ("torch", "numpy", "dask", "distributed", "zarr")}}
    model_sha256 = sha256_of(file_of(design.model)) if design.model else None
    return {"versions": {**versions, "python": platform.python_version()}, "model": design.model,
            "model_sha256": model_sha256, "sources": sources}


def create_store(path: Path, design: SweepDesign, shape, n_phases: int, provenance: dict):
    """Create the empty store of ``design`` at ``path`` (built in a temporary folder, then renamed into place).

    The group's attributes hold the design, its SHA-256, the provenance (package, torch, dask and zarr
    versions, model and source SHA-256s), one record per run (devices, failures) and the result of the
    consistency check. A sample's slot is fixed by its index, so a killed run resumed with
    ``resume=True`` (``lgtutorial sweep --resume``) redoes exactly the samples not marked done.
    """
    zarr = _zarr()
    temporary = path.with_name(f".{path.name}.creating-{os.getpid()}")
    shutil.rmtree(temporary, ignore_errors=True)
    root = zarr.open_group(str(temporary), mode="w")
    n, (height, width), lags = design.n_samples, shape, 2 * design.summary_cutoff + 1
    layout = {"microstructures": ((n, height, width), "uint8"), "volume_fractions": ((n, n_phases), "float64"),
              "target_volume_fractions": ((n, n_phases), "float64"), "done": ((n,), "bool")}
    if design.summary_cutoff:
        layout["autocorrelations"] = ((n, n_phases, lags, lags), "float32")
    for name, (array_shape, dtype) in layout.items():
        root.create_array(name, shape=array_shape, chunks=(1, *array_shape[1:]), dtype=dtype,
                          fill_value=np.zeros((), dtype)[()])
    tasks = design.tasks()
    for name, values, dtype in (("weights", [t.weights for t in tasks], "float64"),
                                ("point", [t.point for t in tasks], "int32"),
                                ("sample", [t.sample for t in tasks], "int32"),
                                ("seed", [t.seed for t in tasks], "uint64")):
        array = np.asarray(values, dtype=dtype)
        root.create_array(name, shape=array.shape, dtype=dtype)[...] = array
    root.attrs.update({"format": STORE_FORMAT, "design": design.to_dict(), "design_sha256": design.sha256,
                       "shape": [height, width], "n_phases": n_phases, "provenance": provenance,
                       "created": utc_now(), "runs": [], "failures": [], "complete": False})
    os.replace(temporary, path)
    return zarr.open_group(str(path), mode="r+")


def open_store(path: Path, design: SweepDesign):
    """Open an existing store to resume it; it must be a sweep store made from the same design."""
    zarr = _zarr()
    try:
        root = zarr.open_group(str(path), mode="r+")
    except Exception as error:  # zarr raises several types for a folder that is no store
        raise ValueError(f"{path} exists but is not a Zarr store ({error}); choose another output") from error
    attrs = root.attrs.asdict()
    if attrs.get("format") != STORE_FORMAT:
        raise ValueError(f"{path} is not an lgtutorial sweep store (format {attrs.get('format')!r}, "
                         f"expected {STORE_FORMAT!r}); choose another output")
    stored, wanted = attrs["design"], design.to_dict()
    if stored != wanted:
        differing = sorted(key for key in set(stored) | set(wanted) if stored.get(key) != wanted.get(key))
        raise ValueError(f"cannot resume {path}: it was made from a different design (fields that differ: "
                         f"{', '.join(differing)}); use the store's own design or another output")
    return root


def check_provenance(root, path: Path, provenance: dict) -> None:
    """Refuse to resume a store whose model or sources changed since it was made."""
    old = root.attrs["provenance"]
    for key in ("model_sha256", "sources"):
        if old.get(key) != provenance[key]:
            raise ValueError(f"cannot resume {path}: the {key.replace('_', ' ')} changed since the store was made "
                             f"({old.get(key)} -> {provenance[key]})")


def write_sample(arrays: dict, index: int, result: dict, shape, n_phases: int, lags: int) -> None:
    """Write one task's result into slot ``index``; ``done`` last, once all of it is on disk."""
    labels = np.asarray(result["labels"])
    if labels.shape != tuple(shape) or labels.dtype != np.uint8 or int(labels.max()) >= n_phases:
        raise ValueError(f"expected uint8 labels {tuple(shape)} in [0, {n_phases}), got {labels.dtype} {labels.shape}")
    arrays["microstructures"][index] = labels
    arrays["volume_fractions"][index] = np.asarray(result["volume_fractions"], dtype=np.float64)
    arrays["target_volume_fractions"][index] = np.asarray(result["target_volume_fractions"], dtype=np.float64)
    if "autocorrelations" in arrays:
        arrays["autocorrelations"][index] = np.asarray(result["autocorrelations"], dtype=np.float32).reshape(
            n_phases, lags, lags)
    arrays["done"][index] = True  # last: a sample counts only once all of it is on disk


def check_store(path, *, block: int = 256) -> dict:
    """Check a sweep store: every slot done, labels in ``[0, N)``, stored volume fractions equal to the
    labels' (recomputed), zero-lag autocorrelations equal to them, provenance arrays equal to the design's.

    Returns:
        a summary: ``samples``, ``points``, ``phases``, ``shape``, and per point the mean and standard
        deviation of the volume fractions, ``(n_points, N)`` nested lists.

    Raises:
        ValueError: listing what is inconsistent (and for which slots).
    """
    zarr = _zarr()
    root = zarr.open_group(str(path), mode="r")
    attrs = root.attrs.asdict()
    if attrs.get("format") != STORE_FORMAT:
        raise ValueError(f"{path} is not an lgtutorial sweep store (format {attrs.get('format')!r})")
    design, n_phases = attrs["design"], int(attrs["n_phases"])
    per_point, n = design["samples_per_point"], len(design["weights"]) * design["samples_per_point"]
    problems = []
    if root["microstructures"].shape != (n, *attrs["shape"]):
        raise ValueError(f"{path}: microstructures have shape {root['microstructures'].shape}, the design "
                         f"needs {(n, *attrs['shape'])}")
    done = root["done"][:]
    if not done.all():
        missing = np.flatnonzero(~done)
        problems.append(f"{len(missing)} of {n} samples are not done (slots {missing[:10].tolist()}"
                        f"{' ...' if len(missing) > 10 else ''}); run again with --resume")
    index = np.arange(n)
    expected_seeds = np.array([sample_seed(design["seed"], i // per_point, i % per_point) for i in index], np.uint64)
    for name, expected in (("point", index // per_point), ("sample", index % per_point), ("seed", expected_seeds),
                           ("weights", np.repeat(np.asarray(design["weights"]), per_point, axis=0))):
        if not np.array_equal(root[name][:], expected):
            problems.append(f"the {name!r} array does not match the design")
    fractions = np.zeros((n, n_phases))
    cutoff = design["summary_cutoff"]
    for start in range(0, n, block):
        stop = min(n, start + block)
        labels, stored = root["microstructures"][start:stop], root["volume_fractions"][start:stop]
        auto = root["autocorrelations"][start:stop] if cutoff else None
        for offset in np.flatnonzero(done[start:stop]):
            slot = start + offset
            if labels[offset].max() >= n_phases:
                problems.append(f"sample {slot}: labels outside [0, {n_phases})")
                continue
            fractions[slot], _ = sample_summary(labels[offset], n_phases, 0)
            if not np.array_equal(fractions[slot], stored[offset]):
                problems.append(f"sample {slot}: stored volume fractions {stored[offset].tolist()} differ from "
                                f"the labels' {fractions[slot].tolist()}")
            if cutoff and not np.allclose(auto[offset][:, cutoff, cutoff], fractions[slot], atol=1e-5):
                problems.append(f"sample {slot}: zero-lag autocorrelations differ from the volume fractions")
    if problems:
        shown = problems[:20] + ([f"... and {len(problems) - 20} more"] if len(problems) > 20 else [])
        raise ValueError(f"{path} failed the consistency check:\n  - " + "\n  - ".join(shown))
    by_point = fractions.reshape(-1, per_point, n_phases)
    return {"samples": n, "points": len(design["weights"]), "phases": n_phases, "shape": list(attrs["shape"]),
            "volume_fraction_mean": by_point.mean(1).tolist(), "volume_fraction_std": by_point.std(1).tolist()}
