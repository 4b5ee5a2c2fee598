"""FFT padding of non-periodic 2-point statistics: ``2 L - 1`` against the fast size, in one run.

Non-periodic statistics zero-pad every axis of ``L`` pixels to at least ``2 L - 1``. That length is
often a poor one for an FFT (511 = 7 x 73 for 256 px; 401, a prime, for the 201 px references); the
package pads to :func:`lgtutorial.statistics.two_point.fast_fft_size` of it (512, 405), which gives the
same values. This times :func:`lgtutorial.statistics.two_point.two_point_statistics` with
``periodic=False`` on one random 2-phase sample both ways, float32 and float64 input (the package
computes non-periodic statistics in float64 whatever the input, so that they stay in [0, 1]); the
``2 L - 1`` arm is the same function with ``fast_fft_size`` replaced by the identity. The arms take
turns, ``--rounds`` times, and each reports its fastest call. The last column is the largest
difference between the two paddings' values.

Run: OMP_NUM_THREADS=2 python benchmarks/fft_padding.py [--sizes 256 201] [--output FILE.md]
Prints a Markdown table; timings, not assertions.
"""

from __future__ import annotations

import argparse
import platform
import time
from unittest import mock

import torch
from _report import emit_table

from lgtutorial.microstructure import labels_to_one_hot
from lgtutorial.statistics import two_point
from lgtutorial.statistics.two_point import fast_fft_size, two_point_statistics


def fastest_call(function, min_seconds: float) -> float:
    """Seconds of the fastest of the calls of ``function()`` that fill ``min_seconds`` (after a warm-up call):
    on a shared machine the fastest call is the one least slowed by other work."""
    function()
    times, start = [], time.perf_counter()
    while time.perf_counter() - start < min_seconds:
        begin = time.perf_counter()
        function()
        times.append(time.perf_counter() - begin)
    return min(times)


def statistics(m: torch.Tensor, padding: str) -> torch.Tensor:
    if padding == "2L-1":
        with mock.patch.object(two_point, "fast_fft_size", lambda n: n):
            return two_point_statistics(m, periodic=False)
    return two_point_statistics(m, periodic=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 201], help="sides L of the square samples")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--min-seconds", type=float, default=1.0, help="per arm and round")
    parser.add_argument("--output", default=None, help="also write the table to this Markdown file")
    args = parser.parse_args()

    lines = [
        f"Non-periodic 2-point statistics of one 2-phase sample, ms per call ({platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} torch threads, torch {torch.__version__}; fastest call of {args.rounds} alternating rounds)",
        "",
        "| side | input | FFT length 2L-1 | ms | fast FFT length | ms | speed-up | largest difference |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for side in args.sizes:
        labels = torch.randint(0, 2, (1, side, side), generator=torch.Generator().manual_seed(side))
        for dtype in (torch.float32, torch.float64):
            m = labels_to_one_hot(labels, dtype=dtype)
            best = {"2L-1": float("inf"), "fast": float("inf")}
            for _ in range(args.rounds):
                for padding in best:
                    best[padding] = min(best[padding],
                                        fastest_call(lambda: statistics(m, padding), args.min_seconds))
            difference = float((statistics(m, "2L-1").double() - statistics(m, "fast").double()).abs().max())
            lines.append(f"| {side} | {str(dtype).removeprefix('torch.')} | {2 * side - 1} | {1e3 * best['2L-1']:.1f} | "
                         f"{fast_fft_size(2 * side - 1)} | {1e3 * best['fast']:.1f} | "
                         f"{best['2L-1'] / best['fast']:.2f}x | {difference:.1e} |")
            print(lines[-1], flush=True)
    emit_table("\n".join(lines), args.output)


if __name__ == "__main__":
    main()
