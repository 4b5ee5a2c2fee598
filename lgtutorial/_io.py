"""Small file helpers: atomic writes and fresh output folders (nothing is silently overwritten).

Also the writers the command line and the reports share (:func:`save_npy`, :func:`save_text`,
:func:`save_figure`), all atomic, and :data:`OUTPUT_ROOT`, the folder every command writes under
by default.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

__all__ = ["atomic_write", "fresh_directory", "OUTPUT_ROOT", "save_npy", "save_text", "save_figure"]

#: Where the command line (and ``fit``, ``export_pretrained``) write unless told otherwise.
OUTPUT_ROOT = Path("lgtutorial-output")


@contextlib.contextmanager
def atomic_write(path, mode: str = "wb"):
    """Open a temporary file next to ``path``; rename it onto ``path`` only if the block succeeds.

    A crash or an exception leaves any earlier file at ``path`` untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes the file private; the result follows the umask
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    current = os.umask(0o022)
    os.umask(current)
    return current


def fresh_directory(path, *, overwrite: bool = False) -> Path:
    """Create and return an output folder.

    If ``path`` exists and is not empty, and ``overwrite`` is false, a numbered sibling
    (``path-1``, ``path-2``, ...) is used instead, so earlier results are never replaced silently.
    """
    path = Path(path)
    if overwrite or not path.exists() or not any(path.iterdir()):
        path.mkdir(parents=True, exist_ok=True)
        return path
    k = 1
    while True:
        candidate = path.with_name(f"{path.name}-{k}")
        if not candidate.exists():
            candidate.mkdir(parents=True)
            return candidate
        k += 1


def save_npy(path, array) -> None:
    """Write ``array`` (NumPy or anything ``np.asarray`` takes) as ``.npy``, atomically."""
    import numpy as np

    with atomic_write(path) as handle:
        np.save(handle, np.asarray(array))


def save_text(path, text: str) -> None:
    """Write ``text`` to ``path``, atomically."""
    with atomic_write(path, "w") as handle:
        handle.write(text)


def save_figure(fig, path, *, dpi: int = 120) -> None:
    """Save a matplotlib figure in the format of ``path``'s suffix, atomically, and close it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    with atomic_write(path) as handle:
        fig.savefig(handle, format=path.suffix.lstrip("."), dpi=dpi, bbox_inches="tight")
    plt.close(fig)
