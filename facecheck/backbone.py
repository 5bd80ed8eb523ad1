"""StyleGAN detector: an ImageNet-pretrained EfficientNet-Lite0 fine-tuned on degraded faces (weights/backbone.onnx).

The model reads up to two views of an image (card: weights/backbone.md, which says which views it reads):
- the whole image resized (squashed) to INPUT_SIDE x INPUT_SIDE, area-averaged when shrinking, bilinear when
  enlarging;
- native patches: a 2x2 grid of PATCH px patches cut from the central 2*PATCH square at the stored resolution, where
  resizing has not averaged the generator's traces away. An image whose shorter side is under PATCH has none; the
  model then reads its whole view in their place.

ONNX inputs, float32 values 0..255 (RGB), normalised as the pretrained weights expect inside the graph:
`image` [N, S, S, 3] always; `patches` [P, S, S, 3] and `pool` [N, P] when the model reads patches (`pool` row i
averages image i's patches and is all zero when it has none). Outputs: a Platt-calibrated probability of a
StyleGAN-family face, and the logit. No torch here: ONNX Runtime only, through facecheck.runtime.Runtime.

Where weights/backbone_grey.onnx ships (same inputs and outputs), black-and-white images (facecheck.colour.
is_colourless) are scored by it instead: a model trained on colour ranks grey StyleGAN faces far lower, and each
image still costs one backbone run. Its card, weights/backbone_grey.md, says what it was trained on.
"""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from .pyramid import Pyramid, as_pyramid

MODEL_FILE = "backbone.onnx"
GREY_MODEL_FILE = "backbone_grey.onnx"   # optional: scores the colourless images where it ships
INPUT_SIDE = 128
PATCH = 128
BATCH_IMAGES = 32


def model_input(image: "np.ndarray | Pyramid", side: int = INPUT_SIDE) -> np.ndarray:
    """uint8 [side, side, 3]: the whole RGB image resized (squashed) to side x side, through its resize pyramid."""
    pyramid = as_pyramid(image)
    h, w = pyramid.shape[:2]
    shrink = max(h, w) >= side
    return pyramid.resize((side, side), cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def native_patches(image: "np.ndarray | Pyramid", patch: int = PATCH) -> np.ndarray | None:
    """uint8 [4, patch, patch, 3]: a 2x2 grid of patches at native resolution over the central 2*patch square
    (overlapping on images under 2*patch px), or None when the shorter side is under `patch`."""
    rgb = as_pyramid(image).image
    h, w = rgb.shape[:2]
    if min(h, w) < patch:
        return None

    def starts(d):
        region = min(2 * patch, d)
        first = (d - region) // 2
        return first, first + region - patch
    ys, xs = starts(h), starts(w)
    return np.stack([rgb[y:y + patch, x:x + patch] for y in ys for x in xs])


def patch_inputs(images: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
    """The `patches` and `pool` inputs for a batch of images (see the module docstring)."""
    sets = [native_patches(im) for im in images]
    found = [p for p in sets if p is not None]
    # a batch of small images still passes one (zero, unpooled) patch: a graph input of length 0 is not portable
    patches = np.concatenate(found) if found else np.zeros((1, PATCH, PATCH, 3), np.uint8)
    pool = np.zeros((len(images), len(patches)), np.float32)
    at = 0
    for row, p in enumerate(sets):
        if p is not None:
            pool[row, at:at + len(p)] = 1.0 / len(p)
            at += len(p)
    return {"patches": patches.astype(np.float32), "pool": pool}


def model_feeds(images: Sequence[np.ndarray], reads_patches: bool, input_name: str = "image") -> dict[str, np.ndarray]:
    """Everything the ONNX model is fed for a batch of images: the whole view, and the patches when it reads them."""
    feeds = {input_name: np.stack([model_input(im) for im in images]).astype(np.float32)}
    return (feeds | patch_inputs(images)) if reads_patches else feeds


class BackboneModel:
    """One backbone ONNX file: what it reads, and its scores."""

    def __init__(self, runtime, filename: str):
        self.runtime, self.filename = runtime, filename
        names = runtime.input_names(filename)
        self.input_name = names[0]
        self.reads_patches = {"patches", "pool"} <= set(names)

    def score(self, images: Sequence[np.ndarray]) -> np.ndarray:
        out = []
        for i in range(0, len(images), BATCH_IMAGES):
            feeds = model_feeds(images[i:i + BATCH_IMAGES], self.reads_patches, self.input_name)
            scores = self.runtime.run(self.filename, feeds)[0]   # outputs: score, logit
            out.append(np.asarray(scores, dtype=np.float32).reshape(-1))
        return np.concatenate(out) if out else np.zeros(0, np.float32)


class BackboneDetector:
    """Scores RGB images for StyleGAN faces with the fine-tuned pretrained backbone (and, where it ships, the
    colourless ones with the grey model)."""

    def __init__(self, runtime):
        from .runtime import weights_path
        self.runtime = runtime
        self.main = BackboneModel(runtime, MODEL_FILE)
        self.grey = BackboneModel(runtime, GREY_MODEL_FILE) if weights_path(GREY_MODEL_FILE).is_file() else None

    def thresholds(self) -> dict[str, float]:
        meta = self.runtime.session(MODEL_FILE).get_modelmeta().custom_metadata_map
        return {k[len("threshold_"):]: float(v) for k, v in meta.items() if k.startswith("threshold_")}

    def score(self, images: Sequence[np.ndarray], colourless: Sequence[bool] | None = None) -> np.ndarray:
        """One score per image; `colourless` (one flag per image) routes the black-and-white ones to the grey
        model where it ships."""
        grey = np.zeros(len(images), bool)
        if self.grey is not None and colourless is not None:
            grey = np.asarray(colourless, bool)
        scores = np.zeros(len(images), np.float32)
        for model, rows in ((self.main, np.flatnonzero(~grey)), (self.grey, np.flatnonzero(grey))):
            if len(rows):
                scores[rows] = model.score([images[i] for i in rows])
        return scores
