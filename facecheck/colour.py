"""Whether an image carries colour: black-and-white avatars need their own calibration.

The pixel detectors were trained mostly on colour, and a StyleGAN face converted to greyscale scores far
lower than the same face in colour (the test fold: 9% flagged instead of 67% at 400 px) while it still
ranks well against real photos. The fusion therefore takes `colourless` as a feature, with the pixel
detectors' logits once more beside it for colourless images, so its fit gives them their own scale and
offset (training/train_fusion.py fits it on grey copies of every class).
"""
from __future__ import annotations

import numpy as np

# Mean chroma (max - min of R, G, B, in 0-255 levels) at or below which an image counts as colourless. A
# greyscale image saved as an RGB or YCbCr JPEG keeps 0-2 levels of chroma from rounding and compression
# (0.0 measured on 1,500 grey 256-px q70 copies); colour photos of ../shared/data sit at 15 levels and
# above (the lowest of those 1,500 in colour: 15.5), while ~2% of its natural photos are black and white.
COLOURLESS_CHROMA = 4.0
SAMPLES = 128   # pixels per side of the regular grid the chroma is measured on (enough for a mean)


def chroma(image: np.ndarray) -> float:
    """Mean chroma of an RGB (or greyscale) uint8 image: the average over a regular grid of pixels of
    max(R, G, B) - min(R, G, B)."""
    if image.ndim == 2 or image.shape[2] == 1:
        return 0.0
    h, w = image.shape[:2]
    grid = image[::max(h // SAMPLES, 1), ::max(w // SAMPLES, 1), :3]
    # per channel plane, in uint8 (max >= min, so no wrap): ~10x faster than max/min over a strided axis
    r, g, b = grid[..., 0], grid[..., 1], grid[..., 2]
    return float((np.maximum(np.maximum(r, g), b) - np.minimum(np.minimum(r, g), b)).mean())


def is_colourless(image: np.ndarray) -> bool:
    """True for a black-and-white image (greyscale, however stored)."""
    return chroma(image) <= COLOURLESS_CHROMA
