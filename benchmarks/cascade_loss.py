"""What the cascade's gate loses on labelled data: two `facecheck eval` runs of the same images, one at
`--depth full` and one at `--depth cascade`, row by row.

    facecheck eval --folds 0 --per-source 300 --conditions as_stored,400px_q70-85,256px_q70-85,crop90_256px_q80,128px_q70-85,grey_400px_q70-85,grey_256px_q70-85 --depth full --out scratch/eval_full --device cpu --quiet
    facecheck eval ...same options... --depth cascade --out scratch/eval_cascade
    python benchmarks/cascade_loss.py scratch/eval_full/rows.jsonl scratch/eval_cascade/rows.jsonl

(The cascade run must not reuse the geometry of the other: the gate decides where FaceMesh runs.)
For each condition and mode: StyleGAN TPR at full depth and through the cascade, the difference in points,
the rows whose verdict differs, the share of rows that reached FaceMesh and the spectral detector (by label),
the faces to look at (unflagged faces with eyes on the template, facecheck.verdict.on_template_caveat) and
the rows with eye positions (the report's eye heatmap) in each run. Thresholds are the shipped fusion's. Prints Markdown.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> None:
    from facecheck.evaluation.evaluate import read_rows
    from facecheck.runtime import Runtime
    from facecheck.verdict import MODES, FusionModel, on_template_caveat
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("full", type=Path, help="rows.jsonl of the --depth full run")
    ap.add_argument("cascade", type=Path, help="rows.jsonl of the --depth cascade run")
    args = ap.parse_args()
    fusion = FusionModel(Runtime("cpu"))
    thresholds = fusion.thresholds
    full = {(r.file, r.condition): r for r in read_rows(args.full) if r.error is None}
    cascade = {(r.file, r.condition): r for r in read_rows(args.cascade) if r.error is None}
    keys = sorted(full.keys() & cascade.keys())
    if len(keys) != len(full) or len(keys) != len(cascade):
        print(f"warning: {len(full)} and {len(cascade)} rows, {len(keys)} in both: only those are compared")
    conditions = list(dict.fromkeys(c for _, c in keys))
    labels = ("stylegan", "real_ffhq", "real_natural", "other_gen")

    def to_look_at(r, mode):   # the verdict's own test: an unflagged face on the template
        decision = fusion.decide(r.gan_score, r.geometry is not None, mode)
        return on_template_caveat(decision, r.geometry, thresholds) is not None

    print("| condition | mode | TPR full | TPR cascade | loss (points) | verdicts that differ | faces to look at full / cascade |")
    print("|---|---|---|---|---|---|---|")
    worst = 0.0
    for c in conditions + ["all"]:
        ks = [k for k in keys if c == "all" or k[1] == c]
        pos = [k for k in ks if full[k].label == "stylegan"]
        for mode in MODES:
            t = thresholds[mode]
            tpr_f = sum(full[k].gan_score >= t for k in pos) / max(len(pos), 1)
            tpr_c = sum(cascade[k].gan_score >= t for k in pos) / max(len(pos), 1)
            differ = sum((full[k].gan_score >= t) != (cascade[k].gan_score >= t) for k in ks)
            look = (sum(to_look_at(full[k], mode) for k in ks), sum(to_look_at(cascade[k], mode) for k in ks))
            worst = max(worst, 100 * (tpr_f - tpr_c))
            print(f"| {c} | {mode} | {100 * tpr_f:.1f}% | {100 * tpr_c:.1f}% | {100 * (tpr_f - tpr_c):+.2f} | "
                  f"{differ} of {len(ks)} | {look[0]} / {look[1]} |")
    print()
    print("Reached FaceMesh (depth eyes or full) / the spectral detector (depth full), share of each label's rows:")
    print()
    print("| condition | " + " | ".join(labels) + " | eyes found full / cascade |")
    print("|---|" + "---|" * (len(labels) + 1))
    for c in conditions + ["all"]:
        ks = [k for k in keys if c == "all" or k[1] == c]
        cells = []
        for label in labels:
            lk = [k for k in ks if cascade[k].label == label]
            eyes = sum(cascade[k].depth in ("eyes", "full") for k in lk)
            reached = sum(cascade[k].depth == "full" for k in lk)
            cells.append(f"{100 * eyes / len(lk):.1f}% / {100 * reached / len(lk):.1f}%" if lk else "-")
        eyes = (sum(full[k].geometry is not None for k in ks), sum(cascade[k].geometry is not None for k in ks))
        print(f"| {c} | " + " | ".join(cells) + f" | {eyes[0]} / {eyes[1]} |")
    print()
    print(f"largest TPR loss in any condition and mode: {worst:.2f} points")


if __name__ == "__main__":
    main()
