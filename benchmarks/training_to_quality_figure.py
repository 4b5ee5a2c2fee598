"""The pictures behind benchmarks/results/training_to_quality_*.md: the same GRF start refined by each model.

Run after training_to_quality.py (it reads the checkpoints in its --work folder):

    python benchmarks/training_to_quality_figure.py --reference nbsa-proxy --baseline nbsa-authors-checkpoint \\
        --work lgtutorial-output/training-to-quality --output benchmarks/results/training_to_quality_case1_cpu.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from lgtutorial import data  # noqa: E402
from lgtutorial._io import atomic_write  # noqa: E402
from lgtutorial.grf.field import statistics_row  # noqa: E402
from lgtutorial.plotting import show_microstructures  # noqa: E402
from lgtutorial.sampling.hybrid import HybridGenerator
from lgtutorial.score.registry import load_score_model  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reference", default="nbsa-proxy")
    parser.add_argument("--baseline", default=None)
    parser.add_argument("--work", type=Path, default=Path("lgtutorial-output/training-to-quality"))
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", required=True)
    args = parser.parse_args()
    torch.set_num_threads(2)
    reference, _ = data.load(args.reference)
    row = statistics_row(reference)
    models = ([(args.baseline, args.baseline)] if args.baseline else []) + [
        (folder.name.replace(f"{Path(args.reference).stem}-", ""), str(folder / "checkpoint.pt"))
        for folder in sorted(args.work.glob(f"{Path(args.reference).stem}-*")) if (folder / "checkpoint.pt").is_file()]
    pictures, titles, grf = [reference[0, :, : args.size, : args.size]], ["reference (crop)"], None
    for title, source in models:
        model, sigmas = load_score_model(source)
        generator = HybridGenerator.from_statistics(row, model, shape=(args.size, args.size), sigmas=sigmas,
                                                    sampler="fast")
        out = generator.sample(1, seed=args.seed, return_grf=True, progress=False)
        if grf is None:
            grf = out.grf[0]
            pictures.append(grf)
            titles.append("GRF start")
        pictures.append(out.microstructures[0])
        titles.append(title)
    axes = show_microstructures(pictures, titles, size=3.2)
    with atomic_write(args.output) as handle:
        axes[0].figure.savefig(handle, format="png", dpi=150, bbox_inches="tight")
    plt.close(axes[0].figure)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
