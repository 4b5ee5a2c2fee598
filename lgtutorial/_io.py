"""Small file helpers: atomic writes and fresh output folders (nothing is silently overwritten)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

__all__ = ["atomic_write", "fresh_directory"]


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
