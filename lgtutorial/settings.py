"""Settings as frozen dataclasses: one source of defaults for the API, the CLI and the book.

The command-line options of ``lgtutorial`` are generated from these classes
(:func:`add_arguments` / :func:`from_arguments`), so a default changes in one place only.
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from dataclasses import dataclass

import torch

__all__ = ["GRFSettings", "add_arguments", "from_arguments", "resolve_device"]


@dataclass(frozen=True)
class GRFSettings:
    """Sampling a Gaussian random field from a reference's 2-point statistics."""

    reference: str = "nbsa-proxy"
    """registry name or path of the reference micrograph"""
    n_samples: int = 4
    """number of samples"""
    reference_phase: int = 0
    """phase whose autocorrelation defines the field"""
    filter_sigma: float | None = None
    """width (px) of an optional Gaussian low-pass; none by default"""
    segmentation: str = "preserve"
    """'preserve' (volume-fraction preserving), 'argmax' or 'none'"""
    seed: int = 0
    """seed of the torch.Generator"""
    device: str = "auto"
    """'auto' (GPU when there is one), 'cpu', 'cuda', ..."""


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``"auto"`` -> the GPU when one is available, else the CPU; anything else as given."""
    if device is None or str(device) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    return torch.device(device)


def _field_docs(cls) -> dict[str, str]:
    """Attribute docstrings (the string literal after each field) of a dataclass."""
    import ast
    import inspect
    import textwrap

    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    docs, body = {}, tree.body[0].body
    for node, following in zip(body, body[1:]):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            docs[node.target.id] = following.value.value
    return docs


def _parser_type(annotation):
    origin_args = typing.get_args(annotation)
    if origin_args:  # e.g. float | None
        non_none = [a for a in origin_args if a is not type(None)]
        return non_none[0] if non_none else str
    return annotation


def add_arguments(parser: argparse.ArgumentParser, cls, *, skip: tuple[str, ...] = ()) -> None:
    """Add one ``--option`` per field of the settings dataclass ``cls``."""
    docs = _field_docs(cls)
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        if field.name in skip:
            continue
        flag = "--" + field.name.replace("_", "-")
        kind = _parser_type(hints[field.name])
        help_text = f"{docs.get(field.name, '')} (default: {field.default})"
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=field.default, help=help_text)
        else:
            parser.add_argument(flag, type=kind, default=field.default, help=help_text)


def from_arguments(cls, args: argparse.Namespace):
    """Build the settings dataclass ``cls`` from parsed arguments."""
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)}
    return cls(**values)
