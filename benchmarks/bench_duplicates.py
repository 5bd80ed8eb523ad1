"""Reused-avatar benchmark: pair recall and precision among aligned-face distractors, hashing
throughput, and index build and query time at 10k, 100k and 1M hashes.

    python benchmarks/bench_duplicates.py [--originals 300] [--sizes 10000 100000 1000000]

Originals are StyleGAN and real FFHQ faces from ../shared/data, folds 1-4 (fold 0 was used while
choosing MATCH_RADIUS and VERIFY_MIN); each gets three reposts (facecheck.degrade.random_repost:
150-400 px, JPEG q60-95, crops up to 8%, mirroring, borders up to 5%, brightness and gamma). Every
other aligned face of those folds, and real natural photos, are reposted once as distractors.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
from PIL import Image

from facecheck import degrade
from facecheck.dataset import data_root, read_manifest, split_of
from facecheck.duplicates import Groups, find_matches
from facecheck.hashing import signatures
from facecheck.index import HashIndex


def quality(args) -> np.ndarray:
    rng = np.random.default_rng(args.seed)
    rows = [s for s in read_manifest() if split_of(s) != 0]
    aligned = [s for s in rows if s.label in ("stylegan", "real_ffhq")]
    natural = [s for s in rows if s.label == "real_natural"][: args.natural]
    rng.shuffle(aligned)
    originals, distractors = aligned[: args.originals], aligned[args.originals:] + natural
    images, truth = [], []
    for k, s in enumerate(originals):
        img = Image.open(s.path).convert("RGB")
        images += [img] + [degrade.random_repost(img, rng) for _ in range(3)]
        truth += [k] * 4
    for k, s in enumerate(distractors):
        images.append(degrade.random_repost(Image.open(s.path).convert("RGB"), rng))
        truth.append(-1 - k)
    t = time.perf_counter()
    sigs = signatures(images)
    hash_s = time.perf_counter() - t
    codes = np.stack([np.frombuffer(s.dct256.packed(), np.uint8) for s in sigs])
    thumbs = np.stack([s.thumbnail for s in sigs])
    t = time.perf_counter()
    matches = find_matches(np.stack([s.probes for s in sigs]), thumbs, HashIndex(codes),
                           query_ids=np.arange(len(sigs)), thumbnail_of=lambda i: thumbs[i])
    match_s = time.perf_counter() - t
    groups = Groups()
    for m in matches:
        groups.union(m.a, m.b)
    labels = np.array([groups.find(i) for i in range(len(images))])
    truth = np.array(truth)
    iu = np.triu_indices(len(images), 1)
    pred, true = labels[iu[0]] == labels[iu[1]], truth[iu[0]] == truth[iu[1]]
    tp = int((pred & true).sum())
    print(f"images: {len(images)} ({len(originals)} originals x 4 copies, {len(distractors)} distractors, "
          f"{len(aligned) - len(originals)} of them aligned faces)")
    print(f"pair recall    {tp / true.sum():.4f}  ({tp} of {int(true.sum())} same-photo pairs)")
    print(f"pair precision {tp / max(1, pred.sum()):.4f}  ({int(pred.sum()) - tp} wrong pairs of {int(pred.sum())})")
    print(f"hashing: {len(images) / hash_s:.0f} images/s in one process "
          f"({hash_s / len(images) * 1000:.2f} ms/image, decoded images of up to 512 px)")
    print(f"matching (probe + verify): {match_s / len(images) * 1000:.2f} ms/image")
    return np.stack([s.probes for s in sigs])


def index_speed(probes: np.ndarray, sizes: list[int], seed: int) -> None:
    """Index of `size` codes: the real hashes plus structured synthetic ones (real codes with 30% of
    bits flipped, as distinct faces differ); queries are the real images' probe codes."""
    rng = np.random.default_rng(seed)
    real = probes[:, 0]
    queries = probes[:200].reshape(-1, 32)       # 200 images x all their probes
    for size in sizes:
        fill = real[rng.integers(0, len(real), size - len(real))]
        noise = np.packbits(rng.random((len(fill), 256)) < 0.3, axis=1)
        codes = np.concatenate([real, fill ^ noise])
        t = time.perf_counter()
        index = HashIndex(codes)
        build = time.perf_counter() - t
        t = time.perf_counter()
        found = index.range_search(queries, 64)
        per_query = (time.perf_counter() - t) / len(queries)
        line = (f"index of {size:>9,} hashes ({'exact' if size < 200_000 else 'inverted file'}): build {build:6.1f} s, "
                f"query {per_query * 1000:.3f} ms per probe code ({per_query * probes.shape[1] * 1000:.1f} ms per image)")
        if size >= 200_000:
            exact = HashIndex(codes, exact=True).range_search(queries[:2000], 64)
            want = sum(len(ids) for ids, _ in exact)
            got = sum(len(np.intersect1d(a[0], b[0])) for a, b in zip(found[:2000], exact))
            line += f", recall vs exact search {got / max(1, want):.4f}"
        print(line, flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--originals", type=int, default=300)
    ap.add_argument("--natural", type=int, default=500)
    ap.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--seed", type=int, default=11)
    args = ap.parse_args()
    if data_root() is None:
        raise SystemExit("../shared/data is absent: this benchmark needs the labelled face images")
    probes = quality(args)
    index_speed(probes, args.sizes, args.seed)


if __name__ == "__main__":
    main()
