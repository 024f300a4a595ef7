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


def cpu(tmp_path: Path, flags: str) -> device.CpuFeatures:
    info = tmp_path / "cpuinfo"
    info.write_text(f"processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: {flags}\n")
    return device.cpu_features(info)


def test_each_cpu_family_is_named_by_its_best_matrix_instructions(tmp_path: Path) -> None:
    assert cpu(tmp_path, "fpu avx2 amx_bf16 avx512_bf16 avx512f").family == "AMX"
    assert cpu(tmp_path, "avx2 avx512f avx512_vnni avx512_bf16").family == "AVX-512 BF16"
    zen4 = cpu(tmp_path, "avx2 avx512f avx512_vnni")
    assert zen4.family == "AVX-512 VNNI" and zen4.int8_dot_products and not zen4.native_bf16
    alder_lake = cpu(tmp_path, "avx2 avx_vnni fma")
    assert alder_lake.family == "AVX-VNNI" and alder_lake.int8_dot_products
    haswell = cpu(tmp_path, "avx2 fma")
    assert haswell.family == "AVX2" and not haswell.int8_dot_products and haswell.model == "Some CPU"
    assert device.cpu_features(tmp_path / "missing").flags == frozenset()


@pytest.mark.parametrize(("flags", "override", "engine", "expected"), [
    ("avx2 avx512_bf16", "", "", "torch bf16 on cpu"),
    ("avx2 fma", "", "", "onnx int8 on cpu"),
    ("avx2 avx_vnni", "", "", "onnx int8 on cpu"),
    ("avx2 fma", "fp32", "", "torch fp32 on cpu"),
    ("avx2 avx512_bf16", "int8", "", "onnx int8 on cpu"),
    ("avx2 fma", "", "torch", "torch fp32 on cpu"),
])
def test_the_encoding_path_follows_the_cpu_and_the_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             flags: str, override: str, engine: str,
                                                             expected: str) -> None:
    features = cpu(tmp_path, flags)
    monkeypatch.setattr(device, "cpu_features", lambda *args: features)
    monkeypatch.setenv(device.PRECISION_ENV, override)
    monkeypatch.setenv(device.ENGINE_ENV, engine)
    select_runtime.cache_clear()
    try:
        assert device.encoding_path("cpu").describe() == expected
        on_cuda = "torch fp32 on cuda" if override == "fp32" else "torch fp16 on cuda"
        assert device.encoding_path("cuda").describe() == on_cuda
    finally:
        select_runtime.cache_clear()


def test_queries_are_encoded_in_fp32_by_the_onnx_form_unless_torch_is_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(device.ENGINE_ENV, raising=False)
    assert device.query_path().describe() == "onnx fp32 on cpu"
    assert device.query_path("torch").engine == "torch"


@pytest.mark.parametrize(("env", "expected"), [
    ({}, "PASSIVE"),
    ({"OMP_WAIT_POLICY": "ACTIVE"}, "ACTIVE"),
    ({"GOMP_SPINCOUNT": "10000"}, None),
])
def test_openmp_threads_sleep_between_ops_unless_the_user_chose(env: dict[str, str], expected: str | None) -> None:
    """Spinning OpenMP threads take the cores another busy process needs (bench/bench_sharing.py); the policy must
    be in the environment before torch loads its OpenMP runtime, so importing bertsearch sets it."""
    import json
    import os
    import subprocess
    import sys

    clean = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    probe = "import json, os, sys, bertsearch; print(json.dumps([os.environ.get('OMP_WAIT_POLICY'), 'torch' in sys.modules]))"
    done = subprocess.run([sys.executable, "-c", probe], env={**clean, **env}, capture_output=True, text=True,
                          timeout=60, cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [expected, False]
