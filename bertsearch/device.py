"""Device, precision and engine are chosen here and nowhere else.

Importing this module imports no torch: one-off commands choose their engine here before deciding whether
they need torch at all.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, ContextManager

if TYPE_CHECKING:
    import torch

PRECISION_ENV = "BERTSEARCH_PRECISION"
ENGINE_ENV = "BERTSEARCH_ENGINE"
ENGINES = ("onnx", "torch")


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

    def autocast(self) -> ContextManager[object]:
        """Mixed precision for inference: fp16 on CUDA; bf16 on CPUs with native bf16 matmul."""
        import torch

        if self.precision == "fp16":
            return torch.autocast("cuda", dtype=torch.float16)
        if self.precision == "bf16":
            return torch.autocast(self.device.split(":")[0], dtype=torch.bfloat16)
        return contextlib.nullcontext()


def cpu_has_native_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """True on CPUs whose matmul units take bf16 (AMX, or AVX-512 BF16).

    On these, bf16 encodes MiniLM ~2.5x faster (~2.8x compiled) with cosine >= 0.9999 to fp32 (see
    bench/bench_precision.py); elsewhere bf16 is emulated and slower than fp32.
    """
    try:
        flags = cpuinfo.read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


@lru_cache(maxsize=None)
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
        precision = "bf16" if cpu_has_native_bf16() else "fp32"
    override = os.environ.get(PRECISION_ENV, "").strip().lower()
    if override == "fp32" or override == "bf16" or (override == "fp16" and device.startswith("cuda")):
        precision = override
    return Runtime(device=device, precision=precision)


def query_engine() -> str:
    """The engine one-off commands (`bertsearch query`, `eval`'s queries, the Python API) run models on.

    "onnx": ONNX Runtime on the CPU, fp32, from the model's ONNX form, which loads in milliseconds where importing
    torch takes seconds, and answers a query in a few (a CUDA context alone costs more than a query). Servers,
    indexing and training use torch (batching, GPUs). `BERTSEARCH_ENGINE=torch` runs queries on torch too.
    """
    chosen = os.environ.get(ENGINE_ENV, "").strip().lower()
    return chosen if chosen in ENGINES else "onnx"
