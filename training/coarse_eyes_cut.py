"""How far from the eye template YuNet's eye keypoints can put a face that FaceMesh puts on it: the cut
behind facecheck.cascade.NEAR_TEMPLATE_COARSE_Z2.

    PYTHONPATH=. .venv/bin/python training/coarse_eyes_cut.py [--per-source 300]

The cascade skips FaceMesh on files that could not be flagged; but an unflagged face with its eyes on the
template is one to look at (facecheck.verdict.on_template_caveat), and only FaceMesh's eyes say so
reliably: YuNet's keypoints are the pupils at 320 px, biased and noisier against the template's spreads.
So FaceMesh also runs wherever YuNet's eyes give template_z2 at or below a cut. This script measures, on
fold 1 (never the test fold), under the degradations of the fusion's fit, the coarse z2 of every face whose
FaceMesh z2 is on the template (<= ON_TEMPLATE_Z2), and prints its quantiles and the cut: the largest such
coarse z2, rounded up. benchmarks/cascade_loss.py reports on the test fold what the cut misses.
Never imported by facecheck.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from facecheck.evaluation import evaluate as evaluation  # noqa: E402
from facecheck.evaluation.dataset import read_manifest  # noqa: E402
from facecheck.faces import FaceLocator, coarse_finding  # noqa: E402
from facecheck.geometry import EyeTemplate, geometry_features  # noqa: E402
from facecheck.loading import load_image  # noqa: E402
from facecheck.runtime import Runtime  # noqa: E402
from facecheck.verdict import ON_TEMPLATE_Z2  # noqa: E402

CONDITIONS = ["as_stored", "400px_q70", "256px_q85", "150px_q80", "crop90_256px_q85", "mirror_256px_q85"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--per-source", type=int, default=300)
    args = ap.parse_args()
    locator, template = FaceLocator(Runtime("cpu")), EyeTemplate.load()
    samples = evaluation.select([s for s in read_manifest() if s.label != "other_gen"], folds=[1],
                                per_source=args.per_source)
    named = evaluation.conditions(CONDITIONS)
    pairs = []   # (label, coarse z2, FaceMesh z2)
    for n, sample in enumerate(samples):
        original = load_image(sample.path).image
        images = [np.asarray(d.convert("RGB")) for d in (apply(original) for apply in named.values()) if d is not None]
        detections = locator.detect(images)
        for image, rows, finding in zip(images, detections, locator.locate(images, detections)):
            coarse = coarse_finding(rows)
            if finding.face is None or coarse.face is None:
                continue
            h, w = image.shape[:2]
            pairs.append((sample.label, geometry_features(coarse.face, w, h, template)["template_z2"],
                          geometry_features(finding.face, w, h, template)["template_z2"]))
        if (n + 1) % 200 == 0:
            print(f"  {n + 1}/{len(samples)}", flush=True)
    coarse_on = np.array([c for _, c, f in pairs if f <= ON_TEMPLATE_Z2])
    print(f"{len(samples)} fold-1 images x {len(CONDITIONS)} conditions: {len(pairs)} faces, {len(coarse_on)} on the "
          f"template by FaceMesh (z2 <= {ON_TEMPLATE_Z2:g})")
    print("their coarse z2 (YuNet keypoints), quantiles 50/90/99/99.9/100%:",
          np.round(np.quantile(coarse_on, [0.5, 0.9, 0.99, 0.999, 1.0]), 1).tolist())
    cut = math.ceil(coarse_on.max())
    print(f"cut (the largest, rounded up): {cut}")
    for label in ("stylegan", "real_ffhq", "real_natural"):
        c = np.array([c for lab, c, _ in pairs if lab == label])
        print(f"  {label}: {np.mean(c <= cut) * 100:.1f}% of {len(c)} faces at or below the cut")


if __name__ == "__main__":
    main()
