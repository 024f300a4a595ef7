"""The torch bi-encoder: texts in, L2-normalised float32 vectors out, batched for indexing and for a server's
queries. Device and precision come from `bertsearch.device`; the folder is found by `bertsearch.models.loading`."""

from __future__ import annotations

import copy
import logging
from pathlib import Path

import numpy as np
import torch

from bertsearch.device import Runtime, select_runtime
from bertsearch.errors import ModelNotFoundError
from bertsearch.models.base import ModelInfo
from bertsearch.models.batching import QUERY_LENGTH_STEP, length_batches
from bertsearch.models.loading import model_fingerprint, resolve_model_path
from bertsearch.models.tracing import trace_embedding, trace_without_gil

# torch.compile costs ~5-10 s per batch shape and gains ~15% on CPU bf16, so only calls this big use it.
COMPILE_MIN_TEXTS = 512


class Encoder:
    """A BERT bi-encoder: texts in, L2-normalised float32 vectors out.

    Weights are stored in the precision `select_runtime` picks (fp16 on CUDA, bf16 on CPUs with native
    bf16, fp32 otherwise). Texts are sorted by length and batched by a token budget, padded to one of
    a few lengths; on CPU bf16, large calls run full batches through a compiled model (fixed shapes).
    """

    def __init__(self, path: str | Path | None = None, runtime: Runtime | None = None) -> None:
        folder = resolve_model_path(path)
        self.runtime = runtime or select_runtime()
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        # Weight-loading bars and notices are noise on a search command's output.
        transformers_logging.set_verbosity_error()
        transformers_logging.disable_progress_bar()

        try:
            self.model = SentenceTransformer(str(folder), device=self.runtime.device, local_files_only=True)
        except Exception as exc:  # transformers raises many types for a broken folder
            raise ModelNotFoundError(f"cannot load model from {folder}: {exc}") from exc
        self.model.eval()
        self.model.to(self.runtime.dtype)
        dims = getattr(self.model, "get_embedding_dimension", self.model.get_sentence_embedding_dimension)()
        if not dims:
            raise ModelNotFoundError(f"model at {folder} does not report an embedding dimension")
        self.info = ModelInfo(
            path=str(folder),
            fingerprint=model_fingerprint(folder),
            dimensions=int(dims),
            max_seq_length=int(self.model.max_seq_length or 512),
        )
        self._transformer = self.model[0].auto_model
        self._eager = SentenceEmbedding(self._transformer, list(self.model)[1:])
        self._compiled: SentenceEmbedding | None = None
        self._traced = None  # a TorchScript trace of `_eager`, once `release_gil` made one
        self._packed = None  # a TorchScript trace of PackedSentenceEmbedding, for mean-pooling models
        self._query_tokenizer = None  # its own tokenizer (see `_query_token_ids`)
        # Measured on CPU bf16 only; elsewhere the eager model is the one we know to be right.
        self._may_compile = self.runtime.device == "cpu" and self.runtime.precision == "bf16"

    @property
    def tokenizer(self):  # noqa: ANN201 - a transformers tokenizer
        return self.model.tokenizer

    @property
    def embedding_module(self) -> torch.nn.Module:
        """The transformer with the model's pooling and normalisation: (input_ids, attention_mask) -> vectors."""
        return self._eager

    def encode(self, texts: list[str], batch_size: int = 64, length_step: int | None = None) -> np.ndarray:
        """Encode `texts` in the runtime's precision; returns shape (len(texts), dims), float32.

        `batch_size` caps the texts per forward pass; the token budget may make batches smaller.
        `length_step` pads each batch only to a multiple of it, eagerly: for micro-batches of short queries,
        which the fixed length buckets would pad to 64 tokens (measured: 8 queries in 30 ms instead of 84).
        """
        if not texts:
            return np.zeros((0, self.info.dimensions), dtype=np.float32)
        token_ids = self._token_ids(texts)
        if self._may_compile and self._compiled is None and len(texts) >= COMPILE_MIN_TEXTS:
            compiled = torch.compile(self._transformer, dynamic=False, options={"freezing": True})
            self._compiled = SentenceEmbedding(compiled, self._eager.heads)
        vectors = np.empty((len(texts), self.info.dimensions), dtype=np.float32)
        with torch.inference_mode():
            for batch, length, full in length_batches(token_ids, self.info.max_seq_length, batch_size, length_step):
                features = self.tokenizer.pad(
                    {"input_ids": [token_ids[i] for i in batch]},
                    padding="max_length", max_length=length, return_tensors="pt",
                )
                input_ids = features["input_ids"].to(self.runtime.device)
                attention_mask = features["attention_mask"].to(self.runtime.device)
                # Only full batches have the fixed shapes the compiled model was built for.
                compiled = full and self._compiled is not None and length_step is None
                vectors[batch] = self._embed(input_ids, attention_mask, compiled=compiled).cpu().numpy()
        return vectors

    def release_gil(self) -> bool:
        """Run forward passes as one TorchScript call, which holds no GIL; True if that is now the case.

        For servers: an eager forward pass is ~250 Python-level ops, and after each one its thread waits for
        the GIL while request threads run Python (measured: 1.1 s instead of 16 ms beside one busy thread;
        traced, 16 ms and the busy thread unhindered). The trace is checked against the eager model on
        other batch shapes first; on any failure or difference the encoder stays eager. CPU only: on CUDA
        the eager ops only queue kernels, and that path stays the one we know to be right. Mean-pooling
        models also get a packed trace, which `encode_queries` uses.
        """
        if self._traced is None and self.runtime.device == "cpu":
            self._traced = trace_embedding(self._eager, self.tokenizer, self.info.max_seq_length)
            if self._traced is not None and _mean_pooled(list(self.model)[1:]):
                self._query_tokenizer = _truncating_copy(self.tokenizer, self.info.max_seq_length)
                self._packed = self._trace_packed()
        return self.releases_gil

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        """Vectors of a micro-batch of short texts (a server's waiting queries), like `encode`'s.

        Once `release_gil` has traced it (mean-pooling models), the texts are packed into rows: each attends
        only to itself (a block-diagonal mask) with its own positions, and is mean-pooled over its own tokens,
        so no time goes on padding (15-25% faster for 1-8 SciFact queries; cosine >= 0.9999 to `encode`).
        """
        if self._packed is None or not texts:
            return self.encode(texts, batch_size=max(1, len(texts)), length_step=QUERY_LENGTH_STEP)
        inputs = pack_rows(self._query_token_ids(texts), self.info.max_seq_length)
        with torch.inference_mode():
            return self._packed(*inputs).numpy()

    def _trace_packed(self):  # noqa: ANN202 - TorchScript
        """The packed module traced, checked against padded batches of the same texts."""

        def packed(texts: list[str]) -> tuple[torch.Tensor, ...]:
            return pack_rows(self._query_token_ids(texts), self.info.max_seq_length)

        def padded(texts: list[str]) -> torch.Tensor:
            return torch.from_numpy(self.encode(texts, batch_size=len(texts), length_step=QUERY_LENGTH_STEP))

        example = ["a query of a few words", "a longer sentence, packed beside the first one"]
        # One text alone; then texts that need two rows (the last fills one by itself).
        checks = [["one"], ["three texts", "of different lengths", "to check the rows " * 80]]
        return trace_without_gil(PackedSentenceEmbedding(self._transformer), packed(example),
                                 [(packed(texts), padded(texts)) for texts in checks], atol=2e-3)

    def _token_ids(self, texts: list[str]) -> list[list[int]]:
        """Each text's word pieces, with the model's special tokens, cut at its maximum length."""
        return self.tokenizer(list(texts), truncation=True, max_length=self.info.max_seq_length)["input_ids"]

    def _query_token_ids(self, texts: list[str]) -> list[list[int]]:
        """`_token_ids`, one text at a time, from a copy of the tokenizer set to truncate once and for all. The
        batch call lets go of the GIL (and must win it back), and sets the truncation on every call, which two
        threads must not do at once."""
        if self._query_tokenizer is None:
            return self._token_ids(texts)
        return [self._query_tokenizer.encode(text).ids for text in texts]

    @property
    def releases_gil(self) -> bool:
        """True once forward passes run traced, without holding the GIL (see `release_gil`)."""
        return self._traced is not None

    def _embed(self, input_ids, attention_mask, compiled: bool):  # noqa: ANN001, ANN202 - torch.Tensors
        if compiled and self._compiled is not None:
            try:
                return self._compiled(input_ids, attention_mask)
            except Exception as exc:  # noqa: BLE001 - no C++ compiler, or an op inductor cannot lower: stay eager
                logging.getLogger(__name__).warning("torch.compile failed, encoding eagerly: %s", exc)
                self._may_compile, self._compiled = False, None
        embedding = self._traced if self._traced is not None else self._eager
        return embedding(input_ids, attention_mask)

    def encode_query(self, text: str) -> np.ndarray:
        """One short text on one CPU thread: as fast as two for a query, and immune to the OpenMP spin-waiting
        that makes a two-thread encode take ~1 s instead of ~13 ms when other processes load the cores.
        Padded to a multiple of 8 tokens, not to a length bucket (64): a typical query then costs half."""
        if self.runtime.device != "cpu":
            return self.encode([text], batch_size=1, length_step=QUERY_LENGTH_STEP)[0]
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return self.encode([text], batch_size=1, length_step=QUERY_LENGTH_STEP)[0]
        finally:
            torch.set_num_threads(threads)


class PackedSentenceEmbedding(torch.nn.Module):
    """Mean-pooled, L2-normalised vectors of several texts packed into each row (see `pack_rows`): each token
    attends only to its own text's tokens (a block-diagonal mask; a padding token only to itself, so no row of
    the mask is empty), and each text's vector averages its own tokens."""

    def __init__(self, transformer: torch.nn.Module) -> None:
        super().__init__()
        self.transformer = transformer

    def forward(self, token_rows: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        input_ids, position_ids, segments = token_rows[0], token_rows[1], token_rows[2]
        mask = (segments[:, :, None] == segments[:, None, :]).unsqueeze(1)
        states = self.transformer(input_ids=input_ids, position_ids=position_ids,
                                  attention_mask=mask).last_hidden_state
        texts = torch.arange(lengths.shape[0], device=segments.device)
        pooling = (texts[:, None] == segments.reshape(1, -1)).float() / lengths[:, None]
        return torch.nn.functional.normalize(pooling @ states.reshape(-1, states.shape[-1]).float(), dim=-1)


def pack_rows(token_ids: list[list[int]], row_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Texts' token ids laid end to end in rows of at most `row_length` tokens (first fit, in order), for
    `PackedSentenceEmbedding`: (3, R, S) int64 of the ids, each text's own positions, and each token's segment
    (its text's number; padding tokens get unique negative ones); and each text's token count. S is the fullest
    row's length rounded up to a multiple of 8. CPU tensors.

    Filled in numpy and handed to torch without a copy, as two tensors: torch calls, and freeing a tensor, let
    go of the GIL, and beside busy request threads winning it back waits up to a switch interval (5 ms)."""
    rows: list[list[int]] = []  # text numbers per row
    fill: list[int] = []
    for number, ids in enumerate(token_ids):
        row = next((r for r, used in enumerate(fill) if used + len(ids) <= row_length), None)
        if row is None:
            row = len(rows)
            rows.append([])
            fill.append(0)
        rows[row].append(number)
        fill[row] += len(ids)
    width = max(8, -(-max(fill) // 8) * 8)
    token_rows = np.zeros((3, len(rows), width), dtype=np.int64)
    input_ids, positions, segments = token_rows
    # Padding segments are filled from a list: np.arange lets go of the GIL too (seen with gdb).
    segments[:] = [[-1 - row * width - column for column in range(width)] for row in range(len(rows))]
    for row, numbers in enumerate(rows):
        start = 0
        for number in numbers:
            ids = token_ids[number]
            end = start + len(ids)
            input_ids[row, start:end] = ids
            positions[row, start:end] = range(len(ids))
            segments[row, start:end] = number
            start = end
    lengths = np.array([max(1, len(ids)) for ids in token_ids], dtype=np.float32)
    return torch.from_numpy(token_rows), torch.from_numpy(lengths)


def _truncating_copy(tokenizer, max_length: int):  # noqa: ANN001, ANN202 - transformers/tokenizers objects
    """A copy of a fast tokenizer's Rust backend that truncates to `max_length`; None for a slow tokenizer."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return None
    backend = copy.deepcopy(backend)
    backend.no_padding()
    backend.enable_truncation(max_length)
    return backend


def _mean_pooled(heads: list[torch.nn.Module]) -> bool:
    """True if `heads` are sentence-transformers' mean pooling (over all tokens), then at most a normalisation:
    the only heads `PackedSentenceEmbedding` reproduces."""
    if not heads or type(heads[0]).__name__ != "Pooling" or len(heads) > 2:
        return False
    if len(heads) == 2 and type(heads[1]).__name__ != "Normalize":
        return False
    config = heads[0].get_config_dict()
    mean = config.get("pooling_mode") == "mean" or (
        config.get("pooling_mode_mean_tokens") is True
        and not any(v for k, v in config.items() if k.startswith("pooling_mode_") and k != "pooling_mode_mean_tokens")
    )
    return mean and config.get("include_prompt", True) is True


class SentenceEmbedding(torch.nn.Module):
    """(input_ids, attention_mask) -> L2-normalised float32 sentence vectors: the transformer, then the
    model's own pooling (and normalisation) modules. Single texts only: token types are left at zero."""

    def __init__(self, transformer: torch.nn.Module, heads: list[torch.nn.Module]) -> None:
        super().__init__()
        self.transformer = transformer
        self.heads = torch.nn.ModuleList(heads)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        states = self.transformer(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        features = {"input_ids": input_ids, "attention_mask": attention_mask, "token_embeddings": states}
        for head in self.heads:
            features = head(features)
        return torch.nn.functional.normalize(features["sentence_embedding"].float(), dim=-1)
