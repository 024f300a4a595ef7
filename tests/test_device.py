from pathlib import Path

import pytest
import torch

from bertsearch import device
from bertsearch.device import Runtime, cpu_has_native_bf16, select_runtime


def test_bf16_is_native_only_with_amx_or_avx512_bf16(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("flags: fpu avx2 avx512f\n")
    assert not cpu_has_native_bf16(info)
    info.write_text("flags: fpu avx512f avx512_bf16\n")
    assert cpu_has_native_bf16(info)
    info.write_text("flags: amx_bf16 amx_tile\n")
    assert cpu_has_native_bf16(info)
    assert not cpu_has_native_bf16(tmp_path / "missing")


def test_cuda_always_gets_fp16_and_overrides_apply(monkeypatch: pytest.MonkeyPatch) -> None:
    select_runtime.cache_clear()
    assert select_runtime("cuda") == Runtime("cuda", "fp16")
    monkeypatch.setenv(device.PRECISION_ENV, "fp32")
    select_runtime.cache_clear()
    assert select_runtime("cpu").precision == "fp32"
    monkeypatch.setenv(device.PRECISION_ENV, "fp16")  # fp16 on CPU is slow and unsupported: ignored
    select_runtime.cache_clear()
    assert select_runtime("cpu").precision in {"fp32", "bf16"}
    select_runtime.cache_clear()


def test_default_device_follows_cuda_availability() -> None:
    select_runtime.cache_clear()
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert select_runtime().device == expected


def test_autocast_contexts() -> None:
    with Runtime("cpu", "bf16").autocast():
        assert torch.get_autocast_dtype("cpu") == torch.bfloat16 and torch.is_autocast_enabled("cpu")
    with Runtime("cpu", "fp32").autocast():
        assert not torch.is_autocast_enabled("cpu")
