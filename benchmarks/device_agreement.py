"""Do two scans of the same folder agree? For the CPU against the CUDA path of ONNX Runtime (the CPU runs the
int8 spectral model, CUDA the float32 one, so scores may differ in their last digits; verdicts should not).

    python benchmarks/device_agreement.py OUT_CPU/results.jsonl OUT_CUDA/results.jsonl [--json agreement.json]

Prints, over the files both scans analysed: how many verdicts differ (and which), and the largest and median
absolute differences of gan_score, backbone_score, spectral_score (where both have one) and the eye positions.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

SCORES = ("gan_score", "backbone_score", "spectral_score", "eye_score")


def rows_by_path(path: Path) -> dict:
    with open(path, encoding="utf-8") as f:
        return {r["path"]: r for r in map(json.loads, f) if not r.get("error")}


def agreement(a: dict, b: dict) -> dict:
    common = sorted(a.keys() & b.keys())
    out = {"files": len(common), "only_in_first": len(a.keys() - b.keys()), "only_in_second": len(b.keys() - a.keys()),
           "verdicts_differ": [(p, a[p]["verdict"], b[p]["verdict"]) for p in common if a[p]["verdict"] != b[p]["verdict"]]}
    for key in SCORES:
        d = np.array([abs(a[p][key] - b[p][key]) for p in common if a[p].get(key) is not None and b[p].get(key) is not None])
        out[key] = {"pairs": int(d.size), "max": float(d.max()) if d.size else None,
                    "median": float(np.median(d)) if d.size else None}
    eyes = [np.abs(np.subtract(a[p]["eyes"], b[p]["eyes"])).max() for p in common
            if a[p].get("eyes") and b[p].get("eyes")]
    out["eyes_px"] = {"pairs": len(eyes), "max": float(max(eyes)) if eyes else None,
                      "median": float(np.median(eyes)) if eyes else None}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("first", type=Path)
    ap.add_argument("second", type=Path)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    res = agreement(rows_by_path(args.first), rows_by_path(args.second))
    print(f"{res['files']} files in both ({res['only_in_first']} only in the first, {res['only_in_second']} only in "
          f"the second); verdicts differ on {len(res['verdicts_differ'])}")
    for p, va, vb in res["verdicts_differ"][:20]:
        print(f"   {p}: {va} -> {vb}")
    for key in (*SCORES, "eyes_px"):
        r = res[key]
        if r["pairs"]:
            print(f"   {key:15s} {r['pairs']:5d} pairs, |difference| max {r['max']:.4g}, median {r['median']:.4g}")
    if args.json:
        args.json.write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
