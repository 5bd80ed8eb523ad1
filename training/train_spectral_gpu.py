"""Train spectral detectors on a GPU from the compact pack (training/spectral_pack.py), for a fixed wall time.

    PYTHONPATH=. python training/train_spectral_gpu.py --pack spectral_pack/pack.npz --out OUT --seconds 420 \
        --model main=base --model lite=lite --model loso_sg3r=base:sklinderton_sg3r_pool \
        --model reg=base::wd=0.05,drop=0.5,mixup=0.4

Several models train side by side on ONE stream of randomly degraded images (the data loader's CPU work, not the
GPU, is the limit): each `--model NAME=WHOLE_CONFIG[:HELD_OUT_SOURCE[:OPTIONS]]`, OPTIONS a comma list of wd=
(AdamW weight decay, default --wd), drop= (whole-image head dropout), ls= (label smoothing), mixup= (Beta(a, a)
mixing of image pairs, tiles and whole view alike, with soft labels; 0 = off). The stream samples images with the
balanced weights of all training sources (training.spectral_model.balanced_weights); a leave-one-source-out model
gives the held-out source weight 0 and reweights every other image by the ratio of its own balanced weight to the
stream's (importance weighting), so it learns as if that source did not exist.

Every image of every class goes through the same random platform degradation (facecheck.evaluation.degrade.random_platform:
crop up to MAX_CROP, mirror, downscale to a longer side in 96-160 px for SMALL_SIDE_FRACTION of copies, else
96-512 px, never enlarged, blur or sharpen, JPEG q50-98), then facecheck.spectrum.image_features, the scorer's own
features. Loss: weighted BCE on the summed logit plus AUX_WEIGHT x each branch's own BCE (so neither branch idles).
AdamW, bf16 autocast, warm-up then cosine decay over the wall-time budget, weight EMA. Writes OUT/NAME.pt
({"config", "state_dict", "ema_state_dict", ...}); calibration, thresholds and ONNX export are done on the CPU
machine by training/train_spectral.py --from-gpu, on the calibration fold, which is not in the pack.
"""
from __future__ import annotations

import argparse
import io
import math
import os
import sys
import time
import types
from pathlib import Path

import cv2
import numpy as np
import torch

# The GPU machine has no faiss and friends: import facecheck's numpy/OpenCV/PIL modules without running the package
# __init__ (which wires up the whole scan engine).
if "facecheck" not in sys.modules:
    _pkg = types.ModuleType("facecheck")
    _pkg.__path__ = [str(Path(__file__).resolve().parent.parent / "facecheck")]
    sys.modules["facecheck"] = _pkg
import torch.nn.functional as F
from PIL import Image

from facecheck.spectrum import image_features
from training.degraded_cache import Degradation
from training.spectral_model import SpectralNet, balanced_weights

SMALL_SIDE_FRACTION = 0.35
MAX_CROP = 0.15
DEGRADATION = Degradation(min_side=96, max_side=512, small_fraction=SMALL_SIDE_FRACTION, small_side=160, max_crop=MAX_CROP)
AUX_WEIGHT = 0.3


class Pack:
    def __init__(self, path):
        z = np.load(path)
        self.data, self.offsets = z["data"], z["offsets"]
        self.label, self.source, self.name = z["label"], z["source"], z["name"]
        self.is_gan = (self.label == "stylegan").astype(np.float32)

    def __len__(self):
        return len(self.label)

    def image(self, i: int) -> Image.Image:
        return Image.open(io.BytesIO(self.data[self.offsets[i]:self.offsets[i + 1]].tobytes())).convert("RGB")


class DegradedStream(torch.utils.data.IterableDataset):
    """Endless degraded copies, images drawn with probability `p`; each worker has its own random stream."""

    def __init__(self, pack: Pack, p: np.ndarray, seed: int):
        self.pack, self.p, self.seed = pack, p / p.sum(), seed

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        cv2.setNumThreads(1)
        rng = np.random.default_rng([self.seed, info.id if info else 0, os.getpid()])
        while True:
            i = int(rng.choice(len(self.p), p=self.p))
            img = DEGRADATION.apply(self.pack.image(i), rng)
            tiles, whole = image_features(np.asarray(img))
            yield {"tiles": tiles, "whole": whole, "idx": i}


def lr_at(frac: float, peak: float, warm: float = 0.05) -> float:
    if frac < warm:
        return peak * frac / warm
    return peak * 0.5 * (1 + math.cos(math.pi * min(1.0, (frac - warm) / (1 - warm)))) + peak * 0.01


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pack", default="spectral_pack/pack.npz")
    ap.add_argument("--out", required=True)
    ap.add_argument("--seconds", type=float, default=420)
    ap.add_argument("--model", action="append", required=True, help="NAME=WHOLE_CONFIG[:HELD_OUT_SOURCE]")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 1))
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--wd", type=float, default=5e-4)
    ap.add_argument("--max-steps", type=int, default=0, help="stop after this many steps (CPU smoke test)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(args.seed)
    torch.backends.cudnn.benchmark = True
    pack = Pack(args.pack)
    w_stream = balanced_weights(pack.label, pack.source)
    print(f"{len(pack)} pack images on {dev} ({torch.cuda.get_device_name() if dev.type == 'cuda' else 'cpu'}), "
          f"{args.workers} loader workers", flush=True)

    models = {}
    for spec in args.model:
        name, rest = spec.split("=", 1)
        parts = rest.split(":")
        whole, held = parts[0], parts[1] if len(parts) > 1 else ""
        opts = {"wd": args.wd, "drop": 0.2, "ls": 0.0, "mixup": 0.0}
        for kv in (parts[2].split(",") if len(parts) > 2 and parts[2] else []):
            k, v = kv.split("=")
            opts[k] = float(v)
        keep = pack.source != held
        w = np.zeros(len(pack), np.float32)
        w[keep] = balanced_weights(pack.label[keep], pack.source[keep])
        net = SpectralNet(whole, drop=opts["drop"]).to(dev).to(memory_format=torch.channels_last)
        opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=opts["wd"])
        ema = torch.optim.swa_utils.AveragedModel(net, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(0.999),
                                                  use_buffers=True)
        models[name] = {"net": net, "opt": opt, "ema": ema, "held_out": held or None, "whole": whole,
                        "iw": torch.from_numpy(w / np.maximum(w_stream, 1e-12)).to(dev), "loss": [], "n_held": int((~keep).sum()), "opts": opts, "half": None}
        print(f"  model {name}: whole={whole}, {opts}, held out {held or '-'} ({int((~keep).sum())} images), "
              f"{sum(p.numel() for p in net.parameters())} parameters", flush=True)

    y_all = torch.from_numpy(pack.is_gan).to(dev)
    loader = torch.utils.data.DataLoader(DegradedStream(pack, w_stream, args.seed), batch_size=args.batch,
                                         num_workers=args.workers, pin_memory=dev.type == "cuda",
                                         prefetch_factor=4 if args.workers else None, persistent_workers=bool(args.workers))
    t_start, step, seen, last_log = time.time(), 0, 0, time.time()
    t_first = None
    for batch in loader:
        if t_first is None:
            t_first = time.time()
            print(f"first batch after {t_first - t_start:.1f} s", flush=True)
        frac = (time.time() - t_first) / args.seconds
        if frac >= 1 or (args.max_steps and step >= args.max_steps):
            break
        tiles = batch["tiles"].to(dev, non_blocking=True).float()
        whole = batch["whole"].to(dev, non_blocking=True).float()
        idx = batch["idx"].to(dev)
        y = y_all[idx]
        for m in models.values():
            for g in m["opt"].param_groups:
                g["lr"] = lr_at(frac, args.lr)
            iw, target, xt, xw = m["iw"][idx], y, tiles, whole
            if m["opts"]["mixup"] > 0:
                a = m["opts"]["mixup"]
                lam = torch.distributions.Beta(a, a).sample((len(idx),)).to(dev)
                perm = torch.randperm(len(idx), device=dev)
                xt = lam[:, None, None, None, None] * tiles + (1 - lam[:, None, None, None, None]) * tiles[perm]
                xw = lam[:, None, None, None] * whole + (1 - lam[:, None, None, None]) * whole[perm]
                target, iw = lam * y + (1 - lam) * y[perm], lam * iw + (1 - lam) * iw[perm]
            if m["opts"]["ls"] > 0:
                target = target * (1 - m["opts"]["ls"]) + 0.5 * m["opts"]["ls"]
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
                t, wl = m["net"].branch_logits(xt, xw)
            t, wl = t.float(), wl.float()
            bce = lambda z: (F.binary_cross_entropy_with_logits(z, target, reduction="none") * iw).sum() / iw.sum().clamp_min(1e-6)
            loss = bce(t + wl) + AUX_WEIGHT * (bce(t) + bce(wl))
            m["opt"].zero_grad(set_to_none=True)
            loss.backward()
            m["opt"].step()
            m["ema"].update_parameters(m["net"])
            if m["half"] is None and frac >= 0.5:
                m["half"] = {k[len("module."):]: v.detach().float().cpu().clone()
                             for k, v in m["ema"].state_dict().items() if k.startswith("module.")}
            m["loss"].append(loss.item() if step % 10 == 0 else m["loss"][-1] if m["loss"] else loss.item())
        step += 1
        seen += len(idx)
        if time.time() - last_log > 30 or step == 1:
            last_log = time.time()
            el = time.time() - t_first
            print(f"step {step} ({seen} images, {seen / max(el, 1e-6):.0f} img/s, {el:.0f} s, lr {lr_at(frac, args.lr):.2e}) "
                  + " ".join(f"{n}: {np.mean(m['loss'][-50:]):.4f}" for n, m in models.items()), flush=True)
    el = time.time() - (t_first or t_start)
    print(f"trained {step} steps, {seen} degraded images in {el:.0f} s", flush=True)
    os.makedirs(args.out, exist_ok=True)
    for name, m in models.items():
        ema_state = {k[len("module."):]: v for k, v in m["ema"].state_dict().items() if k.startswith("module.")}
        torch.save({"config": m["net"].config, "state_dict": {k: v.float().cpu() for k, v in m["net"].state_dict().items()},
                    "ema_state_dict": {k: v.float().cpu() for k, v in ema_state.items()},
                    "ema_half_state_dict": m["half"], "options": m["opts"],
                    "held_out": m["held_out"], "steps": step, "images_seen": seen, "seconds": round(el),
                    "batch": args.batch, "lr": args.lr, "wd": m["opts"]["wd"]},
                   os.path.join(args.out, f"{name}.pt"))
    print("saved", ", ".join(models), flush=True)
    os._exit(0)   # the loader's endless workers need not be joined


if __name__ == "__main__":
    raise SystemExit(main())
