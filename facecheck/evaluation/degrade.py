"""Platform-style degradations of an image, shared by tests, benchmarks, training and `facecheck eval`.

Platforms re-encode avatars: they downscale, recompress as JPEG, crop a little, mirror, add borders,
and users adjust brightness. Every evaluation in facecheck degrades every class the same way through
these functions, so that no detector can learn one source's processing instead of the generator.
Not used on the scoring path.
"""
from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageFilter


def downscale(img: Image.Image, longer_side: int) -> Image.Image:
    """Resize so that the longer side is `longer_side` px (never upscales)."""
    w, h = img.size
    scale = longer_side / max(w, h)
    if scale >= 1:
        return img
    return img.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.LANCZOS)


def resize_to(img: Image.Image, longer_side: int) -> Image.Image:
    """Resize so that the longer side is exactly `longer_side` px, up or down."""
    w, h = img.size
    scale = longer_side / max(w, h)
    return img.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.LANCZOS)


def jpeg(img: Image.Image, quality: int, subsampling: int | None = None) -> Image.Image:
    """Recompress as JPEG at `quality` (4:2:0 chroma by default, as platforms do)."""
    buf = io.BytesIO()
    kwargs = {} if subsampling is None else {"subsampling": subsampling}
    img.convert("RGB").save(buf, "JPEG", quality=int(quality), **kwargs)
    buf.seek(0)
    out = Image.open(buf)
    out.load()
    return out


def crop_fraction(img: Image.Image, fraction: float, rng: np.random.Generator | None = None) -> Image.Image:
    """Remove `fraction` of the width and of the height, split between the sides at random
    (centred when rng is None). A 90% crop is crop_fraction(img, 0.10)."""
    w, h = img.size
    cut_w, cut_h = round(w * fraction), round(h * fraction)
    if rng is None:
        left, top = cut_w // 2, cut_h // 2
    else:
        left, top = int(rng.integers(0, cut_w + 1)), int(rng.integers(0, cut_h + 1))
    return img.crop((left, top, w - (cut_w - left), h - (cut_h - top)))


def mirror(img: Image.Image) -> Image.Image:
    return img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)


def add_border(img: Image.Image, fraction: float, colour=(255, 255, 255)) -> Image.Image:
    """A plain border of `fraction` of the longer side on every edge."""
    w, h = img.size
    pad = max(1, round(max(w, h) * fraction))
    out = Image.new("RGB", (w + 2 * pad, h + 2 * pad), colour)
    out.paste(img.convert("RGB"), (pad, pad))
    return out


def brightness_gamma(img: Image.Image, gain: float = 1.0, gamma: float = 1.0) -> Image.Image:
    arr = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    arr = np.clip(arr ** gamma * gain, 0, 1)
    return Image.fromarray((arr * 255 + 0.5).astype(np.uint8))


def greyscale(img: Image.Image) -> Image.Image:
    """Converted to greyscale (PIL's "L": ITU-R 601 luma) and back to RGB, as a black-and-white avatar is stored."""
    return img.convert("L").convert("RGB")


def blur(img: Image.Image, radius: float) -> Image.Image:
    return img.filter(ImageFilter.GaussianBlur(radius))


def sharpen(img: Image.Image, percent: int = 80) -> Image.Image:
    return img.filter(ImageFilter.UnsharpMask(radius=1.5, percent=percent, threshold=2))


# Named, deterministic conditions for reporting results: "what the image went through".
# Each maps an image to a degraded copy; sizes are the longer side in px.
def standard_conditions() -> dict[str, callable]:
    return {
        "400px_q90": lambda im: jpeg(downscale(im, 400), 90),
        "400px_q70": lambda im: jpeg(downscale(im, 400), 70),
        "256px_q85": lambda im: jpeg(downscale(im, 256), 85),
        "256px_q70": lambda im: jpeg(downscale(im, 256), 70),
        "150px_q80": lambda im: jpeg(downscale(im, 150), 80),
        "q60": lambda im: jpeg(im, 60),
        "q95": lambda im: jpeg(im, 95),
        "crop90_256px_q85": lambda im: jpeg(downscale(crop_fraction(im, 0.10), 256), 85),
        "mirror_256px_q85": lambda im: jpeg(downscale(mirror(im), 256), 85),
    }


def random_platform(img: Image.Image, rng: np.random.Generator, *, min_side: int = 96, max_side: int = 512,
                    q_range=(50, 98), max_crop: float = 0.08) -> Image.Image:
    """One random platform-style degradation, for training augmentation; the same for every class."""
    if rng.random() < 0.5:
        img = crop_fraction(img, float(rng.uniform(0, max_crop)), rng)
    if rng.random() < 0.5:
        img = mirror(img)
    img = downscale(img, int(rng.integers(min_side, max_side + 1)))
    r = rng.random()
    if r < 0.15:
        img = blur(img, float(rng.uniform(0.3, 1.0)))
    elif r < 0.3:
        img = sharpen(img, int(rng.integers(30, 120)))
    if rng.random() < 0.9:
        img = jpeg(img, int(rng.integers(q_range[0], q_range[1] + 1)))
    return img


def random_repost(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """What reposting an avatar does: resize to 150-400 px, JPEG q60-95, crop up to 8%, mirror,
    a plain border up to 5%, brightness and gamma changes."""
    if rng.random() < 0.5:
        img = crop_fraction(img, float(rng.uniform(0, 0.08)), rng)
    if rng.random() < 0.5:
        img = mirror(img)
    if rng.random() < 0.25:
        img = add_border(img, float(rng.uniform(0.01, 0.05)), tuple(int(v) for v in rng.integers(0, 256, 3)))
    if rng.random() < 0.3:
        img = brightness_gamma(img, float(rng.uniform(0.8, 1.2)), float(rng.uniform(0.7, 1.4)))
    img = resize_to(img, int(rng.integers(150, 401)))
    return jpeg(img, int(rng.integers(60, 96)))
