"""Reused avatars: which images are the same photo, after resizing, recompression, cropping,
mirroring, a frame, or a brightness change.

Matching runs in two steps. The hash index proposes candidates: an image's probe codes (its dct256
hash, its mirror, and crop variants) within MATCH_RADIUS bits of another image's hash. Aligned faces
lie close together in any global hash, so each candidate is then verified: the two 64x64 thumbnails
are registered over scale and shift, and their high-pass detail must correlate above VERIFY_MIN.
Distinct faces share the layout but not the detail, while copies of one photo keep it (see
VERIFY_MIN for the measured margins). Look-alike faces of different people can score near the bar;
a pair inside SECOND_LOOK_BAND is decided by a second look at the files when the caller passes one
(same_photo; facecheck.second_look builds it, as this module reads no files). facecheck.grouping runs this over a whole scan: groups are
the connected components of verified matches, joined with the groups of byte-identical files (which
never depend on the hashes).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np

from .index import HashIndex

MATCH_RADIUS = 64       # bits of 256: generous, since every candidate is verified
# High-pass correlation of registered thumbnails. Chosen on the development split (fold 0,
# `bench_duplicates.py --split dev --verify-min ...`, seeds 11 and 12): once frames of up to 25% of a
# side come off (hashing.plain_border), every copy there joins its photo at any bar from 0.81 to 0.84
# (0.86 loses 3 of 1,855 pairs on seed 12), and distinct aligned faces reach 0.795. The highest bar
# that keeps every dev pair keeps look-alike faces of different people furthest apart: 0.81 let
# 128 px StyleGAN faces of two people join at 0.825.
VERIFY_MIN = 0.84
# Pairs whose thumbnail score falls in [low, high) get a second look at the files themselves when
# the caller can read them (facecheck.second_look: keypoints under one transform, then detail at
# 320 px), which then decides; without one (a known index's stored avatars) VERIFY_MIN decides.
# Chosen on the development split: see the README, "How reused avatars are found".
SECOND_LOOK_BAND = (0.70, 0.90)
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


ORIENTATIONS = ("plain", "mirrored")


def registered_similarity(a: np.ndarray, b: np.ndarray, *, enough: float | None = None,
                          orientations: tuple[str, ...] = ORIENTATIONS) -> float:
    """Best normalised correlation of the details of two 64x64 thumbnails, over scale, shift and
    mirroring, each tried as the crop of the other. Scale 1.0 at zero shift is always among the
    tries, so a thumbnail scores 1.0 against itself.

    enough: stop at the first try that reaches it (a verification needs only "at least this much";
    the identity is tried first, so a copy stops after one or two tries). orientations: which of
    "plain" and "mirrored" to try, when the probes already tell (see candidates)."""
    da, db = detail(a), detail(b)
    pairs = []
    if "plain" in orientations:
        pairs += [(da, db), (db, da)]
    if "mirrored" in orientations:
        mirrored = db[:, ::-1]
        pairs += [(da, mirrored), (mirrored, da)]
    # (inner part of one, whole other) once per pair, not once per scale
    pairs = [(np.ascontiguousarray(x[_INNER, _INNER]), np.ascontiguousarray(y)) for x, y in pairs]
    best, best_at = -1.0, None
    for scale in _SCALES_FIRST_IDENTITY:
        for inner, y in pairs:
            score = _best_shift(inner, y, scale)
            if score > best:
                best, best_at = score, (inner, y, scale)
                if enough is not None and best >= enough:
                    return best
    inner, y, scale = best_at
    return max(best, *(_best_shift(inner, y, s) for s in (scale - _REFINE, scale + _REFINE)))


# The same scales, the identity first: copies are found at once when a verification may stop early.
_SCALES_FIRST_IDENTITY = tuple(sorted(_SCALES, key=lambda s: abs(s - 1.0)))
# Bits by which a candidate's plain probes may be farther than its mirrored ones (or the reverse)
# and that orientation still be tried: a plain copy has near plain probes and far mirrored ones.
ORIENTATION_SLACK = 24


@dataclass
class Match:
    a: int
    b: int
    bits: int          # Hamming distance of the closest probe
    similarity: float  # verified correlation


def same_photo(similarity: float, second_look: Callable[[], bool | None] | None = None) -> bool:
    """The verification's decision on a pair whose thumbnails correlate at `similarity`.

    second_look(): the second look at this pair (True, False, or None when the files cannot be
    read), asked only inside SECOND_LOOK_BAND; outside it, or without an answer, the bar decides."""
    low, high = SECOND_LOOK_BAND
    if second_look is not None and low <= similarity < high:
        answer = second_look()
        if answer is not None:
            return answer
    return similarity >= VERIFY_MIN


def enough_similarity(with_second_look: bool) -> float:
    """The score at which a verification may stop early: past it, nothing more can change the decision."""
    return max(VERIFY_MIN, SECOND_LOOK_BAND[1]) if with_second_look else VERIFY_MIN


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
            closest = candidates(hits[(qi - start) * p:(qi - start + 1) * p], exclude=me if skip_self else None)
            for other, d, orientations in closest:
                sim = registered_similarity(thumbnails[qi], thumbnail_of(other), orientations=orientations)
                if sim >= min_similarity:
                    matches.append(Match(me, other, d, sim))
    return matches


def nearest_candidates(hits, exclude: int | None, limit: int = MAX_CANDIDATES) -> list[tuple[int, int]]:
    """(id, smallest distance over all probes) of the `limit` nearest distinct ids among one image's
    probe hits, nearest first."""
    return [(other, d) for other, d, _ in candidates(hits, exclude=exclude, limit=limit)]


def candidates(hits, *, exclude: int | None = None, limit: int = MAX_CANDIDATES) -> list[tuple[int, int, tuple[str, ...]]]:
    """(id, distance, orientations) of the `limit` nearest distinct ids among one image's probe hits
    (one (ids, distances) per probe), nearest first, ties by id.

    The distance is the smallest over all probes. The orientations to verify a candidate in come
    from which probes found it: even probes are the image and its crops, odd ones their mirrors, and
    an orientation is tried when its nearest probe lies within ORIENTATION_SLACK bits of the nearest
    of all (a plain copy has near plain probes and far mirrored ones; a symmetric face gets both)."""
    if not hits:
        return []
    ids = np.concatenate([h[0] for h in hits])
    dist = np.concatenate([h[1] for h in hits]).astype(np.int32)
    mirrored = np.repeat(np.arange(len(hits), dtype=np.int8) % 2, [len(h[0]) for h in hits])
    if exclude is not None:
        keep = ids != exclude
        ids, dist, mirrored = ids[keep], dist[keep], mirrored[keep]
    if len(ids) == 0:
        return []
    unique, inverse = np.unique(ids, return_inverse=True)
    nearest = np.full((len(unique), 2), np.iinfo(np.int32).max, np.int32)   # [id, plain | mirrored]
    np.minimum.at(nearest, (inverse, mirrored), dist)
    overall = nearest.min(axis=1)
    order = np.lexsort((unique, overall))[:limit]
    tried = nearest[order] <= overall[order, None] + ORIENTATION_SLACK
    return [(int(unique[i]), int(overall[i]), tuple(name for name, t in zip(ORIENTATIONS, row) if t))
            for i, row in zip(order, tried)]
