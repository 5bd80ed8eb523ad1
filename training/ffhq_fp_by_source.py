"""Where the shipped fusion's FFHQ-aligned false positives sit on fold 1 (issue 20, diagnostic; decides nothing).

    PYTHONPATH=. .venv/bin/python training/ffhq_fp_by_source.py [--per-source 300] [--fusion weights/fusion.onnx]

Reads the fold-1 rows that training/train_fusion.py collected with the weights in use (FACECHECK_WEIGHTS or
weights/; run `train_fusion.py --per-source 300 --collect-only` first) and scores them with a fusion.onnx at its own
default threshold. Prints:
1. by FFHQ-aligned source, colour copies: flagged / total, on all of fold 1 and on half B (where the thresholds are
   set, pooled over every size and colour);
2. half B, the large FFHQ-aligned sources only (every source but the 128-px thumbnails): how many copies and images
   there are, how many are flagged, and what a threshold that held them alone to 1% would cost in StyleGAN TPR on
   half B's colour 400-px copies of images at least 400 px. Too few images to set such a threshold on: this shows the size of the effect.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from facecheck.evaluation import evaluate as evaluation
from facecheck.verdict import FEATURE_NAMES
from training.card_writer import flagged
from training.train_fusion import REPO, fit_rows_path, halves, is_grey_condition, load_fusion, predict

THUMBNAIL_SOURCES = {"bhunakit_ffhq_thumb128"}   # the 128-px FFHQ thumbnails; the other FFHQ sources are large
LARGE_STYLEGAN_CONDITIONS = ("400px_q90", "400px_q70")


def longer_side(path: str) -> int:
    with Image.open(path) as im:   # reads the header only
        return max(im.size)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--per-source", type=int, default=300)
    ap.add_argument("--cache", type=Path, default=REPO / "scratch")
    ap.add_argument("--fusion", type=Path, default=REPO / "weights" / "fusion.onnx")
    args = ap.parse_args()
    path = fit_rows_path(args.cache, args.per_source)
    if not path.is_file():
        raise SystemExit(f"{path} is missing: run training/train_fusion.py --per-source {args.per_source} "
                         "--collect-only with the same weights first")
    coef, intercept, thresholds, names = load_fusion(args.fusion)
    if names != FEATURE_NAMES:
        raise SystemExit(f"{args.fusion}: its features are not this facecheck's")
    threshold = thresholds["default"]
    rows = [r for r in evaluation.read_rows(path) if r.error is None and not is_grey_condition(r.condition)]
    half_b = {id(r) for r in halves(rows)[1]}
    score = dict(zip(map(id, rows), predict(coef, intercept, rows)))

    def scores(selected) -> np.ndarray:
        return np.array([score[id(r)] for r in selected])

    print(f"rows {path.name}, fusion {args.fusion} (default threshold {threshold:.6f}); colour copies only")
    print("1. FFHQ-aligned real copies flagged at the default threshold, by source: fold 1 | half B")
    ffhq = [r for r in rows if r.label == "real_ffhq"]
    for source in sorted({r.source for r in ffhq}):
        mine = [r for r in ffhq if r.source == source]
        print(f"   {source:32s} {flagged(scores(mine), threshold):>20s} | "
              f"{flagged(scores([r for r in mine if id(r) in half_b]), threshold)}")

    large = [r for r in ffhq if id(r) in half_b and r.source not in THUMBNAIL_SOURCES]
    neg = scores(large)
    print(f"2. half B, large FFHQ-aligned sources: {len(large)} copies of {len({r.file for r in large})} images, "
          f"flagged {flagged(neg, threshold)}")
    cap = evaluation.threshold_at_fpr(neg, 0.01)
    # as facecheck eval's 400px conditions: only images at least 400 px (the thumbnails' "400px" copies are 128 px)
    pos = scores([r for r in rows if id(r) in half_b and r.label == "stylegan"
                  and r.condition in LARGE_STYLEGAN_CONDITIONS and longer_side(r.file) >= 400])
    print(f"   StyleGAN colour 400-px copies of half B, images of at least 400 px ({len(pos)}): flagged {flagged(pos, threshold)} at the default "
          f"threshold; {flagged(pos, cap)} at {cap:.6f}, the threshold that flags <= 1% of those large FFHQ copies")


if __name__ == "__main__":
    main()
