"""Degraded copies of the labelled faces for the pretrained-backbone detector, cached once under scratch/.

Every class goes through the same platform degradation (facecheck.evaluation.degrade.random_platform): a random downscale
within the image's OWN size (never enlarged: a 128 px thumbnail stays a small avatar), JPEG q50-98 for 90% of
copies (so lossless PNG sources are re-encoded, and 10% of their copies stay lossless, like the high-resolution
real FFHQ PNGs among the negatives), crops up to 12%, mirroring, mild blur or sharpening. The model input is
facecheck.backbone.model_input of the degraded copy (the whole image, INPUT_SIDE x INPUT_SIDE), stored as uint8,
so epochs only read arrays.

Folds (facecheck.evaluation.dataset.split_of): 2-4 train, 1 calibration (thresholds, development choices), 0 test (never
trained or tuned on). The test fold is not cached as random copies: it is scored under named conditions by
training/train_backbone.py. For the calibration copies the current spectral detector's score is stored too, so
both detectors get thresholds from the same rows. Never imported by facecheck.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from facecheck.backbone import model_input  # noqa: E402
from facecheck.evaluation.dataset import read_manifest, split_of  # noqa: E402
from training.degraded_cache import ArrayCache, Degradation, degraded_copy  # noqa: E402

CACHE_DIR = REPO / "scratch" / "backbone_cache"
TEST_FOLD, CALIB_FOLD = 0, 1
TRAIN_COPIES = 3       # degraded copies per training image
CALIB_COPIES = 2
MAX_CROP = 0.12
SALT = "backbone-v1"
# One random platform degradation within the image's own size (96 px floor, or its own size if smaller);
# training/backbone3_data.py degrades its copies the same way.
DEGRADATION = Degradation(max_side=None, min_side=96, max_crop=MAX_CROP)


def build(folds: tuple[int, ...], copies: int, name: str, spectral: bool = False, limit: int | None = None) -> dict:
    """Cache {x uint8 [N,S,S,3], label, source, fold, fname, side[, spectral]} for the given folds as one .npz."""
    cache = ArrayCache(CACHE_DIR, suffix=".npz")
    if cache.has(name):
        return cache.load(name)
    samples = [s for s in read_manifest() if split_of(s) in folds]
    if limit:
        samples = samples[::max(1, len(samples) // limit)]
    xs, meta = [], []
    detector = None
    if spectral:
        from facecheck.runtime import Runtime
        from facecheck.spectrum import SpectralDetector
        detector = SpectralDetector(Runtime("cpu", intra_op_threads=1))
    spec_scores, pending = [], []
    for i, s in enumerate(samples):
        with Image.open(s.path) as im:
            img = im.convert("RGB")
        for c in range(copies):
            d = degraded_copy(img, s.path.name, c, SALT, DEGRADATION)
            arr = np.asarray(d.convert("RGB"))
            xs.append(model_input(arr))
            meta.append((s.label, s.source, split_of(s), s.path.name, max(d.size)))
            if detector is not None:
                pending.append(arr)
                if len(pending) == 32:
                    spec_scores.append(detector.score(pending))
                    pending = []
        if i % 500 == 0:
            print(f"{name}: {i}/{len(samples)}", flush=True)
    if detector is not None and pending:
        spec_scores.append(detector.score(pending))
    out = {"x": np.stack(xs), "label": np.array([m[0] for m in meta]), "source": np.array([m[1] for m in meta]),
           "fold": np.array([m[2] for m in meta]), "fname": np.array([m[3] for m in meta]),
           "side": np.array([m[4] for m in meta])}
    if detector is not None:
        out["spectral"] = np.concatenate(spec_scores)
    cache.save(name, out)
    return out


def train_set() -> dict:
    return build((2, 3, 4), TRAIN_COPIES, "train")


def calib_set() -> dict:
    return build((CALIB_FOLD,), CALIB_COPIES, "calib", spectral=True)


if __name__ == "__main__":
    which = sys.argv[1:] or ["calib", "train"]
    for w in which:
        d = {"calib": calib_set, "train": train_set}[w]()
        print(w, d["x"].shape, flush=True)
