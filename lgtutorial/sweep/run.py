"""Datasets at scale: a sweep design run on ``dask.distributed`` into one resumable Zarr store.

Every sample of a :class:`~lgtutorial.sweep.design.SweepDesign` is one dask task: build the GRF of
its point's statistics (the convex combination of the sources', Section 5.2 of Robertson et al.
2023), draw one sample with the sample's own seed, refine it with the score model when the design
names one (Section 3.3), and return the labels with a short statistics summary. Only the client
writes the store (layout: :mod:`lgtutorial.sweep.store`), as results arrive, and a run holds its
store until it ends (:func:`lgtutorial._io.claim_output`: another sweep on it meanwhile is refused),
so there is never more than one writer; a killed run resumed with ``resume=True`` (``lgtutorial
sweep --resume``) redoes exactly the samples not marked done.

GPUs: a local cluster gets one worker per visible GPU, each pinned to its own GPU through
``CUDA_VISIBLE_DEVICES`` (a worker plugin). The pin holds because importing the package touches no
CUDA: the worker first meets CUDA in its first task. With ``scheduler=ADDRESS`` (e.g. a
``dask-jobqueue`` cluster) the batch system assigns the GPUs; ask for one GPU and one worker per job.
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
from distributed.diagnostics.plugin import WorkerPlugin

from lgtutorial._io import claim_output, output_claims
from lgtutorial.sweep.design import SweepDesign, load_sources, point_row
from lgtutorial.sweep.store import (
    check_provenance,
    check_store,
    create_store,
    open_store,
    sample_summary,
    store_provenance,
    utc_now,
    write_sample,
)

__all__ = ["SweepResult", "connect", "generate_sample", "run_sweep"]


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
    from lgtutorial.sampling.hybrid import HybridGenerator

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
        hybrid = HybridGenerator(field, model, options.refinement(), sigmas=sigmas, device=device)
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
        if torch.cuda.is_initialized():  # too late: CUDA read the variable when it started
            warnings.warn(f"worker {worker.name}: CUDA was initialised before the worker was pinned to GPU "
                          f"{os.environ['CUDA_VISIBLE_DEVICES']}; it keeps the GPUs it saw then", RuntimeWarning,
                          stacklevel=2)


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


@output_claims()
def run_sweep(design: SweepDesign, output, *, client=None, scheduler: str | None = None,
              n_workers: int | None = None, resume: bool = False, retries: int = 2,
              max_tasks: int | None = None, task=None, progress: bool = True) -> SweepResult:
    """Generate every sample of ``design`` on dask and write (or complete) the Zarr store ``output``.

    Args:
        design: the validated design (:func:`~lgtutorial.sweep.parsing.load_design`,
            :func:`~lgtutorial.sweep.parsing.parse_design`).
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
        lgtutorial._io.OutputInUse: another run (a sweep or its resumption) holds the store.
    """
    from tqdm.auto import tqdm

    if not isinstance(design, SweepDesign):
        raise TypeError(f"design must be a SweepDesign (see load_design), got {type(design).__name__}")
    if not isinstance(retries, int) or retries < 0:
        raise ValueError(f"retries must be a non-negative integer, got {retries!r}")
    started, path = time.perf_counter(), Path(output)
    claim_output(path)  # the store is this run's until it returns: another sweep on it meanwhile is refused
    if path.exists() and not resume:
        raise ValueError(f"{path} already exists: resume it (--resume) or choose another output")
    root = open_store(path, design) if path.exists() else None
    rows, sources = load_sources(design)
    n_phases, shape = rows.shape[1], design.shape or tuple(rows.shape[2:])
    lags = 2 * design.summary_cutoff + 1
    if lags > min(shape):
        raise ValueError(f"summary_cutoff {design.summary_cutoff} needs a domain of at least {lags} px, got {shape}")
    provenance = store_provenance(design, sources)
    if root is not None:
        check_provenance(root, path, provenance)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        root = create_store(path, design, shape, n_phases, provenance)
    done = root["done"][:]
    pending = [t for t in design.tasks() if not done[t.index]]
    result = SweepResult(path, design.n_samples, 0, design.n_samples - len(pending))
    pending = pending if max_tasks is None else pending[:max_tasks]
    record, devices, status = {"started": utc_now()}, set(), "interrupted"
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
                        write_sample(arrays, sample.index, output_of_task, shape, n_phases, lags)
                        devices.add(output_of_task["device"])
                        result.written += 1
                    except Exception as error:  # a task failed after its retries, or returned nonsense
                        result.failures.append({"index": sample.index, "point": sample.point, "sample": sample.sample,
                                                "seed": sample.seed, "error": f"{type(error).__name__}: {error}"})
                    future.release()
                    bar.update(1)
        status = "failed" if result.failures else "ok"
    finally:
        if own_client and client is not None:  # None: connecting failed (that error is the one raised)
            client.close()
            if cluster is not None:
                cluster.close()
        result.devices, result.seconds = sorted(devices), time.perf_counter() - started
        record.update(finished=utc_now(), status=status, written=result.written, failed=len(result.failures),
                      devices=result.devices)
        root.attrs.update({"runs": [*root.attrs.get("runs", []), record], "failures": result.failures})
    if bool(root["done"][:].all()):
        result.check = check_store(path)
        root.attrs.update({"complete": True, "check": {**result.check, "checked": utc_now()}})
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
