"""Reused avatars: which images are the same photo, after resizing, recompression, cropping,
mirroring, a frame, or a brightness change.

Matching runs in two steps. The hash index proposes candidates: an image's probe codes (its dct256
hash, its mirror, and crop variants) within MATCH_RADIUS bits of another image's hash. Aligned faces
lie close together in any global hash, so each candidate is then verified: the two 64x64 thumbnails
are registered over scale and shift, and their high-pass detail must correlate above VERIFY_MIN.
Distinct faces share the layout but not the detail, while copies of one photo keep it (see
VERIFY_MIN for the measured margins). Groups are the connected components of verified matches,
joined with the groups of byte-identical files (which never depend on the hashes).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .index import HashIndex

MATCH_RADIUS = 64       # bits of 256: generous, since every candidate is verified
# High-pass correlation of registered thumbnails. Chosen on the development split (fold 0,
# `bench_duplicates.py --split dev`, two seeds): distinct aligned faces reach 0.797 there (two 128 px
# StyleGAN faces), copies go down to 0.80 (LFW's 150 px photos framed or at JPEG q60); groups had no
# wrong pair at 0.80-0.81 and the best recall.
VERIFY_MIN = 0.81
# In a folder of aligned faces the number of codes within MATCH_RADIUS grows with the folder. Two
# bounds keep memory and time per image flat: queries are searched a block at a time, and only the
# MAX_CANDIDATES nearest distinct images are verified (true copies are the nearest; a photo with
# more copies than that still forms one group, through the copies' own matches).
QUERY_BLOCK = 128       # query images per range search
MAX_CANDIDATES = 64     # nearest distinct candidates verified per query image
# Scales tried, as the size of one thumbnail's centre inside the other: a coarse grid that always
# holds the identity (without it an exact copy of a detailed photo could score below VERIFY_MIN
# against itself), then the two half steps around the best coarse scale.
_SCALES = (0.92, 0.96, 1.0, 1.04, 1.08)
_REFINE = 0.02
_DETAIL_SIGMA = 3.0     # the blur taken off a thumbnail: what is left is detail, not layout
_INNER = slice(6, 58)   # the central 52x52 of a 64x64 thumbnail, matched inside the other one


def detail(thumbnail: np.ndarray) -> np.ndarray:
    """High-pass detail of a thumbnail: what tells one face from another of the same layout."""
    t = thumbnail.astype(np.float32)
    return t - cv2.GaussianBlur(t, (0, 0), _DETAIL_SIGMA)


def _best_shift(inner: np.ndarray, y: np.ndarray, scale: float) -> float:
    """Normalised correlation of `inner` resized by `scale`, at its best shift inside `y`."""
    n = int(round(inner.shape[0] * scale))
    if n > y.shape[0]:
        return -1.0
    template = inner if n == inner.shape[0] else cv2.resize(inner, (n, n), interpolation=cv2.INTER_AREA)
    return float(cv2.matchTemplate(y, template, cv2.TM_CCOEFF_NORMED).max())


def registered_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Best normalised correlation of the details of two 64x64 thumbnails, over scale, shift and
    mirroring, each tried as the crop of the other. Scale 1.0 at zero shift is always among the
    tries, so a thumbnail scores 1.0 against itself."""
    da, db = detail(a), detail(b)
    best, best_at = -1.0, None
    for x, y in ((da, db), (db, da), (da, db[:, ::-1]), (db[:, ::-1], da)):
        inner, y = np.ascontiguousarray(x[_INNER, _INNER]), np.ascontiguousarray(y)
        for scale in _SCALES:
            score = _best_shift(inner, y, scale)
            if score > best:
                best, best_at = score, (inner, y, scale)
    inner, y, scale = best_at
    return max(best, *(_best_shift(inner, y, s) for s in (scale - _REFINE, scale + _REFINE)))


@dataclass
class Match:
    a: int
    b: int
    bits: int          # Hamming distance of the closest probe
    similarity: float  # verified correlation


def find_matches(probes: np.ndarray, thumbnails: np.ndarray, index: HashIndex, *, query_ids: np.ndarray,
                 thumbnail_of, radius: int = MATCH_RADIUS, min_similarity: float = VERIFY_MIN,
                 skip_self: bool = True) -> list[Match]:
    """Verified matches of each query image against the index.

    probes: [Q, P, 32] packed probe codes; thumbnails: [Q, 64, 64]; query_ids: the ids of the queries
    (to skip self-matches and count each pair once); thumbnail_of(id) gives an indexed image's
    thumbnail."""
    q, p = probes.shape[:2]
    matches = []
    for start in range(0, q, QUERY_BLOCK):
        stop = min(start + QUERY_BLOCK, q)
        hits = index.range_search(probes[start:stop].reshape((stop - start) * p, -1), radius)
        for qi in range(start, stop):
            me = int(query_ids[qi])
            closest = nearest_candidates(hits[(qi - start) * p:(qi - start + 1) * p],
                                         exclude=me if skip_self else None)
            for other, d in closest:
                sim = registered_similarity(thumbnails[qi], thumbnail_of(other))
                if sim >= min_similarity:
                    matches.append(Match(me, other, d, sim))
    return matches


def nearest_candidates(hits, exclude: int | None, limit: int = MAX_CANDIDATES) -> list[tuple[int, int]]:
    """(id, smallest distance over all probes) of the `limit` nearest distinct ids among one image's
    probe hits, nearest first."""
    if sum(len(h[0]) for h in hits) <= 256:   # the usual case: a plain dict is faster than numpy here
        closest: dict[int, int] = {}
        for ids, dist in hits:
            for other, d in zip(ids.tolist(), dist.tolist()):
                if other != exclude and closest.get(other, 10 ** 9) > d:
                    closest[other] = d
        return sorted(closest.items(), key=lambda item: (item[1], item[0]))[:limit]
    ids = np.concatenate([h[0] for h in hits])
    dist = np.concatenate([h[1] for h in hits])
    if exclude is not None:
        keep = ids != exclude
        ids, dist = ids[keep], dist[keep]
    if len(ids) == 0:
        return []
    order = np.lexsort((ids, dist))            # by distance, then id
    ids, dist = ids[order], dist[order]
    _, first = np.unique(ids, return_index=True)   # each id's nearest hit
    first = np.sort(first)[:limit]
    return list(zip(ids[first].tolist(), dist[first].tolist()))


class Groups:
    """Connected components of matches (union-find over integer ids)."""

    def __init__(self):
        self._parent: dict[int, int] = {}

    def find(self, x: int) -> int:
        parent = self._parent
        parent.setdefault(x, x)
        root = x
        while parent[root] != root:
            root = parent[root]
        while parent[x] != root:
            parent[x], x = root, parent[x]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self._parent[max(ra, rb)] = min(ra, rb)

    def union_all(self, ids) -> None:
        """One group of all of `ids` (e.g. files with the same bytes)."""
        ids = list(ids)
        for other in ids[1:]:
            self.union(ids[0], other)

    def components(self) -> dict[int, list[int]]:
        """root -> members, for groups of two or more."""
        out: dict[int, list[int]] = {}
        for x in list(self._parent):
            out.setdefault(self.find(x), []).append(x)
        return {r: sorted(m) for r, m in out.items() if len(m) > 1}
