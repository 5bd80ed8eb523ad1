"""Safe, fast image loading: any file in, an RGB image or a one-line error out.

Every format Pillow reads in a profile-photo archive (JPEG, PNG, WebP, GIF first frame, BMP, TIFF)
comes out as 8-bit RGB after EXIF orientation: CMYK, 16-bit, palette and alpha (composited on white)
are converted. Decompression bombs are refused by a pixel limit read from the header before any
pixel is decoded, and oversized files by a byte limit. Large JPEGs are decoded at reduced size
(libjpeg's DCT scaling via Pillow's draft mode) when the caller needs no more pixels than that.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import signal
import stat
import sys
import tempfile
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

DEFAULT_MAX_PIXELS = 50_000_000      # ~7000 x 7000; avatars are far smaller
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
DEFAULT_MAX_SECONDS = 10.0           # an avatar decodes in milliseconds; the fuzzer's slowest case took < 0.1 s
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".webp", ".gif", ".bmp", ".dib", ".tif", ".tiff"}

ImageFile.LOAD_TRUNCATED_IMAGES = False   # a truncated file is an error, not a half-grey image


class LoadError(Exception):
    """The file could not be turned into an image; the message is one line for the results.
    `sha256` is the hash of the bytes when they were read (an undecodable file keeps its identity)."""

    def __init__(self, message: str, sha256: str | None = None):
        super().__init__(message)
        self.sha256 = sha256


@dataclass
class LoadedImage:
    image: Image.Image   # RGB, EXIF-oriented, possibly reduced (see `scale`)
    width: int           # full size after EXIF orientation
    height: int
    sha256: str | None   # of the file's bytes, when loaded from bytes or a path
    warnings: list[str] = field(default_factory=list)   # what the decoder warned about (e.g. corrupt EXIF)
    reduced_from: bytes | None = field(default=None, repr=False)   # the file's bytes, kept only when reduced

    def full_rgb(self) -> np.ndarray:
        """The image at full size, as rgb() would give it without reduced-size decoding: rgb() itself
        unless the JPEG was decoded at reduced size, then a second, full decode of the same bytes.
        For what must not depend on the decode size (PDQ, which is compared with other tools' hashes)."""
        if self.reduced_from is None:
            return self.rgb()
        return decode(self.reduced_from, max_pixels=self.width * self.height).rgb()

    @property
    def scale(self) -> float:
        """Size of `image` relative to the full image (1.0 unless decoded at reduced size)."""
        return self.image.width / self.width

    def rgb(self) -> np.ndarray:
        return np.asarray(self.image)


def read_file(path: str | Path, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    path = Path(path)
    try:
        st = path.stat()
        if stat.S_ISDIR(st.st_mode):
            raise LoadError("is a directory")
        if not stat.S_ISREG(st.st_mode):   # reading a FIFO would block the scan forever
            raise LoadError(f"not a regular file ({file_kind(st.st_mode)})")
        if st.st_size > max_bytes:
            raise LoadError(f"file is {st.st_size / 1e6:.0f} MB, over the {max_bytes / 1e6:.0f} MB limit")
        with open(path, "rb") as f:
            return f.read()
    except LoadError:
        raise
    except OSError as e:
        raise LoadError(f"cannot read file: {e.strerror or e}") from None


def file_kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISDIR, "a directory"), (stat.S_ISLNK, "a link")):
        if test(mode):
            return name
    return "not a regular file"


def file_sha256(path: str | Path) -> str:
    """sha256 of a file's bytes, read in blocks (a rerun checks that unchanged-looking files are unchanged)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def _pillow_pixel_limit(max_pixels: int):
    """Pillow refuses images over twice its own global MAX_IMAGE_PIXELS (~179M) before we can: make
    its limit follow ours for this decode, so --max-pixels can be raised past it and every bomb is
    caught with our message."""
    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def decode(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS, min_side: int | None = None,
           max_seconds: float | None = DEFAULT_MAX_SECONDS) -> LoadedImage:
    """Bytes -> LoadedImage, or LoadError with a one-line reason (and the bytes' sha256).

    min_side: the smallest shorter side the caller needs; a JPEG larger than twice that is decoded
    at 1/2, 1/4 or 1/8 scale (never below min_side). max_seconds: a decode that takes longer is
    refused (a pathological file must not stall a scan)."""
    if not data:
        raise LoadError("empty file")
    digest = hashlib.sha256(data).hexdigest()
    try:
        with _time_limit(max_seconds):
            return _decode(data, digest, max_pixels, min_side)
    except LoadError as e:
        e.sha256 = digest
        raise
    except _DecodeTimeout:
        raise LoadError(f"decoding took over {max_seconds:g} s: refused as pathological", digest) from None


class _DecodeTimeout(BaseException):
    """Raised by the timer inside a decode; a BaseException so no decoder's except clause swallows it."""


@contextlib.contextmanager
def _time_limit(seconds: float | None):
    """Interrupt a decode that runs past `seconds` (SIGALRM; Pillow's decoders return to Python
    between chunks, where the handler runs). Only in a main thread, and only when no other interval
    timer is running: elsewhere the decode runs unbounded."""
    usable = (seconds and hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
              and signal.getitimer(signal.ITIMER_REAL)[0] == 0)
    if not usable:
        yield
        return

    def stop(signum, frame):
        raise _DecodeTimeout()
    previous = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _decode(data: bytes, digest: str, max_pixels: int, min_side: int | None) -> LoadedImage:
    tiff = data[:4] in (b"II*\x00", b"MM\x00*")   # libtiff writes its messages to fd 2 itself
    with warnings.catch_warnings(record=True) as caught, _pillow_pixel_limit(max_pixels), \
            _native_messages(tiff) as native:
        warnings.simplefilter("always")
        try:
            img = Image.open(io.BytesIO(data))
            w, h = img.size   # from the header: nothing decoded yet
            if w * h > max_pixels:
                raise LoadError(bomb_message(w * h, max_pixels, f"{w}x{h}"))
            # Frame 0 is where Image.open leaves a multi-frame file: never count or walk the other
            # frames (a damaged later frame must not fail a readable first one).
            if min_side and img.format == "JPEG":
                img.draft("RGB", (min_side, min_side))
            reduced = img.size != (w, h)
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
            pixels = re.search(r"\((\d+) pixels\)", str(e))
            raise LoadError(bomb_message(int(pixels.group(1)) if pixels else None, max_pixels)) from None
        except UnidentifiedImageError:
            raise LoadError(f"not an image ({describe_bytes(data)})") from None
        except MemoryError:
            raise LoadError("cannot decode image: out of memory") from None
        except Exception as e:   # noqa: BLE001 - any decoder failure is a bad file, never a crash
            msg = str(e).splitlines()[0] if str(e) else ""
            raise LoadError(f"cannot decode image ({type(e).__name__}{': ' + msg if msg else ''})") from None
    if rgb.width < 1 or rgb.height < 1:
        raise LoadError("image has no pixels")
    notes = [one_line(str(w.message)) for w in caught if not issubclass(w.category, Image.DecompressionBombWarning)]
    notes += native
    return LoadedImage(rgb, full_w, full_h, digest, list(dict.fromkeys(notes)), data if reduced else None)


@contextlib.contextmanager
def _native_messages(capture: bool):
    """Collect what C decoders print on the process's stderr (libtiff: "Using code not yet in
    table", ...) into a list, so it reaches the file's row as warnings instead of the terminal as
    lines that name no file. Only where asked: fd 2 is shared by every thread of the process."""
    lines: list[str] = []
    if not capture:
        yield lines
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            text = sink.read(64 * 1024).decode("utf-8", "replace")
            lines.extend(dict.fromkeys(one_line(line) for line in text.splitlines() if line.strip()))


def bomb_message(pixels: int | None, max_pixels: int, size: str | None = None) -> str:
    claims = f"{size} = {pixels:,} pixels" if size else (f"{pixels:,} pixels" if pixels else "more pixels")
    return f"image claims {claims}, over the {max_pixels:,}-pixel limit (decompression bomb guard; see --max-pixels)"


def one_line(text: str) -> str:
    return " ".join(text.split())


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
    """A path, bytes, a binary file object (anything with .read(), e.g. BytesIO or sys.stdin.buffer),
    a PIL image or a numpy array (see `array_to_rgb`) -> LoadedImage. Another type raises TypeError;
    a source of the right type that holds no usable image raises LoadError."""
    check_loadable(source)
    if isinstance(source, (str, Path)):
        return decode(read_file(source, max_bytes), max_pixels=max_pixels, min_side=min_side)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return decode(bytes(source), max_pixels=max_pixels, min_side=min_side)
    if isinstance(source, Image.Image):
        if source.width < 1 or source.height < 1:
            raise LoadError(f"image has no pixels ({source.width}x{source.height} PIL image)")
        check_pixel_count(source.width, source.height, max_pixels)
        img = ImageOps.exif_transpose(source)
        return LoadedImage(to_rgb(img), img.width, img.height, None)
    if isinstance(source, np.ndarray):
        img = array_to_rgb(source, max_pixels)
        return LoadedImage(img, img.width, img.height, None)
    return decode(read_stream(source, max_bytes), max_pixels=max_pixels, min_side=min_side)


LOADABLE = "a path, bytes, a binary file object, a PIL image or a numpy array"


def check_loadable(source) -> None:
    """TypeError unless `source` is something load_image reads (a programming error, not a bad file)."""
    if isinstance(source, (str, Path, bytes, bytearray, memoryview, Image.Image, np.ndarray)):
        return
    if callable(getattr(source, "read", None)):
        return
    raise TypeError(f"cannot load an image from {type(source).__name__}: give {LOADABLE}")


def read_stream(stream, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    """All bytes of a binary file object, at most max_bytes (one more is read to tell an oversized stream)."""
    try:
        data = stream.read(max_bytes + 1)
    except OSError as e:
        raise LoadError(f"cannot read file object: {e.strerror or e}") from None
    if isinstance(data, str):
        raise TypeError("the file object gives text: open it in binary mode ('rb')")
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"the file object's read() gave {type(data).__name__}, not bytes")
    if len(data) > max_bytes:
        raise LoadError(f"file is over the {max_bytes / 1e6:.0f} MB limit")
    return bytes(data)


def check_pixel_count(width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise LoadError(bomb_message(width * height, max_pixels, f"{width}x{height}"))


def array_to_rgb(arr: np.ndarray, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """A numpy image (HxW grey, HxWx1, HxWx3 RGB or HxWx4 RGBA) -> 8-bit RGB, by these rules:
    uint8 as it is; uint16 scaled from 0-65535 to 0-255 (as 16-bit PNGs are); other integer types only
    with values in 0-255; floats only in [0, 1] (scikit-image's convention), scaled to 0-255. Anything
    else (floats outside [0, 1] or NaN, bool, complex...) is refused with a LoadError saying how to
    convert, never guessed."""
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise LoadError(f"numpy image of shape {arr.shape}; expected HxW, HxWx3 (RGB) or HxWx4 (RGBA)")
    height, width = arr.shape[:2]
    if height < 1 or width < 1:
        raise LoadError(f"image has no pixels (numpy array of shape {arr.shape})")
    check_pixel_count(width, height, max_pixels)
    if arr.dtype == np.uint16:
        arr = (arr.astype(np.float32) * (255.0 / 65535.0) + 0.5).astype(np.uint8)
    elif arr.dtype.kind in "ui" and arr.dtype != np.uint8:
        if arr.min() < 0 or arr.max() > 255:
            raise LoadError(f"numpy image of {arr.dtype} with values {arr.min()}..{arr.max()}: integer images other "
                            "than uint8 and uint16 must hold 0-255")
        arr = arr.astype(np.uint8)
    elif arr.dtype.kind == "f":
        low, high = float(np.min(arr)), float(np.max(arr))
        if not (0.0 <= low and high <= 1.0):   # also refuses NaN, which fails every comparison
            raise LoadError(f"numpy image of {arr.dtype} with values {low:g}..{high:g}: float images must lie in "
                            "[0, 1]; for 0-255 values pass arr.astype(np.uint8)")
        arr = (arr.astype(np.float32) * 255.0 + 0.5).astype(np.uint8)
    elif arr.dtype != np.uint8:
        raise LoadError(f"numpy images must be uint8, uint16, another integer type in 0-255, or float in [0, 1], "
                        f"not {arr.dtype}")
    return to_rgb(Image.fromarray(np.ascontiguousarray(arr)))


def is_candidate_file(path: Path) -> bool:
    """Files a scan looks at: anything that is not hidden. Suffixes are not trusted (a .jpg may be
    HTML, a .dat may be a JPEG), so every regular file gets a row."""
    return not path.name.startswith(".")
