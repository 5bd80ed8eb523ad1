"""One resize pyramid per image, shared by every model that reads a smaller copy of it.

YuNet, the backbone and the spectral detector each read the image at their own size (longer side 320 px; a
128 px square; longer side 320 px, then a 160 px square from that). On a large photo one area resize from full
size costs more than a model run (a 2048 px photo: 13-16 ms each on one core, against ~0.2 ms at 400 px;
`benchmarks/bench_scan.py --side 2048`). So each image is wrapped in a Pyramid: level 0 is the image, level k + 1
halves level k with an exact 2 x 2 average (OpenCV's fast path for INTER_AREA at exactly half), made on first
use; an area resize starts from the smallest level that is still at least MARGIN times the target on both
sides; and a resize asked for twice (YuNet's and the spectral detector's 320 px view of a photo over 640 px
are the same resize) is made once.

MARGIN = 4 keeps the last step an area average over at least 4 x 4 level pixels, so it differs from a direct
area resize only by the halvings' rounding (tests/test_pyramid.py bounds it), and no image under 1024 px on its
shorter side is read through a level: every image of ../shared/data, and the cards' numbers measured on them,
see exactly the pixels they saw before the pyramid. Enlarging (bilinear) always starts from the image itself.
"""
from __future__ import annotations

import cv2
import numpy as np

MARGIN = 2          # the last step averages at least 2 x 2 level pixels
LEVELS_FROM = 1024  # px on the shorter side: smaller images are always resized from themselves


def as_rgb(image: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 from HxW, HxWx1, HxWx3 or HxWx4 (grey repeated, alpha dropped, other dtypes clipped)."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
        raise ValueError(f"expected an HxW, HxWx1, HxWx3 or HxWx4 image, got shape {image.shape}")
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    image = image[:, :, :3]
    if image.dtype != np.uint8:
        image = np.clip(image, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(image)


class Pyramid:
    """An RGB uint8 image with its halvings and resized copies, each made once, on first use."""

    def __init__(self, image: np.ndarray):
        self.image = as_rgb(image)
        self._levels = [self.image]
        self._resized: dict[tuple[tuple[int, int], int], np.ndarray] = {}

    @property
    def shape(self) -> tuple[int, ...]:
        return self.image.shape

    def level_for(self, width: int, height: int) -> np.ndarray:
        """The smallest level at least MARGIN times (width, height) on both sides; the image itself when even
        its first halving is not."""
        if min(self.image.shape[:2]) < LEVELS_FROM:
            return self.image
        k = 0
        while True:
            level = self._levels[k]
            h, w = level.shape[:2]
            if w // 2 < MARGIN * width or h // 2 < MARGIN * height:
                return level
            if k + 1 == len(self._levels):
                # an odd last row or column is dropped (at most 1 px of this level) so the halving is exact
                even = level[:h // 2 * 2, :w // 2 * 2]
                self._levels.append(cv2.resize(even, (w // 2, h // 2), interpolation=cv2.INTER_AREA))
            k += 1

    def resize(self, size: tuple[int, int], interpolation: int) -> np.ndarray:
        """The image resized to size = (width, height): area resizes from level_for, others from the image.
        The result is shared: do not write into it."""
        key = (size, interpolation)
        if key not in self._resized:
            source = self.level_for(*size) if interpolation == cv2.INTER_AREA else self.image
            self._resized[key] = cv2.resize(source, size, interpolation=interpolation)
        return self._resized[key]


def as_pyramid(image: "np.ndarray | Pyramid") -> Pyramid:
    """The image's Pyramid: itself when it is one (shared by the models of one analysis), else a new one."""
    return image if isinstance(image, Pyramid) else Pyramid(image)
