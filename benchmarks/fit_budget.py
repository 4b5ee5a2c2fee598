"""Does ``lgtutorial fit --minutes M`` keep its budget on a busy machine? (issue #38)

Runs the real command on a registered micrograph, optionally beside a busy-loop process on one core (another
job on the user's laptop), and reads from the fit's own ``summary.json`` how long it trained, how many steps
it took, the speed it measured over the run, and the steps the speed probe at the start expected. Before time
budgets the probe's step count was the plan: on a busy machine ``fit --minutes 10`` trained 4.7 minutes.

    python benchmarks/fit_budget.py li2018-pmma --minutes 5 --busy 1 --output benchmarks/results/fit_budget_cpu.md

The table is written with the command's own numbers; nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import emit_table  # noqa: E402

BUSY_LOOP = "while True:\n    pass\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("micrograph", nargs="?", default="li2018-pmma", help="registry name or file")
    parser.add_argument("--minutes", type=float, default=5.0, help="the fit's budget")
    parser.add_argument("--busy", type=int, default=1, help="busy-loop processes beside the fit (0: an idle machine)")
    parser.add_argument("--output", default=None, help="Markdown file to write")
    args = parser.parse_args(argv)
    lgtutorial = Path(sys.executable).parent / "lgtutorial"
    busy = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in range(args.busy)]
    try:
        with tempfile.TemporaryDirectory() as folder:
            out = Path(folder) / "fit"
            started = time.perf_counter()
            subprocess.run([str(lgtutorial), "fit", args.micrograph, "--minutes", str(args.minutes), "--samples", "2",
                            "--device", "cpu", "--output", str(out)], check=True, env=dict(os.environ))
            whole = time.perf_counter() - started
            summary = json.loads((out / "summary.json").read_text())
    finally:
        for process in busy:
            process.kill()
    training, seconds = summary["training"], summary["seconds"]
    rows = [
        ("budget (min)", f"{args.minutes:g}"),
        ("busy-loop processes beside it", f"{args.busy} (of {os.cpu_count()} cores)"),
        ("trained (min, the checkpoint's wall time)", f"{training['wall_time_s'] / 60:.2f}"),
        ("steps taken", f"{training['steps_done']:,}"),
        ("steps/s measured over the run", f"{training['steps_per_second']:.2f}"),
        ("steps the speed probe at the start expected", f"{training['steps_expected']:,}"),
        ("planning, generating and report (min)", f"{seconds['planning'] / 60:.2f}, "
                                                  f"{seconds['generating_and_report'] / 60:.2f}"),
        ("the whole command (min)", f"{whole / 60:.2f}"),
    ]
    table = "\n".join([f"# `lgtutorial fit {args.micrograph} --minutes {args.minutes:g}` beside {args.busy} busy "
                       "loop(s)", "", "Measured by `benchmarks/fit_budget.py` (torch "
                       f"{__import__('torch').__version__}, {os.cpu_count()} CPU cores).", "",
                       "| quantity | value |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)])
    emit_table(table, args.output)


if __name__ == "__main__":
    main()
