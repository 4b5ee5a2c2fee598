"""What the book's chapters share: finding the committed benchmark results and figures, reading their tables.

The chapters quote measurements committed under ``benchmarks/results/`` and ``book/figures/``. They
run from ``book/`` (the book's build, ``make test``) or from the repository's root; on Colab the
package is pip-installed without the repository, so :func:`repository_path` finds nothing there
and a chapter says where the committed file lives instead. Not part of the public API.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["markdown_tables", "repository_path", "page_setup", "clock", "REPOSITORY"]

#: Where Colab installs the package from; must equal ``repository: url:`` in ``_config.yml`` (checked by
#: :func:`page_setup` inside the repository, and by ``tests/test_colab.py``).
REPOSITORY = "https://github.com/lgtutorial/lgtutorial"


def markdown_tables(text: str) -> list[list[list[str]]]:
    """The pipe tables of a Markdown text: a list of row lists (cells stripped), header row first.

    The ``|---|`` rule under each header is left out; a table ends at the first line that does not
    start with ``|``.

    >>> text = "Timing\\n\\n| arm | s |\\n|---|--:|\\n| fast | 1.5 |\\n| faithful | 17 |\\n\\nand\\n| a |\\n|---|\\n| 1 |"
    >>> markdown_tables(text)
    [[['arm', 's'], ['fast', '1.5'], ['faithful', '17']], [['a'], ['1']]]
    >>> markdown_tables("no table")
    []
    """
    tables, rows = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            if not all(set(cell) <= set("-: ") for cell in cells):  # skip the |---| rule
                rows.append(cells)
        elif rows:
            tables.append(rows)
            rows = []
    return tables


def repository_path(path: str, *, holding: str | None = None, start: str | Path = ".") -> Path | None:
    """A file or folder of the repository, named from the repository's root, as seen from ``start``.

    Looked for from ``book/`` (``../path``) and from the root (``path``), relative to ``start`` (the
    working directory by default); a folder must hold the file ``holding``. None where neither is
    there, e.g. on Colab, outside the repository.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     root = Path(folder)
    ...     (root / "book").mkdir()
    ...     (root / "benchmarks" / "results").mkdir(parents=True)
    ...     _ = (root / "benchmarks" / "results" / "hybrid_cpu.md").write_text("| s per level |", encoding="utf-8")
    ...     from_book = repository_path("benchmarks/results", holding="hybrid_cpu.md", start=root / "book")
    ...     from_root = repository_path("benchmarks/results/hybrid_cpu.md", start=root)
    ...     missing = repository_path("benchmarks/results", holding="volume_cost_cpu.md", start=root / "book")
    >>> from_book == root / "book" / ".." / "benchmarks" / "results", from_root == root / "benchmarks/results/hybrid_cpu.md"
    (True, True)
    >>> missing is None
    True
    """
    start = Path(start)
    for candidate in (start / ".." / path, start / path):
        if (candidate / holding).is_file() if holding else candidate.exists():
            return candidate
    return None


def page_setup(config: str | Path = "../_config.yml") -> tuple[str, float]:
    """What every chapter's first cell needs once the package is installed: ``(DEVICE, PAGE_START)``,
    the device to run on (``"cuda"`` when a GPU is there, else ``"cpu"``) and the page's start time.

    Inside the repository (``config`` exists) it also checks that :data:`REPOSITORY`, where the Colab
    cell installs from, is the book's ``repository: url:``.

    >>> device, started = page_setup(config="no-such-file.yml")
    >>> device in ("cuda", "cpu") and started > 0
    True
    """
    import time

    import torch

    started = time.perf_counter()
    config = Path(config)
    if config.is_file() and f"url: {REPOSITORY}" not in config.read_text(encoding="utf-8"):
        raise AssertionError(f"the chapters install from {REPOSITORY}, but {config} names another repository.url")
    return ("cuda" if torch.cuda.is_available() else "cpu"), started


def clock(device) -> float:
    """``time.perf_counter()`` once ``device`` has finished its queued work: a GPU runs asynchronously,
    so a timing read without waiting for it measures only the launches.

    >>> clock("cpu") > 0
    True
    """
    import time

    import torch

    if str(device).startswith("cuda"):
        torch.cuda.synchronize(device)
    return time.perf_counter()
