"""Real photos aligned the FFHQ way (hard negatives), and StyleGAN faces taken off that template (augmentation).

    nice -n 19 /work/venv-train/bin/python training/align_ffhq.py --out scratch/aligned      # resumable
    /work/venv-train/bin/python training/align_ffhq.py --grid scratch/aligned/grid.png       # a look at 24 outputs

Real FFHQ photos share StyleGAN's geometry, so a detector that learns "aligned" instead of "generated" flags them.
This script makes many more of them from the real photos of ../shared/data: the FFHQ recipe (ffhq-dataset's
`recreate_aligned_images`: eye and mouth landmarks -> oriented square quad -> crop, reflect-pad with blur where the
quad leaves the photo, resample) at several output sizes. Landmarks come from facecheck's own face locator
(facecheck.faces.FaceLocator): its eye centres are FFHQ's (the mean of dlib's six eye-contour points, calibrated),
and the mouth corners are FaceMesh points 61 and 291 (dlib's 48 and 54), averaged over the crop and its mirror.

An output size is made only when the quad in the photo is at least that large (never upscaled: upscaled reals
would be softer than StyleGAN faces, a tell of their own), and only from photos at least as large as the smallest
output size (in LFW's 150 px thumbnails such a quad would be mostly padding). Sources: every `real_natural` photo and the FFHQ reals
stored at 512 px (re-aligned at smaller sizes, so aligned reals come in the sizes StyleGAN faces come in: the
size trap of ../shared/notes.md); the 128 px thumbnails are too small.

Output: scratch/aligned/images/real_ffhq/aligned_<source>/<size>/<original file name>, JPEG q95 4:4:4, and
scratch/aligned/manifest.csv with ../shared/data's columns plus `origin` (the original's file in ../shared/data).
The file NAME is the original's, so facecheck.evaluation.dataset.split_of puts every aligned copy in its original's fold.

`off_template` is the other half: a random shift, zoom and small rotation of a face, so that StyleGAN faces (and
aligned reals, to stay symmetric) are not always on the template; training/train_backbone_v3.py applies it.
Never imported by facecheck.
"""
from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from training.scratch_manifest import COLUMNS as MANIFEST_COLUMNS, appender, finished_rows  # noqa: E402

SIZES = (256, 300, 400, 512)
MESH_MOUTH_CORNERS = (61, 291)     # FaceMesh points at dlib's 48 and 54 (outer mouth corners)
COLUMNS = (*MANIFEST_COLUMNS, "origin")
REALIGNED_FFHQ = ("dinablachman_realorfake_ffhq", "xrv0_whichfaceisreal_ffhq_png")


# --- the FFHQ recipe -----------------------------------------------------------------------------------------
def ffhq_quad(eye_left, eye_right, mouth_left, mouth_right) -> np.ndarray:
    """FFHQ's oriented square [4, 2] (corners: top-left, bottom-left, bottom-right, top-right, in the face's frame)
    from the eye centres and outer mouth corners (left/right as seen in the image), in pixels."""
    eye_left, eye_right = np.asarray(eye_left, float), np.asarray(eye_right, float)
    mouth_left, mouth_right = np.asarray(mouth_left, float), np.asarray(mouth_right, float)
    eye_avg = (eye_left + eye_right) / 2
    eye_to_eye = eye_right - eye_left
    eye_to_mouth = (mouth_left + mouth_right) / 2 - eye_avg
    x = eye_to_eye - np.flipud(eye_to_mouth) * [-1, 1]
    if not np.all(np.isfinite(x)) or np.hypot(*x) < 1e-6:
        raise ValueError("degenerate landmarks: eyes and mouth give no face orientation")
    x /= np.hypot(*x)
    x *= max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8)
    y = np.flipud(x) * [-1, 1]
    c = eye_avg + eye_to_mouth * 0.1
    return np.stack([c - x - y, c - x + y, c + x + y, c + x - y])


def quad_side(quad: np.ndarray) -> float:
    return float(np.hypot(*(quad[3] - quad[0])))


def align(img: Image.Image, quad: np.ndarray, out_side: int) -> Image.Image:
    """ffhq-dataset's recreate_aligned_images from the quad on: shrink, crop, reflect-pad with blur, resample."""
    from scipy.ndimage import gaussian_filter
    img, quad = img.convert("RGB"), quad.astype(float).copy()
    qsize = quad_side(quad)
    shrink = int(np.floor(qsize / out_side * 0.5))
    if shrink > 1:
        img = img.resize((int(np.rint(img.size[0] / shrink)), int(np.rint(img.size[1] / shrink))), Image.Resampling.LANCZOS)
        quad /= shrink
        qsize /= shrink
    border = max(int(np.rint(qsize * 0.1)), 3)
    lo, hi = np.floor(quad.min(axis=0)).astype(int), np.ceil(quad.max(axis=0)).astype(int)
    crop = (max(lo[0] - border, 0), max(lo[1] - border, 0), min(hi[0] + border, img.size[0]), min(hi[1] + border, img.size[1]))
    if crop[2] - crop[0] < img.size[0] or crop[3] - crop[1] < img.size[1]:
        img = img.crop(crop)
        quad -= crop[:2]
    lo, hi = np.floor(quad.min(axis=0)).astype(int), np.ceil(quad.max(axis=0)).astype(int)
    pad = (max(-lo[0] + border, 0), max(-lo[1] + border, 0), max(hi[0] - img.size[0] + border, 0), max(hi[1] - img.size[1] + border, 0))
    if max(pad) > border - 4:
        pad = np.maximum(pad, int(np.rint(qsize * 0.3)))
        arr = np.pad(np.float32(img), ((pad[1], pad[3]), (pad[0], pad[2]), (0, 0)), "reflect")
        h, w, _ = arr.shape
        yy, xx, _ = np.ogrid[:h, :w, :1]
        mask = np.maximum(1.0 - np.minimum(np.float32(xx) / pad[0], np.float32(w - 1 - xx) / pad[2]),
                          1.0 - np.minimum(np.float32(yy) / pad[1], np.float32(h - 1 - yy) / pad[3]))
        blur = qsize * 0.02
        arr += (gaussian_filter(arr, [blur, blur, 0]) - arr) * np.clip(mask * 3.0 + 1.0, 0.0, 1.0)
        arr += (np.median(arr, axis=(0, 1)) - arr) * np.clip(mask, 0.0, 1.0)
        img = Image.fromarray(np.uint8(np.clip(np.rint(arr), 0, 255)), "RGB")
        quad += pad[:2]
    # FFHQ resamples the quad to 4096 px, then downsizes with antialiasing; twice the output is enough here
    # (the quad was already shrunk to at most ~4x the output).
    transform_side = min(4096, 2 * out_side)
    img = img.transform((transform_side, transform_side), Image.Transform.QUAD, tuple((quad + 0.5).flatten()),
                        Image.Resampling.BILINEAR)
    return img.resize((out_side, out_side), Image.Resampling.LANCZOS)


# --- taking faces off the template (training-time augmentation) ----------------------------------------------
def off_template_matrix(side_w: int, side_h: int, angle_deg: float, zoom: float, shift: tuple[float, float]) -> np.ndarray:
    """2x3 affine map (output -> input pixels' inverse not needed: cv2 forward map) that rotates by angle_deg about
    the centre, zooms by `zoom` and shifts by `shift` (fractions of width and height)."""
    m = cv2.getRotationMatrix2D((side_w / 2, side_h / 2), angle_deg, zoom)
    m[0, 2] += shift[0] * side_w
    m[1, 2] += shift[1] * side_h
    return m


def off_template(img: Image.Image, rng: np.random.Generator, max_angle: float = 10.0, zoom=(1.0, 1.3),
                 max_shift: float = 0.08) -> Image.Image:
    """A face moved off the StyleGAN/FFHQ template: rotated up to max_angle degrees, zoomed in up to zoom[1] and
    shifted up to max_shift of the side, same size out; uncovered corners reflect (as FFHQ's own padding does)."""
    arr = np.asarray(img.convert("RGB"))
    h, w = arr.shape[:2]
    m = off_template_matrix(w, h, float(rng.uniform(-max_angle, max_angle)), float(rng.uniform(*zoom)),
                            (float(rng.uniform(-max_shift, max_shift)), float(rng.uniform(-max_shift, max_shift))))
    return Image.fromarray(cv2.warpAffine(arr, m, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT_101))


# --- landmarks and the batch ---------------------------------------------------------------------------------
def landmarks(locator, rgb: np.ndarray):
    """(eye_left, eye_right, mouth_left, mouth_right) of the dominant face, or None without one."""
    finding, mesh = locator.locate_with_landmarks([rgb])[0]
    if finding.face is None or mesh is None:
        return None
    a, b = MESH_MOUTH_CORNERS
    # the mirror run's point a sits on the subject's other side: pair it with point b of the plain run
    c1 = (mesh.points[a] + mesh.from_mirror[b]) / 2
    c2 = (mesh.points[b] + mesh.from_mirror[a]) / 2
    mouth_left, mouth_right = (c1, c2) if c1[0] <= c2[0] else (c2, c1)
    return finding.face.eyes[0], finding.face.eyes[1], mouth_left, mouth_right


def wanted(sample) -> bool:
    return sample.label == "real_natural" or sample.source in REALIGNED_FFHQ


def run(out: Path, sizes: tuple[int, ...], limit: int | None) -> None:
    from facecheck.evaluation.dataset import data_root, read_manifest
    from facecheck.faces import FaceLocator
    from facecheck.runtime import Runtime
    root = data_root()
    samples = [s for s in read_manifest() if wanted(s)]
    if limit:
        samples = samples[::max(1, len(samples) // limit)]
    manifest = out / "manifest.csv"
    # originals already looked at (with or without output) are listed in a side file, so a rerun skips them
    seen_file = out / "seen.txt"
    seen = set(seen_file.read_text().split("\n")) if seen_file.is_file() else set()
    seen |= {r["origin"] for r in finished_rows(manifest)}
    locator = FaceLocator(Runtime("cpu", intra_op_threads=1))
    out.mkdir(parents=True, exist_ok=True)
    t0, made = time.time(), 0
    f, writer = appender(manifest, COLUMNS)
    with f, open(seen_file, "a") as seen_out:
        for i, s in enumerate(samples):
            origin = s.path.relative_to(root).as_posix()
            if origin in seen:
                continue
            with Image.open(s.path) as im:
                img = im.convert("RGB")
            # a quad of the smallest output size would be mostly padding in a smaller photo (LFW's 150 px)
            lm = landmarks(locator, np.asarray(img)) if max(img.size) >= min(sizes) else None
            try:
                quad = ffhq_quad(*lm) if lm is not None else None
            except ValueError as e:
                print(f"{origin}: {e}", flush=True)
                quad = None
            if quad is not None:
                qsize = quad_side(quad)
                for side in sizes:
                    if qsize < side:
                        continue
                    rel = Path("images") / "real_ffhq" / f"aligned_{s.source}" / str(side) / s.path.name
                    rel = rel.with_suffix(".jpg")
                    (out / rel).parent.mkdir(parents=True, exist_ok=True)
                    align(img, quad, side).save(out / rel, "JPEG", quality=95, subsampling=0)
                    writer.writerow({"file": rel.as_posix(), "label": "real_ffhq", "source": f"aligned_{s.source}",
                                     "generator": "", "source_repo": "", "path_in_repo": "", "orig_width": img.width,
                                     "orig_height": img.height, "orig_format": "JPEG", "width": side, "height": side,
                                     "notes": f"FFHQ alignment of {origin} (quad {qsize:.0f} px) by training/align_ffhq.py, "
                                              "landmarks from facecheck.faces.FaceLocator | stored: JPEG q95 4:4:4",
                                     "origin": origin})
                    made += 1
                f.flush()
            seen_out.write(origin + "\n")
            seen_out.flush()
            if i % 100 == 0:
                print(f"{i}/{len(samples)} originals, {made} aligned copies ({time.time() - t0:.0f} s)", flush=True)
    print(f"done: {made} new aligned copies", flush=True)


def grid(manifest: Path, path: Path, n: int = 24, tile: int = 160) -> None:
    """A PNG contact sheet of n aligned outputs (every k-th row), to check the alignment by eye."""
    with open(manifest, newline="") as f:
        rows = list(csv.DictReader(f))
    rows = rows[::max(1, len(rows) // n)][:n]
    cols = 6
    sheet = Image.new("RGB", (cols * tile, -(-len(rows) // cols) * tile), "white")
    for k, r in enumerate(rows):
        with Image.open(manifest.parent / r["file"]) as im:
            sheet.paste(im.convert("RGB").resize((tile, tile), Image.Resampling.LANCZOS), ((k % cols) * tile, (k // cols) * tile))
    sheet.save(path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=REPO / "scratch" / "aligned")
    ap.add_argument("--sizes", default=",".join(map(str, SIZES)))
    ap.add_argument("--limit", type=int, help="only about this many originals (a quick look)")
    ap.add_argument("--grid", type=Path, help="write a contact sheet of outputs to this PNG and stop")
    args = ap.parse_args(argv)
    if args.grid:
        grid(args.out / "manifest.csv", args.grid)
        return 0
    run(args.out, tuple(int(v) for v in args.sizes.split(",")), args.limit)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
