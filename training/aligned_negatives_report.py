"""How often the shipped pipeline flags FFHQ-aligned copies of held-out real photos (issue 20's hard negatives made by
alignment, used here as a test set): a table by condition, counted by copy and by original photo.

    PYTHONPATH=. .venv/bin/python training/align_ffhq.py ...            # the aligned copies, scratch/aligned/ (see its doc)
    .venv/bin/facecheck eval scratch/aligned/manifest.csv --folds 0 --device cpu --depth full \\
        --conditions as_stored,400px_q70-85,256px_q70-85,crop90_256px_q80,grey_400px_q70-85 --out scratch/eval_aligned_fold0
    PYTHONPATH=. .venv/bin/python training/aligned_negatives_report.py scratch/eval_aligned_fold0 \\
        --out training/reports/aligned_negatives_fold0.md

Each real photo of ../shared/data with a large enough face has up to four aligned copies (256, 300, 400, 512 px) that
keep its file name, hence its fold: fold 0 holds copies of test-fold photos only, which no shipped model was trained
or tuned on. Copies of one photo are not independent, so the intervals are counted by original photo (a photo
counts as flagged when any of its copies is). Never imported by facecheck.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from facecheck.evaluation import evaluate as evaluation  # noqa: E402
from training.card_writer import table  # noqa: E402

# the aligned sources whose originals are real FFHQ photos (already aligned once); the rest are natural photos
FFHQ_ORIGINS = ("dinablachman_realorfake_ffhq", "xrv0_whichfaceisreal_ffhq_png")


def kind_of(source: str) -> str:
    return "FFHQ photos, re-aligned" if source.endswith(FFHQ_ORIGINS) else "natural photos, aligned"


def report(eval_dir: Path) -> list[str]:
    record = json.loads((eval_dir / "eval.json").read_text())
    thresholds = record["summary"]["thresholds"]
    every = evaluation.read_rows(eval_dir / "rows.jsonl")
    rows = [r for r in every if r.error is None]
    errors = len(every) - len(rows)
    lines = [f"Command: `{record.get('command', '')}` ({record.get('images')} copies, {errors} errors); fusion "
             "thresholds " + ", ".join(f"{m} {t:.4f}" for m, t in thresholds.items()) + ".", ""]
    head = ["condition", "originals", "copies flagged, default", "originals flagged, default (95% interval)",
            "originals flagged, sensitive", "originals flagged, strict"]
    body = []
    for condition in dict.fromkeys(r.condition for r in rows):
        for kind in ("natural photos, aligned", "FFHQ photos, re-aligned"):
            group = [r for r in rows if r.condition == condition and kind_of(r.source) == kind]
            if not group:
                continue
            originals = {Path(r.file).name for r in group}

            def flagged_originals(mode):
                return len({Path(r.file).name for r in group if r.gan_score >= thresholds[mode]})
            k = flagged_originals("default")
            lo, hi = evaluation.binomial_interval(k, len(originals))
            copies = sum(r.gan_score >= thresholds["default"] for r in group)
            body.append([f"{condition}: {kind}", len(originals), f"{copies}/{len(group)}",
                         f"{k}/{len(originals)} ({100 * lo:.1f}-{100 * hi:.1f}%)", flagged_originals("sensitive"),
                         flagged_originals("strict")])
    return lines + table(head, body)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("eval_dir", type=Path, help="--out of `facecheck eval` on scratch/aligned/manifest.csv")
    ap.add_argument("--out", type=Path, help="write the table here (markdown) as well as printing it")
    args = ap.parse_args(argv)
    lines = report(args.eval_dir)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text("# FFHQ-aligned copies of test-fold real photos: how often the shipped pipeline flags them\n\n"
                            + (__doc__.split("\n\n")[2].replace("\n", " ") + "\n\n")
                            + f"Written by `training/aligned_negatives_report.py {args.eval_dir} --out {args.out}`.\n\n"
                            + text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
