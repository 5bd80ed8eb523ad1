"""Safe, fast image loading: any file in, an RGB image or a one-line error out.

Every format Pillow reads in a profile-photo archive (JPEG, PNG, WebP, GIF first frame, BMP, TIFF)
comes out as 8-bit RGB after EXIF orientation: CMYK, 16-bit, palette and alpha (composited on white)
are converted. Decompression bombs are refused by a pixel limit read from the header before any
pixel is decoded, and oversized files by a byte limit. Large JPEGs are decoded at reduced size
(libjpeg's DCT scaling via Pillow's draft mode) when the caller needs no more pixels than that.
"""
from __future__ import annotations

import hashlib
import struct
import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

DEFAULT_MAX_PIXELS = 50_000_000      # ~7000 x 7000; avatars are far smaller
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".webp", ".gif", ".bmp", ".dib", ".tif", ".tiff"}

ImageFile.LOAD_TRUNCATED_IMAGES = False   # a truncated file is an error, not a half-grey image


class LoadError(Exception):
    """The file could not be turned into an image; the message is one line for the results."""


@dataclass
class LoadedImage:
    image: Image.Image   # RGB, EXIF-oriented, possibly reduced (see `scale`)
    width: int           # full size after EXIF orientation
    height: int
    sha256: str | None   # of the file's bytes, when loaded from bytes or a path

    @property
    def scale(self) -> float:
        """Size of `image` relative to the full image (1.0 unless decoded at reduced size)."""
        return self.image.width / self.width

    def rgb(self) -> np.ndarray:
        return np.asarray(self.image)


def read_file(path: str | Path, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise LoadError(f"file is {size / 1e6:.0f} MB, over the {max_bytes / 1e6:.0f} MB limit")
        with open(path, "rb") as f:
            return f.read()
    except LoadError:
        raise
    except IsADirectoryError:
        raise LoadError("is a directory") from None
    except OSError as e:
        raise LoadError(f"cannot read file: {e.strerror or e}") from None


def decode(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS, min_side: int | None = None) -> LoadedImage:
    """Bytes -> LoadedImage, or LoadError with a one-line reason.

    min_side: the smallest shorter side the caller needs; a JPEG larger than twice that is decoded
    at 1/2, 1/4 or 1/8 scale (never below min_side)."""
    if not data:
        raise LoadError("empty file")
    digest = hashlib.sha256(data).hexdigest()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            w, h = img.size   # from the header: nothing decoded yet
            if w * h > max_pixels:
                raise LoadError(f"image claims {w}x{h} pixels, over the {max_pixels:,}-pixel limit "
                                f"(decompression bomb guard)")
            if getattr(img, "n_frames", 1) > 1:
                img.seek(0)
            if min_side and img.format == "JPEG":
                img.draft("RGB", (min_side, min_side))
            img.load()
            full_w, full_h = w, h
            orientation = img.getexif().get(0x0112, 1)
            img = ImageOps.exif_transpose(img)
            if orientation in (5, 6, 7, 8):
                full_w, full_h = h, w
            rgb = to_rgb(img)
    except LoadError:
        raise
    except Image.DecompressionBombError as e:
        raise LoadError(f"refused as a decompression bomb: {str(e).splitlines()[0]}") from None
    except UnidentifiedImageError:
        raise LoadError(f"not an image ({describe_bytes(data)})") from None
    except (OSError, SyntaxError, ValueError, EOFError, struct.error, MemoryError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise LoadError(f"cannot decode image: {msg}") from None
    if rgb.width < 1 or rgb.height < 1:
        raise LoadError("image has no pixels")
    return LoadedImage(rgb, full_w, full_h, digest)


def describe_bytes(data: bytes) -> str:
    head = data[:64].lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html")):
        return "an HTML page"
    if head.startswith(b"%pdf"):
        return "a PDF"
    if head.startswith((b"{", b"[")):
        return "JSON or text"
    return f"{len(data)} bytes, starting {data[:8].hex()}"


def to_rgb(img: Image.Image) -> Image.Image:
    """Any Pillow mode -> 8-bit RGB; transparency is composited on white."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        # 16/32-bit grey: rescale to 8 bits instead of clipping at 255 as convert("L") would
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        arr = np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(arr).convert("RGB")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img.convert("RGB")


def load_image(source, *, max_pixels: int = DEFAULT_MAX_PIXELS, max_bytes: int = DEFAULT_MAX_BYTES,
               min_side: int | None = None) -> LoadedImage:
    """A path, bytes, PIL image or numpy array (HxW or HxWx3/4 uint8) -> LoadedImage."""
    if isinstance(source, (str, Path)):
        return decode(read_file(source, max_bytes), max_pixels=max_pixels, min_side=min_side)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return decode(bytes(source), max_pixels=max_pixels, min_side=min_side)
    if isinstance(source, Image.Image):
        img = ImageOps.exif_transpose(source)
        return LoadedImage(to_rgb(img), img.width, img.height, None)
    if isinstance(source, np.ndarray):
        arr = source
        if arr.dtype != np.uint8:
            raise LoadError(f"numpy images must be uint8, not {arr.dtype}")
        if arr.ndim == 3 and arr.shape[2] == 1:
            arr = arr[:, :, 0]
        if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
            raise LoadError(f"numpy image of shape {arr.shape}; expected HxW, HxWx3 (RGB) or HxWx4 (RGBA)")
        img = to_rgb(Image.fromarray(arr))
        return LoadedImage(img, img.width, img.height, None)
    raise TypeError(f"cannot load an image from {type(source).__name__}")


def is_candidate_file(path: Path) -> bool:
    """Files a scan looks at: anything that is not hidden. Suffixes are not trusted (a .jpg may be
    HTML, a .dat may be a JPEG), so every regular file gets a row."""
    return not path.name.startswith(".")
