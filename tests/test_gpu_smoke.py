"""``benchmarks/gpu_smoke.py --dry-run`` (issue #43): on any machine, it lists what it would measure on a GPU."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_gpu_smoke_dry_run_lists_what_it_would_measure():
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_smoke.py"), "--dry-run"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "nothing is run" in done.stdout
    for number, item in enumerate(("device", "tests", "training float32", "training autocast", "hybrid batch 8",
                                   "hybrid batch 32", "hybrid fast channels-last", "hybrid fast contiguous",
                                   "chapter 04", "chapter 05", "chapter 10"), 1):
        assert f"{number:2d}. {item}: " in done.stdout, done.stdout
    assert 'pytest -k "cuda and not fake"' in done.stdout and "300 case-1 training steps" in done.stdout
    assert "256^2 sample at batch 32" in done.stdout and "book/10_three_dimensions.ipynb in quick mode" in done.stdout
