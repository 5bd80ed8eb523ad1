"""Which part of the v3 training recipe costs the colour ranking: v3 runs beside the shipped backbone on the same
fold-1 copies, through the fusion's own ship test. Writes training/reports/backbone_v3_recipe.md.

    training/backbone_v3_recipe.sh                            # trains, exports and collects what this reads
    PYTHONPATH=. .venv/bin/python training/backbone3_recipe_report.py --runs whole_plain plain_v2like ...

For each backbone (the shipped weights/backbone.onnx, then each run's scratch/bb3/<run>/backbone.onnx):
- the fusion refitted on its signals (training/train_fusion.py's fit on fold 1 half A, thresholds and variant rule
  on half B) and its StyleGAN TPR on half B at its own default threshold, over the colour and the grey copies: the
  numbers the ship rules of training/reports/backbone_v3_candidate.md compare;
- the backbone alone on all those copies (both halves): AUC and TPR against FFHQ-aligned and natural reals;
- the test fold (fold 0, never trained or tuned on) at 400 px, when training/export_backbone_v3.py test has run.
The fold-1 signals are train_fusion.py's cached rows (scratch/fusion_rows_<geometry>_<spectral+backbone>_...),
found by the digests of the weights each backbone was scored with. Never imported by facecheck.
"""
from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from facecheck.evaluation.evaluate import auc, read_rows, tpr_at_fpr  # noqa: E402
from facecheck.runtime import weights_path  # noqa: E402
from training import train_fusion as tf  # noqa: E402
from training.card_writer import four, percent, row, table  # noqa: E402

RUNS_DIR = REPO / "scratch" / "bb3"
REPORT = REPO / "training" / "reports" / "backbone_v3_recipe.md"


def fusion_test(rows) -> dict:
    """train_fusion.py's fit, variant rule and half-B TPRs, on these rows."""
    fit_rows, thr_rows = tf.halves(rows)
    fitted = tf.fit_variants(fit_rows, thr_rows)
    variant, _ = tf.choose_variant(fitted, thr_rows)
    coef, intercept, thresholds, _ = fitted[variant]
    split = tf.colour_split_tpr(lambda rs: tf.predict(coef, intercept, rs, tf.VARIANTS[variant][1]), thr_rows,
                                thresholds["default"])
    return {"variant": variant, **split, "pooled_b": tf.pooled_tpr(fitted, "b", thr_rows),
            "pooled_c": tf.pooled_tpr(fitted, "c", thr_rows)}


def backbone_alone(rows, grey: bool) -> dict:
    sel = [r for r in rows if r.error is None and r.backbone_score is not None and r.label != "other_gen"
           and tf.is_grey_condition(r.condition) == grey]
    score = np.array([r.backbone_score for r in sel])
    lab = np.array([r.label for r in sel])
    pos, ffhq, nat = score[lab == "stylegan"], score[lab == "real_ffhq"], score[lab == "real_natural"]
    return {"auc_ffhq": auc(ffhq, pos), "auc_nat": auc(nat, pos), "tpr_1pct_ffhq": tpr_at_fpr(ffhq, pos, 0.01),
            "tpr_01pct_nat": tpr_at_fpr(nat, pos, 0.001), "counts": f"{len(pos)} / {len(nat)} / {len(ffhq)}"}


def results_of(run: str) -> dict:
    """scratch/bb3/<run>/results.json (export_backbone_v3.py), {} when the run was not exported."""
    path = RUNS_DIR / run / "results.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def routed(run: str) -> str | None:
    """The grey model's run of a colour-routed candidate (backbone_v3_recipe.sh's route), None for a plain run."""
    path = RUNS_DIR / run / "route.json"
    return json.loads(path.read_text())["grey_run"] if path.is_file() else None


def entry_of(run: str, res: dict) -> tuple:
    """(name, backbone file whose fold-1 rows to read, recipe, test-fold 400 px columns) of a run."""
    grey = routed(run)
    if grey:   # its rows were collected with the shipped backbone and the grey one side by side in its weights/
        return (run, RUNS_DIR / run / "weights" / "backbone.onnx",
                f"shipped v2 for colour images, {grey} for colourless ones (facecheck.backbone)", ("-", "-"))
    return run, RUNS_DIR / run / "backbone.onnx", describe(res)[0] if res else "-", test_400(res)


def describe(res: dict) -> tuple[str, str]:
    """(what the run changes, its training command) from its results' options."""
    o = res["export"]["options"]
    parts = [f"cache {o.get('cache', 'mixed')}", f"colours {' '.join(o['colours']) if o.get('colours') else 'all'}",
             "no size matching" if o.get("no_size_match") else "size-matched",
             "without " + ", ".join(o["without"] + o["hold_out"]) if o["without"] or o["hold_out"] else "every source",
             f"{o['epochs']} x {o['per_epoch']}, batch {o['batch']}", f"best epoch {res['export']['epoch']}"]
    if o.get("soup_of"):
        parts = [f"weights averaged over {' and '.join(o['soup_of'])}", *parts[:-1], f"their best epochs {res['export']['epoch']}"]
    return "; ".join(parts), res["export"]["train_command"]


def test_400(res: dict, model: str = "v3") -> tuple[str, str]:
    """AUC vs FFHQ-aligned and TPR at the default threshold on the test fold at 400 px (q70-85) of one model in a
    run's results: `v3` (the run's) or `previous` (the shipped one, scored beside it)."""
    if "test" not in res:
        return "-", "-"
    m = res["test"]["400px_q70-85"][model]
    return four(m["auc_vs_ffhq"]), percent(m["fixed"]["default"]["tpr"]["share"])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", nargs="+", required=True)
    ap.add_argument("--per-source", type=int, default=300)
    ap.add_argument("--out", type=Path, default=REPORT)
    ap.add_argument("--preamble", type=Path, help="a markdown file put first (the question and the decision)")
    args = ap.parse_args(argv)
    results = {run: results_of(run) for run in args.runs}
    # the shipped model's test-fold numbers: as scored beside the first tested run
    beside = next((res for res in results.values() if "test" in res), {})
    entries = [("shipped v2 (weights/backbone.onnx)", weights_path("backbone.onnx"),
                "training/train_backbone.py (weights/backbone.md)", test_400(beside, "previous"))]
    entries += [entry_of(run, results[run]) for run in args.runs]
    L = [args.preamble.read_text().rstrip() + "\n"] if args.preamble else []
    L += ["## The fusion's ship test, on fold 1\n",
          "Each backbone's signals on the same fold-1 copies (train_fusion.py, `--per-source 300`: 8 degradations, 3 "
          "random platform copies and 3 greyscale copies per image), the fusion refitted on half A; StyleGAN TPR on half B "
          "at that fusion's own default threshold (the FFHQ-aligned and natural false-positive caps set on half B).\n"]
    L += table(["backbone", "recipe", "variant", "colour copies", "grey copies", "pooled (b) / (c)"])
    alone = []
    for name, onnx, recipe, test in entries:
        rows_path = tf.fit_rows_path(REPO / "scratch", args.per_source, onnx)
        if not rows_path.is_file():
            print(f"skipped {name}: no fold-1 rows {rows_path.name} (run train_fusion.py with its weights)")
            continue
        rows = read_rows(rows_path)
        ft = fusion_test(rows)
        L.append(row([name, recipe, ft["variant"], percent(ft["colour"]), percent(ft["grey"]),
                      f"{percent(ft['pooled_b'])} / {percent(ft['pooled_c'])}"]))
        alone.append((name, test, backbone_alone(rows, False), backbone_alone(rows, True),
                      backbone_alone(tf.halves(rows)[0], True)))
        print(f"{name}: {ft}")
    L += ["", "## The backbone alone on the same copies (both halves of fold 1), and on the test fold\n",
          "Thresholds read off these copies' own reals (a property of the ranking, not an operating point). Test fold: "
          "`training/export_backbone_v3.py test`, 400 px q70-85, the model at its own calibrated default threshold; the "
          "FFHQ-aligned FPR at that point differs from model to model (its results.json), so compare the AUC column.\n"]
    L += table(["backbone", "StyleGAN / natural / FFHQ copies (colour)", "AUC vs FFHQ-aligned, colour", "TPR at 1% FFHQ FPR, colour",
                "TPR at 0.1% natural FPR, colour", "AUC vs FFHQ-aligned, grey", "the same, half A only (grey-route choice)",
                "test fold 400 px: AUC vs FFHQ-aligned", "test fold 400 px: TPR at default"])
    for name, test, c, g, g_a in alone:
        L.append(row([name, c["counts"], four(c["auc_ffhq"]), percent(c["tpr_1pct_ffhq"]), percent(c["tpr_01pct_nat"]),
                      four(g["auc_ffhq"]), four(g_a["auc_ffhq"]), *test]))
    L += ["", "## Commands\n"]
    L += [f"- `{run}`: `{describe(res)[1]}`" for run, res in results.items() if res]
    L += ["", f"Written {datetime.date.today().isoformat()} by `training/backbone3_recipe_report.py "
          f"--runs {' '.join(args.runs)}`."]
    args.out.write_text("\n".join(L) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
