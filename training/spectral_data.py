"""Degraded training copies of the labelled faces, cut into the detector's tiles, cached under scratch/.

Every class goes through the same random platform degradation (facecheck.degrade.random_platform): downscale,
JPEG q50-98, small crops, mirroring, mild blur or sharpening. Sizes are matched between classes: a third of all
copies are taken down to 96-160 px, where the 150 px LFW thumbnails live, so that "small image" does not mean
"real"; the rest go to 96-512 px.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from PIL import Image

from facecheck.dataset import Sample, read_manifest, split_of
from facecheck.degrade import random_platform
from facecheck.spectrum import image_tiles

CACHE_DIR = Path(__file__).resolve().parent.parent / "scratch" / "spectral_cache"
TEST_FOLD = 0          # never trained or tuned on; the benchmark reports on it
CALIB_FOLD = 1         # early stopping, calibration and the operating threshold
SMALL_SIDE_FRACTION = 0.35
# Degraded copies per image: the rare classes get more, so that classes are roughly balanced.
COPIES = {"stylegan": 8, "real_ffhq": 5, "real_natural": 5, "other_gen": 2}
LFW_COPIES = 1         # 3700 thumbnails already dominate the small sizes


@dataclass
class TileSet:
    tiles: np.ndarray      # uint8 [N, T, TILE, TILE, 3]: facecheck.spectrum.image_tiles of each degraded copy
    is_gan: np.ndarray     # float32 [N], 1 for stylegan
    label: np.ndarray      # str [N]
    source: np.ndarray     # str [N]
    fold: np.ndarray       # int [N]
    side: np.ndarray       # int [N], longer side after degradation

    def subset(self, mask: np.ndarray) -> "TileSet":
        return TileSet(*(getattr(self, f)[mask] for f in self.__dataclass_fields__))


def copies_of(sample: Sample) -> int:
    return LFW_COPIES if sample.source.startswith("lfw") else COPIES[sample.label]


def _seed(sample: Sample, copy: int, salt: str) -> int:
    return int(hashlib.sha1(f"{salt}:{sample.path.name}:{copy}".encode()).hexdigest()[:12], 16)


def degraded_copy(sample: Sample, copy: int, salt: str = "spectral-v1") -> Image.Image:
    rng = np.random.default_rng(_seed(sample, copy, salt))
    max_side = 160 if rng.random() < SMALL_SIDE_FRACTION else 512
    with Image.open(sample.path) as im:
        return random_platform(im.convert("RGB"), rng, max_side=max_side)


def _tiles_of(job):
    sample, copy = job
    img = degraded_copy(sample, copy)
    return image_tiles(np.asarray(img)).astype(np.uint8), max(img.size)


def build_tile_set(samples: list[Sample], workers: int = 2) -> TileSet:
    jobs = [(s, c) for s in samples for c in range(copies_of(s))]
    with Pool(workers) as pool:
        out = pool.map(_tiles_of, jobs, chunksize=32)
    return TileSet(
        tiles=np.stack([t for t, _ in out]),
        is_gan=np.array([s.is_stylegan for s, _ in jobs], dtype=np.float32),
        label=np.array([s.label for s, _ in jobs]),
        source=np.array([s.source for s, _ in jobs]),
        fold=np.array([split_of(s) for s, _ in jobs]),
        side=np.array([side for _, side in out]),
    )


def cached_tile_set(rebuild: bool = False) -> TileSet:
    """Tiles of degraded copies of every manifest image (all folds; callers pick folds). ~2 GB, one .npy per field."""
    fields = list(TileSet.__dataclass_fields__)
    paths = {f: CACHE_DIR / f"{f}.npy" for f in fields}
    if all(p.is_file() for p in paths.values()) and not rebuild:
        return TileSet(**{f: np.load(p, mmap_mode="r" if f == "tiles" else None) for f, p in paths.items()})
    ts = build_tile_set(read_manifest())
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    for f, p in paths.items():
        np.save(p, getattr(ts, f))
    return ts
