"""Leave-one-source-out runs of a v3 recipe written up apart from the card: for runs the card does not carry (another
recipe's, or the same source under another protocol), in the card's own words and tables.

    /work/venv-train/bin/python training/backbone3_loso_report.py --runs loso13_bhunakit loso13_bhunakit_pair \
        --out training/reports/backbone_v3_loso_shipped_recipe.md

Each run was trained by training/train_backbone_v3.py with the source in --hold-out and scored by
training/export_backbone_v3.py loso (scratch/bb3/<run>/results.json "loso"). Never imported by facecheck.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from training.backbone3_card import RUNS_DIR, loso_lines  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", nargs="+", required=True, metavar="RUN")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--title", default="Leave-one-source-out, v3 backbone recipe")
    ap.add_argument("--recipe-note", default="compare its options with the shipped model's in weights/backbone.md",
                    help="whose recipe the runs follow")
    ap.add_argument("--summary", help="a paragraph after the preamble: what the runs differ in and what they show")
    args = ap.parse_args(argv)
    loso = [json.loads((RUNS_DIR / r / "results.json").read_text())["loso"] for r in args.runs]
    L = [f"# {args.title}\n"]
    L.append(f"Written by `training/backbone3_loso_report.py {shlex.join(sys.argv[1:] if argv is None else argv)}`; "
             "why these runs were made, and what they are compared with, is in "
             "training/reports/backbone_v3_recipe_ship_rules.txt. Never imported by facecheck.\n")
    if args.summary:
        L.append(args.summary + "\n")
    L.extend(loso_lines(loso, args.recipe_note))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(L))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
