"""Device, precision and engine are chosen here and nowhere else.

Encoding passages (indexing) takes the fastest path that stays faithful to the model on this machine: torch in
fp16 on CUDA; torch in bf16 on CPUs with native bf16 matrix units (AMX, AVX-512 BF16); elsewhere ONNX Runtime
with int8 matrix products (VNNI, AVX2, ARM dot products), whose vectors are checked against fp32 before an index
takes them; fp32 when nothing else is faithful (`bertsearch.models.fast_encoding`).

Importing this module imports no torch: one-off commands choose their engine here before deciding whether
they need torch at all.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

PRECISION_ENV = "BERTSEARCH_PRECISION"
PRECISIONS = ("fp32", "fp16", "bf16", "int8")
ENGINE_ENV = "BERTSEARCH_ENGINE"
ENGINES = ("onnx", "torch")


def share_cores_when_idle() -> None:
    """OpenMP threads (torch's) that finish their share of an op sleep at once instead of spinning for the next.

    Spinning saves a wake-up when the process has the cores to itself; beside another busy process each spinning
    thread holds a core the other one needs, and both slow down far more than by half (bench/bench_sharing.py:
    two indexers each kept 0.44 of their alone speed with libgomp's default spinning, 0.65 without; alone within
    the noise). Must run before torch is imported; an OMP_WAIT_POLICY or GOMP_SPINCOUNT of the user's wins.
    """
    if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"


@dataclass(frozen=True)
class Runtime:
    """Where torch models run and in which precision ("fp32", "fp16" or "bf16")."""

    device: str
    precision: str

    @property
    def dtype(self) -> torch.dtype:
        """The dtype inference weights are cast to: storing them in it skips a cast per matmul."""
        import torch

        return {"fp16": torch.float16, "bf16": torch.bfloat16}.get(self.precision, torch.float32)

    def autocast(self) -> contextlib.AbstractContextManager[object]:
        """Mixed precision for inference: fp16 on CUDA; bf16 on CPUs with native bf16 matmul."""
        import torch

        if self.precision == "fp16":
            return torch.autocast("cuda", dtype=torch.float16)
        if self.precision == "bf16":
            return torch.autocast(self.device.split(":")[0], dtype=torch.bfloat16)
        return contextlib.nullcontext()


@dataclass(frozen=True)
class CpuFeatures:
    """What a CPU offers for a transformer's matrix products, from the flags the kernel reports for it."""

    flags: frozenset[str]
    architecture: str
    model: str = ""

    @property
    def native_bf16(self) -> bool:
        """bf16 matrix units (AMX, AVX-512 BF16): bf16 encodes ~2.5x faster than fp32 with cosine >= 0.9999
        (bench/bench_precision.py); elsewhere bf16 is emulated and slower than fp32."""
        return bool({"amx_bf16", "avx512_bf16"} & self.flags)

    @property
    def int8_dot_products(self) -> bool:
        """Instructions that multiply and add int8 in one step (VNNI, AMX-INT8, ARM's dot products)."""
        return bool({"avx512_vnni", "avx_vnni", "amx_int8", "asimddp", "i8mm"} & self.flags)

    def report(self) -> dict[str, object]:
        """What benchmarks record of the CPU their figures come from: its kind, model, cores and matrix flags."""
        return {"family": self.family, "model": self.model, "cores": os.cpu_count(),
                "flags": sorted(f for f in self.flags if f.startswith(("avx", "amx")) or f in ("fma", "f16c"))}

    @property
    def family(self) -> str:
        """The CPU's kind for matrix work, as the docs name the paths each one gets."""
        for flag, name in (("amx_bf16", "AMX"), ("avx512_bf16", "AVX-512 BF16"), ("avx512_vnni", "AVX-512 VNNI"),
                           ("avx_vnni", "AVX-VNNI"), ("avx512f", "AVX-512"), ("avx2", "AVX2"),
                           ("asimddp", "ARM with dot products"), ("asimd", "ARM")):
            if flag in self.flags:
                return name
        return self.architecture or "unknown"


def cpu_features(cpuinfo: Path = Path("/proc/cpuinfo")) -> CpuFeatures:
    """The flags and model name of this machine's first CPU (x86 `flags`, ARM `Features`); none where they cannot be
    read."""
    import platform

    flags: frozenset[str] | None = None
    model = ""
    try:
        for line in cpuinfo.read_text().splitlines():
            name, _, value = line.partition(":")
            if name.strip() in ("flags", "Features") and flags is None:
                flags = frozenset(value.split())
            elif name.strip() in ("model name", "Model") and not model:
                model = value.strip()
            if flags is not None and model:
                break
    except OSError:
        pass
    return CpuFeatures(flags=flags or frozenset(), architecture=platform.machine(), model=model)


def cpu_has_native_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """True on CPUs whose matmul units take bf16 (AMX, or AVX-512 BF16); see `CpuFeatures.native_bf16`."""
    return cpu_features(cpuinfo).native_bf16


@cache
def select_runtime(device: str | None = None) -> Runtime:
    """CUDA with fp16 when present, else CPU with bf16 where native, else fp32.

    `BERTSEARCH_PRECISION=fp32|bf16|fp16` overrides the precision (e.g. to build a reference index).
    """
    if device is None:
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        precision = "fp16"
    else:
        precision = "bf16" if cpu_features().native_bf16 else "fp32"
    override = os.environ.get(PRECISION_ENV, "").strip().lower()
    if override == "fp32" or override == "bf16" or (override == "fp16" and device.startswith("cuda")):
        precision = override
    return Runtime(device=device, precision=precision)


@dataclass(frozen=True)
class EncodingPath:
    """How passages are encoded for an index: the engine, where it runs, and the precision of its matrix products."""

    engine: str  # "torch" or "onnx"
    device: str  # "cpu" or "cuda"
    precision: str  # one of PRECISIONS

    def describe(self) -> str:
        return f"{self.engine} {self.precision} on {self.device}"


def encoding_path(device: str | None = None) -> EncodingPath:
    """The path to try first for encoding passages on this machine (a fast one is checked against fp32 before an
    index takes its vectors, and falls back to fp32 if it fails):

    - CUDA: torch fp16; CPUs with native bf16: torch bf16 (as `select_runtime`);
    - other CPUs: ONNX Runtime int8 (the model's matrix products quantised, per channel);
    - `BERTSEARCH_PRECISION` overrides (fp32: torch fp32, a reference; int8: ONNX Runtime int8; bf16 or fp16:
      torch), and `BERTSEARCH_ENGINE=torch` keeps torch (fp32 where the CPU has no native bf16).
    """
    runtime = select_runtime(device)
    override = os.environ.get(PRECISION_ENV, "").strip().lower()
    torch_only = os.environ.get(ENGINE_ENV, "").strip().lower() == "torch"
    if runtime.device != "cpu" or override in ("fp32", "bf16", "fp16") or torch_only:
        return EncodingPath("torch", runtime.device, runtime.precision)
    if override == "int8" or runtime.precision == "fp32":
        return EncodingPath("onnx", "cpu", "int8")
    return EncodingPath("torch", "cpu", runtime.precision)


def query_path(engine: str | None = None) -> EncodingPath:
    """How one-off commands encode queries: the ONNX form in fp32, or torch as `select_runtime` says."""
    if (engine or query_engine()) == "onnx":
        return EncodingPath("onnx", "cpu", "fp32")
    runtime = select_runtime()
    return EncodingPath("torch", runtime.device, runtime.precision)


def query_engine() -> str:
    """The engine one-off commands (`bertsearch query`, `eval`'s queries, the Python API) run models on.

    "onnx": ONNX Runtime on the CPU, fp32, from the model's ONNX form, which loads in milliseconds where importing
    torch takes seconds, and answers a query in a few (a CUDA context alone costs more than a query). Servers,
    indexing and training use torch (batching, GPUs). `BERTSEARCH_ENGINE=torch` runs queries on torch too.
    """
    chosen = os.environ.get(ENGINE_ENV, "").strip().lower()
    return chosen if chosen in ENGINES else "onnx"
