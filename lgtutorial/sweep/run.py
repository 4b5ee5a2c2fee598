"""Datasets at scale: a sweep design run on ``dask.distributed`` into one resumable Zarr store.

Every sample of a :class:`~lgtutorial.sweep.design.SweepDesign` is one dask task: build the GRF of
its point's statistics (the convex combination of the sources', Section 5.2 of Robertson et al.
2023), draw one sample with the sample's own seed, refine it with the score model when the design
names one (Section 3.3), and return the labels with a short statistics summary. Only the client
writes the store, as results arrive, so there is never more than one writer.

Store layout (Zarr v3, one chunk per sample so that a sample is written on its own):

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

The group's attributes hold the design, its SHA-256, the provenance (package, torch, dask and zarr
versions, model and source SHA-256s), one record per run (devices, failures) and the result of the
consistency check. A sample's slot is fixed by its index, so a killed run resumed with
``resume=True`` (``lgtutorial sweep --resume``) redoes exactly the samples not marked done.

GPUs: a local cluster gets one worker per visible GPU, each pinned to its own GPU through
``CUDA_VISIBLE_DEVICES`` (a worker plugin). With ``scheduler=ADDRESS`` (e.g. a ``dask-jobqueue``
cluster) the batch system assigns the GPUs; ask for one GPU and one worker per job.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import shutil
import time
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from distributed.diagnostics.plugin import WorkerPlugin

from lgtutorial.sweep.design import (
    SweepDesign,
    file_of,
    load_sources,
    point_row,
    sample_seed,
    sha256_of,
)

__all__ = ["SweepResult", "check_store", "connect", "generate_sample", "run_sweep", "sample_summary"]

STORE_FORMAT = "lgtutorial-sweep/1"


def _zarr():
    try:
        import zarr
    except ImportError as error:  # zarr 3 needs Python >= 3.11
        raise ImportError("lgtutorial sweep writes Zarr v3 stores: install zarr >= 3 (Python >= 3.11)") from error
    return zarr


def _now() -> str:
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


_MODELS: dict = {}


def _score_model(name: str, device: torch.device):
    """The score model, loaded once per worker process and device."""
    from lgtutorial.score.registry import load_score_model

    if (name, str(device)) not in _MODELS:
        _MODELS[name, str(device)] = load_score_model(name, device=device)
    return _MODELS[name, str(device)]


def generate_sample(row: torch.Tensor, *, seed: int, design: SweepDesign) -> dict:
    """One sample of a sweep (the task each dask worker runs).

    Args:
        row: the point's periodic statistics row ``(N, H, W)`` (see :func:`point_row`).
        seed: the sample's seed (:func:`~lgtutorial.sweep.design.sample_seed`).
        design: gives the model, sampler settings, device and summary cutoff.

    Returns:
        ``labels`` ``(H, W)`` uint8, ``volume_fractions`` and ``target_volume_fractions`` ``(N,)``,
        ``autocorrelations`` ``(N, 2c+1, 2c+1)`` or ``None``, ``device`` and ``seconds``.
    """
    from lgtutorial._checks import resolve_device
    from lgtutorial.grf.field import GaussianRandomField
    from lgtutorial.microstructure import one_hot_to_labels
    from lgtutorial.sampling.hybrid import HybridGenerator, generator_options

    started = time.perf_counter()
    device, options = resolve_device(design.device), design.sampler
    with warnings.catch_warnings():  # rows moved to another grid are non-negative up to round-off
        warnings.filterwarnings("ignore", message="clipped")
        field = GaussianRandomField(row, device=device)
    if design.model is None:
        generator = torch.Generator(device=device).manual_seed(seed)
        one_hot = field.sample(1, generator=generator, filter_sigma=options.filter_sigma,
                               segmentation=options.segmentation).segmented
    else:
        model, sigmas = _score_model(design.model, device)
        hybrid = HybridGenerator(field, model, sigmas=sigmas, device=device,
                                 **generator_options(options.hybrid_settings(), design.model))
        one_hot = hybrid.sample(1, seed=seed, progress=False).microstructures
    labels = one_hot_to_labels(one_hot)[0].to("cpu", torch.uint8).numpy()
    fractions, autocorrelations = sample_summary(labels, field.n_phases, design.summary_cutoff)
    return {"labels": labels, "volume_fractions": fractions, "autocorrelations": autocorrelations,
            "target_volume_fractions": field.target_volume_fractions.double().cpu().numpy(),
            "device": str(device), "seconds": time.perf_counter() - started}


class PinGPU(WorkerPlugin):
    """Worker plugin: worker ``k`` of a local cluster sees only GPU ``devices[k % len(devices)]``."""

    def __init__(self, devices: list[str]):
        self.devices = list(devices)

    def setup(self, worker) -> None:
        index = worker.name if isinstance(worker.name, int) else int(hashlib.sha1(str(worker.name).encode()).hexdigest(), 16)
        os.environ["CUDA_VISIBLE_DEVICES"] = self.devices[index % len(self.devices)]


def connect(scheduler: str | None = None, n_workers: int | None = None):
    """``(client, cluster)``: a client of the scheduler at ``scheduler`` (cluster ``None``), or of a new
    local cluster of ``n_workers`` single-thread processes (default: one per GPU, each pinned to it, else 2)."""
    from distributed import Client, LocalCluster

    if scheduler:
        return Client(scheduler), None
    gpus = torch.cuda.device_count()
    cluster = LocalCluster(n_workers=n_workers or gpus or 2, threads_per_worker=1, processes=True)
    client = Client(cluster)
    if gpus:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        client.register_plugin(PinGPU(visible.split(",") if visible else [str(k) for k in range(gpus)]))
    return client, cluster


def _provenance(design: SweepDesign, sources: list[dict]) -> dict:
    import importlib.metadata
    import platform

    from lgtutorial._version import __version__

    versions = {"lgtutorial": __version__, **{package: importlib.metadata.version(package)
                                              for package in ("torch", "numpy", "dask", "distributed", "zarr")}}
    model_sha256 = sha256_of(file_of(design.model)) if design.model else None
    return {"versions": {**versions, "python": platform.python_version()}, "model": design.model,
            "model_sha256": model_sha256, "sources": sources}


def _create_store(path: Path, design: SweepDesign, shape, n_phases: int, provenance: dict):
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
                       "created": _now(), "runs": [], "failures": [], "complete": False})
    os.replace(temporary, path)
    return zarr.open_group(str(path), mode="r+")


def _open_store(path: Path, design: SweepDesign):
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


def _check_provenance(root, path: Path, provenance: dict) -> None:
    old = root.attrs["provenance"]
    for key in ("model_sha256", "sources"):
        if old.get(key) != provenance[key]:
            raise ValueError(f"cannot resume {path}: the {key.replace('_', ' ')} changed since the store was made "
                             f"({old.get(key)} -> {provenance[key]})")


@dataclass
class SweepResult:
    """What :func:`run_sweep` did. ``complete``: every sample is done and the store passed the check."""

    path: Path
    n_samples: int
    written: int
    already_done: int
    failures: list = field(default_factory=list)
    devices: list = field(default_factory=list)
    dashboard: str | None = None
    seconds: float = 0.0
    check: dict | None = None

    @property
    def complete(self) -> bool:
        return self.check is not None and not self.failures


def _write(arrays: dict, index: int, result: dict, shape, n_phases: int, lags: int) -> None:
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


def run_sweep(design: SweepDesign, output, *, client=None, scheduler: str | None = None,
              n_workers: int | None = None, resume: bool = False, retries: int = 2,
              max_tasks: int | None = None, task=None, progress: bool = True) -> SweepResult:
    """Generate every sample of ``design`` on dask and write (or complete) the Zarr store ``output``.

    Args:
        design: the validated design (:func:`load_design`, :func:`parse_design`).
        output: path of the Zarr store (a folder).
        client: an existing ``distributed.Client`` (left open); else one is made from ``scheduler``.
        scheduler: a scheduler address (``tcp://host:8786``); default: a local cluster of
            ``n_workers`` processes with one thread each (one per GPU where there are GPUs, else 2).
        resume: continue an existing store of the same design, redoing only samples not done.
        retries: times a failed task is retried before it is reported as failed.
        max_tasks: stop after this many new samples (as if the run were killed; for tests and demos).
        task: replaces :func:`generate_sample` (same signature), e.g. to inject failures in tests.
        progress: show a tqdm progress bar.

    Raises:
        ValueError: the store exists and ``resume`` is false, was made from another design, or fails
            the final consistency check. Failed tasks raise nothing: they are in ``failures``.
    """
    from tqdm.auto import tqdm

    if not isinstance(design, SweepDesign):
        raise TypeError(f"design must be a SweepDesign (see load_design), got {type(design).__name__}")
    if not isinstance(retries, int) or retries < 0:
        raise ValueError(f"retries must be a non-negative integer, got {retries!r}")
    started, path = time.perf_counter(), Path(output)
    if path.exists() and not resume:
        raise ValueError(f"{path} already exists: resume it (--resume) or choose another output")
    root = _open_store(path, design) if path.exists() else None
    rows, sources = load_sources(design)
    n_phases, shape = rows.shape[1], design.shape or tuple(rows.shape[2:])
    lags = 2 * design.summary_cutoff + 1
    if lags > min(shape):
        raise ValueError(f"summary_cutoff {design.summary_cutoff} needs a domain of at least {lags} px, got {shape}")
    provenance = _provenance(design, sources)
    if root is not None:
        _check_provenance(root, path, provenance)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        root = _create_store(path, design, shape, n_phases, provenance)
    done = root["done"][:]
    pending = [t for t in design.tasks() if not done[t.index]]
    result = SweepResult(path, design.n_samples, 0, design.n_samples - len(pending))
    pending = pending if max_tasks is None else pending[:max_tasks]
    record, devices, status = {"started": _now()}, set(), "interrupted"
    own_client, cluster = client is None and bool(pending), None
    try:
        if pending:
            if own_client:
                client, cluster = connect(scheduler, n_workers)
            result.dashboard = client.dashboard_link
            workers = len(client.scheduler_info().get("workers", {}))
            record.update(scheduler=client.scheduler.address, workers=workers)
            print(f"sweep {design.name}: {len(pending)} samples to generate on {workers} workers; "
                  f"dashboard: {result.dashboard}")
            points = sorted({t.point for t in pending})
            scattered = client.scatter([point_row(rows, design.weights[p], shape) for p in points])
            row_of, token = dict(zip(points, scattered)), uuid.uuid4().hex[:8]
            futures = {client.submit(task or generate_sample, row_of[t.point], seed=t.seed, design=design,
                                     key=f"lgtutorial-sample-{t.index}-{token}", retries=retries, pure=False): t
                       for t in pending}
            arrays = {name: root[name] for name in ("microstructures", "volume_fractions", "target_volume_fractions",
                                                    "autocorrelations", "done") if name in root}
            from distributed import as_completed

            with tqdm(total=len(futures), desc=f"sweep {design.name}", unit="sample", disable=not progress) as bar:
                for future in as_completed(futures):
                    sample = futures[future]
                    try:
                        output_of_task = future.result()
                        _write(arrays, sample.index, output_of_task, shape, n_phases, lags)
                        devices.add(output_of_task["device"])
                        result.written += 1
                    except Exception as error:  # a task failed after its retries, or returned nonsense
                        result.failures.append({"index": sample.index, "point": sample.point, "sample": sample.sample,
                                                "seed": sample.seed, "error": f"{type(error).__name__}: {error}"})
                    future.release()
                    bar.update(1)
        status = "failed" if result.failures else "ok"
    finally:
        if own_client:
            client.close()
            if cluster is not None:
                cluster.close()
        result.devices, result.seconds = sorted(devices), time.perf_counter() - started
        record.update(finished=_now(), status=status, written=result.written, failed=len(result.failures),
                      devices=result.devices)
        root.attrs.update({"runs": [*root.attrs.get("runs", []), record], "failures": result.failures})
    if bool(root["done"][:].all()):
        result.check = check_store(path)
        root.attrs.update({"complete": True, "check": {**result.check, "checked": _now()}})
    _print_summary(design, result)
    return result


def _print_summary(design: SweepDesign, result: SweepResult) -> None:
    print(f"sweep {design.name}: {result.written} samples written, {result.already_done} already done, "
          f"{len(result.failures)} failed, of {result.n_samples} ({design.n_points} points x "
          f"{design.samples_per_point}); devices: {', '.join(result.devices) or '-'}; {result.seconds:.1f} s")
    for failure in result.failures[:10]:
        print(f"  FAILED sample {failure['index']} (point {failure['point']}, seed {failure['seed']}): {failure['error']}")
    if result.failures:
        print(f"  {len(result.failures)} failed samples are recorded in the store; run again with --resume to redo them")
    elif result.check is None:
        print(f"  the store is incomplete; run again with --resume to finish it: {result.path}")
    else:
        print(f"  consistency check passed; wrote {result.path}")


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
