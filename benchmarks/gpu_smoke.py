"""GPU smoke check (issue #43): what the package does on a lent GPU, in one call of at most 8 minutes.

In order, each item in its own share of the time; an item that cannot run (a missing file or
package, or no time left) is recorded with its reason, and the others still run:

1. the device: name, compute capability, torch, CUDA and cuDNN, TF32, and the autocast type the
   trainer picks there (:func:`lgtutorial.score.step.amp_dtype`: bfloat16 from 8.0 on, else float16);
2. the tests marked or parametrised for CUDA, on the GPU (``pytest -k "cuda and not fake" tests``);
3. 300 case-1 training steps (the ``case1`` presets: batch 128, 40 px patches of nbsa-proxy) in
   float32 and under autocast to that type: steps/s (steps 2-299, timed between device syncs) and
   the test loss after them;
4. hybrid time per 256^2 sample (the authors' checkpoint, ``faithful``, 1000 levels) at batch 8 and 32,
   and with ``fast`` at batch 8 on channels-last and on contiguous tensors (which layout, and which batch,
   the device should get: the CPU's were chosen by measurement, a GPU's are not yet);
5. chapters 4, 5 and 10 in quick mode through papermill (their own parameter ``quick = True``).

It writes one Markdown record (default ``benchmarks/results/gpu_smoke_<gpu>.md``).

Run: LGTUTORIAL_DATA=shared/data python benchmarks/gpu_smoke.py [--output FILE] [--budget-minutes 7.5]
     python benchmarks/gpu_smoke.py --dry-run   # any machine: lists what it would measure, runs nothing
The reference files (nbsa-proxy, the authors' checkpoint) must be in ``$LGTUTORIAL_DATA`` (a lent
machine reaches no network); packages its image lacks (papermill and a Jupyter kernel for the
chapters) travel as wheels. Timings, not assertions.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the checkout's package, also where it is not installed

STEPS = 300
HYBRID_BATCHES = (8, 32)
HYBRID_SIZE = 256
HYBRID_LAYOUTS = ("channels-last", "contiguous")
CHAPTERS = ("04_score_models", "05_conditional_sampling", "10_three_dimensions")
PYTEST_SELECTION = "cuda and not fake"
REFERENCE = "nbsa-proxy"
HYBRID_MODEL = "nbsa-authors-checkpoint"

#: (item, what is measured, seconds it may take at most)
ITEMS = (
    ("device", "name, compute capability, torch/CUDA/cuDNN, TF32, the trainer's autocast type", 10),
    ("tests", f'the tests marked or parametrised for CUDA: pytest -k "{PYTEST_SELECTION}" tests', 100),
    ("training float32", f"{STEPS} case-1 training steps (batch 128, 40 px patches of {REFERENCE}) in float32: "
                         "steps/s, test loss", 60),
    ("training autocast", f"the same {STEPS} steps under autocast to the GPU's type (bfloat16 from sm80 on, "
                          "float16 with the gradient scaler below): steps/s, test loss", 60),
    *((f"hybrid batch {batch}", f"hybrid time per {HYBRID_SIZE}^2 sample at batch {batch} ({HYBRID_MODEL}, "
                                f"faithful, 1000 levels): s/sample, achieved volume fraction", 60)
      for batch in HYBRID_BATCHES),
    *((f"hybrid fast {layout}", f"hybrid time per {HYBRID_SIZE}^2 sample at batch {HYBRID_BATCHES[0]} ({HYBRID_MODEL}, "
                                f"fast) with the network on {layout} tensors: s/sample", 45)
      for layout in HYBRID_LAYOUTS),
    *((f"chapter {name[:2]}", f"book/{name}.ipynb in quick mode through papermill: runs, seconds", 90)
      for name in CHAPTERS),
)


class Deadline:
    """The call's time: what is left of it, and what one item may still take."""

    def __init__(self, seconds: float):
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return self.end - time.monotonic()

    def share(self, cap: float) -> float:
        return max(0.0, min(cap, self.left()))


def _missing(*modules: str) -> list[str]:
    return [name for name in modules if importlib.util.find_spec(name) is None]


# -- the items ------------------------------------------------------------------------------------
def device_item(device) -> tuple[str, str]:
    import torch

    from lgtutorial.score.step import amp_dtype

    major, minor = torch.cuda.get_device_capability(device)
    properties = torch.cuda.get_device_properties(device)
    dtype = amp_dtype(device)
    result = (f"{torch.cuda.get_device_name(device)}, sm{major}{minor}, {properties.total_memory / 2**30:.0f} GiB; "
              f"autocast: {str(dtype).removeprefix('torch.')}{' + gradient scaler' if dtype == torch.float16 else ''}")
    notes = (f"torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}; "
             f"TF32 in convolutions {torch.backends.cudnn.allow_tf32}, in matmuls "
             f"{torch.backends.cuda.matmul.allow_tf32}")
    return result, notes


def tests_item(deadline: Deadline, cap: float) -> tuple[str, str, str]:
    command = [sys.executable, "-m", "pytest", "-q", "-o", "addopts=-p no:cacheprovider",
               "--continue-on-collection-errors", "-k", PYTEST_SELECTION, "tests"]
    try:
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=deadline.share(cap))
    except subprocess.TimeoutExpired as stopped:
        output = (stopped.stdout or b"").decode() if isinstance(stopped.stdout, bytes) else (stopped.stdout or "")
        return f"stopped after {stopped.timeout:.0f} s", "", output[-3000:]
    counts = dict((kind, int(n)) for n, kind in re.findall(r"(\d+) (passed|failed|skipped|errors?|deselected)",
                                                           done.stdout.splitlines()[-1] if done.stdout else ""))
    result = ", ".join(f"{n} {kind}" for kind, n in counts.items()) or f"exit {done.returncode}"
    return result, f"exit {done.returncode}", (done.stdout + done.stderr)[-3000:] if done.returncode else ""


def training_item(device, mixed_precision: bool, deadline: Deadline, cap: float) -> tuple[str, str]:
    import torch

    from lgtutorial.score.settings import TRAINING_PRESETS, UNET_PRESETS
    from lgtutorial.score.training import train_score_model

    settings = dataclasses.replace(TRAINING_PRESETS["case1"], steps=STEPS, eval_every=STEPS, checkpoint_every=STEPS,
                                   device=str(device), mixed_precision=mixed_precision)
    marks = {}

    def callback(info):
        if info["step"] in (1, STEPS - 1):
            torch.cuda.synchronize(device)
            marks[info["step"]] = time.perf_counter()

    started = time.perf_counter()
    run = train_score_model(REFERENCE, model_settings=UNET_PRESETS["case1"], training_settings=settings,
                            progress=False, callback=callback, time_limit_s=max(1.0, deadline.share(cap)))
    seconds = time.perf_counter() - started
    done = run.history["step"][-1]
    if len(marks) == 2:
        rate = f"{(STEPS - 2) / (marks[STEPS - 1] - marks[1]):.1f} steps/s"
    else:
        rate = f"{done / seconds:.1f} steps/s (whole run)"
    stopped = f"; stopped by the time limit at step {done}" if run.stopped_at_time_limit else ""
    return (f"{rate}, test loss {run.history['test_loss'][-1]:.1f} (untrained {run.history['test_loss'][0]:.1f})",
            f"{done} steps in {seconds:.0f} s with patch cutting and two test-loss evaluations{stopped}")


def hybrid_item(device, batch: int, layout: str | None = None) -> tuple[str, str, float]:
    """The faithful sampler at ``batch``; with ``layout``, ``fast`` with its network on that memory layout."""
    from dataclasses import replace

    import torch

    from lgtutorial import load_reference
    from lgtutorial.sampling.hybrid import HybridGenerator
    from lgtutorial.sampling.samplers import SAMPLERS
    from lgtutorial.score.registry import load_score_model

    model, sigmas = load_score_model(HYBRID_MODEL, device=device)
    reference, _ = load_reference(REFERENCE)
    sampler = "faithful" if layout is None else replace(SAMPLERS["fast"], channels_last=layout == "channels-last")
    generator = HybridGenerator.from_reference(reference, model, sigmas=sigmas, shape=(HYBRID_SIZE, HYBRID_SIZE),
                                               sampler=sampler, levels=1000 if layout is None else None, device=device)
    side = HYBRID_SIZE + 2 * generator.padding
    with torch.no_grad():  # warm-up: one network evaluation at the working size
        generator.model.score(torch.zeros(batch, 1, side, side, device=device), generator.sigmas[0])
    torch.cuda.synchronize(device)
    started = time.perf_counter()
    samples = generator.sample(batch, seed=0, batch_size=batch, progress=False)
    torch.cuda.synchronize(device)
    seconds = (time.perf_counter() - started) / batch
    achieved = samples.achieved_volume_fractions[:, 1].double()
    return (f"{seconds:.3f} s/sample",
            f"{len(generator.sigmas)} levels on {side}x{side}; volume fraction {float(achieved.mean()):.4f} "
            f"+- {float(achieved.std()):.4f} (target {float(samples.target_volume_fractions[1]):.4f})", seconds)


def chapter_item(name: str, deadline: Deadline, cap: float, kernel: str | None) -> tuple[str, str, str]:
    with tempfile.TemporaryDirectory() as scratch:
        command = [sys.executable, "-m", "papermill", str(ROOT / "book" / f"{name}.ipynb"),
                   str(Path(scratch) / f"{name}.ipynb"), "-p", "quick", "True", "--cwd", str(ROOT / "book"),
                   "--no-progress-bar"] + (["-k", kernel] if kernel else [])
        started = time.perf_counter()
        try:
            done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=deadline.share(cap))
        except subprocess.TimeoutExpired as stopped:
            return f"stopped after {stopped.timeout:.0f} s", "", ""
    seconds = time.perf_counter() - started
    if done.returncode == 0:
        return "ran", f"{seconds:.0f} s", ""
    return "failed", f"{seconds:.0f} s, exit {done.returncode}", done.stderr[-3000:]


# -- the record -----------------------------------------------------------------------------------
def readiness() -> dict[str, str | None]:
    """Why an item cannot run on this machine (None: it can), known before anything runs."""
    if _missing("pooch") and not os.environ.get("LGTUTORIAL_CACHE"):
        # no downloads here: a cache folder of our own, so that the package never asks pooch for one
        os.environ["LGTUTORIAL_CACHE"] = tempfile.mkdtemp(prefix="lgtutorial-cache-")
    from lgtutorial import data

    def file_reason(name: str) -> str | None:
        try:
            data.fetch(name, download=False)  # a lent machine reaches no network
        except Exception as error:  # noqa: BLE001 - whatever stops it is the reason recorded
            return f"{name}: {type(error).__name__}: {str(error)[:160]}"
        return None

    reasons = {"device": None, "tests": ", ".join(_missing("pytest")) or None}
    reference = file_reason(REFERENCE)
    reasons["training float32"] = reasons["training autocast"] = reference
    model = file_reason(HYBRID_MODEL)
    for batch in HYBRID_BATCHES:
        reasons[f"hybrid batch {batch}"] = reference or model
    for layout in HYBRID_LAYOUTS:
        reasons[f"hybrid fast {layout}"] = reference or model
    lacking = _missing("papermill", "ipykernel")
    for name in CHAPTERS:
        reasons[f"chapter {name[:2]}"] = f"not installed: {', '.join(lacking)}" if lacking else None
    return reasons


def default_output(gpu_name: str) -> Path:
    slug = re.sub(r"[^a-z0-9]+", "_", gpu_name.lower()).strip("_") or "gpu"
    return ROOT / "benchmarks" / "results" / f"gpu_smoke_{slug}.md"


def dry_run(args) -> int:
    import torch

    reasons = readiness()
    device = "CUDA " + torch.cuda.get_device_name() if torch.cuda.is_available() else "no CUDA GPU here"
    print(f"gpu_smoke --dry-run ({device}; nothing is run): would measure, in at most "
          f"{args.budget_minutes:g} minutes,")
    for number, (item, what, cap) in enumerate(ITEMS, 1):
        reason = reasons.get(item)
        print(f"{number:2d}. {item}: {what} [at most {cap} s]" + (f" -- would be skipped here: {reason}" if reason
                                                                    else ""))
    print(f"and write the record to {args.output or 'benchmarks/results/gpu_smoke_<gpu>.md'}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="list what would be measured, run nothing (any machine)")
    parser.add_argument("--output", default=None, help="Markdown record (default benchmarks/results/gpu_smoke_<gpu>.md)")
    parser.add_argument("--budget-minutes", type=float, default=7.5, help="the whole call's time (at most 8)")
    parser.add_argument("--kernel", default=None, help="Jupyter kernel for the chapters (default: the notebooks')")
    parser.add_argument("--skip", nargs="*", default=[], help="items to leave out, e.g. tests 'chapter 10'")
    args = parser.parse_args(argv)
    if args.dry_run:
        return dry_run(args)

    import torch

    if not torch.cuda.is_available():
        print("gpu_smoke: no CUDA GPU on this machine (use --dry-run to see what it would measure)", file=sys.stderr)
        return 2
    deadline = Deadline(60 * min(args.budget_minutes, 8.0) - 10)  # ten seconds kept for the record
    device = torch.device("cuda")
    reasons = readiness()
    rows, details, started = [], [], time.strftime("%Y-%m-%d %H:%M %Z")
    per_sample = None  # the hybrid's seconds per sample at the smaller batch: is there time for the larger?
    for item, _what, cap in ITEMS:
        reason = "left out (--skip)" if item in args.skip else reasons.get(item)
        if reason is None and deadline.left() < min(cap, 20):
            reason = "no time left"
        if reason is not None:
            rows.append((item, "skipped", reason, "-"))
            print(f"{item}: skipped ({reason})", flush=True)
            continue
        began, log = time.perf_counter(), ""
        try:
            if item == "device":
                result, notes = device_item(device)
            elif item == "tests":
                result, notes, log = tests_item(deadline, cap)
            elif item.startswith("training"):
                result, notes = training_item(device, item.endswith("autocast"), deadline, cap)
            elif item.startswith("hybrid fast"):
                result, notes, _ = hybrid_item(device, HYBRID_BATCHES[0], item.rsplit(" ", 1)[1])
            elif item.startswith("hybrid"):
                batch = int(item.rsplit(" ", 1)[1])
                if per_sample is not None and per_sample * batch > deadline.share(cap):
                    raise TimeoutError(f"would take about {per_sample * batch:.0f} s at {per_sample:.2f} s/sample")
                result, notes, per_sample = hybrid_item(device, batch)
            else:
                name = next(c for c in CHAPTERS if c.startswith(item.rsplit(" ", 1)[1]))
                result, notes, log = chapter_item(name, deadline, cap, args.kernel)
        except TimeoutError as error:
            result, notes = "skipped", str(error)
        except Exception as error:  # noqa: BLE001 - the record says what broke; the other items still run
            result, notes = "error", f"{type(error).__name__}: {str(error)[:300]}"
        seconds = time.perf_counter() - began
        rows.append((item, result, notes, f"{seconds:.0f}"))
        if log:
            details.append((item, log))
        print(f"{item}: {result} ({notes}; {seconds:.0f} s)", flush=True)

    gpu = torch.cuda.get_device_name(device)
    lines = [f"GPU smoke check on {gpu} ({started}; torch {torch.__version__}, CUDA {torch.version.cuda})", "",
             "| item | result | notes | s |", "|---|---|---|---|"]
    lines += [f"| {item} | {result} | {notes.replace('|', '/')} | {seconds} |" for item, result, notes, seconds in rows]
    lines += ["", f"Measured with `python benchmarks/gpu_smoke.py` in one call of at most {args.budget_minutes:g} "
              "minutes (issue #43); what each item measures is in the script's docstring."]
    for item, log in details:
        lines += ["", f"<details><summary>{item}: the end of its output</summary>", "", "```",
                  log.strip(), "```", "</details>"]
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from _report import emit_table

    emit_table("\n".join(lines), str(args.output or default_output(gpu)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
