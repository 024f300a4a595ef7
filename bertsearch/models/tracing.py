"""Forward passes as TorchScript traces that hold no GIL, for the server.

An eager forward pass is hundreds of Python-level ops, and beside busy request threads its thread waits for
the GIL after each one (measured: 1.1 s instead of 16 ms beside one busy Python thread). A trace runs as one
call without the GIL. Each trace is checked against the eager module on inputs of other shapes than the one
traced; if tracing fails or differs, the caller stays eager (with a warning).
"""

from __future__ import annotations

import logging
import warnings

from typing import Any

import torch


def trace_embedding(embedding: torch.nn.Module, tokenizer, max_length: int):  # noqa: ANN001, ANN201 - TorchScript
    """`embedding` traced, checked on batches of other sizes and paddings than the one traced."""

    def batch(texts: list[str], length: int) -> tuple[torch.Tensor, torch.Tensor]:
        features = tokenizer(texts, padding="max_length", truncation=True, max_length=min(length, max_length),
                             return_tensors="pt")
        return features["input_ids"], features["attention_mask"]

    example = batch(["a query of a few words", "a longer sentence, padded less than the first one is"], 24)
    checks = [batch(["one"], 8), batch(["three texts", "of different lengths", "to check padding " * 4], 40)]
    with torch.inference_mode():
        expected = [embedding.eval()(*inputs) for inputs in checks]
    return trace_without_gil(embedding, example, list(zip(checks, expected, strict=True)), atol=1e-4)


def trace_without_gil(module: torch.nn.Module, example: tuple[torch.Tensor, ...],
                      checks: list[tuple[tuple[torch.Tensor, ...], torch.Tensor]], atol: float) -> Any:
    """`module` as a TorchScript function, which runs as one call without the GIL; None (with a warning) if
    tracing fails or the trace's output differs by more than `atol` from the expected one on any of `checks`
    (inputs, expected output): inputs of other shapes than `example`, so that a shape-dependent branch baked
    into the trace shows up here rather than in a result."""
    try:
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # deprecation notices, and shape branches that the checks cover
            traced = TracedModule(torch.jit.trace(_ReturnsInputs(module.eval()), example, check_trace=False))
            for inputs, expected in checks:
                got = traced(*inputs).float()
                if expected.shape != got.shape or not torch.allclose(expected.float(), got, atol=atol):
                    raise ValueError(f"the trace differs from the model on inputs of shape {tuple(inputs[0].shape)}")
    except Exception as exc:  # noqa: BLE001 - an architecture TorchScript cannot trace, or a trace that does not generalise
        logging.getLogger(__name__).warning("running %s without a trace (slower under load): %s",
                                            type(module).__name__, exc)
        return None
    return traced


class _ReturnsInputs(torch.nn.Module):
    """A module that also returns its inputs, so that its trace holds each input until the call returns.

    The TorchScript interpreter drops its reference to an input at the input's last use; when that is the
    last reference from C++, torch takes the GIL there to let go of the tensor's Python object. Beside busy
    request threads each such take waits up to a switch interval (5 ms): 4 per packed query batch, measured."""

    def __init__(self, module: torch.nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        return self.module(*inputs), inputs


class TracedModule:
    """A module traced by `trace_without_gil`, called like the module: inputs in, its output out."""

    def __init__(self, script: torch.jit.ScriptModule) -> None:
        self.script = script

    def __call__(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.script(*inputs)[0]
