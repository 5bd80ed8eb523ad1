"""Degraded evaluation copies of the labelled faces, as the detector's features, cached under scratch/.

Every class goes through the same random platform degradation (facecheck.evaluation.degrade.random_platform): downscale,
JPEG q50-98, small crops, mirroring, mild blur or sharpening. Sizes are matched between classes: a third of all
copies are taken down to 96-160 px, where the 150 px LFW thumbnails live, so that "small image" does not mean
"real"; the rest go to 96-512 px. Copies are seeded by file name and copy number, so every run (and the previous
model's tile cache) sees the same degraded images. Used for calibration (fold 1), test-fold reporting (fold 0) and
leave-one-source-out scoring; training itself degrades on the fly (training/train_spectral_gpu.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from PIL import Image

from facecheck.evaluation.dataset import Sample, read_manifest, split_of
from facecheck.spectrum import image_features
from training.degraded_cache import ArrayCache, Degradation
from training.degraded_cache import degraded_copy as seeded_copy

CACHE_DIR = Path(__file__).resolve().parent.parent / "scratch" / "spectral_cache"
FEATURES = "features_v2"   # the cache entry: CACHE_DIR/features_v2/<field>.npy
TEST_FOLD = 0          # never trained or tuned on; the benchmark reports on it
CALIB_FOLD = 1         # calibration, the operating thresholds and development choices
SMALL_SIDE_FRACTION = 0.35
# Degraded copies per image: the rare classes get more, so that classes are roughly balanced.
COPIES = {"stylegan": 8, "real_ffhq": 5, "real_natural": 5, "other_gen": 2}
LFW_COPIES = 1         # 3700 thumbnails already dominate the small sizes
DEGRADATION = Degradation(min_side=96, max_side=512, small_fraction=SMALL_SIDE_FRACTION, small_side=160)


@dataclass
class FeatureSet:
    tiles: np.ndarray      # uint8 [N, T, TILE, TILE, 3]: facecheck.spectrum.image_features of each degraded copy
    whole: np.ndarray      # uint8 [N, S, S, 3]
    is_gan: np.ndarray     # float32 [N], 1 for stylegan
    label: np.ndarray      # str [N]
    source: np.ndarray     # str [N]
    fold: np.ndarray       # int [N]
    side: np.ndarray       # int [N], longer side after degradation

    def subset(self, mask: np.ndarray) -> "FeatureSet":
        return FeatureSet(*(np.asarray(getattr(self, f)[mask]) for f in self.__dataclass_fields__))


def copies_of(sample: Sample) -> int:
    return LFW_COPIES if sample.source.startswith("lfw") else COPIES[sample.label]


def degraded_copy(sample: Sample, copy: int, salt: str = "spectral-v1") -> Image.Image:
    with Image.open(sample.path) as im:
        return seeded_copy(im.convert("RGB"), sample.path.name, copy, salt, DEGRADATION)


def _features_of(job):
    sample, copy = job
    img = degraded_copy(sample, copy)
    tiles, whole = image_features(np.asarray(img))
    return tiles, whole, max(img.size)


def cached_feature_set(rebuild: bool = False, workers: int = 2) -> FeatureSet:
    """Features of degraded copies of every manifest image (all folds; callers pick folds). ~3 GB on disk,
    one .npy per field, memory-mapped."""
    cache = ArrayCache(CACHE_DIR, suffix="")
    if cache.has(FEATURES) and not rebuild:
        return FeatureSet(**cache.load(FEATURES, mmap=("tiles", "whole")))
    samples = read_manifest()
    jobs = [(s, c) for s in samples for c in range(copies_of(s))]
    probe_tiles, probe_whole = image_features(np.zeros((64, 64, 3), np.uint8))
    tiles = cache.array_writer(FEATURES, "tiles", np.uint8, (len(jobs), *probe_tiles.shape))
    whole = cache.array_writer(FEATURES, "whole", np.uint8, (len(jobs), *probe_whole.shape))
    side = np.zeros(len(jobs), np.int64)
    with Pool(workers) as pool:
        for i, (t, w, sd) in enumerate(pool.imap(_features_of, jobs, chunksize=32)):
            tiles[i], whole[i], side[i] = t, w, sd
    tiles.flush(), whole.flush()
    del tiles, whole
    cache.save(FEATURES, {"side": side,
                          "is_gan": np.array([s.is_stylegan for s, _ in jobs], dtype=np.float32),
                          "label": np.array([s.label for s, _ in jobs]),
                          "source": np.array([s.source for s, _ in jobs]),
                          "fold": np.array([split_of(s) for s, _ in jobs])})
    return cached_feature_set()
