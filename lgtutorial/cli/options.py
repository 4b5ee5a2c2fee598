"""Command-line options made from the settings dataclasses: one ``--option`` per field, its help the
field's docstring (with fragments such as the samplers' evaluation counts computed from the code), its
default the field's default. The dataclasses live with their jobs (``grf.settings``,
``sampling.settings``, ``volume.settings``, ``evaluation.settings``, ``fitting.settings``, ``cli.train``).
"""

from __future__ import annotations

import argparse
import dataclasses
import typing

__all__ = ["add_arguments", "from_arguments"]


def _field_docs(cls) -> dict[str, str]:
    """Attribute docstrings (the string literal after each field) of a dataclass."""
    import ast
    import inspect
    import textwrap

    docs = {}
    for klass in reversed([k for k in cls.__mro__ if dataclasses.is_dataclass(k)]):  # a base's fields first
        body = ast.parse(textwrap.dedent(inspect.getsource(klass))).body[0].body
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


def _generated_help() -> dict[str, str]:
    """Help fragments computed from the code they describe (so they cannot drift from it)."""
    from lgtutorial.sampling.samplers import SAMPLERS, sampler_help

    own = "the model's"
    levels = ", ".join(f"{name} {configuration.levels or own}" for name, configuration in SAMPLERS.items())
    return {"sampler_help": sampler_help(), "levels_help": levels}


def add_arguments(parser: argparse.ArgumentParser, cls, *, skip: tuple[str, ...] = ()) -> None:
    """Add one ``--option`` per field of the settings dataclass ``cls``."""
    docs = _field_docs(cls)
    if any("_help}" in text for text in docs.values()):
        fragments = _generated_help()
        for key, fragment in fragments.items():
            docs = {name: text.replace("{" + key + "}", fragment) for name, text in docs.items()}
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
