"""Two `facecheck eval` results side by side: each condition's operating-point rates (TPR, FFHQ-aligned and
natural photos flagged) with their exact 95% intervals, and whether each rate lies inside the other run's
interval. Made to check a speed change that must not cost detection quality (the scan-speed issue), e.g. the
int8 spectral detector against the float32 one:

    FACECHECK_FLOAT32=1 facecheck eval --folds 0 --per-source 300 --conditions as_stored,400px_q70-85,256px_q70-85,crop90_256px_q80,128px_q70-85 --out scratch/eval_fp32 --device cpu --quiet
    facecheck eval ...same options... --out scratch/eval_int8 --reuse-geometry scratch/eval_fp32/rows.jsonl
    python benchmarks/compare_evals.py scratch/eval_fp32/eval.json scratch/eval_int8/eval.json

(--reuse-geometry is sound there: the face and eye models are the same in both runs.) Prints a Markdown table.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

KEYS = ("tpr", "flagged_real_ffhq", "flagged_real_natural")


def rate(block: dict, key: str) -> str:
    value, interval = block[key], block.get(key + "_interval")
    return "n/a" if value is None else f"{100 * value:.1f}% ({100 * interval[0]:.1f}-{100 * interval[1]:.1f})"


def agree(x: dict, y: dict) -> bool:
    """Each rate of one run inside the other's interval, both ways."""
    return all(x[k] is None or y[k] is None or
               (y[k + "_interval"][0] <= x[k] <= y[k + "_interval"][1] and x[k + "_interval"][0] <= y[k] <= x[k + "_interval"][1])
               for k in KEYS)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("before", type=Path)
    ap.add_argument("after", type=Path)
    args = ap.parse_args()
    a = json.loads(args.before.read_text())["summary"]["by_condition"]
    b = json.loads(args.after.read_text())["summary"]["by_condition"]
    print("| condition | mode | TPR before | TPR after | FFHQ flagged before | after | natural flagged before | after | within intervals |")
    print("|---|---|---|---|---|---|---|---|---|")
    for condition in a:
        if condition not in b:
            continue
        for mode in ("default", "sensitive", "strict"):
            x, y = a[condition][mode], b[condition][mode]
            cells = [rate(block, k) for k in KEYS for block in (x, y)]
            print(f"| {condition} | {mode} | " + " | ".join(cells) + f" | {'yes' if agree(x, y) else 'NO'} |")


if __name__ == "__main__":
    main()
