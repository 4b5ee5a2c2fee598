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


def load_fitted(description: str, argv=None):
    """The arguments shared by the scripts that study one ``lgtutorial fit`` folder (micrograph, folder,
    ``--output``), then ``(args, micrograph, metadata, {"GRF": grf samples, "hybrid": hybrid samples})``."""
    import argparse
    from pathlib import Path

    import numpy as np
    import torch

    import lgtutorial as lg

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("micrograph", help="registry name or file")
    parser.add_argument("folder", help="a fit's output folder (samples.npy and grf.npy)")
    parser.add_argument("--output", default=None, help="Markdown file to write")
    args = parser.parse_args(argv)
    micro, meta = lg.data.load(args.micrograph)
    ensembles = {name: torch.from_numpy(np.load(Path(args.folder) / file)).float()
                 for name, file in (("GRF", "grf.npy"), ("hybrid", "samples.npy"))}
    return args, micro, meta, ensembles
