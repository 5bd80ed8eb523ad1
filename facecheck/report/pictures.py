"""Pictures for report.html as plain data: thumbnails and drawings encoded as data: URIs, and the
eye-template overlay as numbers that the template draws as SVG. Nothing here writes markup.

Files are read from the scanned folder only, through the safe loader; a path that would leave the
folder, or a file that cannot be read, becomes a short reason shown in place of the picture."""
from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import NamedTuple

import numpy as np
from PIL import Image

from ..loading import LoadError, load_image
from ..result import Result
from .words import short

THUMB_MAX_PIXELS = 50_000_000
THUMB_MAX_BYTES = 64 * 1024 * 1024
HEATMAP_SIDE = 400         # px of the rendered heatmap

# Colour ramp of the heatmap (light to dark, prints well): white for empty bins.
RAMP = np.array([(255, 255, 255), (255, 237, 160), (254, 178, 76), (240, 59, 32), (128, 0, 38)], float)


class Circle(NamedTuple):
    cx: str
    cy: str
    r: str


class Line(NamedTuple):
    x1: str
    y1: str
    x2: str
    y2: str


@dataclass(frozen=True)
class Overlay:
    """An SVG laid over a picture of width x height units, drawn in this order: a dashed grid and a
    frame (the heatmap only), the template's eye rings with their ticks, the detected eyes as dots."""
    width: str
    height: str
    grid: list[Line]
    frame: bool
    rings: list[Circle]
    ticks: list[Line]
    eyes: list[Circle]


@dataclass(frozen=True)
class Picture:
    """A thumbnail (uri, width, height) with an optional overlay, or `missing`: why there is none
    (then a placeholder of side x side px is drawn)."""
    side: int
    uri: str | None = None
    width: int = 0
    height: int = 0
    overlay: Overlay | None = None
    missing: str | None = None

    @property
    def shown_height(self) -> int:
        return self.height if self.uri else self.side


def open_image(folder: Path | None, rel: str, min_side: int) -> Image.Image | str:
    """The file at `rel` (a results path) as an RGB image, EXIF-oriented, or a short reason why not."""
    if folder is None:
        return "scanned folder not given"
    parts = PurePosixPath(rel).parts
    if not parts or PurePosixPath(rel).is_absolute() or ".." in parts:
        return "path outside the scanned folder"
    try:
        loaded = load_image(folder.joinpath(*parts), max_pixels=THUMB_MAX_PIXELS,
                            max_bytes=THUMB_MAX_BYTES, min_side=min_side)
        return loaded.image
    except LoadError as e:
        return str(e)
    except Exception as e:   # a thumbnail must never end the report
        return f"unexpected {type(e).__name__}"


def picture(folder: Path | None, r: Result, side: int, template=None) -> Picture:
    """A thumbnail of the row's file, its longer side `side` px; with `template` (an EyeTemplate), the
    template and the row's eyes are drawn over it."""
    img = open_image(folder, r.path, min_side=side)
    if not isinstance(img, Image.Image):
        return Picture(side, missing=short(img, 80))
    full_w, full_h = r.width or img.width, r.height or img.height
    thumb = img.copy()
    thumb.thumbnail((side, side), Image.LANCZOS)
    drawn = overlay(full_w, full_h, template, r.eyes) if template is not None else None
    return Picture(side, jpeg_uri(thumb), thumb.width, thumb.height, drawn)


def jpeg_uri(img: Image.Image, quality: int = 82) -> str:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=quality, optimize=True)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def png_uri(img: Image.Image) -> str:
    buf = io.BytesIO()
    img.save(buf, "PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def colour(values: np.ndarray) -> np.ndarray:
    """[0, 1] -> RGB uint8 along RAMP."""
    pos = np.clip(values, 0.0, 1.0) * (len(RAMP) - 1)
    lo = np.minimum(pos.astype(int), len(RAMP) - 2)
    frac = (pos - lo)[..., None]
    return np.clip(RAMP[lo] * (1 - frac) + RAMP[lo + 1] * frac + 0.5, 0, 255).astype(np.uint8)


def heatmap_image(hist: np.ndarray) -> Image.Image:
    counts = np.log1p(hist.astype(np.float64))
    top = counts.max()
    scaled = counts / top if top > 0 else counts
    # Any non-empty bin gets at least the first colour step, so a single eye stays visible.
    scaled = np.where(hist > 0, 0.12 + 0.88 * scaled, 0.0)
    return Image.fromarray(colour(scaled)).resize((HEATMAP_SIDE, HEATMAP_SIDE), Image.NEAREST)


def ramp_swatches(steps: int = 9) -> list[str]:
    """CSS colours along the ramp, for the heatmap's legend."""
    return [f"rgb{tuple(int(c) for c in rgb)}" for rgb in colour(np.linspace(0, 1, steps))]


def overlay(width: float, height: float, template, eyes, grid: bool = False) -> Overlay:
    """Template eye rings (with crosshair ticks) and the detected eyes over a width x height picture.
    Strokes keep their screen width whatever the picture's scale (the CSS says so)."""
    w, h = float(width), float(height)
    r = 0.04 * w
    lines = [Line(f"{f * w:g}", "0", f"{f * w:g}", f"{h:g}") for f in (0.25, 0.5, 0.75)] if grid else []
    lines += [Line("0", f"{f * h:g}", f"{w:g}", f"{f * h:g}") for f in (0.25, 0.5, 0.75)] if grid else []
    rings, ticks = [], []
    for tx, ty in (template.left_eye, template.right_eye):
        cx, cy = tx * w, ty * h
        rings.append(Circle(f"{cx:.4g}", f"{cy:.4g}", f"{r:.4g}"))
        ticks += [Line(f"{cx - 2 * r:.4g}", f"{cy:.4g}", f"{cx - r:.4g}", f"{cy:.4g}"),
                  Line(f"{cx + r:.4g}", f"{cy:.4g}", f"{cx + 2 * r:.4g}", f"{cy:.4g}"),
                  Line(f"{cx:.4g}", f"{cy - 2 * r:.4g}", f"{cx:.4g}", f"{cy - r:.4g}"),
                  Line(f"{cx:.4g}", f"{cy + r:.4g}", f"{cx:.4g}", f"{cy + 2 * r:.4g}")]
    dots = []
    for eye in eyes or []:
        try:
            ex, ey = float(eye[0]), float(eye[1])
        except (TypeError, ValueError, IndexError):
            continue
        dots.append(Circle(f"{ex:.4g}", f"{ey:.4g}", f"{0.012 * w:.4g}"))
    return Overlay(f"{w:g}", f"{h:g}", lines, grid, rings, ticks, dots)
