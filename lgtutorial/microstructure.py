"""Microstructures as one-hot tensors, and conversion to and from label images.

A microstructure with N phases on a 2D grid of H x W pixels is stored as a float tensor of shape
``(n_samples, n_phases, H, W)`` in which every pixel holds a one-hot vector (a sample of the
"microstructure function" of Robertson et al. 2023, Section 2). 3D microstructures add a depth
axis: ``(n_samples, n_phases, D, H, W)``. Label images store the phase index per pixel instead.

Every public function accepts NumPy arrays or torch tensors and returns torch tensors on the
input's device (NumPy input lands on ``device`` or the CPU).
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = [
    "as_tensor",
    "labels_to_one_hot",
    "one_hot_to_labels",
    "check_microstructure",
    "spatial_dims_of",
    "float_microstructure",
]


def as_tensor(x, *, dtype: torch.dtype | None = None, device=None) -> torch.Tensor:
    """Return ``x`` (NumPy array, tensor or nested sequence) as a torch tensor.

    Args:
        x: array-like input.
        dtype: optional dtype to cast to.
        device: optional device; defaults to the tensor's own device (CPU for NumPy input).
    """
    if isinstance(x, torch.Tensor):
        t = x
    elif isinstance(x, np.ndarray):
        arr = x
        if arr.dtype == np.uint16 or arr.dtype == np.uint32 or arr.dtype == np.uint64:
            arr = arr.astype(np.int64)
        t = torch.from_numpy(np.ascontiguousarray(arr))
    else:
        t = torch.as_tensor(np.asarray(x))
    if device is not None or dtype is not None:
        t = t.to(device=device if device is not None else t.device, dtype=dtype or t.dtype)
    return t


def spatial_dims_of(microstructure: torch.Tensor) -> int:
    """Number of spatial dimensions (2 or 3) of a ``(n, N, *spatial)`` tensor."""
    if microstructure.ndim not in (4, 5):
        raise ValueError(
            "expected a microstructure of shape (n_samples, n_phases, H, W) or "
            f"(n_samples, n_phases, D, H, W); got a tensor of shape {tuple(microstructure.shape)}"
        )
    return microstructure.ndim - 2


def labels_to_one_hot(
    labels, *, n_phases: int | None = None, spatial_dims: int = 2, dtype=torch.float32, device=None
) -> torch.Tensor:
    """Turn a label image into a one-hot microstructure.

    Args:
        labels: integer phase indices, ``(H, W)`` or ``(n_samples, H, W)`` for ``spatial_dims=2``,
            ``(D, H, W)`` or ``(n_samples, D, H, W)`` for ``spatial_dims=3``. Float arrays are
            accepted when every value is a whole number.
        n_phases: number of phases; defaults to ``max(labels) + 1``.
        spatial_dims: 2 or 3.
        dtype: dtype of the result (float32 by default).
        device: device of the result (default: that of ``labels``).

    Returns:
        Tensor of shape ``(n_samples, n_phases, *spatial)``.

    >>> labels_to_one_hot([[0, 1], [1, 1]]).shape
    torch.Size([1, 2, 2, 2])
    """
    if spatial_dims not in (2, 3):
        raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")
    t = as_tensor(labels, device=device)
    if t.ndim == spatial_dims:
        t = t.unsqueeze(0)
    if t.ndim != spatial_dims + 1:
        expected = "(H, W) or (n_samples, H, W)" if spatial_dims == 2 else "(D, H, W) or (n_samples, D, H, W)"
        raise ValueError(f"expected a label image of shape {expected}; got shape {tuple(t.shape)}")
    if t.numel() == 0:
        raise ValueError("the label image is empty")
    if t.is_floating_point():
        if not torch.isfinite(t).all():
            raise ValueError("the label image contains NaN or infinite values; expected integer phase labels")
        if not torch.equal(t, t.round()):
            raise ValueError("the label image holds non-integer values; expected integer phase labels 0..N-1")
    elif t.dtype == torch.bool:
        t = t.to(torch.int64)
    elif t.is_complex():
        raise ValueError("expected integer phase labels, got a complex array")
    t = t.to(torch.int64)
    if int(t.min()) < 0:
        raise ValueError(f"phase labels must be >= 0; found {int(t.min())}")
    n_found = int(t.max()) + 1
    if n_phases is None:
        n_phases = n_found
    elif n_found > n_phases:
        raise ValueError(f"labels go up to {n_found - 1} but n_phases={n_phases}")
    one_hot = torch.nn.functional.one_hot(t, n_phases)  # (n, *spatial, N)
    one_hot = one_hot.movedim(-1, 1)
    return one_hot.to(dtype).contiguous()


def check_microstructure(microstructure, *, atol: float = 1e-6, name: str = "microstructure") -> torch.Tensor:
    """Validate a one-hot microstructure and return it as a floating tensor.

    Raises ``ValueError`` naming what was expected when the input has the wrong number of
    dimensions, holds NaN/inf, values outside {0, 1}, or pixels whose phases do not sum to 1.
    """
    t = as_tensor(microstructure)
    if t.ndim not in (4, 5):
        raise ValueError(
            f"{name}: expected a one-hot tensor of shape (n_samples, n_phases, H, W) or "
            f"(n_samples, n_phases, D, H, W); got shape {tuple(t.shape)}. "
            "Use labels_to_one_hot() for label images."
        )
    if not t.is_floating_point():
        t = t.to(torch.float32)
    if not torch.isfinite(t).all():
        raise ValueError(f"{name}: contains NaN or infinite values")
    if ((t - 0).abs() > atol).logical_and((t - 1).abs() > atol).any():
        raise ValueError(f"{name}: expected one-hot values 0 or 1; found values in between or outside")
    sums = t.sum(1)
    if ((sums - 1).abs() > atol).any():
        raise ValueError(f"{name}: the phases of every pixel must sum to 1 (one phase per pixel)")
    return t


def one_hot_to_labels(microstructure) -> torch.Tensor:
    """Turn a (possibly continuous) ``(n_samples, n_phases, *spatial)`` field into labels.

    The label of a pixel is the phase with the largest value (argmax), so this also segments
    continuous fields. Returns an int64 tensor of shape ``(n_samples, *spatial)``.

    >>> one_hot_to_labels(labels_to_one_hot([[0, 2], [1, 1]])).tolist()
    [[[0, 2], [1, 1]]]
    """
    t = as_tensor(microstructure)
    spatial_dims_of(t)
    if not torch.isfinite(t).all():
        raise ValueError("microstructure contains NaN or infinite values")
    return t.argmax(1)


def float_microstructure(microstructure, name: str = "microstructure") -> torch.Tensor:
    """A 2-D ``(n_samples, n_phases, H, W)`` tensor as floats, refused when it has another shape or NaNs."""
    t = as_tensor(microstructure)
    if t.ndim != 4:
        raise ValueError(f"{name}: expected shape (n_samples, n_phases, H, W); got {tuple(t.shape)}")
    if not t.is_floating_point():
        t = t.to(torch.float32)
    if not torch.isfinite(t).all():
        raise ValueError(f"{name}: contains NaN or infinite values")
    return t


def top_and_bottom_halves(microstructure, *, min_height: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """The top and bottom halves of a 2D micrograph ``(n, N, H, W)``, ``H // 2`` rows each (the last row of an
    odd ``H`` is left out): two pieces of one material, whose difference is the resolution of a measure on it.

    >>> top, bottom = top_and_bottom_halves(labels_to_one_hot([[0, 1], [1, 1], [0, 0]]))
    >>> top.shape, bottom.argmax(1).tolist()  # rows 0 and 1; the last row, [0, 0], is left out
    (torch.Size([1, 2, 1, 2]), [[[1, 1]]])
    """
    m = float_microstructure(microstructure)
    if m.shape[-2] < min_height:
        raise ValueError(f"expected a 2D micrograph (n, N, H, W) with H >= {min_height}; got shape {tuple(m.shape)}")
    half = m.shape[-2] // 2
    return m[..., :half, :], m[..., half:2 * half, :]
