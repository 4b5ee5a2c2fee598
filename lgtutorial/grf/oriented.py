"""An oriented global layer: laths or lamellae painted into the GRF's layout (this book's extension).

The 2-point statistics of a whole micrograph average over the orientations of all its colonies, so a
Gaussian random field drawn from them has the right phase fractions, length scales and layout, but no
laths: inside a colony it draws isotropic speckle. A score model trained on a CPU keeps laths it is given
(and roughens them as in the micrograph) but does not invent them from speckle. This layer gives them:

1. **Which phases form laths** (:func:`lath_phases`): the two phases with the most boundary between
   them; the other phases (the matrix) keep the GRF's layout.
2. **The lamellar pattern in the aligned frame**: windows of the micrograph inside the colonies, each with
   its local orientation; the power spectrum of each window's lath indicator turned so that its laths run
   one way, and pooled (the 2-point statistics of the aligned windows, in Fourier form).
3. **The orientation layout**: one angle per colony (a connected region of the lath phases), drawn from the
   colonies' angles in the micrograph (``layout="domains"``); or, where the lath phases fill the picture (a
   lamellar copolymer), a smooth random orientation field with the micrograph's orientation correlation
   length (``layout="field"``).
4. **Painting** (:meth:`OrientedLayer.paint`): in a segmented GRF sample, the pixels of the lath phases
   (the colonies) are redrawn from a Gaussian field whose spectrum is the aligned one turned to the
   colony's angle, split between the two lath phases at their share: every phase keeps its pixel count.

:func:`needs_oriented_layer` decides where it matters: when the micrograph's lath boundaries are clearly
more coherent than those of GRF samples of its own statistics.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from lgtutorial.microstructure import float_microstructure
from lgtutorial.statistics.higher_order import boundary_coherence, structure_tensor

__all__ = ["OrientedLayer", "lath_phases", "measure_oriented_layer", "needs_oriented_layer", "COHERENCE_GAIN"]

#: the oriented layer is needed when the lath phases' boundary coherence in the micrograph exceeds that of GRF
#: samples of its statistics by this factor (ti-alpha-beta: 0.476 against 0.285; isotropic materials ~1)
COHERENCE_GAIN = 1.3
_FIELD_LAYOUT_SHARE = 0.9  # lath phases covering more of the micrograph than this: one orientation field


def _normal_angles(indicator: torch.Tensor, *, periodic: bool, tensor_sigma: float = 3.0):
    """Per-pixel angle of the direction across the boundaries (radians, (-pi/2, pi/2]) and the tensor's
    doubled-angle vector ``(Jxx - Jyy, 2 Jxy)`` and trace, of ``(n, H, W)`` indicators."""
    jxx, jyy, jxy = structure_tensor(indicator.double(), periodic=periodic, tensor_sigma=tensor_sigma)
    return 0.5 * torch.atan2(2 * jxy, jxx - jyy), jxx - jyy, 2 * jxy, jxx + jyy


def lath_phases(micro: torch.Tensor) -> tuple[int, int]:
    """The two phases that meet most often across a pixel edge (laths, lamellae: the pair with the most
    boundary between them), the larger first.

    >>> from lgtutorial.synthetic import lamellae
    >>> lath_phases(lamellae(16, period=4))
    (0, 1)
    """
    m = float_microstructure(micro).double()
    if m.shape[1] == 2:
        return 0, 1
    contacts = sum((m[:, :, None] * m[:, None].roll(shift, dim)).sum((0, 3, 4))
                   for shift, dim in ((1, -1), (1, -2)))  # (N, N): neighbours across x and y
    contacts = contacts + contacts.T
    contacts.fill_diagonal_(-1.0)
    a, b = divmod(int(contacts.argmax()), m.shape[1])
    return (a, b) if float(m[:, a].sum()) >= float(m[:, b].sum()) else (b, a)


def _rotated_spectrum(spectrum: torch.Tensor, angle: float, shape: tuple[int, int]) -> torch.Tensor:
    """``spectrum`` (centred, ``(w, w)``, frequencies ``fftfreq(w)``) read at ``R(angle) k`` for the frequencies
    ``k`` of a grid ``shape`` (FFT order), by bilinear interpolation; zero beyond its band."""
    w = spectrum.shape[-1]
    ky = torch.fft.fftfreq(shape[0], dtype=torch.float64, device=spectrum.device)
    kx = torch.fft.fftfreq(shape[1], dtype=torch.float64, device=spectrum.device)
    ky, kx = torch.meshgrid(ky, kx, indexing="ij")
    c, s = math.cos(angle), math.sin(angle)
    qx, qy = c * kx - s * ky, s * kx + c * ky
    # centred index of frequency q: q * w + w // 2; grid_sample wants [-1, 1] over indices 0 .. w - 1
    grid = torch.stack([(qx * w + w // 2) / (w - 1) * 2 - 1, (qy * w + w // 2) / (w - 1) * 2 - 1], dim=-1)
    out = torch.nn.functional.grid_sample(spectrum[None, None].double(), grid[None], mode="bilinear",
                                          padding_mode="zeros", align_corners=True)
    return out[0, 0]


@dataclass
class OrientedLayer:
    """What :func:`measure_oriented_layer` measured: enough to paint laths into any GRF sample.

    Attributes:
        phases: the two lath phases ``(a, b)``.
        share: phase ``a``'s part of the lath phases' pixels.
        spectrum: ``(w, w)`` pooled power spectrum of the lath indicator in the aligned frame (centred; the
            direction across the laths along x), summing to 1.
        period: the laths' period across them (px), from the spectrum's peak.
        layout: ``"domains"`` (one angle per colony) or ``"field"`` (a smooth orientation field).
        angles: the colonies' (or windows') angles across the laths in the micrograph (radians).
        weights: their areas, for drawing.
        correlation_length: of the orientation field (px; ``"field"`` layout).
        coherence: the micrograph's boundary coherence of the two lath phases.
    """

    phases: tuple[int, int]
    share: float
    spectrum: torch.Tensor
    period: float
    layout: str
    angles: torch.Tensor
    weights: torch.Tensor
    correlation_length: float
    coherence: tuple[float, float]
    sharpness: float = 1.0
    """the power of ``spectrum`` the laths are drawn from (see :func:`measure_oriented_layer`)"""

    def describe(self) -> str:
        spread = "one angle per colony" if self.layout == "domains" else (
            f"a smooth orientation field (correlation length {self.correlation_length:.0f} px)")
        return (f"laths of phases {self.phases[0]} and {self.phases[1]} (share {self.share:.3f}), period "
                f"{self.period:.1f} px, {spread}")

    def _draw_angles(self, count: int, generator: torch.Generator) -> torch.Tensor:
        picks = torch.multinomial(self.weights.double(), count, replacement=True, generator=generator)
        jitter = (torch.rand(count, generator=generator, dtype=torch.float64) - 0.5) * (math.pi / 18)
        return self.angles.double()[picks] + jitter

    def _field_at(self, angle: float, shape, generator: torch.Generator) -> torch.Tensor:
        """A unit-variance Gaussian field whose spectrum is the aligned one turned to ``angle``."""
        amplitude = _rotated_spectrum(self.spectrum, -angle, shape).clamp_min(0) ** (self.sharpness / 2)
        noise = torch.randn(shape, generator=generator, dtype=torch.float64)
        field = torch.fft.ifft2(torch.fft.fft2(noise) * amplitude).real
        return (field - field.mean()) / field.std().clamp_min(1e-12)

    def _orientation_field(self, shape, generator: torch.Generator) -> torch.Tensor:
        """Per-pixel angles of a smooth random orientation field (``"field"`` layout)."""
        width = max(self.correlation_length, 2.0) / 2  # smoothing width of the doubled-angle vector's parts
        ky = torch.fft.fftfreq(shape[0], dtype=torch.float64)[:, None]
        kx = torch.fft.fftfreq(shape[1], dtype=torch.float64)[None, :]
        kernel = torch.exp(-2 * (math.pi * width) ** 2 * (kx**2 + ky**2))
        doubled = [torch.fft.ifft2(torch.fft.fft2(torch.randn(shape, generator=generator, dtype=torch.float64))
                                   * kernel).real for _ in range(2)]
        return 0.5 * torch.atan2(doubled[1], doubled[0])

    def paint(self, labels: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """Labels ``(n, H, W)`` (a segmented GRF sample) with their lath-phase pixels redrawn as oriented laths.

        The other phases' pixels are kept; the lath phases' pixels are split between them at ``share``
        (each sample keeps every phase's pixel count).
        """
        if labels.ndim != 3:
            raise ValueError(f"expected labels (n, H, W), got shape {tuple(labels.shape)}")
        from scipy import ndimage

        generator = generator if generator is not None else torch.Generator().manual_seed(0)
        cpu_generator = torch.Generator().manual_seed(int(torch.randint(2**62, (1,), generator=generator,
                                                                        device=generator.device)))
        device, out = labels.device, labels.clone().cpu()
        a, b = self.phases
        bins = 36  # angles painted to 5 degrees
        for k in range(out.shape[0]):
            host = (out[k] == a) | (out[k] == b)
            if not bool(host.any()):
                continue
            shape = tuple(out.shape[1:])
            if self.layout == "field":
                angle_map = self._orientation_field(shape, cpu_generator)
            else:
                regions, count = ndimage.label(host.numpy())
                angle_map = torch.zeros(shape, dtype=torch.float64)
                drawn = self._draw_angles(count, cpu_generator)
                angle_map[host] = drawn[torch.from_numpy(regions[host.numpy()]).long() - 1]
            index = torch.round((angle_map % math.pi) / math.pi * bins).long() % bins
            field = torch.zeros(shape, dtype=torch.float64)
            for i in torch.unique(index[host]).tolist():
                where = host & (index == i)
                field[where] = self._field_at(i * math.pi / bins, shape, cpu_generator)[where]
            values = field[host]
            n_a = int((out[k] == a).sum())  # phase a keeps its pixel count: the n_a highest values
            order = torch.argsort(values, descending=True)
            painted = torch.full_like(values, b, dtype=out.dtype)
            painted[order[:n_a]] = a
            out[k][host] = painted
        return out.to(device)


def _windows(host: np.ndarray, side: int, stride: int):
    """Top-left corners of windows ``side`` x ``side`` lying at least 90 % inside ``host``."""
    from scipy import ndimage

    covered = ndimage.uniform_filter(host.astype(np.float64), size=side, mode="constant")
    half = side // 2
    corners = []
    for y in range(0, host.shape[0] - side + 1, stride):
        for x in range(0, host.shape[1] - side + 1, stride):
            if covered[y + half, x + half] >= 0.9:
                corners.append((y, x))
    return corners


def measure_oriented_layer(micro: torch.Tensor, *, periodic: bool = False, window: int = 32,
                           phases: tuple[int, int] | None = None, sharpness: float = 1.0) -> OrientedLayer:
    """Measure the oriented layer of one micrograph ``(1, N, H, W)`` (see the module docstring).

    Args:
        micro: the one-hot micrograph.
        periodic: whether its edges wrap (filters then wrap too).
        window: side (px) of the windows whose aligned spectra are pooled: several lath periods.
        phases: the two lath phases (default :func:`lath_phases`).
        sharpness: the power of the pooled spectrum the laths are drawn from (1: as measured; larger: straighter,
            more regular laths, which a young score model keeps better).
    """
    from scipy import ndimage

    m = float_microstructure(micro)[:1].double().cpu()
    height, width = m.shape[-2:]
    if min(height, width) < window:
        raise ValueError(f"window: the micrograph ({height} x {width}) is smaller than the window ({window} px)")
    a, b = phases if phases is not None else lath_phases(m)
    host = (m[0, a] + m[0, b]) > 0.5
    share = float(m[0, a][host].mean())
    indicator = m[:, a] - m[:, b]  # +1, -1 inside the colonies, 0 in the matrix
    angle, cos2, sin2, trace = (t[0] for t in _normal_angles(indicator, periodic=periodic))
    # aligned spectra of windows inside the colonies
    hann = torch.hann_window(window, periodic=False, dtype=torch.float64)
    taper = hann[:, None] * hann[None, :]
    pooled = torch.zeros(window, window, dtype=torch.float64)
    corners = _windows(host.numpy(), window, max(4, window // 4))
    if not corners:
        raise ValueError(f"no {window} px window lies inside the lath phases {a} and {b}: no colony is large enough")
    for y, x in corners:
        patch = indicator[0, y:y + window, x:x + window]
        c, s = float(cos2[y:y + window, x:x + window].sum()), float(sin2[y:y + window, x:x + window].sum())
        power = torch.fft.fftshift(torch.fft.fft2((patch - patch.mean()) * taper).abs() ** 2)
        pooled += torch.fft.fftshift(_rotated_spectrum(power, 0.5 * math.atan2(s, c), (window, window)))
    kx = torch.fft.fftshift(torch.fft.fftfreq(window, dtype=torch.float64))
    profile = pooled.sum(0)  # over ky: the spectrum across the laths
    peak = float(kx[kx > 0][profile[kx > 0].argmax()])
    # the laths' band only: the colonies' outlines and the matrix leave power at low frequencies, which
    # would draw wide bands
    radius = (kx[None, :] ** 2 + kx[:, None] ** 2).sqrt()
    pooled = torch.where(radius >= 0.5 * peak, pooled, torch.zeros_like(pooled))
    pooled = pooled / pooled.sum()
    # layout: colonies, or a picture filled with laths
    layout = "field" if float(host.double().mean()) > _FIELD_LAYOUT_SHARE else "domains"
    if layout == "domains":
        regions, count = ndimage.label(host.numpy())
        angles, weights = [], []
        for r in range(1, count + 1):
            where = torch.from_numpy(regions == r)
            area = int(where.sum())
            if area < window:
                continue
            angles.append(0.5 * math.atan2(float(sin2[where].sum()), float(cos2[where].sum())))
            weights.append(area)
        length = 0.0
    else:
        angles = angle[host].flatten()[:: max(1, int(host.sum()) // 4096)].tolist()
        weights = [1.0] * len(angles)
        length = _orientation_length(cos2, sin2, trace)
    if not angles:
        angles, weights = [float(angle[host].mean())], [1.0]
    coherence = tuple(float(boundary_coherence(m, p, periodic=periodic)[0]) for p in (a, b))
    return OrientedLayer(phases=(a, b), share=share, spectrum=pooled, period=1.0 / max(peak, 1e-6), layout=layout,
                         angles=torch.tensor(angles, dtype=torch.float64),
                         weights=torch.tensor(weights, dtype=torch.float64), correlation_length=length,
                         coherence=coherence, sharpness=float(sharpness))


def _orientation_length(cos2: torch.Tensor, sin2: torch.Tensor, trace: torch.Tensor) -> float:
    """Lag (px) at which the autocorrelation of the unit doubled-angle field falls to 1/e."""
    norm = (cos2**2 + sin2**2).sqrt().clamp_min(1e-12)
    total = 0.0
    for part in (cos2 / norm, sin2 / norm):
        centred = part - part.mean()
        spectrum = torch.fft.fft2(centred).abs() ** 2
        auto = torch.fft.ifft2(spectrum).real
        total = total + auto / auto[0, 0].clamp_min(1e-12)
    auto = (total / 2)[0]  # along x
    below = (auto[: auto.shape[0] // 2] < math.exp(-1)).nonzero()
    return float(below[0, 0]) if len(below) else float(auto.shape[0] // 2)


def needs_oriented_layer(micro: torch.Tensor, grf_samples: torch.Tensor, *, periodic: bool = False,
                         layer: OrientedLayer | None = None) -> tuple[bool, str]:
    """Whether the micrograph's laths need the oriented layer, and the reason in words.

    Two conditions: the lath phases' boundaries in the micrograph are more coherent than in GRF samples
    ``(n, N, H, W)`` of its statistics by :data:`COHERENCE_GAIN` (the 2-point statistics do not carry the
    orientation: it changes from colony to colony), and they are stacked (the aligned spectrum peaks at a
    period of at most a third of the measuring window: smooth blobs have coherent boundaries too, but no period).
    ``layer``: the micrograph's, if measured already.
    """
    a, b = layer.phases if layer is not None else lath_phases(micro)
    reference = [float(boundary_coherence(micro, p, periodic=periodic).nanmean()) for p in (a, b)]
    grf = [float(boundary_coherence(grf_samples, p, periodic=True).nanmean()) for p in (a, b)]
    gain = min(r / max(g, 1e-12) for r, g in zip(reference, grf))
    reason = (f"boundary coherence of phases {a} and {b}: micrograph {reference[0]:.3f} / {reference[1]:.3f}, GRF "
              f"samples of its statistics {grf[0]:.3f} / {grf[1]:.3f} (x{gain:.2f}; the oriented layer from "
              f"x{COHERENCE_GAIN})")
    if gain < COHERENCE_GAIN:  # the cheap test first: the layer is measured only when it may be needed
        return False, reason
    if layer is None:
        try:
            layer = measure_oriented_layer(micro, periodic=periodic, phases=(a, b))
        except ValueError as error:  # no window fits inside the lath phases
            return False, f"{reason}; no oriented layer: {error}"
    window = layer.spectrum.shape[-1]
    stacked = layer.period <= window / 3
    return stacked, reason + "; " + (f"stacked with a period of {layer.period:.1f} px" if stacked else
                                     f"not stacked (no period below {window / 3:.0f} px)")
