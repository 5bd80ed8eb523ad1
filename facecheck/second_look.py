"""The second look at a candidate pair whose 64 px thumbnails score near the verification bar.

Look-alike faces of different people in FFHQ alignment (same pose, similar face) can score as high
on the thumbnails as a heavily degraded copy of one photo. Here both files are read again at a
moderate size (LOOK_SIDE, after the same frame trim as hashing) and compared in two steps:
1. ORB keypoints matched under one similarity transform (RANSAC, estimateAffinePartial2D, tried
   plain and mirrored): the same photo gives many inliers, a different photo few;
2. the fine detail of the two images registered by that transform, correlated block by block (the
   median over 4x4 blocks): a copy keeps the detail everywhere, whereas two photos of one person
   from one shoot, which share a background and so find many inliers, differ in the face itself.

The matching layer (facecheck.duplicates, facecheck.grouping) never reads files: it is handed a
SecondLook, a callable (file id, file id) -> True | False | None, that second_look_for builds from a
scan's state and folder. None (a file gone, changed since it was scanned, or no longer decodable)
leaves the decision to the thumbnail bar.
"""
from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
from PIL import Image

from .hashing import trim_plain_border
from .loading import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS, LoadError, load_image

LOOK_SIDE = 320            # longer side of the images compared (small avatars are enlarged to it)
# Chosen on the development split only (`bench_duplicates.py --split dev --band 0.6 0.97
# --second-look-scores`, seeds 11 and 12): the 718 same-photo pairs scoring 0.6-0.97 on the thumbnails
# had at least 83 inliers and detail 0.776; the 139 pairs of different photos at most 25 inliers and
# detail 0.33. Each bar sits about midway, and both must be cleared.
MIN_INLIERS = 45           # keypoint matches consistent with one similarity transform
MIN_DETAIL_CORRELATION = 0.55  # median over blocks of the registered fine detail's correlation
RANSAC_PIXELS = 2.0        # reprojection error of an inlier, at LOOK_SIDE
_RATIO = 0.8               # Lowe's ratio test on descriptor distances
_DETAIL_SIGMA = 4.0        # blur taken off before correlating: detail, not layout or lighting
_BLOCKS = 4                # blocks per side for the correlation
_MIN_COVERED = 0.5         # a block counts when at least this much of it is covered by both images
_CACHE = 128               # files whose features are kept (a file is often a candidate of several)


def look_image(image: Image.Image) -> np.ndarray:
    """uint8 grey image, plain frame trimmed as hashing trims it, longer side LOOK_SIDE."""
    grey = trim_plain_border(np.asarray(image.convert("L")))
    h, w = grey.shape
    scale = LOOK_SIDE / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(grey, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)


@dataclass
class Features:
    grey: np.ndarray
    points: np.ndarray          # [K, 2] float32
    descriptors: np.ndarray | None


@dataclass
class Comparison:
    inliers: int                # best over plain and mirrored
    correlation: float          # registered detail correlation at that transform; -1 when none

    @property
    def same_photo(self) -> bool:
        return self.inliers >= MIN_INLIERS and self.correlation >= MIN_DETAIL_CORRELATION


class Comparer:
    """Keypoints and comparison of look images (one ORB detector: use from one thread)."""

    def __init__(self):
        # small patches and a low FAST threshold: 128 px faces enlarged to LOOK_SIDE are soft
        self.orb = cv2.ORB_create(nfeatures=1000, fastThreshold=7, edgeThreshold=15, patchSize=15)
        self.matcher = cv2.BFMatcher(cv2.NORM_HAMMING)

    def features(self, grey: np.ndarray) -> Features:
        keypoints, descriptors = self.orb.detectAndCompute(grey, None)
        points = np.float32([k.pt for k in keypoints]).reshape(-1, 2)
        return Features(grey, points, descriptors)

    def compare(self, a: Features, b: Features) -> Comparison:
        """b registered onto a, plain and mirrored; the orientation with more inliers counts."""
        best = Comparison(0, -1.0)
        for mirrored in (False, True):
            if mirrored:
                b = self.features(np.ascontiguousarray(b.grey[:, ::-1]))
            transform, inliers = self._transform(a, b)
            if transform is not None and inliers > best.inliers:
                best = Comparison(inliers, registered_correlation(a.grey, b.grey, transform))
        return best

    def _transform(self, a: Features, b: Features) -> tuple[np.ndarray | None, int]:
        if a.descriptors is None or b.descriptors is None or len(a.points) < 3 or len(b.points) < 3:
            return None, 0
        good = [p[0] for p in self.matcher.knnMatch(b.descriptors, a.descriptors, k=2)
                if len(p) == 2 and p[0].distance < _RATIO * p[1].distance]
        if len(good) < 3:
            return None, 0
        src = b.points[[m.queryIdx for m in good]]
        dst = a.points[[m.trainIdx for m in good]]
        transform, mask = cv2.estimateAffinePartial2D(src, dst, method=cv2.RANSAC,
                                                      ransacReprojThreshold=RANSAC_PIXELS)
        return transform, (0 if mask is None else int(mask.sum()))


def registered_correlation(a: np.ndarray, b: np.ndarray, transform: np.ndarray) -> float:
    """Median over blocks of a of the correlation of fine detail, b warped onto a by `transform`."""
    h, w = a.shape
    warped = cv2.warpAffine(b.astype(np.float32), transform, (w, h), flags=cv2.INTER_LINEAR)
    covered = cv2.warpAffine(np.ones(b.shape, np.float32), transform, (w, h)) > 0.99
    covered = cv2.erode(covered.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0   # off the warped edge
    fa = a.astype(np.float32)
    da = fa - cv2.GaussianBlur(fa, (0, 0), _DETAIL_SIGMA)
    db = warped - cv2.GaussianBlur(warped, (0, 0), _DETAIL_SIGMA)
    scores = []
    for by in range(_BLOCKS):
        for bx in range(_BLOCKS):
            block = (slice(by * h // _BLOCKS, (by + 1) * h // _BLOCKS), slice(bx * w // _BLOCKS, (bx + 1) * w // _BLOCKS))
            mask = covered[block]
            if mask.mean() < _MIN_COVERED:
                continue
            x, y = da[block][mask], db[block][mask]
            x, y = x - x.mean(), y - y.mean()
            scores.append(float((x * y).sum() / np.sqrt((x * x).sum() * (y * y).sum() + 1e-6)))
    return float(np.median(scores)) if scores else -1.0


class SecondLook:
    """Callable (file id, file id) -> True (same photo), False, or None (an image could not be read).

    load(file id) gives the file's decoded image, or None. Features of the last _CACHE files are
    kept. `calls` counts the pairs looked at; `last` is the last Comparison (for benchmarks).
    Not thread-safe: grouping calls it from its own thread."""

    def __init__(self, load: Callable[[int], Image.Image | None]):
        self.load = load
        self.comparer = Comparer()
        self.cache: OrderedDict[int, Features | None] = OrderedDict()
        self.calls = 0
        self.last: Comparison | None = None

    def _features(self, file_id: int) -> Features | None:
        if file_id in self.cache:
            self.cache.move_to_end(file_id)
            return self.cache[file_id]
        image = self.load(file_id)
        found = None if image is None else self.comparer.features(look_image(image))
        self.cache[file_id] = found
        if len(self.cache) > _CACHE:
            self.cache.popitem(last=False)
        return found

    def compare(self, a: int, b: int) -> Comparison | None:
        self.calls += 1
        fa, fb = self._features(a), self._features(b)
        self.last = None if fa is None or fb is None else self.comparer.compare(fa, fb)
        return self.last

    def __call__(self, a: int, b: int) -> bool | None:
        found = self.compare(a, b)
        return None if found is None else found.same_photo


def second_look_for(state, folder: Path | None, max_pixels: int = DEFAULT_MAX_PIXELS,
                    max_bytes: int = DEFAULT_MAX_BYTES) -> SecondLook:
    """The second look for a scan: each file re-read from its path in `state` (a ScanState), under
    `folder` (None: the paths as given, a scan of listed files), only while its size and
    modification time are those it was scanned with, within the scan's size limits."""
    def load(file_id: int) -> Image.Image | None:
        found = state.file_on_disk(file_id)
        if found is None:
            return None
        path, size, mtime_ns = found
        full = Path(path) if folder is None else Path(folder) / path
        try:
            st = os.stat(full)
            if st.st_size != size or st.st_mtime_ns != mtime_ns:
                return None       # changed since it was hashed: its thumbnail is what was scanned
            return load_image(full, max_pixels=max_pixels, max_bytes=max_bytes, min_side=LOOK_SIDE).image
        except (OSError, LoadError):
            return None
    return SecondLook(load)
