"""Seeded degraded copies of the labelled faces, and the resumable on-disk cache the training pipelines keep them in.

The spectral detector (training/spectral_data.py), the v2 backbone (training/backbone_data.py) and the v3 backbone
(training/backbone3_data.py) all train and calibrate on platform-degraded copies
(facecheck.evaluation.degrade.random_platform), every class alike. Each copy is seeded by its file name, its copy
number and a salt naming the pipeline (`seed_of`), so every run, and every earlier cache, sees the same images:
changing `seed_of` or `Degradation.apply` changes every cached copy and every number published from them
(tests/test_training_shared.py pins both to the formulas the caches were built with).

`ArrayCache` keeps named entries under one folder, each written whole under a temporary name and then renamed, so
an interrupted build leaves no half entry and a rerun builds only what is missing. Never imported by facecheck.
"""
from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from facecheck.evaluation.degrade import random_platform


def seed_of(name: str, copy: int, salt: str) -> int:
    """The seed of copy number `copy` of the file `name` in the pipeline `salt` (48 bits of a SHA-1)."""
    return int(hashlib.sha1(f"{salt}:{name}:{copy}".encode()).hexdigest()[:12], 16)


def copy_rng(name: str, copy: int, salt: str) -> np.random.Generator:
    return np.random.default_rng(seed_of(name, copy, salt))


@dataclass(frozen=True)
class Degradation:
    """random_platform's parameters for one pipeline, and how the longer side of a copy is bounded.

    max_side None: within the image's own size (never enlarged; the floor min_side, or the image's own side if
    smaller). Otherwise min_side..max_side, and with small_fraction > 0 that share of copies is capped at small_side
    instead (one draw from the generator first, so that small images are no class's tell)."""
    max_side: int | None = 512
    min_side: int = 96
    small_fraction: float = 0.0
    small_side: int = 160
    max_crop: float = 0.08

    def apply(self, img: Image.Image, rng: np.random.Generator) -> Image.Image:
        if self.max_side is None:
            side = max(img.size)
            low, high = min(self.min_side, side), side
        else:
            low = self.min_side
            # the draw happens only where a small share is asked for: the generator's stream is part of the copy
            small = self.small_fraction > 0 and rng.random() < self.small_fraction
            high = self.small_side if small else self.max_side
        return random_platform(img, rng, min_side=low, max_side=high, max_crop=self.max_crop)


def degraded_copy(img: Image.Image, name: str, copy: int, salt: str, degradation: Degradation) -> Image.Image:
    """Copy number `copy` of `img` (the file `name`), degraded the pipeline's way with its own seed."""
    return degradation.apply(img, copy_rng(name, copy, salt))


class ArrayCache:
    """Named entries of arrays under `folder`, in one of three forms chosen by `suffix`:

    - "" : a folder of one .npy per field, memory-mapped on reading (entries too large for memory; `array_writer`
      fills one field in place while it is built);
    - ".npz": one numpy archive, read whole;
    - ".pt": one torch.save file (a dict of tensors and lists, or one tensor; torch is imported only when such an
      entry is read or written).
    An entry exists only once complete: it is written as <name><suffix>.part and renamed at the end.
    """

    def __init__(self, folder: Path, suffix: str = ".npz"):
        if suffix not in ("", ".npz", ".pt"):
            raise ValueError(f"unknown cache form {suffix!r}: '', '.npz' or '.pt'")
        self.folder, self.suffix = Path(folder), suffix

    def path(self, name: str) -> Path:
        return self.folder / f"{name}{self.suffix}"

    def _partial(self, name: str) -> Path:
        return self.folder / f"{name}{self.suffix}.part"

    def has(self, name: str) -> bool:
        return self.path(name).exists()

    def names(self, pattern: str = "*") -> list[str]:
        """Complete entries whose name matches the glob `pattern`, in path order."""
        found = sorted(p for p in self.folder.glob(pattern + self.suffix) if not p.name.endswith(".part"))
        return [p.name[:len(p.name) - len(self.suffix)] if self.suffix else p.name for p in found]

    def remove(self, pattern: str) -> None:
        """Delete the complete entries matching `pattern` (stale ones, e.g. a shard whose image count changed)."""
        for name in self.names(pattern):
            path = self.path(name)
            shutil.rmtree(path) if path.is_dir() else path.unlink()

    def load(self, name: str, mmap=True):
        """The entry's fields. Folder entries: every field memory-mapped (mmap True), or only the fields named in
        mmap (a collection), the others read whole."""
        path = self.path(name)
        if not path.exists():
            raise FileNotFoundError(f"no cached entry {name!r} under {self.folder}")
        if self.suffix == ".npz":
            with np.load(path) as archive:
                return dict(archive)
        if self.suffix == ".pt":
            import torch
            return torch.load(path, weights_only=False)
        mapped = (lambda field: True) if mmap is True else (lambda field: field in mmap)
        return {p.stem: np.load(p, mmap_mode="r" if mapped(p.stem) else None) for p in sorted(path.glob("*.npy"))}

    def array_writer(self, name: str, field: str, dtype, shape: tuple) -> np.memmap:
        """A field of a folder entry, memory-mapped for writing in place; `save(name, ...)` completes the entry."""
        if self.suffix:
            raise ValueError("array_writer is for folder entries (suffix '')")
        partial = self._partial(name)
        partial.mkdir(parents=True, exist_ok=True)
        return np.lib.format.open_memmap(partial / f"{field}.npy", "w+", dtype, shape)

    def save(self, name: str, entry) -> Path:
        """Write `entry` whole (besides any fields filled through array_writer), then make it visible."""
        self.folder.mkdir(parents=True, exist_ok=True)
        partial, final = self._partial(name), self.path(name)
        if self.suffix == ".npz":
            with open(partial, "wb") as f:        # a file object: np.savez would add ".npz" to a path
                np.savez(f, **entry)
        elif self.suffix == ".pt":
            import torch
            torch.save(entry, str(partial))
        else:
            partial.mkdir(parents=True, exist_ok=True)
            for field, values in entry.items():
                np.save(partial / f"{field}.npy", values)
            if final.exists():
                shutil.rmtree(final)
        partial.replace(final)
        return final
