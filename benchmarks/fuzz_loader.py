"""A seeded mutation fuzzer for facecheck's loader: hostile files must give a LoadError, never a crash or a hang.

    python benchmarks/fuzz_loader.py [--cases 20000] [--seed 0] [--save scratch/fuzz]

Seeds are small valid images made here in every format a takedown archive holds (JPEG baseline,
progressive and with EXIF; PNG RGB, palette with transparency, 16-bit grey; animated GIF; WebP lossy
and lossless; multi-page TIFF, LZW and raw; BMP). Each case takes one seed and applies one to three
mutations: bit flips, byte overwrites with boundary values, truncation, a repeated chunk, a dropped
chunk, an edited header field (widths, heights, lengths, counts near the start of the file), or a
splice of two seeds. Each case is decoded with `facecheck.loading.decode` and counted by outcome:
decoded, a LoadError (by the start of its message), or a failure: any other exception, an error
message that says "unexpected", or a decode slower than `--slow` seconds. Failures are written to
`--save` so each can become a regression test. The same seed gives the same cases.

tests/test_fuzz.py runs a short seeded run of this harness on every test run.
"""
from __future__ import annotations

import argparse
import collections
import io
import random
import re
import resource
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.append(str(REPO))

from facecheck.loading import LoadError, decode   # noqa: E402

SLOW_SECONDS = 2.0


def _picture(rng: np.random.Generator, w: int, h: int) -> Image.Image:
    """A smooth picture with some texture: compresses like a photo, unlike noise."""
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([(x * 255 // max(w - 1, 1)), (y * 255 // max(h - 1, 1)), ((x + y) * 127 // max(w + h, 1))], -1)
    noise = rng.integers(0, 40, (h, w, 3))
    return Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8))


def seed_files(seed: int = 0) -> dict[str, bytes]:
    """Small valid files in every format and variant the loader must handle."""
    rng = np.random.default_rng(seed)
    pic = _picture(rng, 48, 40)
    frames = [_picture(rng, 32, 32) for _ in range(3)]
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010E] = "fuzz seed"
    grey16 = Image.fromarray((np.asarray(pic.convert("L"), np.uint16) * 257)).convert("I;16")
    palette = pic.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    variants = {
        "jpeg": (pic, "JPEG", {"quality": 85}),
        "jpeg_progressive_exif": (pic, "JPEG", {"quality": 70, "progressive": True, "exif": exif.tobytes()}),
        "png_rgb": (pic, "PNG", {}),
        "png_palette_transparent": (palette, "PNG", {"transparency": 0}),
        "png_16bit": (grey16, "PNG", {}),
        "gif_animated": (frames[0], "GIF", {"save_all": True, "append_images": frames[1:]}),
        "webp_lossy": (pic, "WEBP", {"quality": 80}),
        "webp_lossless": (pic, "WEBP", {"lossless": True}),
        "tiff_multipage_lzw": (frames[0], "TIFF", {"save_all": True, "append_images": frames[1:],
                                                   "compression": "tiff_lzw"}),
        "tiff_raw": (pic, "TIFF", {}),
        "bmp": (pic, "BMP", {}),
    }
    out = {}
    for name, (img, fmt, kw) in variants.items():
        buf = io.BytesIO()
        img.save(buf, fmt, **kw)
        out[name] = buf.getvalue()
    return out


BOUNDARY = (0x00, 0x01, 0x7F, 0x80, 0xFE, 0xFF)


def mutate(data: bytes, rng: random.Random, other: bytes) -> tuple[bytes, str]:
    """One mutation of `data`; returns the new bytes and the mutation's name."""
    b = bytearray(data)
    n = len(b)
    if n < 2:   # an earlier mutation left (almost) nothing: nothing left to mutate
        return data, "none"
    kind = rng.choice(("bitflip", "boundary", "truncate", "repeat", "drop", "header", "splice"))
    if kind == "bitflip":
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(n)
            b[i] ^= 1 << rng.randrange(8)
    elif kind == "boundary":
        for _ in range(rng.randint(1, 4)):
            b[rng.randrange(n)] = rng.choice(BOUNDARY)
    elif kind == "truncate":
        b = b[:rng.randrange(1, n)]
    elif kind == "repeat":
        i = rng.randrange(n)
        j = min(n, i + rng.randint(1, 512))
        b[i:i] = b[i:j] * rng.randint(1, 4)
    elif kind == "drop":
        i = rng.randrange(n)
        del b[i:min(n, i + rng.randint(1, 256))]
    elif kind == "header":
        # sizes, lengths and counts live near the start of every format: set one to an extreme
        i = rng.randrange(min(n, 96))
        width = rng.choice((1, 2, 4))
        value = rng.choice((0, 1, 0x7F, 0xFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF, rng.getrandbits(32)))
        order = rng.choice(("big", "little"))
        b[i:i + width] = (value & ((1 << (8 * width)) - 1)).to_bytes(width, order)
    else:  # splice: the start of one file, the rest of another
        i, j = rng.randrange(n), rng.randrange(len(other))
        b = b[:i] + other[j:]
    return bytes(b), kind


@dataclass
class FuzzReport:
    cases: int = 0
    decoded: int = 0
    errors: collections.Counter = field(default_factory=collections.Counter)    # LoadError kinds
    mutations: collections.Counter = field(default_factory=collections.Counter)
    failures: list = field(default_factory=list)   # (case, seed name, mutations, what happened, bytes)
    slowest: float = 0.0
    seconds: float = 0.0


def error_kind(message: str) -> str:
    """The start of a LoadError message, without file-specific details (sizes, hex, tag numbers)."""
    head = re.match(r"[^:(]*(\([A-Za-z]+)?", message).group(0).strip()   # e.g. "cannot decode image (OSError"
    return re.sub(r"\d[\d,]*", "N", head) + (")" if "(" in head else "")


def run(cases: int, seed: int = 0, slow: float = SLOW_SECONDS, max_pixels: int = 50_000_000) -> FuzzReport:
    seeds = seed_files(seed)
    names = sorted(seeds)
    rng = random.Random(seed)
    report = FuzzReport()
    started = time.perf_counter()
    for case in range(cases):
        name = rng.choice(names)
        data, done = seeds[name], []
        for _ in range(rng.randint(1, 3)):
            data, kind = mutate(data, rng, seeds[rng.choice(names)])
            done.append(kind)
        report.mutations.update(done)
        t0 = time.perf_counter()
        what = None
        try:
            decode(data, max_pixels=max_pixels)
            report.decoded += 1
        except LoadError as e:
            message = str(e)
            if "unexpected" in message or "\n" in message:
                what = f"unclear LoadError: {message!r}"
            report.errors[error_kind(message)] += 1
        except Exception as e:   # noqa: BLE001 - exactly what the fuzzer is looking for
            what = f"{type(e).__name__}: {e}"
        elapsed = time.perf_counter() - t0
        report.slowest = max(report.slowest, elapsed)
        if elapsed > slow:
            what = (what + "; " if what else "") + f"took {elapsed:.2f} s"
        if what:
            report.failures.append((case, name, done, what, data))
        report.cases += 1
    report.seconds = time.perf_counter() - started
    return report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--slow", type=float, default=SLOW_SECONDS, help="seconds after which a decode counts as a hang")
    ap.add_argument("--save", type=Path, default=REPO / "scratch" / "fuzz", help="where failing inputs are written")
    args = ap.parse_args()
    report = run(args.cases, args.seed, args.slow)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"fuzz_loader: {report.cases} cases (seed {args.seed}) in {report.seconds:.1f} s "
          f"({report.cases / report.seconds:.0f}/s), slowest decode {report.slowest * 1000:.0f} ms, "
          f"peak RSS {peak_mb:.0f} MB")
    print(f"  decoded anyway: {report.decoded}")
    print(f"  LoadError: {sum(report.errors.values())}")
    for kind, count in report.errors.most_common():
        print(f"    {count:7d}  {kind}")
    print(f"  mutations applied: {dict(report.mutations.most_common())}")
    print(f"  failures: {len(report.failures)}")
    if report.failures:
        args.save.mkdir(parents=True, exist_ok=True)
        for case, name, done, what, data in report.failures[:200]:
            path = args.save / f"case{case:06d}_{name}_{'+'.join(done)}.bin"
            path.write_bytes(data)
            print(f"    case {case} ({name}, {'+'.join(done)}): {what[:200]}  -> {path}")
    sys.exit(1 if report.failures else 0)


if __name__ == "__main__":
    main()
