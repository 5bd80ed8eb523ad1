"""Reuse groups over a whole scan: which of its files are the same photo.

The duplicate index proposes candidates and facecheck.duplicates verifies them; this module runs that
over every file of a scan, once the last file is in, so that it keeps up with the decoding:
- a pair is not verified when the two are already in one group, and a pair found from both sides
  (each file's probes near the other's hash) is verified once: rejections are remembered (in a
  bounded set: forgetting one only costs a second verification);
- a chunk's verifications run on every core (OpenCV's matching releases the GIL), nearest candidates
  first, so that the copies of one photo join up before the farther candidates are looked at;
- memory is a few numpy arrays of a few bytes per file (no Python object per file), so grouping a
  million files costs tens of megabytes (benchmarks/bench_grouping.py measures it).
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable

import numpy as np

from . import duplicates
from .index import HashIndex


MAX_REMEMBERED_REJECTIONS = 1_000_000   # ~70 MB at most; past it the set starts afresh


class UnionFind:
    """Disjoint sets over positions 0..n-1, one int32 per position."""

    def __init__(self, n: int):
        self.parent = np.arange(n, dtype=np.int32)

    def find(self, x: int) -> int:
        parent = self.parent
        root = x
        while parent[root] != root:
            root = int(parent[root])
        while parent[x] != root:      # path compression
            parent[x], x = root, int(parent[x])
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)   # the smallest position is every group's root

    def roots(self) -> np.ndarray:
        """Each position's root, vectorised (pointer jumping until nothing moves)."""
        roots = self.parent.copy()
        while True:
            jumped = roots[roots]
            if np.array_equal(jumped, roots):
                return roots
            roots = jumped


class FileGroups:
    """The groups of a set of files, by file id: which group a file is in and how large it is.
    Groups are numbered 1, 2, ... in the order `group_of` first asks for them (the results are
    written in path order, so the first path of each group gets the next number)."""

    def __init__(self, ids: np.ndarray, roots: np.ndarray):
        self.ids = ids
        self.roots = roots
        self.sizes = np.bincount(roots, minlength=len(roots)).astype(np.int32)
        self._numbers = np.zeros(len(roots), dtype=np.int32)   # by root position; 0: not numbered yet
        self._next = 1

    def _position(self, file_id: int) -> int | None:
        i = int(np.searchsorted(self.ids, file_id))
        return i if i < len(self.ids) and self.ids[i] == file_id else None

    def group_of(self, file_id: int) -> tuple[int, int] | None:
        """(group number, size) of a file in a group of two or more, else None."""
        i = self._position(file_id)
        if i is None:
            return None
        root = self.roots[i]
        if self.sizes[root] < 2:
            return None
        if self._numbers[root] == 0:
            self._numbers[root] = self._next
            self._next += 1
        return int(self._numbers[root]), int(self.sizes[root])

    def count(self) -> int:
        """Groups of two or more files."""
        return int(np.count_nonzero(self.sizes >= 2))

    def grouped(self) -> np.ndarray:
        """bool per file (in id order): in a group of two or more."""
        return self.sizes[self.roots] >= 2


class Grouper:
    """Groups a scan's files: `same_bytes` for files with one sha256, `match` for each chunk of
    files in id order (their probes and thumbnails), then `groups()`.

    ids: every hashed file's id, ascending; codes: their packed dct256 codes [N, 32];
    thumbnail_of(id): a file's 64x64 verification thumbnail (called from this thread only).
    second_look(id, id): True, False or None (cannot tell), for pairs whose thumbnails score inside
    duplicates.SECOND_LOOK_BAND (called from this thread only; see facecheck.second_look); without
    it the bar decides. `second_looks` counts the pairs it was asked about."""

    def __init__(self, ids: np.ndarray, codes: np.ndarray, thumbnail_of: Callable[[int], np.ndarray],
                 threads: int | None = None, second_look: Callable[[int, int], bool | None] | None = None):
        self.ids = np.asarray(ids, dtype=np.int64)
        self.index = HashIndex(codes, self.ids)
        self.sets = UnionFind(len(self.ids))
        self.thumbnail_of = thumbnail_of
        self.pool = ThreadPoolExecutor(threads or os.cpu_count() or 1)
        self.rejected: set[int] = set()   # pairs (as lower * 2**32 + upper position) found apart
        self.second_look = second_look
        self.second_looks = 0
        self.enough = duplicates.enough_similarity(second_look is not None)

    def _position(self, file_id: int) -> int:
        return int(np.searchsorted(self.ids, file_id))

    def same_bytes(self, file_ids: Iterable[int]) -> None:
        """These files are one photo, whatever their hashes say (identical bytes)."""
        file_ids = [self._position(i) for i in file_ids]
        for other in file_ids[1:]:
            self.sets.union(file_ids[0], other)

    def match(self, chunk_ids: np.ndarray, probes: np.ndarray, thumbnails: np.ndarray) -> None:
        """Verify each file of the chunk against the files before it that the index proposes."""
        candidates = []   # per query: [(other id, distance, orientations)], nearest first
        p = probes.shape[1]
        for start in range(0, len(chunk_ids), duplicates.QUERY_BLOCK):
            stop = min(start + duplicates.QUERY_BLOCK, len(chunk_ids))
            hits = self.index.range_search(probes[start:stop].reshape((stop - start) * p, -1),
                                           duplicates.MATCH_RADIUS)
            for qi in range(start, stop):
                me = int(chunk_ids[qi])
                candidates.append(duplicates.candidates(hits[(qi - start) * p:(qi - start + 1) * p], exclude=me))
        # Rounds by rank: every query's nearest candidate first (copies of one photo then join up in
        # one round), then the second nearest of those still apart, and so on.
        rank = 0
        while True:
            pairs, keys = [], set()
            for qi, mine in enumerate(candidates):
                if rank < len(mine):
                    other, _, orientations = mine[rank]
                    a, b = self._position(int(chunk_ids[qi])), self._position(other)
                    key = min(a, b) << 32 | max(a, b)
                    if key not in keys and key not in self.rejected and self.sets.find(a) != self.sets.find(b):
                        keys.add(key)
                        pairs.append((a, b, thumbnails[qi], self.thumbnail_of(other), orientations, self.enough))
            if not pairs and all(rank >= len(mine) for mine in candidates):
                return
            if len(self.rejected) > MAX_REMEMBERED_REJECTIONS:
                self.rejected.clear()
            for (a, b, *_), similarity in zip(pairs, self.pool.map(_similarity, pairs)):
                if duplicates.same_photo(similarity, self._second_look_at(a, b)):
                    self.sets.union(a, b)
                else:
                    self.rejected.add(min(a, b) << 32 | max(a, b))
            rank += 1

    def _second_look_at(self, a: int, b: int) -> Callable[[], bool | None] | None:
        """The second look at positions a and b, as duplicates.same_photo asks for it (counted)."""
        if self.second_look is None:
            return None

        def look() -> bool | None:
            self.second_looks += 1
            return self.second_look(int(self.ids[a]), int(self.ids[b]))
        return look

    def groups(self) -> FileGroups:
        self.pool.shutdown()
        return FileGroups(self.ids, self.sets.roots())


def _similarity(pair) -> float:
    _, _, mine, theirs, orientations, enough = pair
    return duplicates.registered_similarity(mine, theirs, enough=enough, orientations=orientations)


def group_files(ids: np.ndarray, codes: np.ndarray, chunks: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]],
                thumbnail_of: Callable[[int], np.ndarray], same_bytes: Iterable[Iterable[int]] = (),
                threads: int | None = None,
                second_look: Callable[[int, int], bool | None] | None = None) -> FileGroups:
    """The groups of files given as (ids ascending, codes) and their chunks of (ids, probes,
    thumbnails) in id order; `same_bytes`: sets of ids known to be identical files; `second_look`:
    see Grouper."""
    grouper = Grouper(ids, codes, thumbnail_of, threads, second_look)
    for same in same_bytes:
        grouper.same_bytes(same)
    for chunk_ids, probes, thumbnails in chunks:
        grouper.match(chunk_ids, probes, thumbnails)
    return grouper.groups()
