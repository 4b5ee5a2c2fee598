"""The fake CUDA layer itself (tests/fake_cuda.py): it reports a GPU, computes on the CPU, and refuses what CUDA refuses."""

from __future__ import annotations

import importlib.util
import io

import pytest
import torch

from tests.fake_cuda import CUDA, FakeCuda, FakeCudaTensor

SAME_DEVICE = "Expected all tensors to be on the same device"


def test_tensors_on_cuda_report_the_gpu_and_hold_cpu_data(fake_cuda):
    x = torch.arange(4.0).to("cuda")
    y = torch.zeros(4, device="cuda")
    assert type(x) is FakeCudaTensor and x.device == CUDA and x.is_cuda and y.device == CUDA
    assert (x + y).device == CUDA and torch.cuda.is_available() and torch.cuda.device_count() == 1
    back = x.cpu()
    assert type(back) is torch.Tensor and back.device.type == "cpu" and back.tolist() == [0.0, 1.0, 2.0, 3.0]
    back += 1  # .cpu() copies, as it does from a real GPU
    assert x.tolist() == [0.0, 1.0, 2.0, 3.0]
    torch.cuda.synchronize()
    assert fake_cuda.synchronizations == 1


@pytest.mark.parametrize("op", [
    lambda gpu, cpu: gpu + cpu,
    lambda gpu, cpu: gpu @ cpu.view(4, 1),
    lambda gpu, cpu: torch.searchsorted(gpu, cpu),
    lambda gpu, cpu: torch.cat([gpu, cpu]),
    lambda gpu, cpu: torch.where(gpu > 1, gpu, cpu),
    lambda gpu, cpu: cpu.index_select(0, gpu.long()),
], ids=["add", "matmul", "searchsorted", "cat", "where", "cpu tensor, gpu index"])
def test_a_cpu_tensor_meeting_a_gpu_tensor_in_an_op_raises_as_on_a_gpu(fake_cuda, op):
    gpu, cpu = torch.arange(4.0, device="cuda"), torch.arange(4.0)
    with pytest.raises(RuntimeError, match=SAME_DEVICE):
        op(gpu, cpu)


def test_what_cuda_allows_across_devices_is_allowed(fake_cuda):
    gpu = torch.arange(4.0, device="cuda")
    assert (gpu * torch.tensor(2.0)).device == CUDA  # a 0-dim CPU tensor is a scalar to CUDA
    assert gpu[torch.tensor([0, 2])].tolist() == [0.0, 2.0]  # CPU indices may index a GPU tensor
    assert gpu[torch.tensor([True, False, True, False])].device == CUDA
    gpu[torch.tensor([1])] = 5.0
    target = torch.empty(4)
    target.copy_(gpu)  # copies cross devices
    assert target.tolist() == [0.0, 5.0, 2.0, 3.0]
    with pytest.raises(RuntimeError, match="Expected all tensors"):  # a 0-dim GPU tensor is not a CPU scalar
        torch.ones(3) * torch.tensor(2.0, device="cuda")


def test_helper_tensors_of_composite_ops_follow_their_gpu_input(fake_cuda):
    """C++ composites (circular padding, one_hot, backward formulas) make helper tensors with the input's options,
    which C++ reads as the CPU here: inside a call on the fake GPU they go to the GPU, as on a real one."""
    x = torch.randn(1, 1, 4, 4, device="cuda", requires_grad=True)
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1), mode="circular")
    labels = torch.nn.functional.one_hot(torch.tensor([0, 2, 1], device="cuda"), 3)
    padded.sum().backward()
    assert padded.device == labels.device == x.grad.device == CUDA
    assert torch.zeros(2).device.type == "cpu"  # a factory of the caller's own stays where it is asked to be


def test_numpy_of_a_gpu_tensor_raises_and_generators_must_match_the_ops_device(fake_cuda):
    with pytest.raises(TypeError, match="can't convert cuda:0 device type tensor to numpy"):
        torch.ones(2, device="cuda").numpy()
    gpu_generator = torch.Generator(device="cuda").manual_seed(0)
    assert gpu_generator.device == CUDA and isinstance(gpu_generator, torch.Generator)
    assert torch.randn(3, generator=gpu_generator, device="cuda").device == CUDA
    with pytest.raises(RuntimeError, match="Expected a 'cuda' device type for generator but found 'cpu'"):
        torch.randn(3, generator=torch.Generator().manual_seed(0), device="cuda")
    with pytest.raises(RuntimeError, match="Expected a 'cpu' device type for generator but found 'cuda'"):
        torch.rand(3, generator=gpu_generator)
    with pytest.raises(RuntimeError, match="Expected a 'cuda' device type for generator but found 'cpu'"):
        torch.empty(3, device="cuda").normal_(generator=torch.Generator())


def test_a_module_trains_on_the_gpu_and_saves_for_the_cpu(fake_cuda):
    import copy

    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1, padding_mode="circular"), torch.nn.SiLU(),
                                torch.nn.GroupNorm(2, 4), torch.nn.Conv2d(4, 1, 3, padding=1)).to("cuda")
    average = copy.deepcopy(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    x = torch.randn(2, 1, 8, 8, device="cuda")
    loss = (model(x) - x).pow(2).mean()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    with torch.no_grad():
        torch._foreach_lerp_(list(average.parameters()), list(model.parameters()), 0.5)
    assert all(p.device == CUDA and p.grad.device == CUDA for p in model.parameters())
    assert all(p.device == CUDA for p in average.parameters())
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, map_location="cpu", weights_only=True)
    assert all(type(t) is torch.Tensor and t.device.type == "cpu" for t in state.values())


def test_the_layer_is_off_outside_its_context():
    available, generator = torch.cuda.is_available(), torch.Generator
    with FakeCuda():
        assert torch.cuda.is_available() and torch.Generator is not generator
    assert torch.cuda.is_available() == available and torch.Generator is generator
    assert type(torch.ones(2) + 1) is torch.Tensor


def test_the_factory_check_lists_device_less_factories_of_the_watched_package(tmp_path):
    package = tmp_path / "watched"
    package.mkdir()
    (package / "module.py").write_text(
        "import torch\n\n"
        "def make(like):\n"
        "    torch.zeros(3)  # recorded: no device\n"
        "    torch.arange(2, device=like.device)\n"
        "    torch.as_tensor(like)  # a tensor keeps its device\n"
        "    torch.as_tensor([1.0, 2.0])  # recorded\n"
        "    torch.zeros_like(like)\n"
        "    torch.Generator()  # recorded\n"
        "    torch.Generator(device=like.device)\n")
    spec = importlib.util.spec_from_file_location("watched_module", package / "module.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with FakeCuda(watch=package) as layer:
        module.make(torch.ones(2, device="cuda"))
        torch.zeros(3)  # not under the watched folder
    assert dict(layer.factories.calls) == {("watched/module.py", "make", "zeros"): 1,
                                           ("watched/module.py", "make", "as_tensor"): 1,
                                           ("watched/module.py", "make", "Generator"): 1}
