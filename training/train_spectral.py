"""Train the spectral StyleGAN detector, export weights/spectral.onnx and write weights/spectral.md.

    PYTHONPATH=. .venv/bin/python training/train_spectral.py [--epochs 10] [--loso SOURCE ...] [--no-bench]
    PYTHONPATH=. .venv/bin/python training/train_spectral.py --add-loso LOSO.json   # card += bench --loso output

Data: ../shared/data (facecheck.dataset). Folds by facecheck.dataset.split_of: fold 0 is the test fold (never
trained or tuned on), fold 1 the calibration fold (Platt scaling and the operating thresholds), folds 2-4 train.
Every image is degraded the same random platform way whatever its class (training/spectral_data.py).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from facecheck.runtime import weights_path
from facecheck.spectrum import MODEL_FILE
from training.spectral_data import CACHE_DIR, CALIB_FOLD, TEST_FOLD, TileSet, cached_tile_set
from training.spectral_metrics import auc, rate_above, threshold_at_fpr, tpr_at_fpr
from training.spectral_model import TRAIN_LABELS, calibrate, export_onnx, fit, logits_of, platt_score

FPRS = {"fpr_1pct": 0.01, "fpr_0.1pct": 0.001}
REAL_LABELS = ("real_ffhq", "real_natural")
CARD_DATE = "2026-11-22"
RESULTS = CACHE_DIR / "spectral_results.json"   # the last run's numbers, for --add-loso


def fit_calibrated(train: TileSet, calib: TileSet, epochs: int, log=print):
    """Train, Platt-calibrate on `calib`, and fix the operating thresholds on its real photos."""
    t0 = time.time()
    model = fit(train, epochs=epochs, log=log)
    log(f"  trained in {time.time() - t0:.0f} s")
    keep = np.isin(calib.label, TRAIN_LABELS)
    calib_logits = logits_of(model, calib.tiles[keep])
    calibrate(model, calib_logits, calib.is_gan[keep])
    calib_scores = platt_score(model, calib_logits)
    real = calib_scores[calib.is_gan[keep] == 0]
    thresholds = {name: threshold_at_fpr(real, fpr) for name, fpr in FPRS.items()}
    pos = calib_scores[calib.is_gan[keep] == 1]
    log(f"  calibration fold (tuned on): AUC {auc(pos, real):.4f}, TPR at 1% FPR {tpr_at_fpr(pos, real, 0.01):.3f}, "
        f"at 0.1% FPR {tpr_at_fpr(pos, real, 0.001):.3f}")
    return model, thresholds


def rates_by_source(scores: np.ndarray, ts: TileSet, thresholds: dict[str, float]) -> dict[str, dict]:
    """Share of each source's copies flagged at each fixed threshold (TPR for StyleGAN, FPR for real sources)."""
    out = {}
    for src in np.unique(ts.source):
        s = scores[ts.source == src]
        label = ts.label[ts.source == src][0]
        out[str(src)] = {"label": str(label), "n": int(len(s)),
                         **{name: rate_above(s, t) for name, t in thresholds.items()}}
    return out


def summary(scores: np.ndarray, ts: TileSet, thresholds: dict[str, float]) -> dict:
    pos, neg = scores[ts.label == "stylegan"], scores[np.isin(ts.label, REAL_LABELS)]
    return {"n_stylegan": int(len(pos)), "n_real": int(len(neg)), "auc": auc(pos, neg),
            "roc_tpr_at_1pct_fpr": tpr_at_fpr(pos, neg, 0.01), "roc_tpr_at_0.1pct_fpr": tpr_at_fpr(pos, neg, 0.001),
            **{f"tpr_at_{k}": rate_above(pos, t) for k, t in thresholds.items()},
            **{f"fpr_at_{k}": rate_above(neg, t) for k, t in thresholds.items()}}


def leave_one_source_out(ts: TileSet, source: str, epochs: int, log=print) -> dict:
    """Train without `source` (no fold of it), calibrate on the calibration fold of the rest, and report how the
    unseen source scores at the fixed thresholds: its TPR if it is StyleGAN, its FPR if it is real."""
    rest = ts.source != source
    model, thresholds = fit_calibrated(ts.subset(rest & (ts.fold != TEST_FOLD) & (ts.fold != CALIB_FOLD)),
                                       ts.subset(rest & (ts.fold == CALIB_FOLD)), epochs, log)
    held = ts.subset(~rest)
    held_scores = platt_score(model, logits_of(model, held.tiles))
    test_other = ts.subset(rest & (ts.fold == TEST_FOLD))
    other_scores = platt_score(model, logits_of(model, test_other.tiles))
    is_gan = bool(held.is_gan[0])
    opposite = other_scores[np.isin(test_other.label, REAL_LABELS) if is_gan else test_other.label == "stylegan"]
    pos, neg = (held_scores, opposite) if is_gan else (opposite, held_scores)
    return {"source": source, "label": str(held.label[0]), "n": int(len(held_scores)),
            "auc_vs_test_fold": auc(pos, neg),
            **{f"flagged_at_{k}": rate_above(held_scores, t) for k, t in thresholds.items()}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--loso", nargs="*", default=[], help="sources to run leave-one-source-out for (slow: one training each)")
    ap.add_argument("--no-bench", action="store_true", help="skip the per-condition benchmark in the model card")
    ap.add_argument("--rebuild-cache", action="store_true")
    ap.add_argument("--add-loso", help="rewrite the card of the last run, adding `bench_spectral.py --loso --json` results")
    args = ap.parse_args(argv)
    from training.spectral_card import write_card
    if args.add_loso:
        results = json.loads(RESULTS.read_text())
        loso = json.loads(Path(args.add_loso).read_text())
        results["loso"], results["loso_epochs"] = loso["loso"], loso["loso_epochs"]
        RESULTS.write_text(json.dumps(results, indent=1))
        write_card(results)
        return 0
    command = "PYTHONPATH=. .venv/bin/python training/train_spectral.py " + " ".join(argv if argv is not None else sys.argv[1:])

    ts = cached_tile_set(rebuild=args.rebuild_cache)
    ts = TileSet(**{f: np.asarray(getattr(ts, f)) for f in TileSet.__dataclass_fields__})
    train = ts.subset((ts.fold != TEST_FOLD) & (ts.fold != CALIB_FOLD))
    calib, test = ts.subset(ts.fold == CALIB_FOLD), ts.subset(ts.fold == TEST_FOLD)
    print(f"{len(train.label)} training copies, {len(calib.label)} calibration, {len(test.label)} test")

    model, thresholds = fit_calibrated(train, calib, args.epochs)
    out = weights_path(MODEL_FILE)
    export_onnx(model, out, {f"threshold_{k}": f"{v:.6f}" for k, v in thresholds.items()}
                | {"trained": CARD_DATE, "rebuild": command})
    print(f"wrote {out}; thresholds {thresholds}")
    import torch
    torch.save(model.state_dict(), CACHE_DIR / "spectral_model.pt")   # for tests/test_spectrum.py's ONNX check

    test_scores = platt_score(model, logits_of(model, test.tiles))
    results = {"command": command, "epochs": args.epochs, "thresholds": thresholds,
               "test_random_platform": summary(test_scores, test, thresholds),
               "test_by_source": rates_by_source(test_scores, test, thresholds)}
    print(json.dumps(results["test_random_platform"], indent=1))
    results["loso"] = [leave_one_source_out(ts, src, args.epochs) for src in args.loso]
    if not args.no_bench:
        from benchmarks.bench_spectral import evaluate_conditions
        results["conditions"] = evaluate_conditions()
    RESULTS.write_text(json.dumps(results, indent=1))
    write_card(results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
