"""GRF throughput: lgtutorial's batched torch sampler vs a straightforward NumPy baseline.

Both implement the same algorithm (SPEC section 2: sqrt-spectrum times white noise, transfer
functions for the other phases). The baseline is what one writes first: float64 NumPy, one sample
at a time, the real part of each complex draw only, spectra cached. lgtutorial draws a whole batch
at once, in float32, with two samples per complex draw and one inverse FFT per phase per pair.

Run: LGTUTORIAL_DATA=../shared/data python benchmarks/grf_throughput.py [--output FILE]
Prints a Markdown table (samples per second and the ratio); timings, not assertions.
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch
from _report import emit_table

from lgtutorial import GaussianRandomField, load_reference
from lgtutorial.statistics.two_point import two_point_statistics


class NumpyBaseline:
    """The same GRF, written plainly in NumPy (float64, one sample per call)."""

    def __init__(self, microstructure: np.ndarray):
        row = two_point_statistics(torch.from_numpy(microstructure))[0, 0].numpy()
        self.shape = row.shape[1:]
        size = np.prod(self.shape)
        spectra = np.fft.fft2(row)
        eigenvalues = np.clip(spectra[0].real, 0, None)
        eigenvalues[0, 0] = 0.0
        self.amplitude = np.sqrt(eigenvalues / size)
        self.transfer = spectra / spectra[0].real
        self.mean = row[0, 0, 0]

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        noise = rng.standard_normal(self.shape) + 1j * rng.standard_normal(self.shape)
        reference = np.fft.fft2(self.amplitude * noise).real + self.mean
        spectrum = np.fft.fft2(reference)
        return np.stack([np.fft.ifft2(h * spectrum).real for h in self.transfer])


def rate(function, n_samples: int, min_seconds: float = 1.0) -> float:
    """Samples per second of ``function()`` producing ``n_samples`` samples, after one warm-up."""
    function()
    calls, start = 0, time.perf_counter()
    while True:
        function()
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return calls * n_samples / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default=None, help="also write the table to this Markdown file")
    parser.add_argument("--min-seconds", type=float, default=1.0)
    args = parser.parse_args()

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    lines = [
        f"GRF throughput, samples per second ({platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} torch threads, torch {torch.__version__}"
        + (f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else "")
        + ")",
        "",
        "| reference | size | batch | NumPy baseline | "
        + " | ".join(f"lgtutorial {d}" for d in devices)
        + " | "
        + " | ".join(f"ratio {d}" for d in devices)
        + " |",
        "|---|---|---|---|" + "---|" * (2 * len(devices)),
    ]
    for name in ("nbsa-proxy", "ti-alpha-beta"):
        micro, _ = load_reference(name)
        baseline = NumpyBaseline(micro.double().numpy())
        rng = np.random.default_rng(0)
        for batch in (1, 64):
            base = rate(lambda: [baseline.sample(rng) for _ in range(batch)], batch, args.min_seconds)
            ours = []
            for device in devices:
                field = GaussianRandomField.from_microstructure(micro, device=device)
                generator = torch.Generator(device=device).manual_seed(0)

                def draw():
                    field.sample_raw(batch, generator=generator)
                    if device == "cuda":
                        torch.cuda.synchronize()

                ours.append(rate(draw, batch, args.min_seconds))
            h, w = micro.shape[-2:]
            lines.append(
                f"| {name} ({micro.shape[1]} phases) | {h}x{w} | {batch} | {base:.1f} | "
                + " | ".join(f"{r:.1f}" for r in ours)
                + " | "
                + " | ".join(f"{r / base:.1f}x" for r in ours)
                + " |"
            )
            print(lines[-1], flush=True)
    emit_table("\n".join(lines), args.output)

if __name__ == "__main__":
    main()
