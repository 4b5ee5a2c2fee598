"""How near the CPU's attainable rate one score-network evaluation runs (issue #41).

One run measures, on the same machine and threads:

* the attainable float32 rate: a large square matmul (``--matmul`` side), best of several, ``2 n^3`` FLOPs each;
* the U-Net's FLOPs per forward (``torch.utils.flop_counter.FlopCounterMode``: convolutions and matmuls,
  what the counter sees; normalisations and activations are not counted) at 64^2 and 256^2, batch 1, 2, 4, 8;
* seconds per forward (median of ``--repeats`` after a warm-up) and the ratio of its FLOP rate to the
  matmul's, for the eager network (the baseline) and, each against it in the same run, channels-last
  tensors, bfloat16 autocast, and ``torch.compile`` (``--compile``: at 256^2 batch 4 only; its one-off
  compilation is timed apart).

Run: OMP_NUM_THREADS=2 python benchmarks/eval_flop_rate.py --threads 2 --output benchmarks/results/eval_flop_rate_cpu.md
Numbers, not assertions.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch
from _report import emit_table
from torch.utils.flop_counter import FlopCounterMode

from lgtutorial.score.registry import load_score_model


def matmul_rate(side: int, repeats: int) -> float:
    """Best float32 FLOP/s of ``side x side`` matmuls."""
    a, b = torch.randn(side, side), torch.randn(side, side)
    torch.mm(a, b)
    best = min(_seconds(lambda: torch.mm(a, b)) for _ in range(repeats))
    return 2 * side**3 / best


def _seconds(call) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def forward_flops(network, x) -> int:
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        network(x)
    return counter.get_total_flops()


def time_forward(network, x, repeats: int, *, bf16: bool = False) -> float:
    """Median seconds of one forward of ``network`` on ``x`` (after one warm-up)."""
    def call():
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            network(x)

    call()
    return statistics.median(_seconds(call) for _ in range(repeats))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="nbsa-authors-checkpoint")
    parser.add_argument("--sides", default="64,256")
    parser.add_argument("--batches", default="1,2,4,8")
    parser.add_argument("--variants", default="eager,channels-last,bf16", help="of eager, channels-last, bf16")
    parser.add_argument("--compile", action="store_true", help="also torch.compile at 256^2 batch 4")
    parser.add_argument("--matmul", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--output", default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    model, _ = load_score_model(args.model)
    model.eval()
    channels = model.settings.channels
    eager = model
    last = model.__class__(model.settings)
    last.load_state_dict(model.state_dict())
    last = last.eval().to(memory_format=torch.channels_last)
    peak = matmul_rate(args.matmul, max(args.repeats, 3))
    rows = []
    for side in (int(s) for s in args.sides.split(",")):
        for batch in (int(b) for b in args.batches.split(",")):
            x = torch.randn(batch, channels, side, side)
            flops = forward_flops(eager, x)
            row = {"side": side, "batch": batch, "flops": flops}
            for variant in args.variants.split(","):
                network, data = (last, x.contiguous(memory_format=torch.channels_last)) if variant == "channels-last" \
                    else (eager, x)
                row[variant] = time_forward(network, data, args.repeats, bf16=variant == "bf16")
            rows.append(row)
            print(row, flush=True)
    compiled = None
    if args.compile:
        x = torch.randn(4, channels, 256, 256)
        network = torch.compile(eager)
        started = time.perf_counter()
        with torch.no_grad():
            network(x)
        setup = time.perf_counter() - started
        compiled = {"setup": setup, "seconds": time_forward(network, x, args.repeats),
                    "eager": time_forward(eager, x, args.repeats), "flops": forward_flops(eager, x)}
        print(compiled, flush=True)
    variants = args.variants.split(",")
    lines = [f"# FLOP rate of one score-network evaluation ({args.model})", "",
             f"{platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}; attainable "
             f"rate: {args.matmul}x{args.matmul} float32 matmul, best of {max(args.repeats, 3)}: **{peak / 1e9:.1f} "
             "GFLOP/s**. FLOPs per forward from `torch.utils.flop_counter.FlopCounterMode` (convolutions and "
             f"matmuls). Seconds: median of {args.repeats} forwards after a warm-up. Made by "
             "`benchmarks/eval_flop_rate.py`.", "",
             "| side | batch | GFLOP per forward | " + " | ".join(f"{v}: s, GFLOP/s, of matmul" for v in variants) + " |",
             "|---|---|---|" + "---|" * len(variants)]
    for row in rows:
        cells = [f"{row[v]:.4f}, {row['flops'] / row[v] / 1e9:.1f}, {row['flops'] / row[v] / peak:.0%}" for v in variants]
        lines.append(f"| {row['side']} | {row['batch']} | {row['flops'] / 1e9:.2f} | " + " | ".join(cells) + " |")
    if compiled is not None:
        lines += ["", f"`torch.compile` at 256^2, batch 4: {compiled['seconds']:.4f} s per forward "
                  f"({compiled['flops'] / compiled['seconds'] / peak:.0%} of the matmul rate) against eager "
                  f"{compiled['eager']:.4f} s in the same run; compilation {compiled['setup']:.0f} s once."]
    emit_table("\n".join(lines), args.output)


if __name__ == "__main__":
    main()
