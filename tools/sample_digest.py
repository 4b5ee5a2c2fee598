"""Digest of what the command line draws on fixed seeds: GRF samples, 2D hybrid samples (the default
model with ``fast``, the authors' model with ``faithful``), a 3D volume, and the weights after a few
training steps. ``tests/test_sample_digest.py`` compares a fresh run against ``tests/data/sample_digest.json``,
written before the package was rearranged into subpackages, so that a move of code shows it changed nothing.

    python tools/sample_digest.py                   # print the digest
    python tools/sample_digest.py --write FILE      # write it (atomically)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

#: name -> (CLI arguments, output files whose arrays are digested)
RUNS = {
    "grf": (["grf", "--n-samples", "2", "--seed", "3"], ["samples.npy"]),
    "generate-default-fast": (["generate", "--n-samples", "2", "--size", "48", "--seed", "1"],
                              ["samples.npy", "grf.npy"]),
    "generate-authors-faithful": (["generate", "--model", "nbsa-authors-checkpoint", "--reference", "nbsa-proxy",
                                   "--sampler", "faithful", "--levels", "200", "--n-samples", "1", "--size", "48"],
                                  ["samples.npy"]),
    "generate-3d": (["generate", "--dims", "3", "--size", "24", "--n-samples", "1", "--rounds", "1"],
                    ["samples.npy"]),
    "train": (["train", "nbsa-proxy", "--preset", "case1-cpu", "--steps", "3", "--batch-size", "4",
               "--report-samples", "0"], ["checkpoint.pt"]),
}


def _array_digest(path: Path) -> str:
    if path.suffix == ".npy":
        array = np.load(path, allow_pickle=False)
        return hashlib.sha256(np.ascontiguousarray(array).tobytes() + str(array.shape).encode()).hexdigest()
    import torch

    state = torch.load(path, map_location="cpu", weights_only=True)["ema"]
    digest = hashlib.sha256()
    for key in sorted(state):
        digest.update(key.encode() + state[key].detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def digest(runs=RUNS) -> dict:
    """Run each command in a scratch folder on the CPU and hash its outputs."""
    result = {}
    # two threads always: a float reduction split over another number of threads rounds differently
    env = dict(os.environ, OMP_NUM_THREADS="2", MKL_NUM_THREADS="2")
    with tempfile.TemporaryDirectory() as scratch:
        for name, (arguments, files) in runs.items():
            output = Path(scratch) / name
            command = [str(Path(sys.executable).parent / "lgtutorial"),
                       *arguments, "--device", "cpu", "--output", str(output)]
            done = subprocess.run(command, env=env, capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(f"{name}: {' '.join(arguments)} exited with {done.returncode}:\n{done.stderr[-2000:]}")
            found = {f: [p for p in output.rglob(f)] for f in files}
            result[name] = {f: _array_digest(paths[0]) for f, paths in found.items() if len(paths) == 1}
            missing = [f for f, paths in found.items() if len(paths) != 1]
            if missing:
                raise RuntimeError(f"{name}: expected one each of {missing} in {output}")
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", type=Path, help="write the digest to this JSON file")
    args = parser.parse_args(argv)
    text = json.dumps(digest(), indent=2, sort_keys=True) + "\n"
    if args.write:
        temporary = args.write.with_suffix(".tmp")
        temporary.write_text(text)
        temporary.replace(args.write)
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
