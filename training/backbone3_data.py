"""Training data of the v3 StyleGAN detector (issue 20): degraded copies seen two ways, cached as frozen features.

    nice -n 19 /work/venv-train/bin/python training/backbone3_data.py        # resumable; rerun to add new shards
    nice -n 19 /work/venv-train/bin/python training/backbone3_data.py --cache plain     # v2's copies (see CACHES)

Images: ../shared/data, plus (when present) the MobileStyleGAN faces of training/generate_mobilestylegan.py
(scratch/mobilestylegan) and the FFHQ-aligned real photos of training/align_ffhq.py (scratch/aligned). Folds are
facecheck.evaluation.dataset.split_of's, by file name (aligned copies keep their original's name, hence its fold): folds 2-4
train, fold 1 calibration, fold 0 test (never cached here, never trained or tuned on). other_gen is left out.

Each copy of an image, every class alike:
1. a colour change (training/colour_augment.py: greyscale, desaturated, sepia, colour cast, or none);
2. for aligned faces (stylegan, real_ffhq) with probability 0.3, a shift, zoom and small rotation off
   the FFHQ template (training/align_ffhq.off_template), so that alignment never tells the classes apart;
3. the platform degradation of the v2 backbone (training/backbone_data.DEGRADATION: a downscale within the
   image's own size, JPEG, crops, mirroring, blur/sharpening).
Two views of the copy: `whole`, the image squashed to 128 px (today's input, facecheck.backbone.model_input), and
`patches`, PATCHES patches of PATCH px cut at native resolution from the central 2*PATCH square (a copy whose
shorter side is under PATCH px has no native patches). Both go through the frozen prefix of EfficientNet-Lite0
(training/backbone_model.prefix) once, stored as float16; training then only runs the rest of the network.

Caches (CACHES): `mixed` (the default, everything above) and `plain`, the copies of the v2 backbone's recipe seen
the v3 way: no colour change, never off the template, three copies of each training image, thumbnails included
(v2's TRAIN_COPIES). With it, the v3 training script can be checked against the v2 recipe one change at a time.
`mixed3` is the mixed recipe at plain's volume (three copies of every image, thumbnails included): a copy's random
draws depend on its index alone, so its first copies are the mixed cache's. `plaincolour` is plain with the colour
changes added (never off the template): the thirteenth round's one change to the shipped recipe.

Cache (training/degraded_cache.ArrayCache): scratch/bb3_cache/<dataset>_<split>_<shard>_<images>.pt, shards of SHARD images in manifest order, each holding
whole [n, C, 32, 32], patches [m, K, C, 32, 32], patch_of [n] (row in patches, -1 for none) and per copy: label,
source, fname, side (longer side of the degraded copy), colour (the colour change), off_template. A shard whose
image count changed (a manifest still growing) is rebuilt.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from facecheck.backbone import INPUT_SIDE, PATCH, model_input, native_patches  # noqa: E402
from facecheck.evaluation.dataset import read_manifest, split_of  # noqa: E402
from training import backbone_model as bm  # noqa: E402
from training.align_ffhq import off_template  # noqa: E402
from training.backbone_data import DEGRADATION  # noqa: E402
from training.colour_augment import random_colour  # noqa: E402
from training.degraded_cache import ArrayCache, copy_rng  # noqa: E402

DATASETS = {"shared": None, "mobilestylegan": REPO / "scratch" / "mobilestylegan" / "manifest.csv",
            "aligned": REPO / "scratch" / "aligned" / "manifest.csv"}
SPLITS = {"train": (2, 3, 4), "calib": (1,)}
PATCHES = 4               # facecheck.backbone.native_patches: a 2x2 grid
SHARD = 400
SALT = "backbone-v3"
LABELS = ("stylegan", "real_ffhq", "real_natural")


class CacheKind(NamedTuple):
    directory: str            # under scratch/
    colour: bool              # a random colour change first (training/colour_augment.py)
    off_template_p: float     # chance that an aligned face (stylegan, real_ffhq) is moved off the template
    copies: dict              # copies per image and split
    small_copies: int         # at most this many of images of at most PATCH px (the 128 px thumbnails: no native view)


CACHES = {"mixed": CacheKind("bb3_cache", True, 0.3, {"train": 2, "calib": 2}, 1),
          "plain": CacheKind("bb3_cache_plain", False, 0.0, {"train": 3, "calib": 2}, 3),
          # the mixed copies at plain's volume: colour changes and off-template moves that do not thin the copies
          "mixed3": CacheKind("bb3_cache_mixed3", True, 0.3, {"train": 3, "calib": 2}, 3),
          # plain's copies with the colour changes alone (thirteenth round): colour is not evidence, the template stays
          "plaincolour": CacheKind("bb3_cache_plaincolour", True, 0.0, {"train": 3, "calib": 2}, 3)}


def cache_of(kind: str) -> ArrayCache:
    return ArrayCache(REPO / "scratch" / CACHES[kind].directory, suffix=".pt")


def training_copy(img: Image.Image, label: str, rng: np.random.Generator,
                  kind: CacheKind = CACHES["mixed"]) -> tuple[Image.Image, str, bool]:
    """One copy: colour change, maybe off the template (aligned classes), platform degradation."""
    img, colour = random_colour(img, rng) if kind.colour else (img, "none")
    moved = label in ("stylegan", "real_ffhq") and kind.off_template_p > 0 and rng.random() < kind.off_template_p
    if moved:
        img = off_template(img, rng)
    return DEGRADATION.apply(img, rng), colour, moved


def complete_rows(manifest: Path) -> Path:
    """A snapshot of the manifest's complete lines beside it: a generation script may be appending a row right now."""
    text = manifest.read_bytes()
    snapshot = manifest.with_name(manifest.stem + ".snapshot.csv")
    snapshot.write_bytes(text[:text.rfind(b"\n") + 1])
    return snapshot


def samples_of(dataset: str, split: str) -> list:
    manifest = DATASETS[dataset]
    if manifest is not None:
        if not manifest.is_file():
            return []
        manifest = complete_rows(manifest)
    return [s for s in read_manifest(manifest) if s.label in LABELS and split_of(s) in SPLITS[split]]


def prefix_features(model, views: np.ndarray, batch: int = 64) -> torch.Tensor:
    out = []
    with torch.no_grad():
        for i in range(0, len(views), batch):
            out.append(bm.prefix(model, bm.normalise(torch.from_numpy(views[i:i + batch]).float())).half())
    return torch.cat(out)


def build_shard(model, samples, split: str, kind: CacheKind) -> dict:
    wholes, patch_sets, patch_of, meta = [], [], [], []
    for s in samples:
        with Image.open(s.path) as im:
            img = im.convert("RGB")
        copies = min(kind.small_copies, kind.copies[split]) if max(img.size) <= PATCH else kind.copies[split]
        for c in range(copies):
            rng = copy_rng(s.path.name + "|" + s.source, c, SALT + split)
            copy, colour, moved = training_copy(img, s.label, rng, kind)
            rgb = np.asarray(copy.convert("RGB"))
            wholes.append(model_input(rgb, INPUT_SIDE))
            p = native_patches(rgb)
            patch_of.append(len(patch_sets) if p is not None else -1)
            if p is not None:
                patch_sets.append(p)
            meta.append((s.label, s.source, s.path.name, max(rgb.shape[:2]), colour, moved))
    whole = prefix_features(model, np.stack(wholes))
    patches = (prefix_features(model, np.concatenate(patch_sets)).reshape(len(patch_sets), PATCHES, *whole.shape[1:])
               if patch_sets else torch.zeros((0, PATCHES, *whole.shape[1:]), dtype=torch.float16))
    cols = list(zip(*meta))
    return {"whole": whole, "patches": patches, "patch_of": torch.tensor(patch_of),
            "label": list(cols[0]), "source": list(cols[1]), "fname": list(cols[2]), "side": torch.tensor(cols[3]),
            "colour": list(cols[4]), "off_template": torch.tensor(cols[5])}


def shard_name(dataset: str, split: str, index: int, n: int) -> str:
    return f"{dataset}_{split}_{index:04d}_{n}"


def build(split: str, datasets=tuple(DATASETS), kind: str = "mixed") -> None:
    cache = cache_of(kind)
    torch.set_num_threads(2)
    model = bm.build(INPUT_SIDE).eval()
    for dataset in datasets:
        samples = samples_of(dataset, split)
        for index in range(0, -(-len(samples) // SHARD)):
            chunk = samples[index * SHARD:(index + 1) * SHARD]
            name = shard_name(dataset, split, index, len(chunk))
            if cache.has(name):
                continue
            cache.remove(f"{dataset}_{split}_{index:04d}_*")
            t0 = time.time()
            shard = build_shard(model, chunk, split, CACHES[kind])
            path = cache.save(name, shard)
            print(f"{path.name}: {len(chunk)} images, {len(shard['label'])} copies, {len(shard['patches'])} with "
                  f"native patches, {time.time() - t0:.0f} s", flush=True)


def load(split: str, kind: str = "mixed") -> dict:
    """Every cached shard of a split, concatenated (patch_of re-indexed)."""
    cache = cache_of(kind)
    shards = [cache.load(name) for name in cache.names(f"*_{split}_*")]
    if not shards:
        raise FileNotFoundError(f"no cached {split} shards of the {kind} cache: run training/backbone3_data.py --cache {kind}")
    out, offset = {}, 0
    patch_of = []
    for sh in shards:
        po = sh["patch_of"].clone()
        po[po >= 0] += offset
        offset += len(sh["patches"])
        patch_of.append(po)
    for key in ("whole", "patches"):
        # copied into one preallocated tensor shard by shard, each freed at once: peak memory stays near the cache's size
        total = sum(len(sh[key]) for sh in shards)
        out[key] = torch.empty((total, *shards[0][key].shape[1:]), dtype=torch.float16)
        at = 0
        for sh in shards:
            part = sh.pop(key)
            out[key][at:at + len(part)] = part
            at += len(part)
            del part
    out["patch_of"] = torch.cat(patch_of)
    for k in ("label", "source", "fname", "colour"):
        out[k] = np.array([v for sh in shards for v in sh[k]])
    for k in ("side", "off_template"):
        out[k] = torch.cat([sh[k] for sh in shards]).numpy()
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--splits", default="calib,train")
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument("--cache", choices=CACHES, default="mixed")
    args = ap.parse_args(argv)
    for split in args.splits.split(","):
        build(split, tuple(args.datasets.split(",")), args.cache)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
