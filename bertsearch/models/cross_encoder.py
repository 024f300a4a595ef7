"""The torch cross-encoder: BERT reads query and passage together, "[CLS] query [SEP] passage [SEP]".

The score head sits on mean-pooled token states, the representation sentence-transformers weights were
trained to produce: score = scale · cos(mean of the query segment's states, mean of the passage segment's
states) + bias, both from one joint pass (why: `bertsearch.rerank`).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from collections.abc import Sequence

import numpy as np
import torch

from bertsearch.device import Runtime, select_runtime
from bertsearch.errors import ModelNotFoundError
from bertsearch.models.loading import load_tokenizer
from bertsearch.models.tracing import trace_without_gil

# 20 is the temperature sentence-transformers trains MiniLM's cosine with: the head of an untrained reranker.
DEFAULT_SCALE = 20.0
BATCH_SIZE = 32


class CrossEncoderNetwork(torch.nn.Module):
    """score = scale · cos(mean(query-segment states), mean(passage-segment states)) + bias."""

    def __init__(self, bert: torch.nn.Module, scale: float, bias: float) -> None:
        super().__init__()
        self.bert = bert
        self.scale = torch.nn.Parameter(torch.tensor(float(scale)))
        self.bias = torch.nn.Parameter(torch.tensor(float(bias)))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor) -> torch.Tensor:
        states = self.bert(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        ).last_hidden_state.float()
        mask = attention_mask.unsqueeze(-1).float()
        passage_mask = mask * token_type_ids.unsqueeze(-1).float()
        query_mask = mask - passage_mask
        query = (states * query_mask).sum(1) / query_mask.sum(1).clamp(min=1.0)
        passage = (states * passage_mask).sum(1) / passage_mask.sum(1).clamp(min=1.0)
        return self.scale * torch.nn.functional.cosine_similarity(query, passage, dim=-1) + self.bias


def load_network(folder: Path, scale: float = DEFAULT_SCALE, bias: float = 0.0) -> CrossEncoderNetwork:
    """The cross-encoder network over the BERT weights in `folder` (a base model or a trained reranker)."""
    from transformers import AutoModel
    from transformers.utils import logging as transformers_logging

    transformers_logging.set_verbosity_error()
    try:
        bert = AutoModel.from_pretrained(str(folder), local_files_only=True, add_pooling_layer=False)
    except Exception as exc:  # transformers raises many types for a broken folder
        raise ModelNotFoundError(f"cannot load BERT weights from {folder}: {exc}") from exc
    return CrossEncoderNetwork(bert, scale, bias)


class CrossEncoder:
    """Scores (query, passage) pairs with a cross-encoder network, batched, in the runtime's precision."""

    def __init__(self, folder: Path, max_length: int, runtime: Runtime | None = None,
                 scale: float = DEFAULT_SCALE, bias: float = 0.0) -> None:
        self.runtime = runtime or select_runtime()
        self.folder = folder
        self.max_length = max_length
        self.tokenizer = load_tokenizer(folder)
        self.network = load_network(folder, scale, bias).to(self.runtime.device)
        self.network.eval()
        self._traced = None  # a TorchScript trace of `network`, once `release_gil` made one

    def tokenize(self, queries: Sequence[str], passages: Sequence[str]) -> dict[str, torch.Tensor]:
        batch = self.tokenizer(
            list(queries), list(passages), truncation="longest_first", max_length=self.max_length,
            padding=True, return_tensors="pt", return_token_type_ids=True,
        )
        return {name: tensor.to(self.runtime.device) for name, tensor in batch.items()
                if name in ("input_ids", "attention_mask", "token_type_ids")}

    def score(self, query: str, passages: Sequence[str], batch_size: int = BATCH_SIZE) -> np.ndarray:
        """One relevance score per passage (higher is better), float32."""
        scores = []
        # The trace runs without autocast: the weights are already in the runtime's precision, and the scores
        # were checked against the autocast ones when it was made.
        with torch.inference_mode(), self.runtime.autocast() if self._traced is None else contextlib.nullcontext():
            for start in range(0, len(passages), batch_size):
                chunk = passages[start:start + batch_size]
                scores.append(self._forward(self.tokenize([query] * len(chunk), chunk)).float().cpu().numpy())
        return np.concatenate(scores) if scores else np.zeros(0, dtype=np.float32)

    def release_gil(self) -> bool:
        """Score with a TorchScript trace of the network, one call that holds no GIL; True if that is now the case.

        For the server, where request threads run Python beside every forward pass: eagerly, reranking 20
        passages took 1.5 s instead of 0.13 s beside one busy Python thread (measured). Checked against the
        eager, autocast scores on pairs of other shapes first; CPU only, like the encoder's trace.
        """
        if self._traced is None and self.runtime.device == "cpu":

            def pairs(queries: list[str], passages: list[str]) -> tuple:
                batch = self.tokenize(queries, passages)
                return batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]

            example = pairs(["a short query", "another query"], ["a passage of a few words", "a shorter one"])
            checks = [pairs(["one"], ["word"]),
                      pairs(["q"] * 3, ["three passages", "of different lengths", "to check the padding " * 30])]
            with torch.inference_mode(), self.runtime.autocast():
                expected = [self.network(*inputs) for inputs in checks]  # the eager scores, as `score` makes them
            self._traced = trace_without_gil(self.network, example, list(zip(checks, expected, strict=True)), atol=0.05)
        return self._traced is not None

    def _forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        if self._traced is not None:
            return self._traced(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
        return self.network(**batch)
