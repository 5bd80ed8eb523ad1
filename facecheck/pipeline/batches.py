"""Cutting a stream into lists of at most `size` items (itertools.batched arrives with Python 3.12)."""
from __future__ import annotations

from typing import Iterable


def batches(items: Iterable, size: int):
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
