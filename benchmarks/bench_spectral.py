"""Benchmark the shipped spectral detector (weights/spectral.onnx) on held-out data, through ONNX Runtime.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_spectral.py [--device cpu] [--limit N] [--fold F] [--json OUT]

Held-out data: the test fold (facecheck.evaluation.dataset.split_of == 0), never trained or tuned on. Each image goes through
every named condition of facecheck.degrade.standard_conditions() (plus "as_stored", the image as it is in the
data set). Reported per condition:
  * at the model's FIXED operating thresholds (chosen on the calibration fold, stored in the ONNX metadata):
    the share of StyleGAN faces flagged (TPR) per source, and of real photos flagged (FPR) per source;
  * ROC figures on the condition itself: AUC and TPR at 1% / 0.1% FPR with the threshold read off these real
    photos (a property of the curve, not an operating point);
  * Stable Diffusion 2.1 (other_gen): share flagged, reported apart (not a training class).
Speed: ms per image for score() (features + model), batched 32, on this machine. Leave-one-source-out results
come from training/train_spectral.py (models trained without a source on the GPU machine).
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
from PIL import Image

from facecheck.evaluation.dataset import read_manifest, split_of
from facecheck.evaluation.degrade import standard_conditions
from facecheck.runtime import Runtime
from facecheck.spectrum import SpectralDetector
from training.spectral_data import TEST_FOLD
from facecheck.evaluation.evaluate import auc, share_flagged, tpr_at_fpr

REAL_LABELS = ("real_ffhq", "real_natural")


def _rate(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def conditions() -> dict:
    return {"as_stored": lambda im: im, **standard_conditions()}


def evaluate_conditions(device: str = "cpu", limit: int | None = None, fold: int = TEST_FOLD, log=print) -> dict:
    samples = [s for s in read_manifest() if split_of(s) == fold]
    if limit:
        samples = samples[::max(1, len(samples) // limit)]
    detector = SpectralDetector(Runtime(device))
    thresholds = detector.thresholds()
    originals = []
    for s in samples:
        with Image.open(s.path) as im:
            originals.append(im.convert("RGB"))
    labels = np.array([s.label for s in samples])
    sources = np.array([s.source for s in samples])
    results = {"thresholds": thresholds, "n_images": len(samples), "conditions": {}}
    for name, degrade in conditions().items():
        scores = detector.score([np.asarray(degrade(im)) for im in originals])
        pos, neg = scores[labels == "stylegan"], scores[np.isin(labels, REAL_LABELS)]
        row = {"auc": auc(neg, pos), "roc_tpr_at_1pct_fpr": tpr_at_fpr(neg, pos, 0.01),
               "roc_tpr_at_0.1pct_fpr": tpr_at_fpr(neg, pos, 0.001), "n_stylegan": int(len(pos)), "n_real": int(len(neg)),
               **{f"tpr_at_{k}": share_flagged(pos, t) for k, t in thresholds.items()},
               **{f"fpr_at_{k}": share_flagged(neg, t) for k, t in thresholds.items()},
               **{f"other_gen_flagged_at_{k}": share_flagged(scores[labels == "other_gen"], t) for k, t in thresholds.items()},
               "by_source": {str(src): {"label": str(labels[sources == src][0]), "n": int((sources == src).sum()),
                                        **{k: share_flagged(scores[sources == src], t) for k, t in thresholds.items()}}
                             for src in np.unique(sources)}}
        results["conditions"][name] = row
        log(f"{name:18s} AUC {row['auc']:.4f}  ROC TPR@1% {row['roc_tpr_at_1pct_fpr']:.3f} @0.1% "
            f"{row['roc_tpr_at_0.1pct_fpr']:.3f} | fixed thr: TPR {row['tpr_at_fpr_1pct']:.3f}/{row['tpr_at_fpr_0.1pct']:.3f}"
            f" FPR {row['fpr_at_fpr_1pct']:.4f}/{row['fpr_at_fpr_0.1pct']:.4f}  SD2.1 flagged "
            f"{_rate(row['other_gen_flagged_at_fpr_1pct'])}/{_rate(row['other_gen_flagged_at_fpr_0.1pct'])}")
    results["ms_per_image"] = time_scoring(detector)
    log(f"ms per image (batched score(), {device}): {results['ms_per_image']}")
    return results


def time_scoring(detector: SpectralDetector, batch: int = 32, repeats: int = 3) -> dict[str, float]:
    """Wall time of score() per image for random images of several sizes (features + ONNX model), batched."""
    rng = np.random.default_rng(0)
    out = {}
    for side in (150, 400, 512, 2048):
        images = [rng.integers(0, 256, (side, side * 3 // 4, 3), dtype=np.uint8) for _ in range(batch)]
        detector.score(images[:2])  # warm-up
        t0 = time.perf_counter()
        for _ in range(repeats):
            detector.score(images)
        out[f"{side}px"] = round((time.perf_counter() - t0) / (repeats * batch) * 1000, 2)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--limit", type=int, help="evaluate about this many test images (quick look)")
    ap.add_argument("--fold", type=int, default=TEST_FOLD, help="development only: 1 is the calibration fold")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args(argv)
    results = evaluate_conditions(args.device, args.limit, args.fold)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
