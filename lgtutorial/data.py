"""The data registry: reference micrographs and checkpoints by name, and loaders for users' files.

Reference files are never part of this project. :func:`fetch` finds a registered file by looking

1. under ``$LGTUTORIAL_DATA`` (a local copy, e.g. ``../shared/data`` on the project machines),
2. in the download cache (``$LGTUTORIAL_CACHE``, else the platform cache folder),
3. at its source URL (downloaded with ``pooch`` into the cache),

and checks the file's SHA-256 (or the git blob SHA-1 that GitHub shows) every time.
"""

from __future__ import annotations

import functools
import os
import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tomllib
import torch

from lgtutorial._io import file_digest
from lgtutorial.microstructure import as_tensor, check_microstructure, labels_to_one_hot

__all__ = ["ReferenceEntry", "registry", "list_references", "fetch", "load_reference", "load_micrograph",
           "read_torch_file", "data_directories", "registry_path", "DataNotFoundError"]

DATA_ENV = "LGTUTORIAL_DATA"
CACHE_ENV = "LGTUTORIAL_CACHE"
MAX_PHASES = 16


class DataNotFoundError(FileNotFoundError):
    """A registered file is neither local, cached nor downloadable."""


@dataclass(frozen=True)
class ReferenceEntry:
    """One registered file: what it is, where it comes from, how to check it."""

    name: str
    kind: str
    description: str
    filename: str
    format: str
    licence: str
    citation: str
    url: str | None = None
    sha256: str | None = None
    git_sha1: str | None = None
    phases: tuple[str, ...] = field(default_factory=tuple)
    periodic: bool = False
    material: str | None = None
    """checkpoints: the registered micrograph whose statistics it generates by default"""
    shipped: bool = False
    """the file ships inside the package (``data/references``), made by this project's own code"""
    fallback: str | None = None
    """a shipped entry that stands in (with a warning) when this file cannot be found or downloaded"""

    @property
    def citation_text(self) -> str:
        return _load_registry()[1].get(self.citation, self.citation)


def registry_path() -> Path:
    """The registry file: installed as package data, or ``data/`` of a source checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "_data" / "registry.toml", here.parent / "data" / "registry.toml"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError("lgtutorial's data registry (registry.toml) is missing from the installation")


@functools.lru_cache(maxsize=1)
def _load_registry() -> tuple[dict[str, ReferenceEntry], dict[str, str]]:
    with open(registry_path(), "rb") as handle:
        raw = tomllib.load(handle)
    citations = raw.pop("citations", {})
    entries = {}
    for name, values in raw.items():
        values = dict(values)
        values["phases"] = tuple(values.get("phases", ()))
        entries[name] = ReferenceEntry(name=name, **values)
    return entries, citations


def registry() -> dict[str, ReferenceEntry]:
    """All registered entries by name."""
    return dict(_load_registry()[0])


def list_references(kind: str | None = None) -> list[ReferenceEntry]:
    """Registered entries, optionally only one ``kind`` (micrograph, checkpoint, config)."""
    return [e for e in registry().values() if kind is None or e.kind == kind]


def _entry(name: str) -> ReferenceEntry:
    entries = registry()
    if name not in entries:
        raise KeyError(f"unknown reference {name!r}; registered names: {', '.join(sorted(entries))}")
    return entries[name]


def cache_directory() -> Path:
    """Where downloads are kept (``$LGTUTORIAL_CACHE`` or the platform cache folder)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    import pooch

    return Path(pooch.os_cache("lgtutorial"))


def data_directories() -> list[Path]:
    """The local folders searched before downloading, in order."""
    folders = []
    if os.environ.get(DATA_ENV):
        folders.append(Path(os.environ[DATA_ENV]).expanduser())
    folders.append(cache_directory())
    return folders


def shipped_directory() -> Path:
    """The folder of the reference files that ship with the package (``data/references``)."""
    return registry_path().parent / "references"


def _verify(entry: ReferenceEntry, path: Path) -> None:
    if entry.sha256:
        expected, algorithm = entry.sha256, "sha256"
    elif entry.git_sha1:
        expected, algorithm = entry.git_sha1, "git_sha1"
    else:  # pragma: no cover - the registry test requires a hash for every entry
        raise ValueError(f"registry entry {entry.name!r} has no hash")
    found = file_digest(path, algorithm)
    if found != expected:
        raise ValueError(
            f"{path} does not match the registry entry {entry.name!r}: expected {algorithm} "
            f"{expected}, found {found}. The file is corrupt or a different version; delete it or "
            f"replace it with the file from {entry.url or 'the project data folder'}."
        )


def fetch(name: str, *, download: bool = True) -> Path:
    """Path of the registered file ``name``, verified; downloaded into the cache if needed.

    Raises:
        DataNotFoundError: the file is in none of the searched places and cannot be downloaded.
        ValueError: a file was found but its hash is wrong.
    """
    entry = _entry(name)
    looked = []
    for folder in ([shipped_directory()] if entry.shipped else data_directories()):
        path = folder / entry.filename
        looked.append(str(path))
        if path.is_file():
            _verify(entry, path)
            return path
    if download and entry.url:
        import pooch

        target = cache_directory() / entry.filename
        known = f"sha256:{entry.sha256}" if entry.sha256 else None
        try:
            downloaded = pooch.retrieve(
                entry.url,
                known_hash=known,
                fname=target.name,
                path=target.parent,
                downloader=pooch.HTTPDownloader(timeout=60, progressbar=False),
            )
        except Exception as error:  # network errors come in many types
            raise DataNotFoundError(
                f"could not find {entry.filename!r} ({name}) locally (looked in: {', '.join(looked)}) "
                f"and downloading {entry.url} failed ({type(error).__name__}: {error}). "
                f"Download it by hand into one of those places, or set ${DATA_ENV} to a folder "
                f"that holds {entry.filename}."
            ) from error
        _verify(entry, Path(downloaded))
        return Path(downloaded)
    how = f"download {entry.url}" if entry.url else "copy it from the project's shared data folder"
    raise DataNotFoundError(
        f"could not find {entry.filename!r} ({name}); looked in: {', '.join(looked)}. "
        f"Set ${DATA_ENV} to a folder that holds {entry.filename}, or {how} into one of those places."
    )


def _read_reference(entry: ReferenceEntry, path: Path) -> torch.Tensor:
    if entry.format == "torch-one-hot":
        tensor = read_torch_file(path, "a micrograph").to(torch.float32)
        return check_microstructure(tensor[None] if tensor.ndim == 3 else tensor, name=entry.name)
    if entry.format == "labels-npy":
        return labels_to_one_hot(np.load(path))
    if entry.format == "labels-png":
        from PIL import Image

        with Image.open(path) as image:
            return labels_to_one_hot(np.array(image.convert("L")) // 255 if image.mode == "1" else np.array(image))
    if entry.format == "one-hot-npy-last":
        array = np.load(path)
        return check_microstructure(torch.from_numpy(np.moveaxis(array, -1, 0)[None]).float(), name=entry.name)
    raise ValueError(f"{entry.name!r} is a {entry.kind}, not a micrograph; use fetch() for its path")


def load_reference(name: str, *, device=None, download: bool = True) -> tuple[torch.Tensor, dict]:
    """Load a registered micrograph as a one-hot tensor.

    Args:
        name: a registry name (see ``lgtutorial data list``), e.g. ``"ti-alpha-beta"``.
        device: where to put the tensor.
        download: allow downloading when no local copy exists.

    Returns:
        ``(microstructure, metadata)``: a float32 tensor of shape ``(1, n_phases, H, W)`` and a
        dict with name, description, phases, path, licence, citation, periodic.
    """
    entry = _entry(name)
    if entry.kind != "micrograph":
        raise ValueError(f"{name!r} is a {entry.kind}, not a micrograph")
    try:
        path = fetch(name, download=download)
    except DataNotFoundError as error:
        if not entry.fallback:
            raise
        import warnings

        stand_in = _entry(entry.fallback)
        warnings.warn(f"{name} is not available here ({error}); using the shipped {stand_in.name} instead: "
                      f"{stand_in.description}. Numbers will differ slightly from those printed in the book.",
                      stacklevel=2)
        micro, meta = load_reference(stand_in.name, device=device, download=download)
        return micro, {**meta, "stands_in_for": name}
    micro = _read_reference(entry, path)
    n = micro.shape[1]
    phases = list(entry.phases) if len(entry.phases) == n else [f"phase {i}" for i in range(n)]
    meta = {
        "name": name,
        "description": entry.description,
        "phases": phases,
        "path": str(path),
        "licence": entry.licence,
        "citation": entry.citation_text,
        "periodic": entry.periodic,
        "shape": tuple(micro.shape),
    }
    return (micro.to(device) if device is not None else micro), meta


def _check_values(values: np.ndarray, source: str, *, labels: bool, channels_last: bool = False) -> None:
    """Refuse text, complex numbers, NaN, infinity and (``labels``) fractions; 1.0 and 2.0 pass. The message counts
    the bad pixels (``channels_last``: a pixel with any bad channel) and gives the first one's (row, column)."""
    kind = values.dtype.kind
    if kind not in "biufc":
        raise ValueError(f"{source}: holds {values.dtype} values; expected numbers (integer phase labels, one per phase)")
    if kind in "biu":
        return
    with np.errstate(invalid="ignore"):  # complex numbers are refused, even 1+0j
        bad = ~np.isfinite(values) | (kind == "c") | (labels & (values.real != np.round(values.real)))
    bad = bad.any(axis=-1) if channels_last and bad.ndim == 3 else bad
    if count := int(np.count_nonzero(bad)):
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        where = f"(row {first[0]}, column {first[1]})" if len(first) == 2 else f"index {first}"
        what, expected = (("NaN, infinity, a fraction or a complex number", "integer phase labels (1.0, 2.0 are fine)")
                          if labels else ("NaN, infinity or a complex number", "finite real one-hot values"))
        raise ValueError(f"{source}: {count} pixel(s) hold {what}, the first at {where}: {values[first].tolist()!r}; "
                         f"expected {expected}")


def read_torch_file(path, what: str):
    """``torch.load`` on the CPU, ``weights_only`` (never unsafely); one-line ``ValueError`` if ``path`` is no ``what``."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # unpickling errors come in many types
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(error))  # torch's advice is not repeated
        why = (f"it holds Python objects: {found.group(1) if found else 'not only tensors'}; they are never unpickled"
               if isinstance(error, pickle.UnpicklingError) else
               f"{type(error).__name__}: {(str(error).splitlines() or ['empty or cut short'])[0]}")
        raise ValueError(f"{path}: could not read it as {what}, not a file of tensors this package reads ({why})") from error


def _phases_from_values(values: np.ndarray, source: str) -> tuple[np.ndarray, list]:
    """Map grey levels or colours (last axis) to labels 0..N-1, in sorted order (refusing what is no label)."""
    _check_values(values, source, labels=True, channels_last=values.ndim == 3)
    flat = values.reshape(-1, values.shape[-1]) if values.ndim == 3 else values.reshape(-1, 1)
    unique, labels = np.unique(flat, axis=0, return_inverse=True)
    if len(unique) > MAX_PHASES:
        raise ValueError(
            f"{source}: found {len(unique)} distinct values; expected a segmented image with at most "
            f"{MAX_PHASES} phases (one grey level or colour per phase). Segment the image first."
        )
    shape = values.shape[:-1] if values.ndim == 3 else values.shape
    return labels.reshape(shape), [tuple(int(c) for c in u) if len(u) > 1 else u[0].item() for u in unique]


def load_micrograph(path, *, device=None) -> tuple[torch.Tensor, dict]:
    """Load a user's segmented micrograph and turn it into a one-hot tensor.

    Accepted files:

    * ``.npy``: integer labels ``(H, W)``; one-hot ``(N, H, W)`` or ``(H, W, N)``;
    * ``.png``, ``.tif``, ``.tiff``, ``.bmp``: grey or colour images in which every phase has its own
      grey level or colour (phases are numbered in sorted order of that value);
    * ``.pt``, ``.pth``: a tensor of labels ``(H, W)`` or one-hot ``(N, H, W)`` / ``(1, N, H, W)``.

    Returns:
        ``(microstructure, metadata)`` with the tensor ``(1, n_phases, H, W)`` and a dict whose
        ``"phases"`` lists the grey level / colour / label each phase came from.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such micrograph file: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            array = np.load(path, allow_pickle=False)
        elif suffix in (".pt", ".pth"):
            array = read_torch_file(path, "a micrograph")
            if not isinstance(array, torch.Tensor):
                raise ValueError(f"{path}: expected a saved tensor, found {type(array).__name__}")
            array = array.numpy()
        elif suffix in (".png", ".tif", ".tiff", ".bmp"):
            from PIL import Image

            with Image.open(path) as image:
                # colours with their alpha: phases may differ in any channel, transparency included
                if image.mode == "P":
                    image = image.convert("RGBA")
                elif image.mode not in ("1", "L", "LA", "RGB", "RGBA", "I", "I;16", "F"):
                    image = image.convert("RGBA")
                array = np.array(image)
        else:
            raise ValueError(f"{path}: unsupported file type {suffix!r}; expected .npy, .png, .tif, .pt or .pth")
    except ValueError:
        raise
    except Exception as error:  # unreadable, truncated or not what its name says: many exception types
        raise ValueError(f"{path}: could not read it as a {suffix} micrograph ({type(error).__name__}: {error})") from None
    if array.size == 0:
        raise ValueError(f"{path}: the file holds an empty array {array.shape}; expected a segmented micrograph")
    if suffix in (".png", ".tif", ".tiff", ".bmp"):
        labels, values = _phases_from_values(array, str(path))
        micro = labels_to_one_hot(labels)
        _at_least_two_phases(micro, path)
        meta = {"path": str(path), "phases": [f"value {v}" for v in values], "shape": tuple(micro.shape)}
        return (micro.to(device) if device is not None else micro), meta

    array = np.asarray(array)
    if array.ndim == 4 and array.shape[0] == 1:
        array = array[0]
    if array.ndim == 2:
        labels, values = _phases_from_values(array, str(path))
        micro = labels_to_one_hot(labels)
        phases = [f"label {v}" for v in values]
    elif array.ndim == 3:
        _check_values(array, str(path), labels=False)
        if np.allclose(array.sum(0), 1.0) and array.shape[0] <= MAX_PHASES:
            one_hot = array  # (N, H, W)
        elif np.allclose(array.sum(-1), 1.0) and array.shape[-1] <= MAX_PHASES:
            one_hot = np.moveaxis(array, -1, 0)  # (H, W, N)
        else:
            raise ValueError(
                f"{path}: a 3-D array must be one-hot with phases on the first or last axis "
                f"(values summing to 1 over that axis); got shape {array.shape}"
            )
        micro = check_microstructure(as_tensor(np.ascontiguousarray(one_hot)[None]).float(), name=str(path))
        phases = [f"channel {i}" for i in range(micro.shape[1])]
    else:
        raise ValueError(
            f"{path}: expected labels (H, W) or one-hot (N, H, W) / (H, W, N); got shape {array.shape}"
        )
    _at_least_two_phases(micro, path)
    meta = {"path": str(path), "phases": phases, "shape": tuple(micro.shape)}
    return (micro.to(device) if device is not None else micro), meta


def _at_least_two_phases(micro: torch.Tensor, path) -> None:
    if micro.shape[1] < 2:
        raise ValueError(f"{path}: found a single phase; a micrograph needs at least 2 (one grey level, colour or "
                         "label per phase)")


def load(name_or_path, *, device=None) -> tuple[torch.Tensor, dict]:
    """Load a registered reference by name, or a user's file by path."""
    if str(name_or_path) in registry():
        return load_reference(str(name_or_path), device=device)
    if Path(name_or_path).exists():
        return load_micrograph(name_or_path, device=device)
    names = ", ".join(e.name for e in list_references("micrograph"))
    raise ValueError(f"{name_or_path!r} is neither a registered reference ({names}) nor an existing file")

