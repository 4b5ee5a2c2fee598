"""Checks shared by every options object: value predicates, :func:`check_settings` (the message names the
command-line option) and :func:`resolve_device`.
"""

from __future__ import annotations

import math

import torch


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``"auto"`` -> a CUDA GPU when one is available, else the CPU; anything else as given, if this machine has it.

    Apple's MPS only when named (``"mps"``): it has no float64, which the statistics and the GRF use, so
    "auto" does not pick it.

    Raises:
        ValueError: a device name torch does not know, or a device this machine does not have.
    """
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"--device: expected {_DEVICE_HELP}, got {device!r}") from error
    if resolved.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0 or (resolved.index is not None and resolved.index >= count):
            raise ValueError(f"--device {device}: this machine has {count or 'no'} CUDA GPU(s); use 'auto' or 'cpu'")
    elif resolved.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError(f"--device {device}: this machine has no MPS device; use 'auto' or 'cpu'")
    elif resolved.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"--device: expected {_DEVICE_HELP}, got {device!r}")
    return resolved


# -- validation: every setting checked where it is made, with the option's name in the message ----
def is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def positive_int(value) -> bool:
    return is_int(value) and value >= 1


def non_negative_int(value) -> bool:
    return is_int(value) and value >= 0


def positive_number(value) -> bool:
    return is_number(value) and value > 0


def optional(check):
    def allowed(value) -> bool:
        return value is None or check(value)

    return allowed


def one_of(*choices):
    def allowed(value) -> bool:
        return value in choices

    return allowed


def check_settings(settings, rules: dict) -> None:
    """Raise ``ValueError`` naming the option (``--name`` and the field) for the first broken rule.

    ``rules`` maps a field to ``(predicate, what is expected)``.
    """
    for name, (allowed, expected) in rules.items():
        value = getattr(settings, name)
        if not allowed(value):
            raise ValueError(f"--{name.replace('_', '-')} ({name}): expected {expected}, got {value!r}")
    device = getattr(settings, "device", "auto")
    if device is not None and str(device) != "auto":  # "auto" always resolves: not asked here, so that options
        resolve_device(device)  # made at import (the defaults) leave CUDA untouched


_DEVICE_HELP = "'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"
