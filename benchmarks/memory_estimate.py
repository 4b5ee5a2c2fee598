"""Peak memory of each phase of a generation against :mod:`lgtutorial.sampling.sizes`' estimate of it.

``generate`` refuses, before anything is built, a request whose estimated peak memory exceeds what is
free (:func:`lgtutorial.sampling.sizes.check_memory`). The estimate's bytes per pixel are measured here:
every row runs one phase in a fresh process (``lgtutorial-case1``'s network and carried statistics) and
reads that process's peak resident memory (Linux: ``VmHWM``, reset with ``/proc/self/clear_refs`` and
``malloc_trim`` just before the phase), less what it held before. Phases: ``network`` (one forward pass,
no grad), ``field2d`` (:meth:`HybridGenerator.from_statistics` moving the statistics to the size and
building the field), ``probe2d``/``probe3d`` (:meth:`GaussianRandomField.choose_segmentation`),
``sample2d`` (:meth:`HybridGenerator.sample`, fast sampler, 2 levels, no guard), ``statistics3d``
(:func:`isotropic_statistics`), ``field3d`` (the 3D field), ``sample3d`` (:meth:`VolumeGenerator.sample`,
one round, 6 levels). The estimate column is the matching part of :func:`generation_memory`.

Run: OMP_NUM_THREADS=2 python benchmarks/memory_estimate.py [--output FILE.md]   (Linux only; a few minutes)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys

from _report import emit_table

CASES = [("network", 512, 1), ("network", 1024, 1), ("field2d", 1024, 1), ("field2d", 2048, 1),
         ("probe2d", 512, 1), ("probe2d", 1024, 1), ("sample2d", 256, 1), ("sample2d", 256, 4), ("sample2d", 512, 1),
         ("statistics3d", 64, 1), ("statistics3d", 96, 1), ("field3d", 64, 1), ("field3d", 96, 1),
         ("probe3d", 64, 1), ("sample3d", 32, 1), ("sample3d", 64, 1)]


def measure(phase: str, side: int, batch: int) -> int:
    """Peak resident bytes of ``phase`` at ``side`` (``batch`` samples), in this process."""
    import ctypes
    import re

    import torch

    from lgtutorial.grf.field import GaussianRandomField
    from lgtutorial.grf.interpolation import statistics_row_for_shape
    from lgtutorial.sampling.hybrid import HybridGenerator
    from lgtutorial.score.registry import load_score_model, statistics_for_model
    from lgtutorial.volume.generator import VolumeGenerator
    from lgtutorial.volume.statistics import isotropic_statistics

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    model, sigmas = load_score_model("lgtutorial-case1", device="cpu")
    row = statistics_for_model("lgtutorial-case1").statistics_row()

    def resident() -> int:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def peak() -> int:
        with open("/proc/self/status") as handle:
            return int(re.search(r"VmHWM:\s+(\d+)", handle.read()).group(1)) * 1024

    def start() -> int:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return resident()

    volume = dict(sigmas=sigmas, device="cpu", levels=6, rounds=1, batch_size=batch, guard=None)
    if phase == "network":
        x = torch.zeros(batch, 1, side, side)
        before = start()
        with torch.no_grad():
            model.score(x, 1.0)
    elif phase == "field2d":
        before = start()
        HybridGenerator.from_statistics(row, model, shape=(side, side), device="cpu", sigmas=sigmas)
    elif phase in ("probe2d", "probe3d"):
        grid = statistics_row_for_shape(row, (side, side)) if phase == "probe2d" else (
            isotropic_statistics(row, (side,) * 3).row)
        field = GaussianRandomField(grid)
        before = start()
        field.choose_segmentation()
    elif phase == "sample2d":
        generator = HybridGenerator.from_statistics(row, model, shape=(side, side), device="cpu", sigmas=sigmas,
                                                    levels=2, batch_size=batch, guard=None)
        generator.field.choose_segmentation()
        before = start()
        generator.sample(batch, seed=0, return_grf=True, progress=False)
    elif phase == "statistics3d":
        before = start()
        isotropic_statistics(row, (side,) * 3)
    elif phase == "field3d":
        statistics = isotropic_statistics(row, (side,) * 3)
        before = start()
        VolumeGenerator.from_statistics(statistics, model, **volume)
    else:  # sample3d
        generator = VolumeGenerator.from_statistics(isotropic_statistics(row, (side,) * 3), model, **volume)
        generator.field.choose_segmentation()
        before = start()
        generator.sample(batch, seed=0, return_grf=True, progress=False)
    return peak() - before


def estimate(phase: str, side: int, batch: int) -> int:
    """The part of the estimate that ``phase`` measures."""
    from lgtutorial.sampling import sizes

    latent, n = 40, 2
    if phase == "network":
        return 4 * sizes.NETWORK * latent * batch * side**2
    if phase == "field2d":
        return sizes.GRF_BUILD * n * side**2
    if phase in ("probe2d", "probe3d"):
        pixels = side ** (2 if phase == "probe2d" else 3)
        return sizes.PROBE * max(2, min(16, 2**24 // (pixels * n))) * pixels * n
    if phase == "statistics3d":
        return sizes.STATISTICS_BYTES * n**2 * side**3
    if phase == "field3d":
        return sizes.GRF_BUILD * n * side**3
    if phase == "sample2d":
        embedded = (side + 32) ** 2
        return batch * (4 * embedded * (sizes.NETWORK * latent + sizes.STATE) + sizes.GRF_SAMPLE * n * side**2)
    slices = min(128, batch * side)  # sample3d
    return (4 * sizes.NETWORK * latent * slices * side**2
            + batch * side**3 * (4 * sizes.VOLUME_STATE + sizes.GRF_SAMPLE * n))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default=None, help="Markdown file to write")
    parser.add_argument("--one", nargs=3, default=None, help=argparse.SUPPRESS)  # phase side batch, in a fresh process
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one[0], int(args.one[1]), int(args.one[2]))))
        return
    lines = [f"Peak resident memory of each phase on {platform.processor() or platform.machine()}, "
             f"{os.environ.get('OMP_NUM_THREADS', 'all')} threads, against its estimate "
             "(`benchmarks/memory_estimate.py`).", "",
             "| phase | side | batch | measured MiB | estimated MiB | estimate / measured |", "|---|---|---|---|---|---|"]
    for phase, side, batch in CASES:
        result = subprocess.run([sys.executable, __file__, "--one", phase, str(side), str(batch)], check=True,
                                capture_output=True, text=True)
        measured, guessed = json.loads(result.stdout.strip().splitlines()[-1]), estimate(phase, side, batch)
        lines.append(f"| {phase} | {side} | {batch} | {measured / 2**20:.0f} | {guessed / 2**20:.0f} | "
                     f"{guessed / max(measured, 1):.2f} |")
        print(lines[-1], flush=True)
    emit_table("\n".join(lines), args.output)


if __name__ == "__main__":
    main()
