"""A near-duplicate search index over 256-bit hashes (the search backend, apart from the hashing).

Backed by faiss binary indexes: faiss scans packed codes with hardware popcount and, past a few
hundred thousand codes, partitions them (an inverted file over binary k-means cells) so that a query
looks at a few cells instead of every code. Brute force over 1M codes costs ~7 ms a query on two
cores; the partitioned index answers in well under 1 ms (benchmarks/bench_duplicates.py).
"""
from __future__ import annotations

import faiss
import numpy as np

CODE_BYTES = 32
EXACT_LIMIT = 200_000     # below this many codes, an exact scan is fast enough
CELLS_PER_CODE = 1 / 256  # inverted-file cells: one per ~256 codes
PROBED_CELLS = 24


class HashIndex:
    """Packed 256-bit codes with integer ids; range search by Hamming radius."""

    def __init__(self, codes: np.ndarray, ids: np.ndarray | None = None, *, exact: bool | None = None,
                 seed: int = 0):
        codes = np.ascontiguousarray(codes, dtype=np.uint8).reshape(-1, CODE_BYTES)
        self.ids = np.arange(len(codes), dtype=np.int64) if ids is None else np.asarray(ids, dtype=np.int64)
        if exact is None:
            exact = len(codes) < EXACT_LIMIT
        if exact:
            self._index = faiss.IndexBinaryFlat(CODE_BYTES * 8)
        else:
            cells = max(64, int(len(codes) * CELLS_PER_CODE))
            self._index = faiss.IndexBinaryIVF(faiss.IndexBinaryFlat(CODE_BYTES * 8), CODE_BYTES * 8, cells)
            rng = np.random.default_rng(seed)
            sample = codes[rng.choice(len(codes), min(len(codes), cells * 40), replace=False)]
            self._index.train(sample)
            self._index.nprobe = PROBED_CELLS
        if len(codes):
            self._index.add(codes)

    def __len__(self) -> int:
        return self._index.ntotal

    def range_search(self, queries: np.ndarray, radius: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """For each packed query code, (ids, distances) of the codes within `radius` bits."""
        queries = np.ascontiguousarray(queries, dtype=np.uint8).reshape(-1, CODE_BYTES)
        if len(self) == 0 or len(queries) == 0:
            empty = (np.empty(0, np.int64), np.empty(0, np.int32))
            return [empty] * len(queries)
        # faiss keeps results strictly below the radius
        limits, distances, labels = self._index.range_search(queries, radius + 1)
        return [(self.ids[labels[limits[i]:limits[i + 1]]], distances[limits[i]:limits[i + 1]])
                for i in range(len(queries))]
