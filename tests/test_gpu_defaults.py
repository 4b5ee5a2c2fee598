"""What the package does differently on a GPU, tested without one (issue #43).

The autocast type follows the GPU's compute capability (bfloat16 from 8.0 on, float16 with the
gradient scaler below, none off CUDA); InstanceNorm++ takes its statistics in float32 under
autocast; the training step, the trainer's running loss and the volume-fraction posterior make no
host synchronisation (counted on the fake GPU of ``tests/fake_cuda.py``); the EMA of the weights is
one multi-tensor operation, bit for bit the per-parameter update; importing the package touches no
CUDA, so that a sweep worker pinned with ``CUDA_VISIBLE_DEVICES`` after start-up sees its own GPU.

The tests whose names end in ``real_cuda`` run only where a GPU is; ``benchmarks/gpu_smoke.py``
runs them there (``-k "cuda and not fake"``).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torch.utils._pytree as pytree
from torch.utils._python_dispatch import TorchDispatchMode

from lgtutorial.sampling.conditioning import likelihood_width, likelihood_widths, volume_fraction_posterior
from lgtutorial.score.patches import PatchDataset
from lgtutorial.score.schedules import SIGMA_MAX, SIGMA_MIN, geometric_sigmas
from lgtutorial.score.settings import TrainingSettings, UNetSettings
from lgtutorial.score.step import TrainingStep, _update_ema, amp_dtype
from lgtutorial.score.training import train_score_model
from lgtutorial.score.unet import InstanceNormPlusPlus, ScoreUNet
from lgtutorial.synthetic import blobs
from tests.fake_cuda import FakeCuda, unavailable_reason

ROOT = Path(__file__).resolve().parents[1]
TINY_MODEL = UNetSettings(channels=1, latent_channels=4, depth=1, num_blocks=0)


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture
def fake_gpu():
    """The fake GPU's class (skips where this torch cannot host it)."""
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(f"fake CUDA: {reason}")
    return EmulatingFakeCuda


class EmulatingFakeCuda(FakeCuda):
    """The fake GPU, with ``torch.cuda.is_bf16_supported()`` as torch >= 2.3 answers it: True on every
    GPU when emulation counts (the default), native (``including_emulation=False``) from 8.0 on."""

    def _patches(self) -> dict:
        patches = super()._patches()
        native = tuple(self.capability) >= (8, 0)
        patches[torch.cuda, "is_bf16_supported"] = lambda including_emulation=True: including_emulation or native
        return patches


def _on_gpu(value) -> bool:
    return isinstance(value, torch.Tensor) and value.device.type == "cuda"


class HostSyncs(TorchDispatchMode):
    """Records the operations on GPU tensors that make the host wait for the device.

    Reading a value (``item``, ``float``, ``int``, ``bool``: ``_local_scalar_dense``), ``nonzero``,
    ``masked_select``, indexing with a boolean tensor, and copies of whole tensors between the host and
    the GPU (0-d tensors are left out: CUDA passes a 0-d CPU tensor to a kernel as a number, and the
    fake layer moves some 0-d tensors through the host where CUDA does not).
    """

    def __init__(self):
        super().__init__()
        self.seen: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = func.overloadpacket.__name__
        tensors = [t for t in pytree.tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)]
        if name in ("_local_scalar_dense", "nonzero", "masked_select") and any(map(_on_gpu, tensors)):
            self.seen.append(name)
        elif name == "index" and _on_gpu(args[0]) and any(
                isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in args[1]):
            self.seen.append("index with a boolean mask")
        elif name == "_to_copy" and "device" in kwargs and args[0].dim() > 0 and not kwargs.get("non_blocking"):
            source, target = args[0].device.type, torch.device(kwargs["device"]).type
            if source != target:
                self.seen.append(f"copy {source} -> {target}")
        elif name == "copy_" and args[0].dim() > 0 and args[0].device.type != args[1].device.type and not (
                len(args) > 2 and args[2]):
            self.seen.append(f"copy {args[1].device.type} -> {args[0].device.type}")
        return func(*args, **kwargs)


def _patches(device: torch.device, n_patches: int = 9, size: int = 16) -> PatchDataset:
    micro = blobs(48, 4.0, seed=0)
    cut = micro.unfold(2, size, size).unfold(3, size, size).permute(0, 2, 3, 1, 4, 5).reshape(-1, 2, size, size)
    return PatchDataset(cut[:n_patches]).to(device)


# -- the autocast type ------------------------------------------------------------------------------
@pytest.mark.parametrize("capability, expected", [((7, 5), torch.float16), ((7, 0), torch.float16),
                                                  ((8, 0), torch.bfloat16), ((9, 0), torch.bfloat16)],
                         ids=["T4", "V100", "A100", "H100"])
def test_the_autocast_type_follows_the_compute_capability(monkeypatch, capability, expected):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    # torch >= 2.3 says True on every GPU when emulation counts (its default)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported",
                        lambda including_emulation=True: including_emulation or capability >= (8, 0))
    assert amp_dtype(torch.device("cuda")) == expected
    assert amp_dtype("cuda:0") == expected
    assert amp_dtype(torch.device("cpu")) is None and amp_dtype("mps") is None


@pytest.mark.parametrize("capability, dtype, scaled", [((7, 5), torch.float16, True),
                                                       ((8, 0), torch.bfloat16, False)], ids=["T4", "A100"])
def test_the_training_step_autocasts_to_the_capabilitys_type_fake_cuda(fake_gpu, capability, dtype, scaled):
    with fake_gpu(capability=capability):
        device = torch.device("cuda")
        settings = TrainingSettings(patch_size=16, n_patches=9, batch_size=4, steps=4, device="cuda")
        take_step = TrainingStep(TINY_MODEL, settings, geometric_sigmas(1.0, 0.01, 10, device=device), device)
        assert take_step.amp_dtype == dtype and take_step.scaler.is_enabled() == scaled
        seen = []  # the autocast state the network runs under (the fake GPU's kernels do not follow it)
        take_step.model.encoder[0].conv.register_forward_hook(
            lambda *_: seen.append((torch.is_autocast_enabled("cuda"), torch.get_autocast_dtype("cuda"))))
        loss = take_step(_patches(device), 0)
        assert seen == [(True, dtype)] and loss.dtype == torch.float32 and torch.isfinite(loss).item()
        unmixed = TrainingStep(TINY_MODEL, TrainingSettings(patch_size=16, n_patches=9, batch_size=4, steps=4,
                                                            device="cuda", mixed_precision=False),
                               geometric_sigmas(1.0, 0.01, 10, device=device), device)
        assert unmixed.amp_dtype is None and not unmixed.scaler.is_enabled()


def test_the_training_step_on_the_cpu_does_not_autocast():
    settings = TrainingSettings(patch_size=16, n_patches=9, batch_size=4, steps=4, device="cpu")
    take_step = TrainingStep(TINY_MODEL, settings, geometric_sigmas(1.0, 0.01, 10), torch.device("cpu"))
    assert take_step.amp_dtype is None and not take_step.scaler.is_enabled()


# -- InstanceNorm++ under autocast ------------------------------------------------------------------
def test_instance_norm_statistics_are_float32_under_autocast():
    norm = InstanceNormPlusPlus(4)
    norm.reset_parameters(torch.Generator().manual_seed(0))
    generator = torch.Generator().manual_seed(1)
    # a mean of 100 next to a unit spread: bfloat16 holds 100 to within 0.25, a quarter of the spread
    x = (100.0 + torch.randn(2, 4, 16, 16, generator=generator)).to(torch.bfloat16)
    with torch.no_grad():
        reference = norm(x.float())  # float32 throughout, from the same 16-bit input
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = norm(x)
    # what is left is the rounding of the output to bfloat16 (|out| < 4.5: half a step is at most 2^-6);
    # with the statistics in bfloat16 the output was off by up to 1.2
    torch.testing.assert_close(out.float(), reference, atol=0.02, rtol=0.01)
    assert out.dtype == torch.bfloat16  # back to the input's type


def test_instance_norm_keeps_float64():
    norm = InstanceNormPlusPlus(3).double()
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert norm(x).dtype == torch.float64


# -- the EMA of the weights -------------------------------------------------------------------------
class _Ops(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.names: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.names.append(func.overloadpacket.__name__)
        return func(*args, **(kwargs or {}))


def test_the_ema_update_is_one_multi_tensor_op_bit_for_bit_the_per_parameter_lerp():
    settings = UNetSettings(channels=1, latent_channels=6, depth=2, num_blocks=1)
    model = ScoreUNet(settings, generator=torch.Generator().manual_seed(0))
    ema = ScoreUNet(settings, generator=torch.Generator().manual_seed(1))
    for step in (0, 7, 10**6):
        rate = 1.0 - min(0.999, (1.0 + step) / (10.0 + step))
        expected = [average.detach().clone().lerp_(parameter.detach(), rate)
                    for average, parameter in zip(ema.parameters(), model.parameters())]
        with _Ops() as ops:
            _update_ema(ema, model, step, 0.999)
        assert ops.names == ["_foreach_lerp_"], ops.names  # one launch, not one per parameter
        assert all(torch.equal(new, old) for new, old in zip(ema.parameters(), expected))


# -- host synchronisation ---------------------------------------------------------------------------
@pytest.mark.parametrize("mixed_precision", [False, True], ids=["float32", "bfloat16"])
def test_a_training_step_waits_for_nothing_fake_cuda(fake_gpu, mixed_precision):
    with fake_gpu(capability=(8, 0)):
        device = torch.device("cuda")
        settings = TrainingSettings(patch_size=16, n_patches=9, batch_size=4, steps=4, device="cuda",
                                    mixed_precision=mixed_precision)
        take_step = TrainingStep(TINY_MODEL, settings, geometric_sigmas(1.0, 0.01, 10, device=device), device)
        patches = _patches(device)
        take_step(patches, 0)
        with HostSyncs() as syncs:
            loss = take_step(patches, 1)
        assert syncs.seen == []
        assert loss.device.type == "cuda" and loss.ndim == 0 and not loss.requires_grad


def test_the_trainers_running_loss_is_the_mean_of_the_step_losses():
    # summed on the device in float64: the very numbers the Python floats of the step losses give
    settings = TrainingSettings(patch_size=16, n_patches=12, batch_size=4, steps=6, eval_every=3,
                                checkpoint_every=100, device="cpu")
    losses = []
    run = train_score_model(blobs(48, 4.0, seed=0), model_settings=TINY_MODEL, training_settings=settings,
                            progress=False, callback=lambda info: losses.append(float(info["loss"])))
    assert run.history["step"] == [0, 3, 6]
    assert run.history["train_loss"][1:] == [sum(losses[0:3]) / 3, sum(losses[3:6]) / 3]


def _posterior_case(device, estimate, measure_on, channels):
    generator = torch.Generator().manual_seed(0)
    mask = torch.zeros(12, 10, dtype=torch.bool)
    mask[2:10, 1:8] = True
    mask[0, 9] = True
    target = [0.3] if channels == 1 else [0.2, 0.5, 0.3]

    def prior(x, sigma):
        return -x / sigma**2

    posterior = volume_fraction_posterior(prior, target, estimate=estimate, mask=mask.to(device),
                                          measure_on=measure_on)
    x = torch.rand(3, channels, 12, 10, generator=generator).to(device)
    return posterior, prior, x, mask, torch.tensor(target)


@pytest.mark.parametrize("estimate", ["segmented", "mean"])
@pytest.mark.parametrize("measure_on", ["iterate", "denoised"])
def test_the_posterior_score_waits_for_nothing_fake_cuda(fake_gpu, estimate, measure_on):
    with fake_gpu():
        posterior, _, x, _, _ = _posterior_case(torch.device("cuda"), estimate, measure_on, 1)
        sigma = torch.tensor(0.5, device="cuda")
        posterior(x, sigma)  # the target goes to the device once
        with HostSyncs() as syncs:
            score = posterior(x, sigma)
        assert syncs.seen == [] and score.device.type == "cuda"


@pytest.mark.parametrize("estimate", ["segmented", "mean"])
@pytest.mark.parametrize("measure_on", ["iterate", "denoised"])
@pytest.mark.parametrize("channels", [1, 3])
def test_the_posterior_score_is_bit_for_bit_the_boolean_mask_formula(estimate, measure_on, channels):
    posterior, prior, x, mask, target = _posterior_case(torch.device("cpu"), estimate, measure_on, channels)
    for sigma in (torch.tensor(0.7), torch.tensor(0.02)):
        # Eq. (12) as it was written with the boolean mask and its count read on the host
        start, end = likelihood_widths(int(mask.sum()), estimate=estimate)
        width = likelihood_width(sigma, sigma_max=SIGMA_MAX, sigma_min=SIGMA_MIN, start=start, end=end).to(x.dtype)
        measured_on = x + sigma**2 * prior(x, sigma) if measure_on == "denoised" else x
        values = measured_on[..., mask]
        if estimate == "mean":
            measured = values.mean(dim=-1)
        elif channels == 1:
            measured = (values > 0.5).flatten(2).to(x.dtype).mean(-1)
        else:
            labels = torch.cat([values, 1.0 - values.sum(1, keepdim=True)], dim=1).argmax(1).flatten(1)
            measured = (labels.unsqueeze(1) == torch.arange(channels).view(1, -1, 1)).to(x.dtype).mean(-1)
        pull = (-(measured - target) / (int(mask.sum()) * width**2)).expand(3, channels)[..., None, None]
        assert torch.equal(posterior(x, sigma), prior(x, sigma) + pull * mask.to(x.dtype))


# -- the float16 path (compute capability below 8.0, e.g. Colab's T4) ------------------------------------
# The fake GPU computes in float32 whatever the autocast type: the gradient scaler's code runs, float16's
# numerics are not modelled.
def _float16_step(device: torch.device) -> TrainingStep:
    settings = TrainingSettings(patch_size=16, n_patches=9, batch_size=4, steps=4, device="cuda")
    take_step = TrainingStep(TINY_MODEL, settings, geometric_sigmas(1.0, 0.01, 10, device=device), device)
    assert take_step.amp_dtype == torch.float16 and take_step.scaler.is_enabled()
    return take_step


def test_a_float16_run_trains_saves_and_resumes_its_gradient_scaler_fake_cuda(fake_gpu, monkeypatch, tmp_path):
    """A run interrupted and resumed on a T4 carries the scaler's state (scale, steps since the last overflow)
    in its checkpoint and ends as the uninterrupted run does."""
    from lgtutorial.score import training

    made = []

    class Recorded(TrainingStep):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    def stop_at_4(info):
        if info["step"] == 4:
            raise KeyboardInterrupt

    monkeypatch.setattr(training, "TrainingStep", Recorded)
    micro = blobs(48, 4.0, seed=0)

    def run(folder: str, **keywords):
        settings = TrainingSettings(patch_size=16, n_patches=12, batch_size=4, steps=6, eval_every=3,
                                    checkpoint_every=100, device="cuda")
        return train_score_model(micro, model_settings=TINY_MODEL, training_settings=settings, progress=False,
                                 output=tmp_path / folder, **keywords)

    with fake_gpu(capability=(7, 5)):
        whole = run("whole")
        with pytest.raises(KeyboardInterrupt):
            run("parts", callback=stop_at_4)
        saved = torch.load(tmp_path / "parts" / "checkpoint.pt", map_location="cpu", weights_only=True)["scaler"]
        resumed = run("parts", resume=True)
        assert [step.amp_dtype for step in made] == [torch.float16] * 3
        assert saved["scale"] == 2.0**16 and saved["_growth_tracker"] == 4
        # restored: six steps without an overflow counted, as in the uninterrupted run (two had it started afresh)
        assert made[2].scaler.state_dict() == made[0].scaler.state_dict()
        assert made[0].scaler.state_dict()["_growth_tracker"] == 6
        assert whole.history["step"] == resumed.history["step"] == [0, 3, 6]
        for a, b in zip(whole.raw_model.parameters(), resumed.raw_model.parameters()):
            assert a.device.type == "cuda" and torch.equal(a, b)


def test_a_float16_step_whose_gradients_overflow_is_skipped_and_its_scale_halved_fake_cuda(fake_gpu):
    with fake_gpu(capability=(7, 5)):
        device = torch.device("cuda")
        take_step, patches = _float16_step(device), _patches(device)
        take_step(patches, 0)
        take_step.scaler.update(2.0**127)  # a scale the scaled loss overflows at (float16's overflows at 65504)
        before = [p.detach().clone() for p in take_step.model.parameters()]
        loss = take_step(patches, 1)
        assert torch.isfinite(loss).item() and take_step.scaler.get_scale() == 2.0**126
        assert all(torch.equal(a, b) for a, b in zip(before, take_step.model.parameters()))  # Adam not called
        assert all(int(state["step"]) == 1 for state in take_step.optimizer.state.values())
        assert all(torch.isfinite(p).all() for p in take_step.ema.parameters())


def test_a_float16_step_waits_once_for_the_scalers_overflow_check_fake_cuda(fake_gpu):
    """``GradScaler.step`` reads its overflow flag on the host to decide whether to call Adam: one wait per
    step, on the float16 path only (the docstring of ``TrainingStep.__call__`` says why it stays)."""
    with fake_gpu(capability=(7, 5)):
        device = torch.device("cuda")
        take_step, patches = _float16_step(device), _patches(device)
        take_step(patches, 0)
        with HostSyncs() as syncs:
            take_step(patches, 1)
        assert syncs.seen == ["_local_scalar_dense"]


# -- no CUDA at import ------------------------------------------------------------------------------
_IMPORT_PROBE = textwrap.dedent("""
    import importlib, pickle, pkgutil, sys, traceback
    import torch

    calls = []

    def trap(name):
        def called(*args, **kwargs):
            calls.append(name + " from " + "".join(traceback.format_stack(limit=6)[:-1]))
            raise RuntimeError(name + " called while importing lgtutorial")
        return called

    for name in ("is_available", "device_count", "_lazy_init", "init", "current_device", "set_device",
                 "get_device_capability", "get_device_properties", "get_device_name", "is_bf16_supported",
                 "mem_get_info", "synchronize"):
        setattr(torch.cuda, name, trap("torch.cuda." + name))
    torch._C._cuda_getDeviceCount = trap("torch._C._cuda_getDeviceCount")
    torch.backends.mps.is_available = trap("torch.backends.mps.is_available")

    import lgtutorial
    skipped = []
    for module in pkgutil.walk_packages(lgtutorial.__path__, "lgtutorial."):
        try:
            importlib.import_module(module.name)
        except ModuleNotFoundError as error:  # an optional dependency this machine lacks
            if (error.name or "").startswith("lgtutorial"):
                raise
            skipped.append(module.name)
    if "lgtutorial.sweep.run" not in skipped:
        # a sweep worker: the pinning plugin arrives pickled, and pins before any task runs
        import os
        from lgtutorial.sweep.run import PinGPU

        plugin = pickle.loads(pickle.dumps(PinGPU(["3", "4"])))
        plugin.setup(type("Worker", (), {"name": 1})())
        assert os.environ["CUDA_VISIBLE_DEVICES"] == "4"
    assert not calls, "\\n".join(calls)
    assert not torch.cuda.is_initialized()
    print("imported without CUDA; skipped for missing dependencies:", skipped)
""")


def test_importing_lgtutorial_touches_no_cuda():
    done = subprocess.run([sys.executable, "-c", _IMPORT_PROBE], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    assert "imported without CUDA" in done.stdout


def test_a_sweep_worker_pinned_after_cuda_started_says_so(monkeypatch):
    from types import SimpleNamespace

    pytest.importorskip("distributed")
    from lgtutorial.sweep.run import PinGPU

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "unset")
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    with pytest.warns(RuntimeWarning, match="initialised before the worker was pinned to GPU 1"):
        PinGPU(["0", "1"]).setup(SimpleNamespace(name=1))


# -- on a real GPU ----------------------------------------------------------------------------------
real_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")


@real_cuda
def test_the_autocast_type_on_this_gpu_real_cuda():
    major, _ = torch.cuda.get_device_capability()
    assert amp_dtype(torch.device("cuda")) == (torch.bfloat16 if major >= 8 else torch.float16)


@real_cuda
def test_the_training_step_and_the_posterior_wait_for_nothing_real_cuda():
    device = torch.device("cuda")
    # the float16 path's gradient scaler reads its overflow flag on the host (torch's non-fused Adam)
    mixed = [False] + ([True] if amp_dtype(device) == torch.bfloat16 else [])
    for mixed_precision in mixed:
        settings = TrainingSettings(patch_size=16, n_patches=9, batch_size=4, steps=4, device="cuda",
                                    mixed_precision=mixed_precision)
        take_step = TrainingStep(TINY_MODEL, settings, geometric_sigmas(1.0, 0.01, 10, device=device), device)
        patches = _patches(device)
        take_step(patches, 0)
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            take_step(patches, 1)
        finally:
            torch.cuda.set_sync_debug_mode(0)
    posterior, _, x, _, _ = _posterior_case(device, "segmented", "iterate", 1)
    sigma = torch.tensor(0.5, device=device)
    posterior(x, sigma)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        posterior(x, sigma)
    finally:
        torch.cuda.set_sync_debug_mode(0)
