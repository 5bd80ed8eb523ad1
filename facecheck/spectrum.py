"""Spectral StyleGAN detector: generator traces in the pixel noise of native-resolution tiles, plus the whole image.

A generator's upsampling layers leave periodic, high-frequency patterns in the pixel noise wherever in the frame
the face sits, so they survive the crops, shifts and mirroring that defeat geometric tests. Resizing moves and
blurs those traces, so `image_features` cuts fixed-size tiles on an even grid at native resolution (any image
size and any crop gives the same input layout); only images larger than CAP_SIDE px are first area-reduced to
CAP_SIDE, which keeps scoring cost flat for big photos and matches what the model was trained on (no training
image was larger: see weights/spectral.md). Beside the tiles, the whole image resized to WHOLE_SIDE x WHOLE_SIDE
feeds a second network that sees how the generator renders skin, hair, eyes and background as a whole: the
StyleGAN faces of our data were already downscaled 2-4x, which blurs the upsampling traces, and the whole-image
view carried most of the signal there.
The model in `weights/spectral.onnx` runs a residual CNN on each tile (its convolutions are learned
frequency-selective filters, its pooled responses band energies: a learned spectral analysis), averages the tile
logits, adds the whole-image CNN's logit, and Platt-scales the sum inside the graph, so it returns calibrated
scores.

`image_features` is the ONE feature implementation: the training scripts and the scorer both call it.
"""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from .pyramid import Pyramid, as_pyramid

MODEL_FILE = "spectral.onnx"
TILE = 64            # px; the smallest image we score is 64 px, so one tile always fits
GRID = 3             # GRID x GRID tiles spread evenly over the image (they overlap on small images)
TILES_PER_IMAGE = GRID * GRID
CAP_SIDE = 320       # px; larger images are area-reduced to this longer side before tiling (never upscaled)
WHOLE_SIDE = 160     # px; the whole image is resized to WHOLE_SIDE x WHOLE_SIDE for the whole-image branch
BATCH_IMAGES = 32    # images per ONNX run: big enough to amortise the call, small enough for any memory


def capped(image: "np.ndarray | Pyramid") -> np.ndarray:
    """The RGB image with its longer side at most CAP_SIDE px (area-averaged, through its resize pyramid;
    smaller images unchanged)."""
    pyramid = as_pyramid(image)
    h, w = pyramid.shape[:2]
    scale = CAP_SIDE / max(h, w)
    if scale >= 1:
        return pyramid.image
    return pyramid.resize((max(1, round(w * scale)), max(1, round(h * scale))), cv2.INTER_AREA)


def whole_view(rgb: np.ndarray) -> np.ndarray:
    """The whole image resized to WHOLE_SIDE x WHOLE_SIDE (area when shrinking, bilinear when enlarging):
    uint8 [WHOLE_SIDE, WHOLE_SIDE, 3]."""
    h, w = rgb.shape[:2]
    shrink = max(h, w) >= WHOLE_SIDE
    return cv2.resize(rgb, (WHOLE_SIDE, WHOLE_SIDE), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def _grid_starts(length: int) -> np.ndarray:
    return np.linspace(0, length - TILE, GRID).round().astype(int)


def grid_tiles(rgb: np.ndarray) -> np.ndarray:
    """GRID x GRID tiles of TILE x TILE px, corner to corner: uint8 [TILES_PER_IMAGE, TILE, TILE, 3]. Images
    smaller than a tile (below the 64 px we promise to score) are mirror-padded."""
    h, w = rgb.shape[:2]
    if h < TILE or w < TILE:
        rgb = np.pad(rgb, ((0, max(TILE - h, 0)), (0, max(TILE - w, 0)), (0, 0)), mode="symmetric")
        h, w = rgb.shape[:2]
    return np.stack([rgb[y:y + TILE, x:x + TILE] for y in _grid_starts(h) for x in _grid_starts(w)]).astype(np.uint8)


def image_features(image: "np.ndarray | Pyramid") -> tuple[np.ndarray, np.ndarray]:
    """(tiles uint8 [TILES_PER_IMAGE, TILE, TILE, 3] of the capped image at native resolution,
    whole uint8 [WHOLE_SIDE, WHOLE_SIDE, 3]): the model's two inputs for one image."""
    rgb = capped(image)
    return grid_tiles(rgb), whole_view(rgb)


def batch_features(images: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
    """The ONNX model's inputs for a batch: {"tiles": float32 [N, T, TILE, TILE, 3], "whole": float32
    [N, WHOLE_SIDE, WHOLE_SIDE, 3]}, values 0..255."""
    feats = [image_features(im) for im in images]
    return {"tiles": np.stack([t for t, _ in feats]).astype(np.float32),
            "whole": np.stack([w for _, w in feats]).astype(np.float32)}


class SpectralDetector:
    """Scores RGB images (any size from 64 px, JPEG-recompressed or not) for StyleGAN generator traces."""

    def __init__(self, runtime):
        self.runtime = runtime
        self.input_names = runtime.input_names(MODEL_FILE)

    def thresholds(self) -> dict[str, float]:
        """Operating points stored in the model (score thresholds fixed on the calibration fold), e.g.
        {"fpr_1pct": ..., "fpr_0.1pct": ...}."""
        meta = self.runtime.session(MODEL_FILE).get_modelmeta().custom_metadata_map
        return {k[len("threshold_"):]: float(v) for k, v in meta.items() if k.startswith("threshold_")}

    def score(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """float32 [N] in [0, 1]: calibrated probability of a StyleGAN-family face (see weights/spectral.md)."""
        out = []
        for i in range(0, len(images), BATCH_IMAGES):
            inputs = batch_features(images[i:i + BATCH_IMAGES])
            (scores,) = self.runtime.run(MODEL_FILE, {k: inputs[k] for k in self.input_names})
            out.append(np.asarray(scores, dtype=np.float32).reshape(-1))
        return np.concatenate(out) if out else np.zeros(0, np.float32)
