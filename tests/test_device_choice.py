"""Which preset and precision a CUDA card gets, with the card simulated (no GPU needed).

A T4 (Colab's free GPU, compute capability 7.5) has no fast bf16, so it must train in fp16;
Ampere and newer (8.0+) train in bf16.
"""

from __future__ import annotations

import pytest
import torch

from custom_module.config import mixed_precision_for_device, preset


@pytest.fixture
def cuda_card(monkeypatch: pytest.MonkeyPatch):
    """Pretend a CUDA card of the given compute capability is present."""

    def install(capability: tuple[int, int]) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *args: capability)

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
    assert (config.preset, config.model_name, config.precision) == (
        "gpu",
        "roberta-base",
        "16-mixed",
    )


def test_auto_preset_on_an_a100_trains_in_bf16(cuda_card):
    cuda_card((8, 0))
    assert preset("auto").precision == "bf16-mixed"


def test_auto_preset_without_cuda_is_the_cpu_preset(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    config = preset("auto")
    assert (config.preset, config.precision) == ("cpu", "32-true")
