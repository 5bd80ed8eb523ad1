"""Colour changes applied to every class alike in training, so that colour is never evidence of a StyleGAN face.

Issue 20: the v2 backbone flagged 67.4% of StyleGAN faces in colour and 9.3% of the same faces in greyscale. The v3
training data (training/backbone3_data.py) gives each degraded copy, whatever its label, one of these with the same
probabilities: greyscale, partly desaturated, sepia, a colour cast (channel gains and offsets), or no change.
Pure functions on PIL images; never imported by facecheck.
"""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageEnhance

# (name, probability); the rest of the copies keep their colours
CHOICES = (("greyscale", 0.2), ("desaturated", 0.1), ("sepia", 0.1), ("colour_cast", 0.2))
SEPIA = np.array([[0.393, 0.769, 0.189], [0.349, 0.686, 0.168], [0.272, 0.534, 0.131]], np.float32)


def greyscale(img: Image.Image) -> Image.Image:
    return img.convert("L").convert("RGB")


def desaturated(img: Image.Image, keep: float) -> Image.Image:
    """Colour saturation scaled to `keep` (0 = greyscale, 1 = unchanged)."""
    return ImageEnhance.Color(img.convert("RGB")).enhance(keep)


def sepia(img: Image.Image) -> Image.Image:
    arr = np.asarray(img.convert("RGB"), np.float32) @ SEPIA.T
    return Image.fromarray(np.clip(arr + 0.5, 0, 255).astype(np.uint8))


def colour_cast(img: Image.Image, gains, offsets) -> Image.Image:
    """Per-channel gain and offset (0..255 scale), as a white-balance error or a filter would."""
    arr = np.asarray(img.convert("RGB"), np.float32) * np.asarray(gains, np.float32) + np.asarray(offsets, np.float32)
    return Image.fromarray(np.clip(arr + 0.5, 0, 255).astype(np.uint8))


def random_colour(img: Image.Image, rng: np.random.Generator) -> tuple[Image.Image, str]:
    """One colour change drawn from CHOICES (or none), and its name."""
    r = rng.random()
    for name, p in CHOICES:
        if r < p:
            break
        r -= p
    else:
        return img, "none"
    if name == "greyscale":
        return greyscale(img), name
    if name == "desaturated":
        return desaturated(img, float(rng.uniform(0.2, 0.7))), name
    if name == "sepia":
        return sepia(img), name
    return colour_cast(img, rng.uniform(0.85, 1.15, 3), rng.uniform(-15, 15, 3)), name
