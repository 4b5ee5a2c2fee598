"""Shared by the benchmark scripts: print a Markdown table and optionally write it atomically."""

from __future__ import annotations

from lgtutorial._io import atomic_write


def emit_table(table: str, output: str | None) -> None:
    """Print ``table``; when ``output`` is given, also write it there (temporary file, then rename)."""
    print()
    print(table)
    if output:
        with atomic_write(output, "w") as handle:
            handle.write(table + "\n")
