"""Reused-avatar benchmark: pair recall and precision of the grouping on reposts of face photos
among distinct distractors, hashing and matching cost, and index build and query time at 10k, 100k
and 1M hashes.

    python benchmarks/bench_duplicates.py [--split test|dev] [--originals 300] [--distractors 2000]
                                          [--aligned-distractors 600] [--sizes 10000 100000 1000000]

The set is built like the held-out set that judged the project: originals, half aligned faces
(StyleGAN and real FFHQ, 128-512 px) and half natural photos (LFW's 150 px thumbnails, Pixabay,
HELEN, Unsplash), drawn source by source (one file per photo), each kept as its own file and
reposted 2-4 times, each repost by one of eight transforms (REPOSTS below: an exact copy of the
file, a resize to 150-400 px, JPEG q60-95, a mirror, a 92% crop, a 12 px border at 300 px, gamma
0.8, a 95% crop mirrored at 200 px), a third of them then resized and recompressed once more;
among distinct distractors (by default 2000, 600 of them aligned faces), each as its file or one
random repost. Every image goes through the scan's own
path: encoded bytes, decoded by load_image, grouped by sha256 and by verified matches.

`--split dev` draws from fold 0 of ../shared/data, on which the matching's thresholds were chosen;
`--split test` (the default, the numbers the README reports) from folds 1-4.

`--second-look on|off|both` (default both): group with facecheck.second_look deciding the pairs
whose thumbnail score lies in duplicates.SECOND_LOOK_BAND (each image decoded again from its bytes,
as a scan re-reads its files), or with the thumbnail bar alone (as for the known index), or both, one
after the other. `--second-look-scores` prints what the second look measured on the pairs it was
asked about, same photo or not (choose its thresholds on --split dev only).
"""
from __future__ import annotations

import argparse
import collections
import csv
import io
import time

import cv2
import numpy as np
from PIL import Image

from facecheck import duplicates, second_look
from facecheck.evaluation import degrade
from facecheck.evaluation.dataset import data_root, read_manifest, split_of
from facecheck.pipeline.finish import GROUPING_CHUNK
from facecheck.grouping import group_files
from facecheck.hashing import signatures
from facecheck.index import HashIndex
from facecheck.loading import load_image

ALIGNED, NATURAL = ("stylegan", "real_ffhq"), ("real_natural",)


def _encoded(img: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def _frame_colour(rng) -> tuple[int, int, int]:
    return ((255, 255, 255), (0, 0, 0), tuple(int(v) for v in rng.integers(0, 256, 3)))[int(rng.integers(0, 3))]


def _framed(img: Image.Image, width: int, colour) -> Image.Image:
    out = Image.new("RGB", (img.width + 2 * width, img.height + 2 * width), colour)
    out.paste(img, (width, width))
    return out


def _border_at_300(img: Image.Image, rng) -> Image.Image:
    return _framed(degrade.resize_to(img, 276), 12, _frame_colour(rng))


def _frame_at_own_size(img: Image.Image, rng) -> Image.Image:
    """A 12 px frame around the photo as it is: 8% of each side of a 150 px LFW photo, 9% of a 128 px
    face (the held-out set's misses)."""
    return _framed(img, 12, _frame_colour(rng))


def _wide_frame_at_own_size(img: Image.Image, rng) -> Image.Image:
    """A frame of 10-25% of each side of the framed image (w / (2w + side) = fraction, on the shorter side)."""
    fraction = float(rng.uniform(0.10, 0.25))
    return _framed(img, int(min(img.size) * fraction / (1 - 2 * fraction)), _frame_colour(rng))


# name -> (image, rng) -> transformed image (repost() encodes it); None: the original file's own bytes
REPOSTS = {
    "exact copy": None,
    "resize 150-400": lambda im, rng: degrade.resize_to(im, int(rng.integers(150, 401))),
    "jpeg q60-95": lambda im, rng: im,
    "mirror": lambda im, rng: degrade.mirror(im),
    "crop 92%": lambda im, rng: degrade.crop_fraction(im, 0.08, rng),
    "border 12px at 300": _border_at_300,
    "frame 12px at own size": _frame_at_own_size,
    "frame 10-25% at own size": _wide_frame_at_own_size,
    "gamma 0.8": lambda im, rng: degrade.brightness_gamma(im, gamma=0.8),
    "crop 95% mirrored at 200": lambda im, rng: degrade.resize_to(degrade.mirror(degrade.crop_fraction(im, 0.05, rng)), 200),
}


def repost(data: bytes, kind: str, rng) -> bytes:
    """One repost of a file's bytes by the named transform; a third of them (not exact copies) are
    then resized to 150-400 px and recompressed once more, as a second platform would."""
    transform = REPOSTS[kind]
    if transform is None:
        return data
    img = transform(Image.open(io.BytesIO(data)).convert("RGB"), rng)
    quality = int(rng.integers(60, 96))
    if rng.random() < 1 / 3:
        img = Image.open(io.BytesIO(_encoded(img, quality))).convert("RGB")
        img, quality = degrade.resize_to(img, int(rng.integers(150, 401))), int(rng.integers(60, 96))
    return _encoded(img, quality)


def photo_keys() -> dict[str, str]:
    """File name -> the photo it was cut from. HELEN holds several face crops of one Flickr photo
    (data/img/<photo>_<n>.jpg in its repository): they are one photo, never each other's distractors."""
    with open(data_root() / "manifest.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    keys = {}
    for row in rows:
        name = row["file"].rsplit("/", 1)[-1]
        origin = row.get("path_in_repo") or ""
        keys[name] = (f"{row['source']}:{origin.rsplit('/', 1)[-1].rsplit('_', 1)[0]}"
                      if row["source"] == "zhfe99_helen_subset" else name)
    return keys


def by_source(samples, rng) -> list:
    """The samples shuffled, then interleaved source by source, so that a few large sources (the
    128 px faces, LFW) do not make up nearly all of a draw."""
    groups = collections.defaultdict(list)
    for s in samples:
        groups[s.source].append(s)
    queues = [list(rng.permutation(np.array(g, dtype=object))) for _, g in sorted(groups.items())]
    out = []
    while any(queues):
        out += [q.pop() for q in queues if q]
    return out


def _detail_vector(path) -> np.ndarray:
    """Zero-mean, unit-length high-pass detail of a 64x64 grey thumbnail of the whole file: the
    benchmark's own look-alike measure, independent of facecheck's matching (so the set stays the
    same whatever the matching becomes)."""
    grey = np.asarray(Image.open(path).convert("L").resize((64, 64), Image.Resampling.BOX), np.float32)
    d = (grey - cv2.GaussianBlur(grey, (0, 0), 3.0)).ravel()
    d -= d.mean()
    return d / max(float(np.linalg.norm(d)), 1e-6)


def look_alikes(originals, pool, n: int) -> list:
    """For each of the first n aligned originals, the face of another photo in `pool` whose thumbnail
    detail correlates best with it (each pool face used once): different people in the same
    alignment, as similar as the data holds (the held-out set's false merges were such pairs)."""
    wanted = [s for s in originals if s.label in ALIGNED][:n]
    if not wanted or not pool:
        return []
    pool_vectors = np.stack([_detail_vector(s.path) for s in pool])
    chosen, used = [], set()
    for s in wanted:
        order = np.argsort(-(pool_vectors @ _detail_vector(s.path)))
        best = next((int(i) for i in order if int(i) not in used), None)
        if best is not None:
            used.add(best)
            chosen.append(pool[best])
    return chosen


def build_set(args):
    """(file bytes, group, description, file name, transform) of every image: originals and their reposts share
    a group (0, 1, ...); each distractor is a group of its own (negative)."""
    rng = np.random.default_rng(args.seed)
    folds = {0} if args.split == "dev" else {1, 2, 3, 4}
    rows = [s for s in read_manifest() if split_of(s) in folds]
    keys = photo_keys()
    rows = list({keys[s.path.name]: s for s in rows}.values())   # one file per photo
    aligned = by_source([s for s in rows if s.label in ALIGNED], rng)
    natural = by_source([s for s in rows if s.label in NATURAL], rng)
    half = args.originals // 2
    originals = aligned[:half] + natural[:args.originals - half]
    aligned, natural = aligned[half:], natural[args.originals - half:]
    n_aligned = min(len(aligned), args.aligned_distractors)
    n_natural = min(len(natural), args.distractors - n_aligned)
    n_aligned = min(len(aligned), args.distractors - n_natural)   # too few natural photos: more faces
    distractors = aligned[:n_aligned] + natural[:n_natural]
    lookalike = look_alikes(originals, aligned[n_aligned:], args.lookalikes)
    distractors += lookalike
    items = []
    for k, s in enumerate(originals):
        data = s.path.read_bytes()
        items.append((data, k, f"{s.source} original", s.path.name, "original"))
        for kind in rng.choice(list(REPOSTS), size=int(rng.integers(2, 5))):
            items.append((repost(data, str(kind), rng), k, f"{s.source} {kind}", s.path.name, str(kind)))
    for k, s in enumerate(distractors):
        data = s.path.read_bytes()
        if rng.random() < 0.5:
            data = _encoded(degrade.random_repost(Image.open(io.BytesIO(data)).convert("RGB"), rng), 90)
        kind = "look-alike" if k >= n_aligned + n_natural else "distractor"
        items.append((data, -1 - k, f"{s.source} {kind}", s.path.name, kind))
    return items, len(originals), n_aligned, n_natural, len(lookalike)


class RecordingLook(second_look.SecondLook):
    """The second look on the benchmark's images (decoded again from their bytes), remembering what it
    measured on each pair it was asked about."""

    def __init__(self, items, sigs):
        super().__init__(lambda i: load_image(items[i][0], min_side=second_look.LOOK_SIDE).image)
        self.sigs = sigs
        self.seen = []   # (file a, file b, Comparison, thumbnail score)

    def __call__(self, a: int, b: int) -> bool | None:
        answer = super().__call__(a, b)
        score = duplicates.registered_similarity(self.sigs[a].thumbnail, self.sigs[b].thumbnail)
        self.seen.append((a, b, self.last, score))
        return answer


def group(loaded, sigs, look=None) -> np.ndarray:
    """Group labels as a scan assigns them (facecheck.grouping, in the scan's chunks): files with the
    same bytes, then verified matches (with `look` deciding the pairs near the bar)."""
    by_sha = collections.defaultdict(list)
    for i, image in enumerate(loaded):
        by_sha[image.sha256].append(i)
    ids = np.arange(len(sigs))
    codes = np.stack([np.frombuffer(s.dct256.packed(), np.uint8) for s in sigs])
    probes, thumbs = np.stack([s.probes for s in sigs]), np.stack([s.thumbnail for s in sigs])
    chunks = ((ids[i:i + GROUPING_CHUNK], probes[i:i + GROUPING_CHUNK], thumbs[i:i + GROUPING_CHUNK])
              for i in range(0, len(ids), GROUPING_CHUNK))
    return group_files(ids, codes, chunks, thumbnail_of=lambda i: thumbs[i], same_bytes=by_sha.values(),
                       second_look=look).roots


def quality(args) -> np.ndarray:
    items, _, args.n_aligned, _, _ = build_set(args)
    loaded = [load_image(item[0]) for item in items]
    t = time.perf_counter()
    sigs = signatures([image.image for image in loaded])
    hash_s = time.perf_counter() - t
    if args.band:
        duplicates.SECOND_LOOK_BAND = tuple(args.band)
    looks = {"on": [True], "off": [False], "both": [False, True]}[args.second_look]
    for bar in args.verify_min or [duplicates.VERIFY_MIN]:
        duplicates.VERIFY_MIN = bar
        for with_look in looks:
            print(f"verification bar {bar}, " + (f"second look in {duplicates.SECOND_LOOK_BAND} "
                  f"(>= {second_look.MIN_INLIERS} inliers, detail >= {second_look.MIN_DETAIL_CORRELATION})"
                  if with_look else "no second look"))
            look = RecordingLook(items, sigs) if with_look else None
            t = time.perf_counter()
            labels = group(loaded, sigs, look)
            report(items, labels, time.perf_counter() - t, args)
            if look is not None:
                print(f"second looks: {look.calls} ({look.calls / len(items) * 1000:.1f} per 1,000 files)")
                if args.second_look_scores:
                    second_look_scores(items, look.seen, args)
    print(f"hashing: {len(items) / hash_s:.0f} images/s in one process "
          f"({hash_s / len(items) * 1000:.2f} ms/image, decoded images of up to 512 px)")
    return np.stack([s.probes for s in sigs])


def report(items, labels, match_s, args) -> None:
    n_originals = sum(item[4] == "original" for item in items)
    n_lookalike = sum(item[4] == "look-alike" for item in items)
    n_distractors = sum(item[1] < 0 for item in items)
    truth = np.array([item[1] for item in items])
    what = [item[2] for item in items]
    name = [item[3] for item in items]
    iu = np.triu_indices(len(items), 1)
    pred, true = labels[iu[0]] == labels[iu[1]], truth[iu[0]] == truth[iu[1]]
    tp = int((pred & true).sum())
    print(f"split {args.split}: {len(items)} images ({n_originals} originals with {len(items) - n_originals - n_distractors} "
          f"reposts; {n_distractors} distractors, {args.n_aligned} of them aligned faces and {n_lookalike} aligned look-alikes)")
    print(f"pair recall    {tp / true.sum():.4f}  ({tp} of {int(true.sum())} same-photo pairs)")
    print(f"pair precision {tp / max(1, pred.sum()):.4f}  ({int(pred.sum()) - tp} wrong pairs of {int(pred.sum())})")
    missed = collections.Counter()
    for a, b in zip(iu[0][true & ~pred], iu[1][true & ~pred]):
        missed[" / ".join(sorted((what[a], what[b])))] += 1
    for pair, n in missed.most_common(args.show):
        print(f"  missed {n:3d} x  {pair}")
    # each repost against its original, by transform
    kind = [item[4] for item in items]
    original_of = {truth[i]: i for i in range(len(items)) if kind[i] == "original"}
    by_kind = collections.defaultdict(lambda: [0, 0])
    for i in range(len(items)):
        if truth[i] >= 0 and kind[i] != "original":
            by_kind[kind[i]][0] += labels[i] != labels[original_of[truth[i]]]
            by_kind[kind[i]][1] += 1
    print("reposts apart from their original, by transform: " + ", ".join(
        f"{k} {missed}/{total}" for k, (missed, total) in sorted(by_kind.items())))
    merged = {tuple(sorted((truth[a], truth[b]))) for a, b in zip(iu[0][pred & ~true], iu[1][pred & ~true])}
    print(f"false merges: {len(merged)} pairs of different photos joined")
    for a, b in list(zip(iu[0][pred & ~true], iu[1][pred & ~true]))[:args.show]:
        print(f"  wrong pair: {what[a]} ({name[a]}) / {what[b]} ({name[b]})")
    print(f"matching (sha256, probe + verify): {match_s / len(items) * 1000:.2f} ms/image")


def second_look_scores(items, seen, args) -> None:
    """What the second look measured, on pairs of one photo and on pairs of different photos."""
    for same in (True, False):
        rows = [(c.inliers, c.correlation, a, b, score) for a, b, c, score in seen
                if c is not None and (items[a][1] == items[b][1]) == same]
        print(f"  second look on {len(rows)} {'same-photo' if same else 'different-photo'} pairs "
              f"(worst first); inliers by decile: {np.percentile([r[0] for r in rows], range(0, 101, 10)).round().tolist() if rows else []}; "
              f"detail by decile: {np.percentile([r[1] for r in rows], range(0, 101, 10)).round(2).tolist() if rows else []}; "
              f"thumbnail score by decile: {np.percentile([r[4] for r in rows], range(0, 101, 10)).round(3).tolist() if rows else []}")
        for inliers, corr, a, b, score in sorted(rows, key=lambda r: r[1], reverse=not same)[:args.show]:
            print(f"    inliers {inliers:4d}  detail {corr:6.3f}  thumbnail {score:.3f}  {items[a][2]} ({items[a][3]}) / {items[b][2]} ({items[b][3]})")
    unread = sum(c is None for _, _, c, _ in seen)
    if unread:
        print(f"  {unread} pairs could not be read")


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
    ap.add_argument("--split", choices=("test", "dev"), default="test")
    ap.add_argument("--originals", type=int, default=300)
    ap.add_argument("--distractors", type=int, default=2000)
    ap.add_argument("--aligned-distractors", type=int, default=600)
    ap.add_argument("--lookalikes", type=int, default=150,
                    help="extra distractors: for this many aligned originals, the most similar other aligned face")
    ap.add_argument("--verify-min", type=float, nargs="*",
                    help="verification bars to group at (default: facecheck's VERIFY_MIN); choose on --split dev")
    ap.add_argument("--second-look", choices=("on", "off", "both"), default="both",
                    help="group with the second look near the bar, without it (the bar alone), or both")
    ap.add_argument("--band", type=float, nargs=2, metavar=("LOW", "HIGH"),
                    help="thumbnail scores that get the second look (default: duplicates.SECOND_LOOK_BAND)")
    ap.add_argument("--second-look-scores", action="store_true",
                    help="print the second look's inliers and detail correlation on the pairs it saw")
    ap.add_argument("--show", type=int, default=12, help="list this many missed and wrong pairs")
    ap.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--seed", type=int, default=11)
    args = ap.parse_args()
    if data_root() is None:
        raise SystemExit("../shared/data is absent: this benchmark needs the labelled face images")
    probes = quality(args)
    index_speed(probes, args.sizes, args.seed)


if __name__ == "__main__":
    main()
