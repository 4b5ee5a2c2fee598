"""What sizes the generators take: the smallest side, and whether a request fits in this machine's memory.

:meth:`HybridGenerator.memory_estimate <lgtutorial.sampling.hybrid.HybridGenerator.memory_estimate>` and
:meth:`VolumeGenerator.memory_estimate <lgtutorial.volume.generator.VolumeGenerator.memory_estimate>` tell from
the sizes alone (nothing is allocated) what a generation holds at its peak (:func:`generation_memory`, with the
bytes below, measured as peak resident memory on the CPU and rounded up: ``benchmarks/results/memory_estimate.md``);
:func:`check_memory` compares that with what is free (:func:`available_memory`) and refuses, before any tensor is
built, a request that cannot fit, naming the largest side that does.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["MIN_SIDE", "MemoryEstimate", "generation_memory", "available_memory", "check_memory"]

#: The smallest side (px; voxels for volumes) ``generate`` draws. On fewer, one pixel moves a volume fraction
#: by more than 1/64 (one voxel of a 4^3 volume by 1/64, of a 2^3 one by 1/8, more than the guard's 0.1), and a
#: side of a few pixels holds no feature a score model trained on 40-px patches could refine.
MIN_SIDE = 8

#: Bytes per phase and pixel of building a field: float64 statistics on the grid, their complex128 spectra and
#: transfer functions (78 measured at 2048^2, 100-105 at 64^3 and 96^3).
GRF_BUILD = 100
#: Bytes per phase and pixel the built field keeps (complex64 transfer functions, the float64 row).
GRF_KEEP = 20
#: Bytes per phase and pixel of the probe samples that choose the segmentation rule (62-71 measured).
PROBE = 72
#: Floats per latent channel and input pixel of the network's widest activations (6.2-7.9 measured, case-1 and case-2 networks).
NETWORK = 8
#: Floats per channel and pixel of the 2D sampler's iterate, noise, score and denoised estimate on the embedded domain.
STATE = 8
#: Floats per channel and voxel of a volume that one slice-score evaluation and the sampler hold (the iterate,
#: noise, score, denoised estimate; the permuted slices, their scores, concatenated and permuted back).
VOLUME_STATE = 12
#: Bytes per phase and pixel of one GRF draw (the complex draw, spectra, fields, the segmented start).
GRF_SAMPLE = 32
#: Bytes per voxel and phase pair of the 3D statistics under isotropy (float64 statistics of every pair, their
#: complex128 spectra, the projection; 99 measured at 64^3, 84 at 96^3).
STATISTICS_BYTES = 100


@dataclass(frozen=True)
class MemoryEstimate:
    """Peak bytes of a generation: ``host`` while the field is built (on the CPU, where its spectra are computed),
    ``device`` while sampling (on the sampling device: the field, one batch, the results). ``parts`` names what
    was counted, with its bytes, for the message."""

    host: int
    device: int
    parts: tuple[tuple[str, int], ...] = ()

    def total(self, same_memory: bool) -> int:
        """What must fit at once: the larger phase when host and device share one memory (the CPU)."""
        return max(self.host, self.device) if same_memory else self.device


def generation_memory(*, pixels: int, n_phases: int, channels: int, batch: int, n_samples: int, latent_channels: int,
                      network_pixels: int, state_floats: int, statistics: int = 0) -> MemoryEstimate:
    """The peak of a generation of ``n_samples`` samples of ``pixels`` each, ``batch`` at a time.

    On the host: the larger of ``statistics`` (bytes of statistics made on the grid first, for volumes) and the
    field's build. Then: the kept field, the results (final, refined and GRF of every sample, concatenated) and
    the larger of the segmentation probe and one batch: ``network_pixels`` input pixels through the network at
    once, ``state_floats`` floats of iterates per sample, one GRF draw per sample.
    """
    build = max(statistics, GRF_BUILD * n_phases * pixels)
    probe = PROBE * max(2, min(16, 2**24 // (pixels * n_phases))) * pixels * n_phases  # as choose_segmentation draws
    one_batch = 4 * NETWORK * latent_channels * network_pixels + batch * (4 * state_floats + GRF_SAMPLE * n_phases * pixels)
    results = 2 * 4 * n_samples * pixels * (2 * n_phases + channels)
    return MemoryEstimate(build, GRF_KEEP * n_phases * pixels + results + max(probe, one_batch), (
        ("the statistics and the field", build), (f"one batch of {batch} through the network", one_batch),
        (f"the {n_samples} samples", results)))


def available_memory(device) -> tuple[int | None, int | None]:
    """``(host, device)`` bytes free for new tensors: the host's available memory (psutil when installed, else
    ``MemAvailable`` of ``/proc/meminfo``) and, on CUDA, the GPU's free memory plus what this process's caching
    allocator holds unused. ``None`` where it cannot be told (then nothing is refused)."""
    host = None
    try:
        import psutil

        host = int(psutil.virtual_memory().available)
    except ImportError:
        try:
            with open("/proc/meminfo") as handle:
                host = next((int(line.split()[1]) * 1024 for line in handle if line.startswith("MemAvailable:")), None)
        except OSError:
            pass
    device = torch.device(device)
    if device.type == "cpu":
        return host, host
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return host, int(free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))
    return host, None


def _gigabytes(count: int) -> str:
    return f"{count / 1e9:.3g} GB"


def check_memory(estimate, side: int, device, *, sides: range, what: str, advice: str) -> None:
    """Refuse ``side`` when ``estimate(side)`` (a :class:`MemoryEstimate`) does not fit in what is free for ``device``.

    ``sides`` are the sides one could ask for instead; the message gives the largest of them below ``side`` that
    fits (by bisection: the estimate grows with the side), ``what`` the request, ``advice`` what else would help.

    Raises:
        ValueError: the request does not fit: the side asked, the estimate and its parts, what is free, the
            largest side that fits.
    """
    host, free = available_memory(device)
    same = torch.device(device).type == "cpu"

    def fits(candidate: int) -> bool:
        needed = estimate(candidate)
        return (free is None or needed.total(same) <= free) and (host is None or same or needed.host <= host)

    if fits(side):
        return
    needed = estimate(side)
    if same or (free is not None and needed.device > free):
        need, have, where = needed.total(same), free, str(device)
    else:
        need, have, where = needed.host, host, "the host (where the field's spectra are computed)"
    smaller = range(sides.start, min(sides.stop, side), sides.step)
    low, high = 0, len(smaller)  # the first `low` sides fit
    while low < high:
        middle = (low + high + 1) // 2
        low, high = (middle, high) if fits(smaller[middle - 1]) else (low, middle - 1)
    largest = (f"the largest --size that fits here is {smaller[low - 1]}" if low else
               f"not even --size {smaller[0] if smaller else side} fits here")
    parts = ", ".join(f"{name} {_gigabytes(count)}" for name, count in needed.parts)
    raise ValueError(f"{what} needs about {_gigabytes(need)} of memory ({parts}), but {_gigabytes(have)} is free on "
                     f"{where}: {largest}; {advice}")
