"""Principal component analysis of statistics, in torch (Robertson et al. 2023, Section 4.3 and 5.2).

The paper compares high-dimensional statistics (patch 2-point statistics, the 3-point subset)
through their first principal component (PC) scores. Which data the basis is fit on matters:

* patch statistics: fit on the training patches only, then project generated patches;
* 3-point statistics: fit on the reference and all generated ensembles together.

:class:`PCA` fits on one set and projects any other; :func:`fit_project` does either for a dict
of named sets; :func:`patch_statistics_pca` is the patch diagnostic of Section 4.3.
"""

from __future__ import annotations

import torch

from lgtutorial.microstructure import as_tensor

__all__ = ["PCA", "fit_project", "patch_statistics_pca"]


def _as_rows(data, name: str) -> torch.Tensor:
    t = as_tensor(data)
    if t.ndim < 2:
        raise ValueError(
            f"{name}: expected (n_samples, n_features...) with at least 2 axes; got {tuple(t.shape)}"
        )
    if not t.is_floating_point():
        t = t.to(torch.float32)
    t = t.flatten(1)
    if not torch.isfinite(t).all():
        raise ValueError(
            f"{name}: contains NaN or infinite values; crop the lags to a cutoff with valid pairs"
        )
    return t


class PCA:
    """Principal component analysis by a thin SVD of the centred data (computed in float64 where available).

    Args:
        n_components: number of components to keep; fewer are kept when the data has fewer
            samples or features (see :attr:`n_components`).

    Attributes (after :meth:`fit`):
        mean: ``(n_features,)``.
        components: ``(n_components, n_features)`` orthonormal directions, sign fixed so that the
            largest entry of each is positive (deterministic).
        explained_variance_ratio: ``(n_components,)`` share of the total variance.

    >>> import torch
    >>> data = torch.tensor([[0., 0.], [1., 1.], [2., 2.]])
    >>> pca = PCA(1).fit(data)
    >>> torch.allclose(pca.inverse_transform(pca.transform(data)), data, atol=1e-6)
    True
    """

    def __init__(self, n_components: int):
        if not isinstance(n_components, int) or n_components < 1:
            raise ValueError(f"n_components must be a positive integer, got {n_components!r}")
        self.requested_components = n_components
        self.mean: torch.Tensor | None = None
        self.components: torch.Tensor | None = None
        self.explained_variance_ratio: torch.Tensor | None = None

    @property
    def n_components(self) -> int:
        """Components actually kept (``min(requested, n_samples, n_features)``)."""
        self._check_fitted()
        return self.components.shape[0]

    def _check_fitted(self) -> None:
        if self.components is None:
            raise ValueError("this PCA is not fitted yet; call fit(data) first")

    def fit(self, data) -> PCA:
        """Fit the basis on ``data`` of shape ``(n_samples, ...)`` (trailing axes are flattened)."""
        x = _as_rows(data, "data")
        if x.shape[0] < 2:
            raise ValueError(f"PCA needs at least 2 samples to fit; got {x.shape[0]}")
        dtype = x.dtype
        x = x.to(torch.float32 if x.device.type == "mps" else torch.float64)  # MPS has no float64
        mean = x.mean(0)
        _, singular, vh = torch.linalg.svd(x - mean, full_matrices=False)
        k = min(self.requested_components, vh.shape[0])
        components = vh[:k]
        largest = components.abs().argmax(1, keepdim=True)
        components = components * torch.sign(components.gather(1, largest))
        variance = singular**2 / (x.shape[0] - 1)
        self.mean = mean.to(dtype)
        self.components = components.to(dtype)
        self.explained_variance_ratio = (variance[:k] / variance.sum().clamp_min(1e-300)).to(dtype)
        return self

    def transform(self, data) -> torch.Tensor:
        """PC scores ``(n_samples, n_components)`` of ``data`` ``(n_samples, ...)`` in the fitted basis."""
        self._check_fitted()
        x = _as_rows(data, "data").to(device=self.mean.device)
        if x.shape[1] != self.mean.shape[0]:
            raise ValueError(
                f"data has {x.shape[1]} features per sample but the PCA was fit on {self.mean.shape[0]}"
            )
        return (x.to(self.mean.dtype) - self.mean) @ self.components.T

    def inverse_transform(self, scores) -> torch.Tensor:
        """Back from ``(n_samples, n_components)`` scores to ``(n_samples, n_features)`` (flattened)."""
        self._check_fitted()
        s = as_tensor(scores, device=self.mean.device).to(self.mean.dtype)
        if s.ndim != 2 or s.shape[1] != self.n_components:
            raise ValueError(
                f"expected scores of shape (n_samples, {self.n_components}); got {tuple(s.shape)}"
            )
        return s @ self.components + self.mean


def fit_project(sets: dict, *, n_components: int, fit_on=None) -> tuple[PCA, dict[str, torch.Tensor]]:
    """Fit one PCA basis and project every named set into it.

    Args:
        sets: ``{name: (n_samples, ...)}`` statistics with the same number of features per sample.
        n_components: components to keep.
        fit_on: a name or a list of names whose samples define the basis; ``None`` fits on all sets
            together (the paper's choice for 3-point statistics).

    Returns:
        The fitted :class:`PCA` and ``{name: (n_samples, n_components)}`` scores.
    """
    if not sets:
        raise ValueError("sets is empty; expected a dict of named statistics")
    names = list(sets) if fit_on is None else ([fit_on] if isinstance(fit_on, str) else list(fit_on))
    missing = [name for name in names if name not in sets]
    if missing:
        raise ValueError(f"fit_on names {missing} are not among the sets {list(sets)}")
    rows = {name: _as_rows(value, name) for name, value in sets.items()}
    device = rows[names[0]].device
    basis = torch.cat([rows[name].to(device) for name in names])
    pca = PCA(n_components).fit(basis)
    return pca, {name: pca.transform(value) for name, value in rows.items()}


def patch_statistics_pca(
    training_patches, others: dict | None = None, *, n_components: int = 50, cutoff: int | None = None
) -> tuple[PCA, dict[str, torch.Tensor]]:
    """PC scores of patch 2-point statistics in a basis fit on the training patches only (Section 4.3).

    Every patch is described by its non-periodic 2-point statistics up to ``cutoff`` (default: half
    the patch size, 20 px for 40 px patches; see :func:`lgtutorial.statistics.higher_order.patch_two_point_statistics`).

    Args:
        training_patches: ``(n_patches, n_phases, p, p)`` patches the basis is fit on.
        others: ``{name: (n, n_phases, p, p)}`` patches to project, e.g. ``{"generated": ...}``.
        n_components: PCs kept (the paper keeps 50).
        cutoff: lag cutoff in pixels.

    Returns:
        The fitted :class:`PCA` and ``{"training": scores, name: scores, ...}``, each ``(n, k)``.
    """
    from lgtutorial.statistics.higher_order import patch_two_point_statistics

    if cutoff is None:
        cutoff = min(as_tensor(training_patches).shape[-2:]) // 2
    sets = {"training": patch_two_point_statistics(training_patches, cutoff=cutoff)}
    for name, patches in (others or {}).items():
        if name == "training":
            raise ValueError("'training' names the training patches; rename that set")
        sets[name] = patch_two_point_statistics(patches, cutoff=cutoff)
    return fit_project(sets, n_components=n_components, fit_on="training")
