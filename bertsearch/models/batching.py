"""How texts are cut into forward passes, whatever runs them: sorted by length, batched by a token budget, each
batch padded to one of a few lengths. Sorting keeps padding small; the budget keeps a batch of long passages
from costing what a batch of short ones would not; few lengths let compiled graphs be reused."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

# Tokens per forward pass: 32 x 256 measured fastest on a 2-core AVX-512 CPU (64 x 256 is slower: cache).
TOKENS_PER_BATCH = 8192
# Padded lengths are rounded up to a quarter of the model's maximum, so at most four batch shapes exist.
LENGTH_BUCKETS = 4
# Short texts encoded on their own (queries) are padded to a multiple of this, not to a length bucket.
QUERY_LENGTH_STEP = 8


def length_batches(token_ids: Sequence[Sequence[int]], max_length: int, batch_size: int,
                   length_step: int | None = None) -> Iterator[tuple[list[int], int, bool]]:
    """(positions of the texts in the batch, the length to pad them to, whether the batch is full), longest texts
    first. Full batches of one length all have the same shape, which a compiled graph can be reused for.

    `batch_size` caps the texts per batch; the token budget may make batches smaller. `length_step` pads each batch
    to a multiple of it rather than to a length bucket: for a few short queries, which a bucket would pad to a
    quarter of the model's maximum (measured: 8 queries in 30 ms instead of 84).
    """
    step = length_step or max(8, -(-max_length // LENGTH_BUCKETS))
    order = sorted(range(len(token_ids)), key=lambda i: -len(token_ids[i]))
    start = 0
    while start < len(order):
        length = min(max_length, -(-len(token_ids[order[start]]) // step) * step)
        rows = max(1, min(batch_size, TOKENS_PER_BATCH // length))
        batch = order[start : start + rows]
        start += len(batch)
        yield batch, length, len(batch) == rows
