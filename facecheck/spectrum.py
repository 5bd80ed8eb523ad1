"""Spectral StyleGAN detector: generator traces in the pixel noise of native-resolution tiles, plus an overview.

A generator's upsampling layers leave periodic, high-frequency patterns in the pixel noise wherever in the frame
the face sits, so they survive the crops, shifts and mirroring that defeat geometric tests. Resizing moves and
blurs those traces, so `image_tiles` first cuts fixed-size tiles at native resolution on an even grid (any image
size and any crop gives the same input layout). A second set of tiles covers an overview of the whole image
at OVERVIEW_SIDE px: on 2-4x downscaled StyleGAN output, as in our data, the native traces alone separated
StyleGAN from real FFHQ photos poorly on large images (the nine tiles see a small part of a 512 px image) and
best at ~150 px, where the generator's rendering of skin, hair and background shows (see weights/spectral.md).
The model in `weights/spectral.onnx` runs one small residual CNN per tile set (its convolutions are learned
frequency-selective filters, its pooled responses band energies: a learned spectral analysis; a hand-made
spectrum, log power of Hann-windowed tile FFTs into an MLP, reached only AUC 0.85 on the same data), averages the
tile logits per set, adds the two, and Platt-scales the sum inside the graph, so it returns calibrated scores.

`image_tiles` is the ONE feature implementation: the training script and the scorer both call it.
"""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

MODEL_FILE = "spectral.onnx"
TILE = 64            # px; the smallest image we score is 64 px, so one tile always fits
GRID = 3             # GRID x GRID tiles spread evenly over the image (they overlap on small images)
OVERVIEW_SIDE = 160  # px, longer side of the overview the second tile set is cut from (never upscaled)
TILES_PER_SCALE = GRID * GRID
TILES_PER_IMAGE = 2 * TILES_PER_SCALE   # native tiles first, then overview tiles
BATCH_IMAGES = 64    # images per ONNX run: big enough to amortise the call, small enough for any memory


def as_rgb(image: np.ndarray) -> np.ndarray:
    """HxW, HxWx1, HxWx3 or HxWx4 uint8 -> HxWx3 uint8 (grey is repeated, alpha dropped)."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
        raise ValueError(f"expected an HxW, HxWx1, HxWx3 or HxWx4 image, got shape {image.shape}")
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    return image[:, :, :3]


def _grid_starts(length: int) -> np.ndarray:
    return np.linspace(0, length - TILE, GRID).round().astype(int)


def overview(rgb: np.ndarray) -> np.ndarray:
    """The whole image with its longer side at OVERVIEW_SIDE px (area-averaged; smaller images unchanged)."""
    h, w = rgb.shape[:2]
    scale = OVERVIEW_SIDE / max(h, w)
    if scale >= 1:
        return rgb
    return cv2.resize(np.ascontiguousarray(rgb), (max(1, round(w * scale)), max(1, round(h * scale))),
                      interpolation=cv2.INTER_AREA)


def image_tiles(image: np.ndarray) -> np.ndarray:
    """uint8 [TILES_PER_IMAGE, TILE, TILE, 3]: GRID x GRID tiles at native resolution, then GRID x GRID tiles of
    the overview. Images smaller than a tile (below the 64 px we promise to score) are mirror-padded."""
    rgb = as_rgb(image)
    return np.concatenate([grid_tiles(rgb), grid_tiles(overview(rgb))])


def grid_tiles(rgb: np.ndarray) -> np.ndarray:
    """GRID x GRID tiles of TILE x TILE px, corner to corner: uint8 [TILES_PER_SCALE, TILE, TILE, 3]."""
    h, w = rgb.shape[:2]
    if h < TILE or w < TILE:
        rgb = np.pad(rgb, ((0, max(TILE - h, 0)), (0, max(TILE - w, 0)), (0, 0)), mode="symmetric")
        h, w = rgb.shape[:2]
    return np.stack([rgb[y:y + TILE, x:x + TILE] for y in _grid_starts(h) for x in _grid_starts(w)]).astype(np.uint8)


class SpectralDetector:
    """Scores RGB images (any size from 64 px, JPEG-recompressed or not) for StyleGAN upsampling traces."""

    def __init__(self, runtime):
        self.runtime = runtime
        self.input_name = runtime.input_names(MODEL_FILE)[0]

    def thresholds(self) -> dict[str, float]:
        """Operating points stored in the model (score thresholds fixed on the calibration fold), e.g.
        {"fpr_1pct": ..., "fpr_0.1pct": ...}."""
        meta = self.runtime.session(MODEL_FILE).get_modelmeta().custom_metadata_map
        return {k[len("threshold_"):]: float(v) for k, v in meta.items() if k.startswith("threshold_")}

    def score(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """float32 [N] in [0, 1]: calibrated probability of a StyleGAN-family face (see weights/spectral.md)."""
        out = []
        for i in range(0, len(images), BATCH_IMAGES):
            tiles = np.stack([image_tiles(im) for im in images[i:i + BATCH_IMAGES]]).astype(np.float32)
            (scores,) = self.runtime.run(MODEL_FILE, {self.input_name: tiles})
            out.append(np.asarray(scores, dtype=np.float32).reshape(-1))
        return np.concatenate(out) if out else np.zeros(0, np.float32)
