"""PDQ, the 256-bit perceptual hash that trust-and-safety teams exchange (Meta's ThreatExchange).

Written here in numpy from the published algorithm, so its hashes can be matched against lists from
other teams; `tests/test_pdq.py` checks it against the reference implementation (the `pdqhash`
package, a binding of Meta's C++) on hundreds of images.

The steps, on an RGB image of any size:
1. luminance Y = 0.299 R + 0.587 G + 0.114 B (float);
2. two passes of a box filter along the rows, then the columns (the "Jarosz" tent filter), with
   windows of ceil(side / 128) pixels, then 64 x 64 samples at the centres of a regular grid;
3. quality: the summed absolute gradient of those 64 x 64 samples, in hundredths of a grey level,
   divided by 90 and capped at 100 (flat or blurred images score low: their hashes say little);
4. the 16 x 16 lowest DCT coefficients, DC row and column left out;
5. one bit per coefficient: above the median or not. Bit k = 16 i + j of coefficient (i, j);
   the hex form is the 256-bit number sum(bit_k << k) as 64 hex digits, most significant first.

Images smaller than 5 px on a side get the all-zero hash and quality 0, as in the reference.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .hashing import Hash

SIDE = 64
BAND = 16
MIN_SIDE = 5
FILTER_PASSES = 2
MATCH_BITS = 31           # ThreatExchange's usual match threshold (of 256 bits)
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)
_DCT = (np.sqrt(2.0 / SIDE) * np.cos(np.pi / 2.0 / SIDE * np.arange(1, BAND + 1)[:, None]
                                     * (2 * np.arange(SIDE)[None, :] + 1))).astype(np.float32)   # [16, 64]


@dataclass(frozen=True)
class PDQ:
    hash: Hash        # str() is ThreatExchange's 64-hex-digit form; `a.hash - b.hash` the Hamming distance
    quality: int      # 0-100


def _box(values: np.ndarray, window: int, axis: int) -> np.ndarray:
    """Moving average along `axis` (1: along rows, 0: along columns) over `window` samples, centred
    (one more ahead than behind for even windows), averaging only what lies inside the image at the
    edges."""
    if window <= 1:
        return values
    ahead = (window + 2) // 2 - 1          # samples after the centre
    behind = window - ahead - 1            # samples before it
    n = values.shape[axis]
    index = np.arange(n)
    counts = (np.minimum(index + ahead + 1, n) - np.maximum(index - behind, 0)).astype(np.float32)
    ksize, anchor = ((window, 1), (behind, 0)) if axis == 1 else ((1, window), (0, behind))
    sums = cv2.boxFilter(values, -1, ksize, anchor=anchor, normalize=False, borderType=cv2.BORDER_CONSTANT)
    return sums / (counts[None, :] if axis == 1 else counts[:, None])


def luminance(rgb: np.ndarray) -> np.ndarray:
    """[H, W, 3] uint8 RGB (or [H, W] grey) -> [H, W] float32 luminance, step 1. Computed once, it serves
    every PDQ of the same pixels: a crop of it is the crop's luminance, and its mirror the mirror's
    (hashlists.pdq_probes), exactly, since each output pixel depends on its own input pixel only."""
    rgb = np.asarray(rgb)
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[:, :, None], 3, axis=2)   # the same float sums as an RGB copy of it
    return cv2.transform(rgb[:, :, :3].astype(np.float32), _LUMA[None, :])   # one output channel: [H, W]


def _downscaled_luma(luma: np.ndarray) -> np.ndarray:
    """[H, W] float luminance -> the 64 x 64 float luminance samples PDQ hashes."""
    h, w = luma.shape
    along_rows, along_cols = (w + 2 * SIDE - 1) // (2 * SIDE), (h + 2 * SIDE - 1) // (2 * SIDE)
    for _ in range(FILTER_PASSES):
        luma = _box(_box(luma, along_rows, axis=1), along_cols, axis=0)
    rows = ((np.arange(SIDE) + 0.5) * h / SIDE).astype(int)
    cols = ((np.arange(SIDE) + 0.5) * w / SIDE).astype(int)
    return luma[np.ix_(rows, cols)]


def _quality(samples: np.ndarray) -> int:
    steps = np.concatenate([(samples[:-1, :] - samples[1:, :]).ravel(), (samples[:, :-1] - samples[:, 1:]).ravel()])
    gradient = np.abs(np.trunc(steps * 100 / 255)).sum()
    return int(min(gradient // 90, 100))


def pdq(rgb: np.ndarray) -> PDQ:
    """The PDQ hash and quality of an RGB uint8 image [H, W, 3] (grey [H, W] is accepted too)."""
    return pdq_of_luminance(luminance(rgb))


def pdq_of_luminance(luma: np.ndarray) -> PDQ:
    """PDQ from steps 2-5, on a luminance image (`luminance`, or a crop or mirror of one)."""
    h, w = luma.shape
    if h < MIN_SIDE or w < MIN_SIDE:
        return PDQ(Hash(np.zeros(256, bool)), 0)
    samples = _downscaled_luma(np.ascontiguousarray(luma))
    coefficients = (_DCT @ samples @ _DCT.T).ravel()      # coefficient (i, j) at k = 16 i + j
    median = np.partition(coefficients, 127)[127]        # the lower median, as the reference takes it
    bits_by_k = coefficients > median
    return PDQ(Hash(bits_by_k[::-1]), _quality(samples))  # Hash bits run most significant first


def parse_hex(text: str) -> Hash:
    """A 64-hex-digit PDQ hash as ThreatExchange writes it."""
    text = text.strip().lower()
    if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
        raise ValueError(f"not a PDQ hash (64 hex digits): {text[:80]!r}")
    return Hash.from_hex(text)
