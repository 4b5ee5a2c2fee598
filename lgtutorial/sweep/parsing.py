"""Design files: a sweep design read from YAML and checked, field by field, before anything runs.

A design file is YAML (see ``examples/sweep_small.yaml``)::

    name: nbsa-to-bands
    seed: 0
    references: [nbsa-proxy, ngrf-two-phase-elongated]   # or  statistics: [a.npy, b.npy]
    theta: [0.0, 0.5, 1.0]      # 2 sources: weight of the second; or  weights: [[...], ...]
                                # or  latin_hypercube: 8   (stratified random weights)
    samples_per_point: 2
    shape: [32, 32]             # default: the first source's grid
    model: none                 # GRF only; or a score model: registry name or checkpoint path
    sampler: {segmentation: preserve}

:func:`load_design` reads a file and :func:`parse_design` checks a mapping; every error names the field.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from lgtutorial.sweep.design import SamplerSettings, SweepDesign

__all__ = ["load_design", "parse_design"]

#: Keys of the design mapping (anything else is a typo and is refused).
DESIGN_KEYS = ("name", "seed", "references", "statistics", "theta", "weights", "latin_hypercube",
               "samples_per_point", "shape", "model", "sampler", "device", "summary_cutoff")
#: Sampler keys that apply to the GRF alone (``model: none``) and to the score model.
GRF_KEYS = ("segmentation", "filter_sigma")
HYBRID_KEYS = ("name", "n_levels", "sigma_c", "step_lr", "condition_volume_fraction", "volume_fraction_estimate",
               "volume_fraction_shift", "periodic", "padding")


def _fail(key: str, expected: str, got) -> ValueError:
    return ValueError(f"design field {key!r}: expected {expected}, got {got!r}")


def _integer(value, key: str, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        kind = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise _fail(key, kind, value)
    return int(value)


def _number(value, key: str, *, low: float | None = None, high: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value) \
            or (low is not None and value < low) or (high is not None and value > high):
        span = f" in [{low}, {high}]" if high is not None else (f" >= {low}" if low is not None else "")
        raise _fail(key, f"a number{span}", value)
    return float(value)


def _sources(raw: dict, base: Path) -> tuple[str, tuple[str, ...]]:
    from lgtutorial.data import registry

    kinds = [key for key in ("references", "statistics") if key in raw]
    if len(kinds) != 1:
        raise ValueError("design: give exactly one of 'references' (registry micrographs or micrograph "
                         f"files) and 'statistics' (.npy files of 2-point statistics); got {kinds or 'neither'}")
    kind, values = kinds[0], raw[kinds[0]]
    if isinstance(values, str):
        values = [values]
    if not isinstance(values, list) or not values:
        raise _fail(kind, "a non-empty list of names or paths", values)
    known = {name for name, entry in registry().items() if entry.kind == "micrograph"}
    sources = []
    for position, value in enumerate(values):
        key = f"{kind}[{position}]"
        if not isinstance(value, str) or not value:
            raise _fail(key, "a registry name or a file path", value)
        if kind == "references" and value in known:
            sources.append(value)
            continue
        path = Path(value).expanduser()
        path = path if path.is_absolute() else base / path
        if not path.is_file():
            if kind == "references":
                raise ValueError(f"design field {key!r}: unknown reference {value!r}: expected a registry "
                                 f"micrograph ({', '.join(sorted(known))}) or an existing micrograph file")
            raise ValueError(f"design field {key!r}: no such file {str(path)!r} (expected a .npy of 2-point statistics)")
        if kind == "statistics" and path.suffix.lower() != ".npy":
            raise _fail(key, "a .npy file of 2-point statistics (N, N, H, W) or a row (N, H, W)", value)
        sources.append(str(path.resolve()))
    return kind, tuple(sources)


def _points(raw: dict, n_sources: int, seed: int) -> tuple[tuple[float, ...], ...]:
    rules = [key for key in ("theta", "weights", "latin_hypercube") if key in raw]
    if n_sources == 1:
        if rules:
            raise ValueError(f"design field {rules[0]!r}: interpolation weights need at least 2 sources, got 1")
        return ((1.0,),)
    if len(rules) != 1:
        raise ValueError(f"design: with {n_sources} sources give exactly one of 'theta' (2 sources), 'weights' "
                         f"or 'latin_hypercube'; got {rules or 'none'}")
    rule, value = rules[0], raw[rules[0]]
    if rule == "theta":
        if n_sources != 2:
            raise ValueError(f"design field 'theta': theta is the weight of the second of exactly 2 sources, but "
                             f"the design has {n_sources}; use 'weights' or 'latin_hypercube'")
        values = value if isinstance(value, list) else [value]
        if not values:
            raise _fail("theta", "a non-empty list of numbers in [0, 1]", value)
        thetas = [_number(t, f"theta[{k}]", low=0.0, high=1.0) for k, t in enumerate(values)]
        return tuple((1.0 - t, t) for t in thetas)
    if rule == "weights":
        if not isinstance(value, list) or not value:
            raise _fail("weights", f"a non-empty list of rows of {n_sources} weights", value)
        points = []
        for k, row in enumerate(value):
            if not isinstance(row, list) or len(row) != n_sources:
                raise _fail(f"weights[{k}]", f"{n_sources} non-negative weights summing to 1", row)
            numbers = tuple(_number(w, f"weights[{k}]", low=0.0, high=1.0) for w in row)
            if abs(sum(numbers) - 1.0) > 1e-6:
                raise _fail(f"weights[{k}]", f"{n_sources} non-negative weights summing to 1 (sum {sum(numbers):.6g})", row)
            points.append(numbers)
        return tuple(points)
    from scipy.stats import qmc

    n_points = _integer(value, "latin_hypercube", minimum=1)
    try:
        hypercube = qmc.LatinHypercube(d=n_sources - 1, rng=seed)
    except TypeError:  # scipy < 1.15 calls it seed
        hypercube = qmc.LatinHypercube(d=n_sources - 1, seed=seed)
    cube = hypercube.random(n_points)
    # Sorted coordinates cut [0, 1] into n_sources spacings (a point of the simplex); for 2 sources
    # the weight of the second source is the hypercube coordinate itself.
    edges = np.concatenate([np.zeros((n_points, 1)), np.sort(cube, axis=1), np.ones((n_points, 1))], axis=1)
    spacings = np.diff(edges, axis=1)[:, ::-1]
    return tuple(tuple(float(w) for w in row) for row in spacings)


def _sampler(value, model: str | None) -> SamplerSettings:
    if value is None:
        return SamplerSettings()
    if not isinstance(value, dict):
        raise _fail("sampler", "a mapping of sampler settings", value)
    allowed = GRF_KEYS if model is None else HYBRID_KEYS
    for key in value:
        if key not in allowed:
            which = "a GRF alone (model: none)" if model is None else f"the score model {model!r}"
            raise ValueError(f"design field 'sampler.{key}': not a setting for {which}; expected one of {allowed}")
    number = (int, float)
    from lgtutorial.sampling.samplers import SAMPLERS

    checks = {
        "name": (lambda v: v in SAMPLERS, "one of " + ", ".join(map(repr, SAMPLERS))),
        "segmentation": (lambda v: v in ("auto", "preserve", "quantile", "argmax"), "'auto', 'preserve', 'quantile' or 'argmax'"),
        "filter_sigma": (lambda v: v is None or (isinstance(v, number) and v > 0), "null or a width > 0 (px)"),
        "n_levels": (lambda v: v is None or (isinstance(v, int) and v >= 2), "null or an integer >= 2"),
        "sigma_c": (lambda v: isinstance(v, number) and v > 0, "a noise level > 0"),
        "step_lr": (lambda v: isinstance(v, number) and v > 0, "a step size > 0"),
        "condition_volume_fraction": (lambda v: isinstance(v, bool), "true or false"),
        "volume_fraction_estimate": (lambda v: v in ("segmented", "mean"), "'segmented' or 'mean'"),
        "volume_fraction_shift": (lambda v: v is None or isinstance(v, number), "null or a number"),
        "periodic": (lambda v: v in ("embedding", "circular", "none"), "'embedding', 'circular' or 'none'"),
        "padding": (lambda v: isinstance(v, int) and v >= 0, "an integer >= 0 (px)"),
    }
    for key, option in value.items():
        check, expected = checks[key]
        if (isinstance(option, bool) and key != "condition_volume_fraction") or not check(option):
            raise _fail(f"sampler.{key}", expected, option)
    settings = SamplerSettings(**value)
    if model is not None:  # the rules of 'lgtutorial generate' hold here too
        try:
            settings.refinement()
        except ValueError as error:
            raise ValueError(f"design field 'sampler': {error}") from None
    return settings


def parse_design(raw: dict, *, base: str | Path = ".", name: str = "sweep") -> SweepDesign:
    """Check a design mapping (parsed YAML) and return the :class:`SweepDesign`.

    Args:
        raw: the mapping (keys as in the module docstring).
        base: folder that relative file paths in the design are relative to.
        name: the design's name when ``raw`` has none.

    Raises:
        ValueError: naming the field, what was expected and what came (missing or unknown keys,
            weights outside [0, 1], unknown references, non-positive counts, ...).
    """
    if not isinstance(raw, dict):
        raise ValueError(f"a design must be a mapping of fields ({', '.join(DESIGN_KEYS)}), got {type(raw).__name__}")
    unknown = sorted(set(raw) - set(DESIGN_KEYS))
    if unknown:
        raise ValueError(f"design: unknown field(s) {unknown}; expected fields among {', '.join(DESIGN_KEYS)}")
    for key, expected in (("seed", "a non-negative integer"), ("samples_per_point", "a positive integer"),
                          ("model", "'none' for a GRF alone, or a score model's registry name or checkpoint path")):
        if key not in raw:
            raise ValueError(f"design: missing field {key!r} (expected {expected})")
    seed = _integer(raw["seed"], "seed", minimum=0)
    kind, sources = _sources(raw, Path(base))
    weights = _points(raw, len(sources), seed)
    shape = raw.get("shape")
    if shape is not None:
        shape = [shape, shape] if isinstance(shape, int) and not isinstance(shape, bool) else shape
        if not isinstance(shape, list) or len(shape) != 2:
            raise _fail("shape", "[H, W] (or one side for a square) in pixels, each >= 2", raw["shape"])
        shape = tuple(_integer(side, "shape", minimum=2) for side in shape)
    model = raw["model"]
    if model is None or (isinstance(model, str) and model.lower() in ("none", "grf")):
        model = None
    elif not isinstance(model, str):
        raise _fail("model", "'none', a registry checkpoint name or a checkpoint path", model)
    else:
        from lgtutorial.data import registry
        from lgtutorial.score.registry import available

        entry = registry().get(model)
        if entry is None and model in available():
            pass  # a model shipped with the package
        elif entry is None:
            path = Path(model).expanduser()
            path = path if path.is_absolute() else Path(base) / path
            if not path.is_file():
                checkpoints = sorted(n for n, e in registry().items() if e.kind == "checkpoint")
                raise _fail("model", f"'none', a registry checkpoint ({', '.join(checkpoints)}), a shipped model "
                                     f"({', '.join(available())}) or an existing checkpoint file", model)
            model = str(path.resolve())
        elif entry.kind != "checkpoint":
            raise _fail("model", f"a checkpoint; {model!r} is a {entry.kind}", model)
    sampler = _sampler(raw.get("sampler"), model)
    cutoff = _integer(raw.get("summary_cutoff", 4), "summary_cutoff", minimum=0)
    if shape is not None and 2 * cutoff + 1 > min(shape):
        raise _fail("summary_cutoff", f"at most {(min(shape) - 1) // 2} for a {shape[0]}x{shape[1]} domain", cutoff)
    device = raw.get("device", "auto")
    if not isinstance(device, str) or not device:
        raise _fail("device", "'auto', 'cpu', 'cuda', ...", device)
    try:  # a device torch does not know fails here, not later in every worker
        device_type = "auto" if device == "auto" else torch.device(device).type
    except (RuntimeError, TypeError):
        device_type = None
    if device_type not in ("auto", "cpu", "cuda", "mps"):
        raise _fail("device", "'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'", device)
    design_name = raw.get("name", name)
    if not isinstance(design_name, str) or not design_name or "/" in design_name:
        raise _fail("name", "a non-empty name without '/'", design_name)
    return SweepDesign(
        name=design_name, seed=seed, source_kind=kind, sources=sources, weights=weights,
        samples_per_point=_integer(raw["samples_per_point"], "samples_per_point", minimum=1),
        shape=shape, model=model, sampler=sampler, device=device, summary_cutoff=cutoff,
    )


def load_design(path: str | Path) -> SweepDesign:
    """Read a YAML design file; relative paths in it are relative to its folder. See :func:`parse_design`."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such design file: {path}")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ValueError(f"{path}: not valid YAML ({error})") from error
    return parse_design(raw, base=path.parent, name=path.stem)
