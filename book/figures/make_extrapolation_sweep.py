"""Render the full-size hybrid theta sweep shown as a static figure in chapter 6.

The chapter executes at cheap parameters on every build (64 x 64 samples); this script draws the
same sweep on the full 256 x 256 grid and saves `extrapolation_sweep_256.png` next to itself.

    LGTUTORIAL_DATA=../shared/data python book/figures/make_extrapolation_sweep.py [--levels 1000]

One sample per theta, the same seed for every theta (the same GRF noise), the authors' case-study-1
score model, refinement from sigma_c = 0.75 with the volume-fraction posterior.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from lgtutorial import HybridGenerator, interpolate_statistics, load_reference, volume_fractions  # noqa: E402
from lgtutorial.extrapolation import resize_microstructure, statistics_row  # noqa: E402
from lgtutorial.hybrid import load_score_model  # noqa: E402
from lgtutorial.plotting import show_microstructures  # noqa: E402
from lgtutorial.settings import resolve_device  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", type=int, default=1000, help="levels of the 20 -> 0.01 schedule")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--output", type=Path, default=Path(__file__).with_name("extrapolation_sweep_256.png"))
    args = parser.parse_args()

    device = resolve_device(args.device)
    thetas = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
    micro_a, _ = load_reference("nbsa-proxy")
    micro_b, _ = load_reference("ngrf-two-phase-elongated")
    row_a = statistics_row(micro_a)
    row_b = statistics_row(resize_microstructure(micro_b, tuple(micro_a.shape[2:])))
    model, sigmas = load_score_model("nbsa-authors-checkpoint", device=device)
    grf, hybrid, fractions = [], [], []
    start = time.perf_counter()
    for theta in thetas:
        generator = HybridGenerator.from_statistics(
            interpolate_statistics(row_a, row_b, theta), model, sigmas=sigmas, n_levels=args.levels,
            sigma_c=0.75, device=device,
        )
        samples = generator.sample(1, seed=args.seed, return_grf=True, progress=False)
        grf.append(samples.grf[0].cpu())
        hybrid.append(samples.microstructures[0].cpu())
        fractions.append(float(volume_fractions(samples.microstructures)[0, 1]))
    elapsed = time.perf_counter() - start

    fig, axes = plt.subplots(2, len(thetas), figsize=(2.6 * len(thetas), 5.6))
    show_microstructures(grf, [f"GRF, theta = {t:.1f}" for t in thetas], axes=axes[0])
    show_microstructures(hybrid, [f"hybrid, vf = {v:.3f}" for v in fractions], axes=axes[1])
    fig.suptitle(
        f"256 x 256, one sample per theta, seed {args.seed}, {args.levels}-level schedule from sigma_c = 0.75 "
        f"({elapsed:.0f} s on {device})", fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(args.output, dpi=90)
    print(f"wrote {args.output}; precipitate fractions {[round(v, 4) for v in fractions]}; {elapsed:.0f} s")


if __name__ == "__main__":
    main()
