"""Degraded evaluation copies of the labelled faces, as the detector's features, cached under scratch/.

Every class goes through the same random platform degradation (facecheck.evaluation.degrade.random_platform): downscale,
JPEG q50-98, small crops, mirroring, mild blur or sharpening. Sizes are matched between classes: a third of all
copies are taken down to 96-160 px, where the 150 px LFW thumbnails live, so that "small image" does not mean
"real"; the rest go to 96-512 px. Copies are seeded by file name and copy number, so every run (and the previous
model's tile cache) sees the same degraded images. Used for calibration (fold 1), test-fold reporting (fold 0) and
leave-one-source-out scoring; training itself degrades on the fly (training/train_spectral_gpu.py).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from PIL import Image

from facecheck.evaluation.dataset import Sample, read_manifest, split_of
from facecheck.evaluation.degrade import random_platform
from facecheck.spectrum import image_features

CACHE_DIR = Path(__file__).resolve().parent.parent / "scratch" / "spectral_cache"
FEATURE_DIR = CACHE_DIR / "features_v2"
TEST_FOLD = 0          # never trained or tuned on; the benchmark reports on it
CALIB_FOLD = 1         # calibration, the operating thresholds and development choices
SMALL_SIDE_FRACTION = 0.35
# Degraded copies per image: the rare classes get more, so that classes are roughly balanced.
COPIES = {"stylegan": 8, "real_ffhq": 5, "real_natural": 5, "other_gen": 2}
LFW_COPIES = 1         # 3700 thumbnails already dominate the small sizes


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


def _seed(sample: Sample, copy: int, salt: str) -> int:
    return int(hashlib.sha1(f"{salt}:{sample.path.name}:{copy}".encode()).hexdigest()[:12], 16)


def degraded_copy(sample: Sample, copy: int, salt: str = "spectral-v1") -> Image.Image:
    rng = np.random.default_rng(_seed(sample, copy, salt))
    max_side = 160 if rng.random() < SMALL_SIDE_FRACTION else 512
    with Image.open(sample.path) as im:
        return random_platform(im.convert("RGB"), rng, max_side=max_side)


def _features_of(job):
    sample, copy = job
    img = degraded_copy(sample, copy)
    tiles, whole = image_features(np.asarray(img))
    return tiles, whole, max(img.size)


def cached_feature_set(rebuild: bool = False, workers: int = 2) -> FeatureSet:
    """Features of degraded copies of every manifest image (all folds; callers pick folds). ~3 GB on disk,
    one .npy per field, memory-mapped."""
    fields = list(FeatureSet.__dataclass_fields__)
    paths = {f: FEATURE_DIR / f"{f}.npy" for f in fields}
    if all(p.is_file() for p in paths.values()) and not rebuild:
        return FeatureSet(**{f: np.load(p, mmap_mode="r" if f in ("tiles", "whole") else None)
                             for f, p in paths.items()})
    samples = read_manifest()
    jobs = [(s, c) for s in samples for c in range(copies_of(s))]
    FEATURE_DIR.mkdir(parents=True, exist_ok=True)
    probe_tiles, probe_whole = image_features(np.zeros((64, 64, 3), np.uint8))
    tiles = np.lib.format.open_memmap(paths["tiles"], "w+", np.uint8, (len(jobs), *probe_tiles.shape))
    whole = np.lib.format.open_memmap(paths["whole"], "w+", np.uint8, (len(jobs), *probe_whole.shape))
    side = np.zeros(len(jobs), np.int64)
    with Pool(workers) as pool:
        for i, (t, w, sd) in enumerate(pool.imap(_features_of, jobs, chunksize=32)):
            tiles[i], whole[i], side[i] = t, w, sd
    tiles.flush(), whole.flush()
    del tiles, whole
    np.save(paths["side"], side)
    np.save(paths["is_gan"], np.array([s.is_stylegan for s, _ in jobs], dtype=np.float32))
    np.save(paths["label"], np.array([s.label for s, _ in jobs]))
    np.save(paths["source"], np.array([s.source for s, _ in jobs]))
    np.save(paths["fold"], np.array([split_of(s) for s, _ in jobs]))   # written last: marks the cache complete
    return cached_feature_set()
