"""Render the full-size hybrid theta sweep that chapter 6 shows as a static figure.

The chapter executes at cheap parameters on every build (64 x 64 samples); this script draws the
same sweep on the full 256 x 256 grid, once per sampler configuration, and saves next to itself

- ``extrapolation_sweep_256.png``: the GRF starting points (top row) and, below, the refined samples
  of every configuration (one row each; the same seed, hence the same GRF sample, in every column);
- ``extrapolation_sweep_256.json``: per configuration and theta the precipitate fraction, the share
  of pixels that keep their GRF phase, and the normalised-covariance errors against the requested
  statistics at short range (|r| <= 4 px) and long range (8 px < |r| <= 64 px).

    LGTUTORIAL_DATA=../shared/data python book/figures/make_extrapolation_sweep.py \
        --config levels1000 --config levels200

A configuration is ``levelsN`` (the paper's sampler over an N-level 20 -> 0.01 schedule; N = 1000
is the paper's) or ``sampler:NAME`` (a named sampler of ``lgtutorial.sampling.hybrid``, where available).
Finished configurations are cached in ``--cache`` so that adding one does not redo the others.
The authors' case-study-1 score model refines every sample from sigma_c = 0.75 with the
volume-fraction posterior.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from lgtutorial import HybridGenerator, interpolate_statistics, load_reference, volume_fractions  # noqa: E402
from lgtutorial._checks import resolve_device  # noqa: E402
from lgtutorial._io import atomic_write  # noqa: E402
from lgtutorial.grf.field import statistics_row  # noqa: E402
from lgtutorial.grf.interpolation import resize_microstructure, two_point_error
from lgtutorial.plotting import show_microstructures  # noqa: E402
from lgtutorial.score.registry import load_score_model  # noqa: E402

THETAS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
HERE = Path(__file__).parent


def options_for(config: str) -> dict:
    """Constructor options of ``HybridGenerator`` for a configuration name."""
    if config.startswith("levels"):
        return {"levels": int(config.removeprefix("levels"))}
    if config.startswith("sampler:"):
        return {"sampler": config.removeprefix("sampler:")}
    raise ValueError(f"a configuration is 'levelsN' or 'sampler:NAME', got {config!r}")


def label_for(config: str) -> str:
    if config == "levels1000":
        return "paper's schedule (568 steps)"
    if config.startswith("levels"):
        return f"{config.removeprefix('levels')}-level schedule"
    return f"sampler '{config.removeprefix('sampler:')}'"


def run_theta(config: str, theta: float, row, model, sigmas, *, seed: int, device) -> dict:
    """One GRF sample for ``theta`` and its refinement by one configuration."""
    # the paper's runs, without the authors' undocumented volume-fraction shift (chapter 6 does the same)
    generator = HybridGenerator.from_statistics(
        row, model, sigmas=sigmas, sigma_c=0.75, volume_fraction_shift=0.0, device=device, **options_for(config)
    )
    start = time.perf_counter()
    samples = generator.sample(1, seed=seed, return_grf=True, progress=False)
    seconds = time.perf_counter() - start
    calls = generator.evaluations
    print(f"{config} theta={theta:.1f}: {seconds:.0f} s, {calls} evaluations", flush=True)
    return {"grf": samples.grf[0].cpu(), "hybrid": samples.microstructures[0].cpu(), "seconds": seconds,
            "evaluations": calls}


def run_config(config: str, rows: dict, model, sigmas, *, seed: int, device, cache: Path,
               cached_only: bool = False) -> dict:
    """All thetas of one configuration; every finished theta is cached, so a killed run resumes.

    With ``cached_only`` nothing is computed: thetas without a cached result are left out (``None``).
    """
    parts = {}
    order = sorted(THETAS, key=lambda t: (t not in (0.0, 1.0), t))  # the two ends first
    for theta in order:
        path = cache / f"{config.replace(':', '-')}-theta{theta:.1f}-seed{seed}.pt"
        if path.exists():
            parts[theta] = torch.load(path, weights_only=True)
            continue
        if cached_only:
            parts[theta] = None
            continue
        parts[theta] = run_theta(config, theta, rows[theta], model, sigmas, seed=seed, device=device)
        with atomic_write(path, "wb") as handle:
            torch.save(parts[theta], handle)
    return {
        "grf": [None if parts[t] is None else parts[t]["grf"] for t in THETAS],
        "hybrid": [None if parts[t] is None else parts[t]["hybrid"] for t in THETAS],
        "seconds": [None if parts[t] is None else parts[t]["seconds"] for t in THETAS],
        "evaluations": [None if parts[t] is None else parts[t]["evaluations"] for t in THETAS],
    }


def measures(result: dict, rows: dict) -> list[dict]:
    out = []
    for k, theta in enumerate(THETAS):
        if result["hybrid"][k] is None:
            continue
        grf, hybrid = result["grf"][k][None].double(), result["hybrid"][k][None].double()
        row = rows[theta]
        out.append({
            "theta": theta,
            "target_fraction": float(row[1].sum() / row.sum()),
            "fraction": float(volume_fractions(hybrid)[0, 1]),
            "kept_grf_phase": float((grf.argmax(1) == hybrid.argmax(1)).double().mean()),
            "short_range_error": float(two_point_error(hybrid, row, max_lag=4.0, normalise=True)[0]),
            "long_range_error": float(two_point_error(hybrid, row, min_lag=8.5, max_lag=64.0, normalise=True)[0]),
            "grf_long_range_error": float(two_point_error(grf, row, min_lag=8.5, max_lag=64.0, normalise=True)[0]),
            "seconds": result["seconds"][k],
            "evaluations": result["evaluations"][k],
        })
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", action="append", help="levelsN or sampler:NAME (repeatable)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--cache", type=Path, default=Path("lgtutorial-output/extrapolation-sweep"))
    parser.add_argument("--cached-only", action="store_true",
                        help="compute nothing: draw what the cache holds (missing panels stay empty)")
    parser.add_argument("--output", type=Path, default=HERE / "extrapolation_sweep_256.png")
    args = parser.parse_args()
    configs = args.config or ["levels1000", "levels200"]

    device = resolve_device(args.device)
    micro_a, _ = load_reference("nbsa-proxy")
    micro_b, _ = load_reference("ngrf-two-phase-elongated")
    row_a = statistics_row(micro_a)
    row_b = statistics_row(resize_microstructure(micro_b, tuple(micro_a.shape[2:])))
    rows = {theta: interpolate_statistics(row_a, row_b, theta) for theta in THETAS}
    model, sigmas = load_score_model("nbsa-authors-checkpoint", device=device)
    args.cache.mkdir(parents=True, exist_ok=True)

    results = {}
    for config in configs:
        path = args.cache / f"{config.replace(':', '-')}-seed{args.seed}.pt"
        if path.exists():  # written by earlier versions of this script: the whole configuration
            results[config] = torch.load(path, weights_only=True)
            continue
        results[config] = run_config(config, rows, model, sigmas, seed=args.seed, device=device, cache=args.cache,
                                     cached_only=args.cached_only)

    first = next(r for r in results.values() if all(g is not None for g in r["grf"]))
    fig, axes = plt.subplots(1 + len(configs), len(THETAS), figsize=(2.5 * len(THETAS), 2.7 * (1 + len(configs))),
                             squeeze=False)
    show_microstructures(list(first["grf"]), [f"theta = {t:.1f}" for t in THETAS], axes=axes[0])
    axes[0, 0].set_ylabel("GRF start", fontsize=11)
    summary = {"seed": args.seed, "size": list(micro_a.shape[2:]), "device": str(device), "configurations": {}}
    for row_index, config in enumerate(configs, start=1):
        table = measures(results[config], rows)
        summary["configurations"][config] = {"label": label_for(config), "thetas": table}
        by_theta = {m["theta"]: m for m in table}
        for k, theta in enumerate(THETAS):
            ax = axes[row_index, k]
            if theta not in by_theta:
                ax.set_title("not rendered")
                continue
            m = by_theta[theta]
            show_microstructures([results[config]["hybrid"][k]],
                                 [f"vf {m['fraction']:.3f}, kept {100 * m['kept_grf_phase']:.0f} %"], axes=[ax])
        axes[row_index, 0].set_ylabel(label_for(config), fontsize=9)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.title.set_fontsize(9)
    fig.suptitle(f"256 x 256 px, seed {args.seed}: the same GRF start in every column, refined from sigma_c = 0.75 "
                 "by the authors' case-study-1 model; 'kept' = pixels that keep their GRF phase", fontsize=9)
    fig.tight_layout(h_pad=2.5)
    with atomic_write(args.output, "wb") as handle:
        fig.savefig(handle, dpi=110, format="png")
    with atomic_write(args.output.with_suffix(".json"), "w") as handle:
        json.dump(summary, handle, indent=1)
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
