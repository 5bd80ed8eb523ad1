"""A compact training pack of the labelled faces, for training on a rented GPU machine (training/train_spectral_gpu.py).

    PYTHONPATH=. .venv/bin/python training/spectral_pack.py [--out spectral_pack]

Only the TRAINING folds (2-4 of facecheck.evaluation.dataset.split_of; never the test fold 0 nor the calibration fold 1) and
only the training labels (not other_gen). Every image is stored once, whatever its class, reduced (never
enlarged) to a longer side of at most PACK_SIDE px by facecheck.spectrum.capped (area averaging, exactly what the
scorer does to larger images) and re-encoded as JPEG quality PACK_QUALITY with 4:4:4 chroma;
PACK_SIDE = CAP_SIDE, so no training image is smaller than what the scorer would see. LFW's 150 px thumbnails are subsampled (every
LFW_KEEP-th in name order) to keep the pack small; they would be outweighed by the other real sources anyway.
The random platform degradation happens later, in the training data loader. The pack holds copies of the
licensed images: it lives in an ignored folder and is never committed.
"""
from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np
from PIL import Image

from facecheck.evaluation.dataset import read_manifest, split_of
from facecheck.spectrum import CAP_SIDE, capped

PACK_SIDE = CAP_SIDE
PACK_QUALITY = 90
LFW_KEEP = 2
TRAIN_FOLDS = (2, 3, 4)
PACK_LABELS = ("stylegan", "real_ffhq", "real_natural")


def build(out: Path) -> None:
    samples = sorted((s for s in read_manifest() if split_of(s) in TRAIN_FOLDS and s.label in PACK_LABELS),
                     key=lambda s: str(s.path))
    lfw = [s for s in samples if s.source.startswith("lfw")]
    keep_lfw = set(id(s) for s in lfw[::LFW_KEEP])
    samples = [s for s in samples if not s.source.startswith("lfw") or id(s) in keep_lfw]
    blobs, offsets = [], [0]
    for s in samples:
        with Image.open(s.path) as im:
            im = Image.fromarray(capped(np.asarray(im.convert("RGB"))))
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=PACK_QUALITY, subsampling=0)
        blobs.append(np.frombuffer(buf.getvalue(), np.uint8))
        offsets.append(offsets[-1] + len(blobs[-1]))
    out.mkdir(parents=True, exist_ok=True)
    np.savez(out / "pack.npz", data=np.concatenate(blobs), offsets=np.array(offsets, np.int64),
             label=np.array([s.label for s in samples]), source=np.array([s.source for s in samples]),
             fold=np.array([split_of(s) for s in samples]), name=np.array([s.path.name for s in samples]))
    size = (out / "pack.npz").stat().st_size
    print(f"{len(samples)} images, {size / 2**20:.1f} MiB -> {out / 'pack.npz'}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "spectral_pack"))
    build(Path(ap.parse_args(argv).out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
