"""Sweep throughput: samples per hour of a dataset sweep with the fast and the faithful sampler, and of a
plain loop of ``generate``, in one run on one machine.

The same design (two registry references, ``--points`` interpolation points, ``--samples-per-point``
samples each, ``--size`` x ``--size`` px, a score model) is generated three ways:

* ``sweep, fast``: :func:`lgtutorial.sweep.run.run_sweep` with ``sampler: {name: fast}`` on a local dask
  cluster of ``--workers`` single-thread worker processes (what ``lgtutorial sweep`` does);
* ``sweep, faithful``: the same with the paper's sampler;
* ``loop of generate``: one :func:`lgtutorial.cli.generate.run_generate` call per point (what a loop of
  ``lgtutorial generate --statistics POINT.npy`` does, its model loading, figures and files
  included; the process start of each command is not), in this process with ``--workers`` torch
  threads, fast sampler.

The cluster is started once and warmed up (every worker loads the model on a sample that is not
timed); its start-up and the warm-up are reported apart. A sweep's time includes reading the
sources, writing and checking its Zarr store. The last column scales the measured rate to a
MICRO2D-sized dataset (about 87,000 samples) on this machine.

Run: LGTUTORIAL_DATA=../shared/data python benchmarks/sweep_throughput.py [--size 64] [--points 3]
     [--samples-per-point 2] [--workers 2] [--arms fast,faithful,loop] [--output FILE]
Prints a Markdown table; timings, not assertions. At the defaults the faithful sweep takes minutes
on two CPU cores; ``--size 16 --points 1 --samples-per-point 1 --workers 1`` checks the script.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _report import emit_table

from lgtutorial.cli.generate import run_generate
from lgtutorial.sampling.samplers import evaluations_at
from lgtutorial.sampling.settings import HybridSettings
from lgtutorial.score.registry import load_score_model
from lgtutorial.sweep.design import load_sources, point_row
from lgtutorial.sweep.parsing import parse_design
from lgtutorial.sweep.run import connect, run_sweep

REFERENCES = ["nbsa-proxy", "ngrf-two-phase-elongated"]
MODEL = "nbsa-authors-checkpoint"
ARMS = ("fast", "faithful", "loop")
#: Samples of the MICRO2D dataset (Robertson et al.'s companion dataset), for the last column.
MICRO2D_SAMPLES = 87_000


def design(args, sampler: str, *, points: int, samples_per_point: int, name: str):
    """The benchmark's sweep design with one sampler."""
    theta = [k / (points - 1) for k in range(points)] if points > 1 else [0.0]
    return parse_design({
        "name": name, "seed": args.seed, "references": REFERENCES, "theta": theta,
        "samples_per_point": samples_per_point, "shape": [args.size, args.size], "model": args.model,
        "sampler": {"name": sampler}, "summary_cutoff": min(4, (args.size - 1) // 2), "device": args.device,
    })


def timed_sweep(args, sampler: str, client, work: Path) -> dict:
    """Generate the design on the cluster; time the whole run (sources, store, check included)."""
    plan = design(args, sampler, points=args.points, samples_per_point=args.samples_per_point,
                  name=f"throughput-{sampler}")
    started = time.perf_counter()
    result = run_sweep(plan, work / f"{plan.name}.zarr", client=client, progress=False)
    seconds = time.perf_counter() - started
    if not result.complete:
        raise RuntimeError(f"the {sampler} sweep did not complete: {result.failures}")
    return {"run": f"sweep, {sampler}", "sampler": sampler, "samples": plan.n_samples, "seconds": seconds}


def timed_loop(args, work: Path) -> dict:
    """One ``run_generate`` per point of the design, fast sampler, in this process."""
    plan = design(args, "fast", points=args.points, samples_per_point=args.samples_per_point, name="loop")
    rows, _ = load_sources(plan)
    shape = (args.size, args.size)
    previous = torch.get_num_threads()
    torch.set_num_threads(args.workers)
    started = time.perf_counter()
    try:
        for point, weights in enumerate(plan.weights):
            statistics = work / f"point-{point}.npy"
            np.save(statistics, point_row(rows, weights, shape).numpy())
            settings = HybridSettings(statistics=str(statistics), model=args.model, n_samples=args.samples_per_point,
                                      size=args.size, sampler="fast", seed=args.seed + point, device=args.device,
                                      force=True)
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                run_generate(settings, work / f"generate-{point}")  # its report, progress bar and warnings
    finally:
        torch.set_num_threads(previous)
    seconds = time.perf_counter() - started
    return {"run": "loop of generate", "sampler": "fast", "samples": plan.n_samples, "seconds": seconds}


def table(rows: list[dict], evaluations: dict, args, setup: dict) -> str:
    lines = [f"Sweep throughput: {args.points} point(s) x {args.samples_per_point} sample(s) of {args.size}x{args.size} "
             f"px between {' and '.join(REFERENCES)}, model {args.model}; {args.workers} single-thread dask "
             f"worker(s) (the loop: {args.workers} torch thread(s) in one process); {platform.machine()}, "
             f"torch {torch.__version__}. Cluster start {setup.get('cluster', 0.0):.1f} s and warm-up "
             f"{setup.get('warm-up', 0.0):.1f} s (model loading) are not in the times below.", "",
             "| run | sampler | evaluations per sample | samples | wall time (s) | s per sample | samples per hour "
             f"| hours for {MICRO2D_SAMPLES:,} samples |",
             "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        per_hour = 3600.0 * row["samples"] / row["seconds"]
        lines.append(f"| {row['run']} | {row['sampler']} | {evaluations[row['sampler']]} | {row['samples']} | "
                     f"{row['seconds']:.1f} | {row['seconds'] / row['samples']:.2f} | {per_hour:,.0f} | "
                     f"{MICRO2D_SAMPLES / per_hour:,.1f} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64, help="side of the square samples (px)")
    parser.add_argument("--points", type=int, default=3, help="interpolation points between the two references")
    parser.add_argument("--samples-per-point", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2, help="dask workers (and the loop's torch threads)")
    parser.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated, of {', '.join(ARMS)}")
    parser.add_argument("--model", default=MODEL)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=None, help="folder for the stores (default: a temporary one)")
    parser.add_argument("--output", default=None, help="also write the table to this Markdown file")
    args = parser.parse_args(argv)
    arms = [arm.strip() for arm in args.arms.split(",") if arm.strip()]
    if not arms or any(arm not in ARMS for arm in arms):
        parser.error(f"--arms takes a comma-separated subset of {', '.join(ARMS)}; got {args.arms!r}")
    if min(args.size, args.points, args.samples_per_point, args.workers) < 1:
        parser.error("--size, --points, --samples-per-point and --workers must be positive")

    _, sigmas = load_score_model(args.model)
    evaluations = {name: evaluations_at(name, sigma_max=float(sigmas.max()), sigma_min=float(sigmas.min()),
                                        model_levels=len(sigmas)) for name in ("fast", "faithful")}
    with contextlib.ExitStack() as stack:
        work = args.work or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="sweep-throughput-")))
        work.mkdir(parents=True, exist_ok=True)
        rows, setup = [], {}
        sweeps = [arm for arm in arms if arm != "loop"]
        if sweeps:
            started = time.perf_counter()
            client, cluster = connect(None, args.workers)
            stack.callback(cluster.close)
            stack.callback(client.close)
            setup["cluster"] = time.perf_counter() - started
            started = time.perf_counter()  # every worker loads the model once, untimed
            warm = design(args, "fast", points=1, samples_per_point=args.workers, name="warm-up")
            run_sweep(warm, work / "warm-up.zarr", client=client, progress=False)
            setup["warm-up"] = time.perf_counter() - started
            for sampler in sweeps:
                rows.append(timed_sweep(args, sampler, client, work))
                print(f"{rows[-1]['run']}: {rows[-1]['seconds']:.1f} s for {rows[-1]['samples']} samples", flush=True)
        if "loop" in arms:
            rows.append(timed_loop(args, work))
            print(f"{rows[-1]['run']}: {rows[-1]['seconds']:.1f} s for {rows[-1]['samples']} samples", flush=True)
    emit_table(table(rows, evaluations, args, setup), args.output)


if __name__ == "__main__":
    main()
