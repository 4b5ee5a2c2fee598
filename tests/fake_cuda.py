"""A fake CUDA device on the CPU: the package's GPU paths tested on machines without a GPU (issue #43).

Inside :class:`FakeCuda` (the ``fake_cuda`` fixture of ``tests/conftest.py``):

* a tensor on ``"cuda"`` is a :class:`FakeCudaTensor`: a CPU tensor whose ``device`` says ``cuda:0``. Every
  ATen op reaches :func:`_run` (through :class:`_Dispatch`, a ``TorchDispatchMode``), which raises on mixed
  devices as CUDA does (``Expected all tensors to be on the same device``; a 0-dim CPU tensor may meet a CUDA
  one, CPU indices may index a CUDA tensor, copies may cross), runs the op on the CPU and marks the results
  that belong on the GPU;
* :class:`_Functions` (a ``TorchFunctionMode``) reroutes what a CPU build of torch refuses or gets wrong before
  any op is dispatched (``Tensor.to``/``.cuda``/``.cpu``, ``torch.tensor``/``as_tensor`` with a CUDA
  device) and checks that a random op's generator is on the op's device type (``Expected a 'cuda' device
  type for generator but found 'cpu'``);
* ``torch.cuda.is_available`` (True), ``device_count`` (1), ``synchronize`` (counted), the device's name,
  capability, properties and free memory, ``is_bf16_supported``, the RNG state functions and
  ``torch.Generator`` (a CPU generator that reports the device it was made for) are patched;
* with ``watch=`` a folder, :class:`DeviceLessFactories` lists the tensor factories called there without a
  device (the ``fake_cuda`` fixture watches ``lgtutorial/``).

Limits, and where the layer departs from a GPU: C++ sees CPU tensors, so ``torch.autocast("cuda")`` casts
nothing (bf16/fp16 numerics, and CUDA kernels' TF32, are not modelled; the scaler's code runs in fp32), and
a C++ composite's helper tensors (made from its input's options) are put on the GPU by a rule: a factory that
asks for the CPU inside a Python-level torch call with an argument on the fake GPU goes to the GPU (so
``gpu.new_zeros(3, device="cpu")`` wrongly stays on the GPU). Torch's own Python functions run with the
function mode off: a ``.cpu()`` inside one would return the tensor itself. No streams or asynchrony (a host
sync costs nothing), no memory limits, one GPU (``cuda:0``), no ``torch.compile``,
``torch.load(map_location="cuda")`` raises (the package never does it), ``torch.save`` writes the CPU data.
:func:`unavailable_reason` says why the installed torch cannot host the layer (the fixture skips then).
"""

from __future__ import annotations

import collections
import os
import sys
import types

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._mode_utils import no_dispatch
from torch.utils._python_dispatch import TorchDispatchMode

CUDA = torch.device("cuda", 0)
CPU = torch.device("cpu")

# ops that may take tensors on two devices: copies between devices, and indexing with CPU indices
_COPIES = {"copy_", "_to_copy", "_copy_from", "_copy_from_and_resize", "copy", "lift_fresh_copy"}
_INDEXING = {"index", "index_put", "index_put_", "_index_put_impl_", "_unsafe_index", "_unsafe_index_put"}


def _fake_device(device) -> torch.device:
    """A requested device with the fake GPU's index: ``cuda`` and ``cuda:0`` are ``cuda:0``; no other GPU exists."""
    device = torch.device(device)
    if device.type != "cuda":
        return device
    if device.index not in (None, 0):
        raise RuntimeError(f"CUDA error: invalid device ordinal (fake CUDA has one device, cuda:0; asked for {device})")
    return CUDA


class FakeCudaTensor(torch.Tensor):
    """A CPU tensor that says it is on ``cuda:0`` (``device``, ``is_cuda``, ``get_device()``).

    Not a wrapper: its storage is the CPU data, so autograd (which asks a device guard for streams, and a
    CPU build of torch has none for CUDA) sees a CPU tensor; every op reaches :func:`_run` through the
    Python dispatch key.
    """

    __torch_function__ = torch._C._disabled_torch_function_impl

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        return _run(func, args, kwargs or {})

    @property
    def device(self):
        return CUDA

    @property
    def is_cuda(self):
        return True

    @property
    def is_cpu(self):
        return False

    def get_device(self):
        return 0

    def __repr__(self, *, tensor_contents=None):
        return f"FakeCudaTensor({_plain(self)!r}, device='cuda:0')"

    def numpy(self, *, force: bool = False):
        raise TypeError("can't convert cuda:0 device type tensor to numpy. Use Tensor.cpu() to copy the tensor to "
                        "host memory first.")

    def __array__(self, dtype=None, copy=None):
        return self.numpy()

    def tolist(self):
        return _plain(self).tolist()

    def __reduce_ex__(self, protocol):
        # torch.save writes the CPU data (the package loads with map_location="cpu")
        return _plain(self).__reduce_ex__(protocol)


def _plain(t: torch.Tensor) -> torch.Tensor:
    """A plain CPU copy of a tensor's data (no autograd history)."""
    with no_dispatch(), torch.no_grad():
        return t.detach().clone()


def _fake(t: torch.Tensor) -> FakeCudaTensor:
    with no_dispatch():
        return torch.Tensor._make_subclass(FakeCudaTensor, t)


def _device_of(t: torch.Tensor) -> torch.device:
    return CUDA if isinstance(t, FakeCudaTensor) else t.device


def _mixed_devices_error(func, first: torch.device, second: torch.device) -> RuntimeError:
    return RuntimeError(f"Expected all tensors to be on the same device, but found at least two devices, {first} "
                        f"and {second}! (fake CUDA, {func})")


def _leaves(value):
    """The leaves of an op's arguments or results (tuples, lists and dicts of them; faster than torch's pytree)."""
    if isinstance(value, (list, tuple)):
        for item in value:
            yield from _leaves(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _leaves(item)
    else:
        yield value


def _map(function, value):
    """``value`` with ``function`` applied to its leaves (tuples, lists and dicts rebuilt)."""
    if isinstance(value, (list, tuple)):
        return type(value)(_map(function, item) for item in value)
    if isinstance(value, dict):
        return {key: _map(function, item) for key, item in value.items()}
    return function(value)


def _name(func) -> str:
    return getattr(func, "_opname", str(func))


def _check_devices(func, args, kwargs) -> None:
    """Raise where CUDA would: tensors of one op on two devices (0-dim CPU tensors and copies excepted)."""
    name = _name(func)
    if name in _COPIES:
        return
    if name in _INDEXING:
        self = args[0]
        indices = args[1] if len(args) > 1 else kwargs.get("indices", ())
        for index in indices:
            if isinstance(index, torch.Tensor) and _device_of(index) not in (CPU, _device_of(self)):
                raise RuntimeError(f"indices should be either on cpu or on the same device as the indexed tensor "
                                   f"({_device_of(self)}) (fake CUDA, {func})")
        others = [self, *args[2:], *kwargs.values()]
    else:
        others = [*args, *kwargs.values()]
    seen = None
    for t in _leaves(others):
        if not isinstance(t, torch.Tensor):
            continue
        device = _device_of(t)
        if device == CPU and t.dim() == 0:
            continue  # a CPU scalar may meet a CUDA tensor
        if seen is None:
            seen = device
        elif device != seen:
            raise _mixed_devices_error(func, seen, device)


def _run(func, args, kwargs):
    """Run one ATen op on the CPU data: check devices, pick the result's device, mark what belongs on the GPU."""
    _check_devices(func, args, kwargs)
    leaves = list(_leaves((args, kwargs)))
    target = next((_fake_device(v) for v in leaves if isinstance(v, torch.device)), None)
    if target == CPU and _STATE.gpu_call:
        # a C++ composite (F.pad, one_hot, a backward formula) makes its helper tensors with the input's
        # options, whose device C++ reads as the CPU: inside a call on the fake GPU they belong on it
        target = CUDA
    if target is None:
        target = CUDA if any(isinstance(t, FakeCudaTensor) for t in leaves) else CPU
    if any(isinstance(v, torch.device) for v in leaves):
        args, kwargs = _map(lambda v: CPU if isinstance(v, torch.device) and v.type == "cuda" else v, (args, kwargs))
    with no_dispatch():
        out = func(*args, **kwargs)
    if target != CUDA:
        return out
    inputs = {id(t) for t in leaves if isinstance(t, torch.Tensor)}  # in-place and out= ops return their argument

    def mark(t):
        return _fake(t) if type(t) is torch.Tensor and id(t) not in inputs else t

    return _map(mark, out)


class _Dispatch(TorchDispatchMode):
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        return _run(func, args, kwargs or {})


def _is_cuda(device) -> bool:
    return device is not None and (isinstance(device, int) or torch.device(device).type == "cuda")  # int: an index


class _Functions(TorchFunctionMode):
    """Python-level calls a CPU build refuses before dispatch, and the generator-on-the-op's-device check."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in (torch.Tensor.to, torch.Tensor.cuda, torch.Tensor.cpu):
            return _to(func, *args, **kwargs)
        if func in (torch.tensor, torch.as_tensor, torch.asarray, torch.Tensor.new_tensor) and _is_cuda(
                kwargs.get("device")):
            requires_grad = kwargs.pop("requires_grad", False)
            device = kwargs.pop("device")
            out = func(*args, **kwargs)
            return _to(torch.Tensor.to, out, device).requires_grad_(requires_grad)
        generator = kwargs.get("generator")
        if generator is None:
            generator = next((a for a in args if isinstance(a, torch._C.Generator)), None)
        if generator is not None:
            _check_generator(func, generator, args, kwargs)
        outer = _STATE.gpu_call
        _STATE.gpu_call = any(isinstance(t, FakeCudaTensor) for t in _leaves((args, kwargs)))
        try:
            return func(*args, **kwargs)
        finally:
            _STATE.gpu_call = outer


def _to(func, self, *args, **kwargs):
    """``Tensor.to``/``.cuda``/``.cpu`` between the fake GPU and the CPU: a copy, as between two real devices."""
    copy_ = kwargs.pop("copy", False)
    if func is torch.Tensor.to:
        device, dtype, non_blocking, memory_format = torch._C._nn._parse_to(*args, **kwargs)
    else:
        device = args[0] if args else kwargs.get("device")
        device = CPU if func is torch.Tensor.cpu else CUDA if device is None else torch.device(
            "cuda", device) if isinstance(device, int) else torch.device(device)
        dtype, non_blocking, memory_format = None, kwargs.get("non_blocking", False), kwargs.get("memory_format")
    device = _device_of(self) if device is None else _fake_device(device)
    dtype = self.dtype if dtype is None else dtype
    memory_format = torch.preserve_format if memory_format is None else memory_format
    if device == _device_of(self) and dtype == self.dtype and not copy_ and memory_format == torch.preserve_format:
        return self
    return torch.ops.aten._to_copy.default(self, dtype=dtype, device=device, non_blocking=non_blocking,
                                           memory_format=memory_format)


def _check_generator(func, generator, args, kwargs) -> None:
    device = kwargs.get("device")
    if device is not None:
        expected = "cuda" if isinstance(device, int) else torch.device(device).type
    else:
        first = next((t for t in _leaves(args) if isinstance(t, torch.Tensor)), None)
        expected = "cpu" if first is None else _device_of(first).type
    found = torch.device(generator.device).type
    if expected != found:
        raise RuntimeError(f"Expected a '{expected}' device type for generator but found '{found}' (fake CUDA, "
                           f"{getattr(func, '__name__', func)})")


class _GeneratorMeta(type(torch._C.Generator)):
    def __instancecheck__(cls, instance):
        return isinstance(instance, torch._C.Generator)

    def __subclasscheck__(cls, subclass):
        return issubclass(subclass, torch._C.Generator)


class _Generator(torch._C.Generator, metaclass=_GeneratorMeta):
    """``torch.Generator`` while the fake GPU is on: a CPU generator that reports the device it was made for."""

    def __new__(cls, device=None):
        if device is None and _STATE.recorder is not None:
            _STATE.recorder.note(sys._getframe(1), "Generator")
        device = _fake_device("cpu" if device is None else device)
        return super().__new__(cls, "cpu" if device.type == "cuda" else device)

    def __init__(self, device=None):
        self._device = _fake_device("cpu" if device is None else device)

    @property
    def device(self):
        return self._device


#: tensor factories that take a device (a device-less call makes a CPU tensor whatever the inputs' device)
FACTORIES = {getattr(torch, name): name for name in (
    "zeros", "ones", "empty", "full", "arange", "linspace", "logspace", "eye", "tensor", "as_tensor", "asarray",
    "rand", "randn", "randint", "randperm", "empty_strided", "scalar_tensor", "tril_indices", "triu_indices",
    "hann_window", "hamming_window")}
FACTORIES.update({torch.fft.fftfreq: "fft.fftfreq", torch.fft.rfftfreq: "fft.rfftfreq"})


class DeviceLessFactories(TorchFunctionMode):
    """Records every tensor factory (:data:`FACTORIES`) and ``torch.Generator`` called directly from a file under
    ``root`` without a device: ``calls[(path relative to root's parent, function, factory)]`` counts them.

    ``torch.tensor``/``as_tensor``/``asarray`` of a tensor keep its device and are not recorded.
    """

    def __init__(self, root):
        super().__init__()
        self.root = str(root)
        self.parent = os.path.dirname(self.root.rstrip(os.sep))
        self.calls: collections.Counter = collections.Counter()

    def note(self, frame, factory: str) -> None:
        path = frame.f_code.co_filename
        if path.startswith(self.root):
            self.calls[(os.path.relpath(path, self.parent), frame.f_code.co_name, factory)] += 1

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        factory = FACTORIES.get(func)
        if factory is not None and "device" not in kwargs and not any(isinstance(a, torch.device) for a in args) \
                and not (factory in ("tensor", "as_tensor", "asarray") and args and isinstance(args[0], torch.Tensor)):
            self.note(sys._getframe(1), factory)
        return func(*args, **kwargs)


class FakeCuda:
    """Context manager: the fake GPU on (see the module docstring). ``synchronizations`` counts ``torch.cuda.synchronize``.

    ``capability`` is what ``torch.cuda.get_device_capability`` reports: (8, 0) an A100 (bf16 native),
    (7, 5) a T4 (Colab's free GPU).
    """

    def __init__(self, capability: tuple[int, int] = (8, 0), name: str = "Fake CUDA (CPU)", *, watch=None):
        self.capability = tuple(capability)
        self.factories = DeviceLessFactories(watch) if watch is not None else None
        self.name = name
        self.synchronizations = 0
        self._saved: list = []
        self._modes = None

    def _synchronize(self, device=None):
        self.synchronizations += 1

    def _patches(self) -> dict:
        major, minor = self.capability
        properties = types.SimpleNamespace(name=self.name, major=major, minor=minor, total_memory=16 * 2**30,
                                           multi_processor_count=40)
        return {
            (torch.cuda, "is_available"): lambda: True,
            (torch.cuda, "device_count"): lambda: 1,
            (torch.cuda, "current_device"): lambda: 0,
            (torch.cuda, "_lazy_init"): lambda: None,
            (torch.cuda, "synchronize"): self._synchronize,
            (torch.cuda, "get_device_name"): lambda device=None: self.name,
            (torch.cuda, "get_device_capability"): lambda device=None: self.capability,
            (torch.cuda, "get_device_properties"): lambda device=None: properties,
            (torch.cuda, "is_bf16_supported"): lambda including_emulation=True: major >= 8,
            (torch.cuda, "empty_cache"): lambda: None,
            (torch.cuda, "manual_seed"): lambda seed: None,
            (torch.cuda, "manual_seed_all"): lambda seed: None,
            # random ops on the fake GPU draw from CPU generators: the CPU's state is the one that matters
            (torch.cuda, "get_rng_state"): lambda device="cuda": torch.zeros(16, dtype=torch.uint8),
            (torch.cuda, "set_rng_state"): lambda new_state, device="cuda": None,
            (torch.cuda, "get_rng_state_all"): lambda: [torch.zeros(16, dtype=torch.uint8)],
            (torch.cuda, "set_rng_state_all"): lambda new_states: None,
            (torch.cuda, "mem_get_info"): lambda device=None: (properties.total_memory // 2, properties.total_memory),
            (torch.cuda, "memory_allocated"): lambda device=None: 0,
            (torch.cuda, "max_memory_allocated"): lambda device=None: 0,
            (torch.cuda, "reset_peak_memory_stats"): lambda device=None: None,
            (torch, "Generator"): _Generator,
        }

    def __enter__(self):
        self._overwrite = torch.__future__.get_overwrite_module_params_on_conversion()
        # Module.to("cuda") then makes new parameters of the fake type instead of setting .data in place
        torch.__future__.set_overwrite_module_params_on_conversion(True)
        for (owner, name), value in self._patches().items():
            self._saved.append((owner, name, getattr(owner, name)))
            setattr(owner, name, value)
        # the recorder innermost: it sees each call first, with the caller's frame just above it
        self._modes = (_Functions(), _Dispatch()) + ((self.factories,) if self.factories is not None else ())
        for mode in self._modes:
            mode.__enter__()
        _STATE.recorder = self.factories
        return self

    def __exit__(self, *exc):
        _STATE.recorder = None
        for mode in reversed(self._modes):
            mode.__exit__(*exc)
        for owner, name, value in reversed(self._saved):
            setattr(owner, name, value)
        self._saved.clear()
        torch.__future__.set_overwrite_module_params_on_conversion(self._overwrite)
        return False


def unavailable_reason() -> str | None:
    """None when the installed torch can host the fake GPU, else why not (probed once: wrap, compute, refuse)."""
    global _REASON
    if _REASON is not False:
        return _REASON
    needed = [name for name in ("_make_subclass", "_disabled_torch_function_impl") if not hasattr(
        torch.Tensor if name == "_make_subclass" else torch._C, name)]
    if not hasattr(torch.__future__, "set_overwrite_module_params_on_conversion"):
        needed.append("torch.__future__.set_overwrite_module_params_on_conversion")
    if needed:
        _REASON = f"torch {torch.__version__} lacks {', '.join(needed)}"
        return _REASON
    try:
        with FakeCuda():
            x = torch.ones(3, requires_grad=True).to("cuda")
            y = (x * torch.arange(3.0, device="cuda")).sum()
            y.backward()
            ok = y.device == CUDA and type(y) is FakeCudaTensor and float(y.detach()) == 3.0
            try:
                torch.ones(3).to("cuda") + torch.ones(3)
            except RuntimeError as error:
                refused = "same device" in str(error)
            else:
                refused = False
        _REASON = None if ok and refused else f"torch {torch.__version__}: the probe computed {ok}, refused {refused}"
    except Exception as error:  # any failure of the probe: this torch cannot host the layer
        _REASON = f"torch {torch.__version__} cannot host the fake CUDA layer: {type(error).__name__}: {error}"
    return _REASON


_REASON: str | None | bool = False
# gpu_call: whether the Python-level torch call now running (seen by _Functions) has an argument on the fake GPU
# recorder: the DeviceLessFactories of the FakeCuda now on (it also hears of device-less torch.Generator calls)
_STATE = types.SimpleNamespace(gpu_call=False, recorder=None)
