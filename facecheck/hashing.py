"""Perceptual hashes, computed for many images at once.

Two hashes per image:
- `phash`: the classic 64-bit DCT hash, bit for bit equal to `imagehash.phash` on the same decoded
  image (investigators already compare against it), but computed for a whole batch in one call.
- `dct256`: a 256-bit DCT hash in the manner of Facebook's PDQ, made for matching. Aligned faces
  defeat a 64-bit hash (distinct StyleGAN and FFHQ faces lie within 8 bits of each other); 256 bits
  of mid-frequency structure separate them. Before the DCT, a plain frame is trimmed off, and the
  median threshold makes it blind to brightness gain. A mirror
  image negates the odd horizontal DCT coefficients, so the hash of the mirrored photo
  (`dct256_mirror`) costs nothing extra and lets the index find mirrored reposts.

Hashes are `Hash` objects: `str(h)` is hex, `h1 - h2` is the Hamming distance, as in imagehash.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np
import scipy.fftpack
from PIL import Image

PHASH_SIDE = 32        # imagehash.phash: hash_size 8 * highfreq_factor 4
DCT256_SIDE = 64       # luminance thumbnail the 256-bit hash is taken from
DCT256_BAND = 16       # 16 x 16 coefficients, DC row and column left out
BORDER_TOLERANCE = 10  # grey levels a plain border may vary by (JPEG ringing)
BORDER_MAX_FRACTION = 0.25  # of each side: reposts frame small photos widely (12 px is 8% of 150 px)
STEP_MIN = 2 * BORDER_TOLERANCE  # grey levels by which the photo inside a frame differs from it...
STEP_COVER = 0.5                 # ...over at least this share of the line (or of the next one)
RINGING_LINES = 4      # lines past a frame's plain run where its edge may lie (JPEG ringing, resizing)
CROP_SCALES = (0.96, 0.92)
VERIFY_SIDE = 64
BASE_SIDE = 128        # intermediate grey image the thumbnails and crop variants come from


class Hash:
    """A bit string that prints as hex and subtracts to a Hamming distance."""

    __slots__ = ("bits",)

    def __init__(self, bits: np.ndarray):
        self.bits = np.asarray(bits, dtype=bool).ravel()

    @classmethod
    def from_hex(cls, text: str) -> "Hash":
        n = len(text) * 4
        value = int(text, 16)
        return cls(np.array([(value >> (n - 1 - i)) & 1 for i in range(n)], dtype=bool))

    def __str__(self) -> str:
        return bits_to_hex(self.bits)

    def __repr__(self) -> str:
        return f"Hash('{self}')"

    def __sub__(self, other: "Hash") -> int:
        if self.bits.shape != other.bits.shape:
            raise ValueError("hashes of different lengths")
        return int(np.count_nonzero(self.bits != other.bits))

    def __eq__(self, other) -> bool:
        return isinstance(other, Hash) and np.array_equal(self.bits, other.bits)

    def __hash__(self) -> int:
        return hash(self.bits.tobytes())

    def packed(self) -> bytes:
        return np.packbits(self.bits).tobytes()


def bits_to_hex(bits: np.ndarray) -> str:
    """Row-major bits, most significant first, as lower-case hex (imagehash's convention)."""
    packed = np.packbits(np.asarray(bits, dtype=bool).ravel())
    return packed.tobytes().hex()


# --- pHash, imagehash-compatible -------------------------------------------------------------

def phash_thumbnail(image: Image.Image) -> np.ndarray:
    """The 32x32 grey thumbnail imagehash.phash starts from (same PIL conversion and filter)."""
    grey = image if image.mode == "L" else image.convert("L")
    return np.asarray(grey.resize((PHASH_SIDE, PHASH_SIDE), Image.Resampling.LANCZOS))


def phash_bits(thumbnails: np.ndarray) -> np.ndarray:
    """[N, 32, 32] uint8 thumbnails -> [N, 64] bool, as imagehash.phash computes each one.

    scipy.fftpack's DCT along an axis of a stack runs the same 1-D transform as on one image,
    so the bits are identical, median ties included."""
    coeffs = scipy.fftpack.dct(scipy.fftpack.dct(thumbnails, axis=1), axis=2)[:, :8, :8]
    flat = coeffs.reshape(len(thumbnails), 64)
    return flat > np.median(flat, axis=1, keepdims=True)


# --- dct256 -----------------------------------------------------------------------------------

def _dct_rows(n: int, rows: range) -> np.ndarray:
    k = np.arange(n)
    return np.stack([np.cos(np.pi * r * (2 * k + 1) / (2 * n)) for r in rows]).astype(np.float32)


_DCT256_MATRIX = _dct_rows(DCT256_SIDE, range(1, DCT256_BAND + 1))            # [16, 64]
# Mirroring the image negates the horizontal coefficients of odd order (order 1, 3, ...).
_MIRROR_SIGNS = np.where(np.arange(1, DCT256_BAND + 1) % 2 == 1, -1.0, 1.0).astype(np.float32)


def trim_plain_border(grey: np.ndarray) -> np.ndarray:
    """Cut a plain-coloured frame (added when reposting) off each edge (see plain_border)."""
    h, w = grey.shape[:2]
    top, bottom, left, right = plain_border(grey)
    return grey[top:h - bottom, left:w - right]


def plain_border(grey: np.ndarray) -> tuple[int, int, int, int]:
    """Widths (top, bottom, left, right) of a plain frame added when reposting, of any colour and up
    to BORDER_MAX_FRACTION of each side, each side detected on its own.

    A side's frame is its run of lines of one colour (each line within BORDER_TOLERANCE of the edge's
    colour, but for a few JPEG-ringing pixels), ended by a clear step: most of the next line differs
    from that colour by more than STEP_MIN. A photo's own flat edge (a sky that shades off, a studio
    wall that a head rises from) ends without such a step and is left alone, as is a flat strip wider
    than the limit. Two cases have no step to see and still come off: a frame drawn all round on
    content of nearly its colour (three sides end at one distance, the fourth is as plain), and a
    side where the frame runs into the photo's own edge of nearly its colour (a black frame on an LFW
    photo's dark clothes), which loses the width of a clear side of that colour, as far as it is
    plain. A frame inside a frame (a photo that already had one) comes off too."""
    h, w = grey.shape[:2]
    total = [0, 0, 0, 0]
    for _ in range(2):
        top, bottom, left, right = _one_frame(grey[total[0]:h - total[1], total[2]:w - total[3]])
        if not (top or bottom or left or right):
            break
        total = [t + n for t, n in zip(total, (top, bottom, left, right))]
    return tuple(total)


def _one_frame(grey: np.ndarray) -> tuple[int, int, int, int]:
    """One pass of plain_border: the outermost frame's widths."""
    h, w = grey.shape[:2]
    g = np.asarray(grey)
    across = g.transpose(1, 0, *range(2, g.ndim))
    sides = [_plain_run(g), _plain_run(g[::-1]), _plain_run(across), _plain_run(across[::-1])]
    # A side is also clear when the frame is drawn all round, even on content of nearly its colour:
    # every side plain in one colour for as far as it runs, and three of them ending at one distance
    # (a photo's own background does not end at one distance from three edges and run past it on the
    # fourth: a portrait's bottom edge is the sitter)
    runs = [(run, colour) for run, colour, limit, _, _ in sides if 0 < run <= limit]

    def drawn_all_round(run, colour) -> bool:
        alike = [abs(run - other) <= 1 and np.all(np.abs(colour - c) <= BORDER_TOLERANCE) for other, c in runs]
        return sum(alike) >= 3 and all(mostly >= run - 1 and np.all(np.abs(colour - c) <= BORDER_TOLERANCE)
                                       for _, c, _, _, mostly in sides)

    sides = [(run, colour, limit, stepped or (0 < run <= limit and drawn_all_round(run, colour)), mostly)
             for run, colour, limit, stepped, mostly in sides]
    clear = [(run, colour) for run, colour, limit, stepped, _ in sides if stepped]
    widths = []
    for run, colour, limit, stepped, mostly in sides:
        if stepped:
            widths.append(run)
            continue
        vouched = [other for other, c in clear
                   if other <= min(mostly, limit) and np.all(np.abs(colour - c) <= BORDER_TOLERANCE)]
        widths.append(min(vouched) if vouched else 0)
    top, bottom, left, right = widths
    if top + bottom >= h or left + right >= w:   # never empty an image
        return 0, 0, 0, 0
    return top, bottom, left, right


def _plain_run(lines: np.ndarray) -> tuple[int, np.ndarray, int, bool, int]:
    """(width, colour, limit, clear step, mostly) of the plain run at the start of `lines` ([L, M]
    or [L, M, C], ordered from the edge inwards): a width up to the limit ended by a clear step, and
    how many lines from the edge are mostly (in their median) of the edge's colour."""
    limit = int(len(lines) * BORDER_MAX_FRACTION)
    colour = np.median(lines[0], axis=0)
    if limit < 1:
        return 0, colour, limit, False, 0
    edge = np.abs(lines[0].astype(np.int16) - colour)
    if ((edge.max(axis=1) if edge.ndim == 2 else edge) > BORDER_TOLERANCE).mean() > 0.5:
        return 0, colour, limit, False, 0           # most photos: the edge line itself is not plain
    far = np.abs(lines[:limit + 3].astype(np.int16) - colour)
    if far.ndim == 3:
        far = far.max(axis=2)
    off = far > BORDER_TOLERANCE
    mostly_plain = off.mean(axis=1) <= 0.5         # the line's median is of the edge's colour
    mostly = len(far) if mostly_plain.all() else int(np.argmin(mostly_plain))
    plain = off.mean(axis=1) < 0.02
    run = len(plain) if plain.all() else int(np.argmin(plain))
    if run == 0 or run > limit:                    # not plain, or plain past the limit (a flat background)
        return 0, colour, limit, False, mostly
    # JPEG rings next to a step and blurs the lines before it off the plain colour: the frame ends
    # where the lines change most, at most RINGING_LINES past the plain run
    level = far.mean(axis=1)
    tries = np.arange(run, min(run + RINGING_LINES, limit) + 1)
    width = int(tries[np.argmax(level[tries] - level[tries - 1])])
    after = far[width:width + 2]
    stepped = float((after > STEP_MIN).mean(axis=1).max()) >= STEP_COVER
    return width, colour, limit, stepped, mostly


def crop_windows() -> list[tuple[float, float, float]]:
    """(scale, x-position, y-position) of the crop variants: windows of 96% and 92% of the side at
    the corners, edge midpoints and centre. A repost cropped by up to 8% lies close to one of them."""
    return [(s, fx, fy) for s in CROP_SCALES for fy in (0.0, 0.5, 1.0) for fx in (0.0, 0.5, 1.0)]


def _luminance_thumbnail(grey: np.ndarray, side: int) -> np.ndarray:
    return cv2.resize(grey, (side, side), interpolation=cv2.INTER_AREA).astype(np.float32)


def dct256_coefficients(thumbnails: np.ndarray) -> np.ndarray:
    """[N, 64, 64] -> [N, 16, 16] DCT coefficients of orders 1..16 in each direction."""
    return _DCT256_MATRIX @ thumbnails @ _DCT256_MATRIX.T   # batched matmul: ~8x faster than einsum here


def dct256_bits(coefficients: np.ndarray, mirrored: bool = False) -> np.ndarray:
    """[N, 16, 16] coefficients -> [N, 256] bool, each coefficient above its image's median."""
    c = coefficients * _MIRROR_SIGNS[None, None, :] if mirrored else coefficients
    flat = c.reshape(len(c), -1)
    return flat > np.median(flat, axis=1, keepdims=True)


@dataclass
class Signature:
    """What the duplicate finder keeps of one image.

    phash, dct256: the image's hashes. probes: packed dct256 codes [P, 32] of the image, its mirror
    and its crop variants (each also mirrored), used to look the photo up. thumbnail: a 64x64 grey
    thumbnail of the border-trimmed image, kept to verify candidate matches."""
    phash: Hash
    dct256: Hash
    probes: np.ndarray
    thumbnail: np.ndarray

    @property
    def dct256_mirror(self) -> Hash:
        return Hash(np.unpackbits(self.probes[1]))


def signatures(images: Sequence[Image.Image | np.ndarray],
               borders: Sequence[tuple[int, int, int, int]] | None = None) -> list[Signature]:
    """Hashes, probes and verification thumbnails for a batch of decoded images. `borders`: each
    image's plain_border, where the caller has it already (it needs it too: pipeline.prepare)."""
    if not images:
        return []
    pil = [im if isinstance(im, Image.Image) else Image.fromarray(np.asarray(im)) for im in images]
    luminance = [im if im.mode == "L" else im.convert("L") for im in pil]   # once: both hashes start from it
    p_bits = phash_bits(np.stack([phash_thumbnail(im) for im in luminance]))
    windows = crop_windows()
    thumbs, verify = [], []
    for i, im in enumerate(luminance):
        grey = np.asarray(im)
        top, bottom, left, right = borders[i] if borders is not None else plain_border(grey)
        grey = grey[top:grey.shape[0] - bottom, left:grey.shape[1] - right]
        # One area-averaged intermediate, then the crop variants from it: far cheaper than
        # resampling the full image once per variant, and just as stable.
        base = cv2.resize(grey, (BASE_SIDE, BASE_SIDE), interpolation=cv2.INTER_AREA).astype(np.float32)
        thumbs.append(_luminance_thumbnail(base, DCT256_SIDE))
        for s, fx, fy in windows:
            n = round(BASE_SIDE * s)
            x0, y0 = round(fx * (BASE_SIDE - n)), round(fy * (BASE_SIDE - n))
            thumbs.append(_luminance_thumbnail(base[y0:y0 + n, x0:x0 + n], DCT256_SIDE))
        verify.append(cv2.resize(base, (VERIFY_SIDE, VERIFY_SIDE), interpolation=cv2.INTER_AREA).round().astype(np.uint8))
    per_image = 1 + len(windows)
    coeffs = dct256_coefficients(np.stack(thumbs))
    plain = np.packbits(dct256_bits(coeffs), axis=1).reshape(len(pil), per_image, 32)
    mirror = np.packbits(dct256_bits(coeffs, mirrored=True), axis=1).reshape(len(pil), per_image, 32)
    out = []
    for i in range(len(pil)):
        # probe order: plain, mirror, then each crop variant and its mirror
        probes = np.empty((2 * per_image, 32), dtype=np.uint8)
        probes[0::2], probes[1::2] = plain[i], mirror[i]
        out.append(Signature(Hash(p_bits[i]), Hash(np.unpackbits(plain[i, 0])), probes, verify[i]))
    return out
