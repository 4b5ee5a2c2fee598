"""A run owns its output folder from its first instant (issue #38): two overlapping runs given the same
``--output`` write to two folders and both results are kept, a run that resumes a folder another run
holds is refused, a sweep's store takes one run at a time; and the lock's rules (a stale lock is taken
over, a live one refuses, a process's own claims nest).

The first run of each pair is a child process held right after it claims its folder (a gate around
the claiming call, released by a file the test writes), so the runs overlap at exactly the moment the
issue was about: the first one's folder still empty. For ``fit`` the first run is the Python API
claiming the folder (the call every command makes), to run one fit, not two. The work itself is a
few steps, samples or seconds.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from lgtutorial._io import OutputInUse, claim_output, fresh_directory, output_claims
from lgtutorial.cli.main import main
from lgtutorial.synthetic import blobs

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}

#: ``python -c GATE GO MODULE:NAME ARGS...``: ``lgtutorial ARGS`` with ``MODULE.NAME`` wrapped so that
#: it prints ``gate: <result>`` and then waits until the file ``GO`` exists.
GATE = """
import importlib, sys, time
from pathlib import Path
go, (module, name), argv = Path(sys.argv[1]), sys.argv[2].split(":"), sys.argv[3:]
module = importlib.import_module(module)
real = getattr(module, name)
def gated(*args, **kwargs):
    result = real(*args, **kwargs)
    print(f"gate: {result}", flush=True)
    deadline = time.monotonic() + 300
    while not go.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return result
setattr(module, name, gated)
from lgtutorial.cli.main import main
sys.exit(main(argv))
"""
#: ``python -c HOLD GO FOLDER``: a run of the Python API that claims FOLDER (``fresh_directory``, as every
#: command does), prints ``gate: <folder>``, waits until the file ``GO`` exists, then writes its result there.
HOLD = """
import sys, time
from pathlib import Path
from lgtutorial._io import fresh_directory
go, out = Path(sys.argv[1]), fresh_directory(sys.argv[2])
print(f"gate: {out}", flush=True)
deadline = time.monotonic() + 300
while not go.exists() and time.monotonic() < deadline:
    time.sleep(0.05)
(out / "result.txt").write_text("the first run's")
"""


class Gated:
    """A child process (``python -c SCRIPT GO ARGS...``) that stops at its gate until :meth:`finish`."""

    def __init__(self, folder, label, script, args):
        self.go, self.out, self.err = (folder / f"{label}.{suffix}" for suffix in ("go", "out", "err"))
        with open(self.out, "w") as out, open(self.err, "w") as err:
            self.process = subprocess.Popen([sys.executable, "-c", script, str(self.go), *args], cwd=folder,
                                            env=ENV, stdout=out, stderr=err)
        self.pid = self.process.pid

    def reached(self, timeout=180) -> str:
        """What the gated call returned (printed by the child once it got there)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.out.read_text().splitlines():
                if line.startswith("gate: "):
                    return line[len("gate: "):]
            assert self.process.poll() is None, f"exited {self.process.returncode}: {self.err.read_text()[-2000:]}"
            time.sleep(0.1)
        raise AssertionError(f"the child never reached its gate: {self.err.read_text()[-2000:]}")

    def finish(self, timeout=300) -> tuple[int, str, str]:
        self.go.touch()
        code = self.process.wait(timeout=timeout)
        return code, self.out.read_text(), self.err.read_text()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


@pytest.fixture
def gated(tmp_path):
    """``gated(label, "MODULE:NAME", *lgtutorial_args)``, or ``gated(label, None, folder)`` for :data:`HOLD`:
    start a gated child; any left running when the test ends are killed."""
    children = []

    def start(label, target, *argv):
        script, args = (HOLD, []) if target is None else (GATE, [target])
        children.append(Gated(tmp_path, label, script, [*args, *(str(a) for a in argv)]))
        return children[-1]

    yield start
    for child in children:
        child.kill()


@pytest.fixture
def micrographs(tmp_path):
    """Two small two-phase micrographs (labels, .npy) that give two different models."""
    paths = []
    for name, width, seed in (("a", 2.0, 0), ("b", 3.0, 1)):
        paths.append(tmp_path / f"{name}.npy")
        np.save(paths[-1], blobs(48, width, seed=seed).argmax(1)[0].numpy().astype(np.uint8))
    return paths


def no_locks_left(folder) -> bool:
    return not [p.name for p in folder.rglob("*lgtutorial.lock*")]


def in_use_by(pid, capsys) -> bool:
    return f"is in use by another lgtutorial run (pid {pid}, since " in capsys.readouterr().err


# -- the lock -------------------------------------------------------------------------------------
def write_lock(path, pid, host=None, start=None):
    lock = path.with_name(f".{path.name}.lgtutorial.lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.write_text(json.dumps({"pid": pid, "host": host or socket.gethostname(), "since": "2025-01-01 00:00:00",
                                "start": start}))
    return lock


def test_a_stale_lock_is_taken_over_a_live_one_refuses(tmp_path):
    ended = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                               text=True, check=True).stdout)
    write_lock(tmp_path / "stale", ended)
    with output_claims():
        assert claim_output(tmp_path / "stale") == tmp_path / "stale"  # its process has ended: taken over
        assert json.loads((tmp_path / ".stale.lgtutorial.lock").read_text())["pid"] == os.getpid()
    assert not (tmp_path / ".stale.lgtutorial.lock").exists()  # released at the end of the block
    (tmp_path / "empty").mkdir()
    write_lock(tmp_path / "empty", ended)
    with output_claims():
        assert fresh_directory(tmp_path / "empty") == tmp_path / "empty"  # an empty folder with a stale lock

    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        lock = write_lock(tmp_path / "live", sleeper.pid)
        with output_claims():
            with pytest.raises(OutputInUse, match=rf"live is in use by another lgtutorial run \(pid {sleeper.pid}, "
                                                  r"since 2025-01-01 00:00:00\)"):
                claim_output(tmp_path / "live")
            assert fresh_directory(tmp_path / "live") == tmp_path / "live-1"  # a new run goes next to it
        assert lock.exists() and not (tmp_path / ".live-1.lgtutorial.lock").exists()
        write_lock(tmp_path / "remote", sleeper.pid, host="another-host")  # its pid cannot be checked from here
        with pytest.raises(OutputInUse, match="on another-host, since .*; if it is gone, delete"):
            claim_output(tmp_path / "remote")
        if os.path.exists(f"/proc/{sleeper.pid}/stat"):  # a live pid that another process had before
            write_lock(tmp_path / "reused", sleeper.pid, start=1)
            with output_claims():
                claim_output(tmp_path / "reused")
    finally:
        sleeper.kill()
        sleeper.wait()
    with output_claims():
        claim_output(tmp_path / "live")  # its process has ended now
    assert not lock.exists()


def test_a_process_own_claims_nest_and_end_with_their_block(tmp_path):
    with output_claims():
        out = fresh_directory(tmp_path / "out")
        lock = tmp_path / ".out.lgtutorial.lock"
        with output_claims():
            assert claim_output(out) == out  # nested: the same run (e.g. fit, then train_score_model in it)
            assert fresh_directory(tmp_path / "out") == tmp_path / "out-1"  # a new run never shares it
        assert lock.exists() and not (tmp_path / ".out-1.lgtutorial.lock").exists()
    assert no_locks_left(tmp_path)


def test_the_python_api_takes_the_same_claim(tmp_path):
    from lgtutorial.fitting.fit import fit
    from lgtutorial.score.settings import TrainingSettings, UNetSettings
    from lgtutorial.score.training import train_score_model

    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        write_lock(tmp_path / "run", sleeper.pid)
        settings = TrainingSettings(patch_size=16, n_patches=20, batch_size=2, steps=1, device="cpu")
        model = UNetSettings(channels=1, latent_channels=6, depth=1, num_blocks=1)
        with pytest.raises(OutputInUse, match=f"pid {sleeper.pid}"):
            train_score_model(blobs(32, 2.0), model_settings=model, training_settings=settings,
                              output=tmp_path / "run", progress=False)
        np.save(tmp_path / "a.npy", blobs(32, 2.0).argmax(1)[0].numpy().astype(np.uint8))
        with pytest.raises(OutputInUse, match=f"pid {sleeper.pid}"):
            fit(tmp_path / "a.npy", output=tmp_path / "run", resume=True, device="cpu", progress=False)
        assert not (tmp_path / "run").exists()
    finally:
        sleeper.kill()
        sleeper.wait()


# -- two overlapping runs of each command ----------------------------------------------------------
def test_two_trainings_with_one_output_keep_both_models(micrographs, gated, tmp_path, capsys):
    options = ["--steps", "1", "--batch-size", "2", "--device", "cpu", "--report-samples", "0", "--output"]
    first = gated("first", "lgtutorial._io:fresh_directory", "train", micrographs[0], *options, "out/t")
    assert first.reached() == "out/t"  # claimed, and nothing written yet
    second = gated("second", "lgtutorial._io:fresh_directory", "train", micrographs[1], *options, "out/t")
    assert second.reached() == "out/t-1"
    # resuming the folder the first run holds is refused
    assert main(["train", str(micrographs[0]), "--resume", *options, str(tmp_path / "out/t")]) == 1
    assert in_use_by(first.pid, capsys)
    for run, folder in ((first, "out/t"), (second, "out/t-1")):
        code, out, err = run.finish()
        assert code == 0, err[-2000:]
        assert f"wrote {folder}/checkpoint.pt" in out
    for folder, micrograph in (("t", micrographs[0]), ("t-1", micrographs[1])):
        state = torch.load(tmp_path / "out" / folder / "checkpoint.pt", map_location="cpu", weights_only=True)
        assert Path(state["provenance"]["reference"]["path"]).name == micrograph.name
    assert no_locks_left(tmp_path / "out")


def test_two_generations_with_one_output_keep_both(gated, tmp_path, capsys):
    options = ["--n-samples", "1", "--size", "32", "--levels", "12", "--device", "cpu"]
    first = gated("first", "lgtutorial._io:fresh_directory", "generate", *options, "--seed", "0", "--output", "out/g")
    assert first.reached() == "out/g"
    second = gated("second", "lgtutorial._io:fresh_directory", "generate", *options, "--seed", "1", "--output",
                   "out/g")
    assert second.reached() == "out/g-1"
    # a volume run given the same folder meanwhile (in this process) gets a third one
    assert main(["generate", "--dims", "3", "--size", "16", "--levels", "12", "--n-samples", "1", "--device", "cpu",
                 "--seed", "2", "--output", str(tmp_path / "out/g")]) == 0
    assert "to " + str(tmp_path / "out/g-2") in capsys.readouterr().out
    for run, folder in ((first, "out/g"), (second, "out/g-1")):
        code, out, err = run.finish()
        assert code == 0, err[-2000:]
        assert out.rstrip().endswith(f"to {folder}")
    seeds = [json.loads((tmp_path / "out" / f / "summary.json").read_text())["settings"]["seed"]
             for f in ("g", "g-1", "g-2")]
    assert seeds == [0, 1, 2]
    assert np.load(tmp_path / "out/g-2/samples.npy").shape == (1, 2, 16, 16, 16)
    assert no_locks_left(tmp_path / "out")


def test_a_fit_leaves_a_held_folder_alone(micrographs, gated, tmp_path, capsys):
    first = gated("first", None, "out/f")  # a run of the API holds out/f, empty until it writes its result
    assert first.reached() == "out/f"
    assert main(["fit", str(micrographs[0]), "--resume", "--output", str(tmp_path / "out/f")]) == 1
    assert in_use_by(first.pid, capsys)
    fitted = subprocess.run([sys.executable, "-m", "lgtutorial.cli.main", "fit", str(micrographs[1]), "--minutes",
                             "0.01", "--samples", "1", "--size", "16", "--device", "cpu", "--output", "out/f"],
                            cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=300)
    assert fitted.returncode in (0, 1), fitted.stderr[-2000:]  # 1: a degenerate sample of a one-step model
    assert "wrote out/f-1/report.md; model bundle out/f-1/model/b.pt" in fitted.stdout
    assert first.finish()[0] == 0
    assert sorted(p.name for p in (tmp_path / "out/f").iterdir()) == ["result.txt"]  # the first run's, untouched
    assert json.loads((tmp_path / "out/f-1/plan.json").read_text())["steps"] >= 1
    assert no_locks_left(tmp_path / "out")


@pytest.fixture
def scheduler():
    """A local dask scheduler with one worker thread in this process, for the children's sweeps."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, protocol="tcp://",
                      host="127.0.0.1", dashboard_address=":0") as cluster, \
            Client(cluster) as client:
        yield client


def test_a_sweep_store_takes_one_run_at_a_time(micrographs, gated, scheduler, tmp_path, capsys):
    import yaml

    from lgtutorial.sweep.parsing import load_design
    from lgtutorial.sweep.run import run_sweep

    design = tmp_path / "design.yaml"
    design.write_text(yaml.safe_dump({"name": "two", "seed": 0, "references": [str(p) for p in micrographs],
                                      "theta": [0.0, 1.0], "samples_per_point": 2, "shape": [16, 16], "model": "none",
                                      "summary_cutoff": 2}))
    address = scheduler.scheduler.address
    first = gated("first", "lgtutorial.sweep.run:claim_output", "sweep", design, "--output", "s.zarr",
                  "--scheduler", address)
    first.reached()
    store = str(tmp_path / "s.zarr")
    for resume in ([], ["--resume"]):  # a second sweep on the store, or its resumption, while the first runs
        assert main(["sweep", str(design), "--output", store, "--scheduler", address, *resume]) == 1
        assert in_use_by(first.pid, capsys)
    code, out, err = first.finish()
    assert code == 0 and "consistency check passed" in out, err[-2000:]
    done = run_sweep(load_design(design), store, client=scheduler, resume=True, progress=False)
    assert done.complete and done.written == 0 and done.already_done == 4  # a finished store resumes

    killed = gated("killed", "lgtutorial.sweep.run:write_sample", "sweep", design, "--output", "k.zarr",
                   "--scheduler", address)
    killed.reached()  # one sample written
    killed.kill()  # SIGKILL: its lock stays, stale
    assert (tmp_path / ".k.zarr.lgtutorial.lock").exists()
    resumed = run_sweep(load_design(design), tmp_path / "k.zarr", client=scheduler, resume=True, progress=False)
    assert resumed.complete and resumed.already_done == 1 and resumed.written == 3
    assert no_locks_left(tmp_path)
