"""How far PDQ can be trusted when matching imported hash lists (`facecheck scan --known-hashes`).

    python benchmarks/bench_pdq.py [--limit 0] [--originals 300] [--seed 0]

1. False matches: the PDQ hash (and, for comparison, the 64-bit pHash) of every image of
   ../shared/data, and the number of pairs of *distinct* images within each threshold, among the
   FFHQ-aligned faces (StyleGAN and real FFHQ: the hard case, one layout) and among natural photos
   (a few natural pairs are crops of one original, as the data's README warns). An imported list has
   no thumbnails to verify a candidate with, so the threshold alone decides.
2. Recall: `--originals` photos (half aligned faces, half natural), each reposted by the eight
   transforms of the held-out reuse set; a repost is found when one of the PDQ hashes facecheck
   looks a file up by (`hashlists.pdq_probes`: its own, its mirror image's, and without a plain
   frame where it has one) lies within the threshold of the original's.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.append(str(Path(__file__).resolve().parent.parent))

from facecheck.evaluation import degrade   # noqa: E402
from facecheck.evaluation.dataset import data_root, read_manifest   # noqa: E402
from facecheck.hashing import plain_border, signatures   # noqa: E402
from facecheck.hashlists import pdq_probes   # noqa: E402
from facecheck.pdq import MATCH_BITS, luminance, pdq, pdq_of_luminance   # noqa: E402

_POP = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1).sum(1)
PDQ_THRESHOLDS = (20, 25, MATCH_BITS, 40)
PHASH_THRESHOLDS = (4, 6, 8, 10)


def transforms(rng: np.random.Generator) -> dict:
    """The held-out reuse set's eight repost transforms."""
    side = lambda: int(rng.integers(150, 401))   # noqa: E731
    return {
        "resize 150-400": lambda im: degrade.resize_to(im, side()),
        "jpeg q60-95": lambda im: degrade.jpeg(im, int(rng.integers(60, 96))),
        "mirror": degrade.mirror,
        "crop 92%": lambda im: degrade.crop_fraction(im, 0.08, rng),
        "12 px border at 300 px": lambda im: degrade.add_border(degrade.resize_to(im, 300), 12 / 300),
        "gamma 0.8": lambda im: degrade.brightness_gamma(im, gamma=0.8),
        "crop 95% mirrored, 200 px": lambda im: degrade.resize_to(degrade.mirror(degrade.crop_fraction(im, 0.05, rng)), 200),
        "exact copy": lambda im: im,
    }


def close_pairs(codes: np.ndarray, thresholds) -> dict[int, int]:
    """Pairs of rows of packed codes within each Hamming threshold."""
    counts = dict.fromkeys(thresholds, 0)
    for i in range(len(codes) - 1):
        d = _POP[np.bitwise_xor(codes[i + 1:], codes[i])].sum(1)
        for t in thresholds:
            counts[t] += int(np.count_nonzero(d <= t))
    return counts


def packed_pdq(img: Image.Image) -> np.ndarray:
    return np.packbits(pdq(np.asarray(img)).hash.bits)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit", type=int, default=0, help="at most this many images per group in part 1 (0: all)")
    ap.add_argument("--originals", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if data_root() is None:
        print("bench_pdq: no labelled data (../shared/data or $FACECHECK_DATA); nothing to measure. Skipped.")
        return
    rng = np.random.default_rng(args.seed)
    samples = read_manifest()
    groups = {"FFHQ-aligned (stylegan + real_ffhq)": [s for s in samples if s.label in ("stylegan", "real_ffhq")],
              "natural photos": [s for s in samples if s.label == "real_natural"]}
    print("1. pairs of distinct images within a threshold (false matches of an imported list)")
    for name, group in groups.items():
        if args.limit:
            group = [group[i] for i in rng.permutation(len(group))[:args.limit]]
        started = time.perf_counter()
        p, h = [], []
        for s in group:
            with Image.open(s.path) as im:
                rgb = im.convert("RGB")
            p.append(packed_pdq(rgb))
            h.append(np.packbits(signatures([rgb])[0].phash.bits))
        n = len(group)
        pairs = n * (n - 1) // 2
        seconds = time.perf_counter() - started
        for label, codes, thresholds in (("PDQ", p, PDQ_THRESHOLDS), ("pHash", h, PHASH_THRESHOLDS)):
            counts = close_pairs(np.stack(codes), thresholds)
            cells = ", ".join(f"<= {t}: {c} ({c / pairs:.1e})" for t, c in counts.items())
            print(f"   {name}, {n} images, {pairs:,} pairs, {label}: {cells}")
        print(f"   ({seconds * 1000 / n:.1f} ms per image to decode and hash)")

    print(f"\n2. recall of reposts at {MATCH_BITS} bits ({args.originals} originals, half aligned, half natural)")
    aligned, natural = groups.values()
    picked = ([aligned[i] for i in rng.permutation(len(aligned))[:args.originals // 2]]
              + [natural[i] for i in rng.permutation(len(natural))[:args.originals - args.originals // 2]])
    found: dict[str, list[int]] = {}
    worst: dict[str, int] = {}
    for s in picked:
        with Image.open(s.path) as im:
            original = im.convert("RGB")
        reference = packed_pdq(original)
        for name, transform in transforms(rng).items():
            repost = transform(original)
            luma = luminance(np.asarray(repost))   # the probes as pipeline.prepare computes them
            probes = pdq_probes(luma, pdq_of_luminance(luma).hash, plain_border(np.asarray(repost.convert("L"))))
            d = min(int(_POP[np.bitwise_xor(np.packbits(h.bits), reference)].sum()) for h in probes)
            found.setdefault(name, []).append(d <= MATCH_BITS)
            worst[name] = max(worst.get(name, 0), d)
    for name, hits in found.items():
        print(f"   {name:28s} {np.mean(hits) * 100:6.1f}% found  (largest distance {worst[name]})")
    everything = [h for hits in found.values() for h in hits]
    print(f"   {'all':28s} {np.mean(everything) * 100:6.1f}% of {len(everything)} reposts")


if __name__ == "__main__":
    main()
