"""StyleGAN detector v2: an ImageNet-pretrained EfficientNet-Lite0 fine-tuned on degraded faces (weights/backbone.onnx).

The whole image is resized to INPUT_SIDE x INPUT_SIDE (area-averaged when shrinking, bilinear when enlarging) and
scored by the ONNX model, which takes float32 [N, S, S, 3] values 0..255 (RGB), normalises them as the pretrained
weights expect ((x - 127) / 128) inside the graph, and returns a Platt-calibrated probability of a StyleGAN-family
face. Built by training/train_backbone.py (card: weights/backbone.md). No torch here: ONNX Runtime only, through
facecheck.runtime.Runtime.
"""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

MODEL_FILE = "backbone.onnx"
INPUT_SIDE = 128
BATCH_IMAGES = 32


def model_input(image: np.ndarray, side: int = INPUT_SIDE) -> np.ndarray:
    """uint8 [side, side, 3]: the whole RGB image resized (squashed) to side x side."""
    from .spectrum import as_rgb
    rgb = as_rgb(image)
    h, w = rgb.shape[:2]
    shrink = max(h, w) >= side
    return cv2.resize(rgb, (side, side), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


class BackboneDetector:
    """Scores RGB images for StyleGAN faces with the fine-tuned pretrained backbone."""

    def __init__(self, runtime):
        self.runtime = runtime
        self.input_name = runtime.input_names(MODEL_FILE)[0]

    def thresholds(self) -> dict[str, float]:
        meta = self.runtime.session(MODEL_FILE).get_modelmeta().custom_metadata_map
        return {k[len("threshold_"):]: float(v) for k, v in meta.items() if k.startswith("threshold_")}

    def score(self, images: Sequence[np.ndarray]) -> np.ndarray:
        out = []
        for i in range(0, len(images), BATCH_IMAGES):
            batch = np.stack([model_input(im) for im in images[i:i + BATCH_IMAGES]]).astype(np.float32)
            scores = self.runtime.run(MODEL_FILE, {self.input_name: batch})[0]   # outputs: score, logit
            out.append(np.asarray(scores, dtype=np.float32).reshape(-1))
        return np.concatenate(out) if out else np.zeros(0, np.float32)
