"""Dead code in the package: ``vulture`` over the package and everything that uses it (tests,
benchmarks, tools, figure scripts and the code cells of the book), with a short allow-list.

    python tools/dead_code.py        # exit 1 and a list when something in lgtutorial/ is unused
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: Names used from outside Python's view: torch hooks, keyword-only parameters kept for the signature.
ALLOWED = """
extra_repr  # torch.nn.Module hook, called by repr()
mtime_ns  # part of the digest cache's key: a changed file is hashed again
_split_lines  # argparse.HelpFormatter hook, called by argparse when it wraps help text
"""


def notebook_code(folder: Path) -> None:
    """Each chapter's code cells as one module (magics and shell lines dropped)."""
    for notebook in sorted((ROOT / "book").glob("*.ipynb")):
        cells = json.loads(notebook.read_text())["cells"]
        code = "\n\n".join("".join(cell["source"]) for cell in cells if cell["cell_type"] == "code")
        lines = [line for line in code.splitlines() if not line.lstrip().startswith(("%", "!"))]
        (folder / f"{notebook.stem.replace('-', '_')}.py").write_text("\n".join(lines) + "\n")


def main() -> int:
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        notebook_code(scratch)
        (scratch / "allowed.py").write_text(ALLOWED)
        paths = ["lgtutorial", "tests", "benchmarks", "tools", "book/figures", "conftest.py", str(scratch)]
        done = subprocess.run([sys.executable, "-m", "vulture", *paths, "--min-confidence", "60"],
                              cwd=ROOT, capture_output=True, text=True)
    unused = [line for line in done.stdout.splitlines() if line.startswith("lgtutorial")]
    print("\n".join(unused) or "no dead code in lgtutorial/")
    return 1 if unused else 0


if __name__ == "__main__":
    sys.exit(main())
