"""Which preset and precision a CUDA card gets, with the card simulated (no GPU needed).

A T4 (Colab's free GPU, compute capability 7.5) has no fast bf16, so it must train in fp16;
Ampere and newer (8.0+) train in bf16. The card is read through NVML, never through torch: a
kernel that asked torch would have CUDA initialised and could no longer fork DDP ranks.
"""

from __future__ import annotations

import sys
import types

import pytest
import torch

from custom_module.config import mixed_precision_for_device, preset


class NVMLError(Exception):
    """What the real pynvml raises, e.g. without an NVIDIA driver."""


def fake_pynvml(capabilities: list[tuple[int, int]], driver: bool = True) -> types.ModuleType:
    """An NVML with these cards (compute capabilities), or one whose driver is missing."""
    module = types.ModuleType("pynvml")
    module.NVMLError = NVMLError

    def init() -> None:
        if not driver:
            raise NVMLError("NVML Shared Library Not Found")

    def handle(index: int) -> int:
        if index >= len(capabilities):
            raise NVMLError("Invalid Argument")
        return index

    module.nvmlInit, module.nvmlDeviceGetHandleByIndex = init, handle
    module.nvmlDeviceGetCudaComputeCapability = lambda handle: capabilities[handle]
    return module


def torch_must_not_be_asked(*args):
    raise AssertionError("torch.cuda was queried: CUDA would be initialised before a fork")


@pytest.fixture
def cuda_card(monkeypatch: pytest.MonkeyPatch):
    """Pretend a CUDA card of the given compute capability is present (or none, with None)."""

    def install(capability: tuple[int, int] | None, driver: bool = True) -> None:
        cards = [] if capability is None else [capability]
        monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(cards, driver))
        monkeypatch.setattr(torch.cuda, "is_available", torch_must_not_be_asked)
        monkeypatch.setattr(torch.cuda, "get_device_capability", torch_must_not_be_asked)

    return install


@pytest.mark.parametrize(
    ("capability", "precision"),
    [((7, 5), "16-mixed"), ((8, 0), "bf16-mixed"), ((9, 0), "bf16-mixed"), ((6, 1), "16-mixed")],
)
def test_mixed_precision_is_bf16_only_from_compute_capability_8(cuda_card, capability, precision):
    cuda_card(capability)
    assert mixed_precision_for_device() == precision


def test_auto_preset_on_a_t4_is_the_gpu_preset_in_fp16(cuda_card):
    cuda_card((7, 5))
    config = preset("auto")
    assert (config.preset, config.pretrained_model, config.precision) == (
        "gpu",
        "roberta-base",
        "16-mixed",
    )


def test_auto_preset_on_an_a100_trains_in_bf16(cuda_card):
    cuda_card((8, 0))
    assert preset("auto").precision == "bf16-mixed"


@pytest.mark.parametrize("driver", [True, False], ids=["no card", "no driver"])
def test_auto_preset_without_cuda_is_the_cpu_preset(cuda_card, driver):
    cuda_card(None, driver=driver)
    config = preset("auto")
    assert (config.preset, config.precision) == ("cpu", "32-true")
