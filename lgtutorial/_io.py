"""Small file helpers: atomic writes and output folders that one run owns (nothing is silently overwritten,
no two runs share a folder: :func:`fresh_directory`, :func:`claim_output`).

Also the writers the command line and the reports share (:func:`save_npy`, :func:`save_text`,
:func:`save_figure`), all atomic, and :data:`OUTPUT_ROOT`, the folder every command writes under
by default.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import functools
import hashlib
import itertools
import json
import os
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path

__all__ = ["atomic_write", "fresh_directory", "claim_output", "output_claims", "OutputInUse", "OUTPUT_ROOT", "save_npy", "save_text", "save_figure"]

#: Where the command line (and ``fit``, ``export_pretrained``) write unless told otherwise.
OUTPUT_ROOT = Path("lgtutorial-output")


@contextlib.contextmanager
def atomic_write(path, mode: str = "wb"):
    """Open a temporary file next to ``path``; rename it onto ``path`` only if the block succeeds.

    A crash or an exception leaves any earlier file at ``path`` untouched, and the temporary file is
    removed. A full disk (``ENOSPC``, also where a writer lost the error number, as numpy's "N requested
    and M written" does) becomes an ``OSError(ENOSPC)`` that says "no space left on the device" and names ``path``.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as error:
        if _no_space(error, path.parent):
            raise _full_disk(path) from error
        raise
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes the file private; the result follows the umask
        os.replace(tmp, path)
    except BaseException as error:
        full = isinstance(error, Exception) and _no_space(error, path.parent)  # before the removal frees space
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if full:
            raise _full_disk(path) from error
        raise


def _no_space(error: BaseException, directory: Path) -> bool:
    """Whether ``error``, or one it came from, is a full disk or quota. A write error that lost its number
    (numpy's "N requested and M written", "problem writing element N") counts when ``directory`` has < 1 MiB free."""
    seen, cause = set(), error
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, OSError) and cause.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        cause = cause.__cause__ or cause.__context__
    if isinstance(error, OSError) and error.errno is None:
        with contextlib.suppress(OSError):
            return shutil.disk_usage(directory).free < 2**20
    return False


def _full_disk(path: Path) -> OSError:
    return OSError(errno.ENOSPC, f"no space left on the device while writing {path.name}; nothing was written there "
                                 "(the incomplete copy was removed): free some space and run again", str(path))


def _umask() -> int:
    current = os.umask(0o022)
    os.umask(current)
    return current


# -- output folders, each owned by one run ---------------------------------------------------------
#: A claimed path's lock lives beside it (``.NAME.lgtutorial.lock`` in its folder), so that the output
#: itself (a folder, a Zarr store) holds only what the run writes.
LOCK_SUFFIX = ".lgtutorial.lock"


class OutputInUse(FileExistsError):
    """The output is held by another lgtutorial run that is still going (the message names its pid and start)."""


_MUTEX = threading.RLock()
_HELD: dict[str, dict] = {}  # resolved path -> {"lock", "count", "pid"}: the claims this process holds
_LOCAL = threading.local()  # .scopes: this thread's open output_claims() blocks, each with the claims made in it


def _process_start(pid: int):
    """``(state, start in clock ticks after boot)`` of a process from ``/proc`` (Linux); ``None`` elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        return fields[0], int(fields[19])
    except (OSError, IndexError, ValueError):
        return None


def _alive(record: dict) -> bool:
    """Whether the run that wrote a lock's ``record`` still runs; ``True`` where that cannot be told
    (another host, no ``os.kill(pid, 0)``, an unreadable record)."""
    pid = record.get("pid")
    if record.get("host") != socket.gethostname() or not isinstance(pid, int) or pid <= 0 or os.name != "posix":
        return True
    if pid == os.getpid():
        return False  # not among this process's claims (they are looked up first): an earlier process's
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    found = _process_start(pid)
    # a zombie, or another process that got the pid since
    return found is None or (found[0] != "Z" and record.get("start") in (None, found[1]))


def _record(data: bytes) -> dict:
    try:
        record = json.loads(data)
    except ValueError:
        return {}
    return record if isinstance(record, dict) else {}


def _create_lock(lock: Path) -> bool:
    """Create ``lock`` with this process's record, complete from its first instant; ``False`` if it exists."""
    started = _process_start(os.getpid())
    record = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S"),
                         "start": started[1] if started else None})
    fd, tmp = tempfile.mkstemp(prefix=f"{lock.name}.", suffix=".tmp", dir=lock.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(record)
        os.chmod(tmp, 0o644 & ~_umask())  # readable by others' runs, as the umask allows
        try:
            os.link(tmp, lock)  # atomic; fails if the lock exists
            return True
        except FileExistsError:
            return False
        except OSError:  # a file system without hard links: exclusive creation, then the record
            try:
                fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                return False
            with os.fdopen(fd, "w") as handle:
                handle.write(record)
            return True
    finally:
        os.unlink(tmp)


def _acquire(lock: Path):
    """Take ``lock``, taking over a stale one (its process has ended): ``None``, or the live holder's record."""
    record = {}
    for _ in range(20):
        if _create_lock(lock):
            return None
        try:
            data = lock.read_bytes()
        except FileNotFoundError:
            continue  # released meanwhile
        except OSError:
            return {}
        record = _record(data)
        if _alive(record):
            return record
        # move the stale lock aside; should another run have replaced it meanwhile, put that one back
        aside = lock.with_name(f"{lock.name}.stale-{os.getpid()}-{os.urandom(4).hex()}")
        try:
            os.rename(lock, aside)
        except FileNotFoundError:
            continue
        if aside.read_bytes() != data:
            with contextlib.suppress(OSError):
                os.link(aside, lock)
        os.unlink(aside)
    return record


def _release(key: str) -> None:
    held = _HELD.get(key)
    if held is None or held["pid"] != os.getpid():
        return
    held["count"] -= 1
    if held["count"] <= 0:
        del _HELD[key]
        with contextlib.suppress(OSError):
            if _record(held["lock"].read_bytes()).get("pid") == os.getpid():
                os.unlink(held["lock"])


def _release_all() -> None:
    with _MUTEX:
        for key in list(_HELD):
            _HELD[key]["count"] = 1
            _release(key)


atexit.register(_release_all)  # claims made outside any output_claims() block end with the process


def _claim(path: Path, *, fresh: bool) -> bool:
    """Claim ``path``: ``True`` when claimed; when another run holds it ``False`` (``fresh``) or
    :class:`OutputInUse`. ``fresh`` also creates ``path`` and wants it empty. This process's claims nest."""
    resolved = path.resolve()
    key, lock = str(resolved), resolved.with_name(f".{resolved.name}{LOCK_SUFFIX}")
    held = _HELD.get(key)
    if held is not None and held["pid"] == os.getpid():
        if fresh:
            return False
        held["count"] += 1
    else:
        if not lock.parent.is_dir():
            try:
                lock.parent.mkdir(parents=True, exist_ok=True)
            except FileExistsError:
                raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(path.parent)) from None
        record = _acquire(lock)
        if record is not None and fresh:
            return False
        if record is not None:
            if not record.get("pid"):
                who = f"its lock {lock} cannot be read; delete it if no run is going"
            else:
                host = "" if record.get("host") == socket.gethostname() else f" on {record.get('host')}"
                who = f"pid {record['pid']}{host}, since {record.get('since')}"
                if host or os.name != "posix":  # where it cannot be told whether that process still runs
                    who += f"; if it is gone, delete {lock}"
            raise OutputInUse(f"{path} is in use by another lgtutorial run ({who}); wait for it to end or choose "
                              "another output")
        if fresh:
            try:
                path.mkdir(exist_ok=True)
                empty = not any(path.iterdir())
            except OSError:
                empty = False
            if not empty:  # filled or replaced meanwhile by something that takes no claim
                os.unlink(lock)
                return False
        _HELD[key] = {"lock": lock, "count": 1, "pid": os.getpid()}
    if getattr(_LOCAL, "scopes", None):
        _LOCAL.scopes[-1].append(key)
    return True


def claim_output(path) -> Path:
    """Claim ``path`` (a folder or a Zarr store, there or not) for this run, and return it; refused while
    another run holds it.

    The claim is a lock file beside ``path``, made atomically, holding this process's pid and start
    time; a lock whose process has ended is stale and taken over. It is held until the end of the
    enclosing :func:`output_claims` block (the command line runs each command in one), else until the
    process ends; a process's own claims nest. Creates ``path``'s parent folders, not ``path``.

    Raises:
        OutputInUse: another lgtutorial run holds ``path`` (the message names its pid and start).
    """
    path = Path(path)
    with _MUTEX:
        _claim(path, fresh=False)
    return path


@contextlib.contextmanager
def output_claims():
    """Release, at the end of the block, the outputs claimed inside it (also a decorator, ``@output_claims()``)."""
    if not hasattr(_LOCAL, "scopes"):
        _LOCAL.scopes = []
    _LOCAL.scopes.append([])
    try:
        yield
    finally:
        with _MUTEX:
            for key in _LOCAL.scopes.pop():
                _release(key)


def fresh_directory(path, *, overwrite: bool = False) -> Path:
    """Claim and create a new output folder for this run (see :func:`claim_output`), and return it.

    ``path`` is taken if it does not exist, or is an empty folder no other run holds; else a numbered
    sibling (``path-1``, ``path-2``, ...) is: earlier results are never replaced, and two runs given
    the same folder never share it. With ``overwrite``, ``path`` itself is claimed (to resume a run
    there, or to replace its files), and :class:`OutputInUse` raised while another run holds it.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(path))
    if overwrite:
        claim_output(path).mkdir(parents=True, exist_ok=True)
        return path
    for k in itertools.count():
        candidate = path if k == 0 else path.with_name(f"{path.name}-{k}")
        if candidate.exists() and (not candidate.is_dir() or any(candidate.iterdir())):
            continue
        with _MUTEX:
            if _claim(candidate, fresh=True):
                return candidate


def save_npy(path, array) -> None:
    """Write ``array`` (NumPy or anything ``np.asarray`` takes) as ``.npy``, atomically."""
    import numpy as np

    with atomic_write(path) as handle:
        np.save(_Writes(handle), np.asarray(array))


class _Writes:
    """Hands numpy a plain ``write``: given a real file, numpy writes with C ``fwrite`` and loses the error
    number (a full disk reads "131072 requested and 21472 written"); through ``write`` the ``OSError`` keeps it."""

    def __init__(self, handle):
        self.write = handle.write


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


def file_digest(path, algorithm: str = "sha256") -> str:
    """Hex digest of a file, ``"sha256"`` or ``"git_sha1"`` (git's blob hash); computed once per file
    version (cached on its path, size and modification time).
    """
    stat = Path(path).stat()
    return _digest(str(path), stat.st_size, stat.st_mtime_ns, algorithm)


@functools.lru_cache(maxsize=64)
def _digest(path: str, size: int, mtime_ns: int, algorithm: str) -> str:
    data = Path(path).read_bytes()
    if algorithm == "git_sha1":
        return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
    return hashlib.sha256(data).hexdigest()
