"""Build weights/spectral.int8.onnx, the int8 twin of weights/spectral.onnx that CPU scans run, and its card.

    PYTHONPATH=. .venv/bin/python training/quantize_spectral.py        # needs `onnx` (dev only) and ../shared/data

ONNX Runtime static quantisation (QDQ, uint8 activations, int8 weights per output channel), calibrated on
degraded copies (facecheck.evaluation.degrade.random_platform, every class alike) of images from folds 2-4, the folds the
spectral detector was trained on. Then it measures the int8 model against the float32 one on degraded copies of
fold 1 (never calibrated on): AUC, TPR at 1% FPR, how far the logits move, and CPU time per image on one thread;
and writes weights/spectral.int8.md. The float32 model stays: CUDA runs it (int8 QDQ graphs gain nothing there),
and it is the reference this one is checked against.

Why only the spectral detector: measured with the same recipe (scratch experiment, 64 avatars, one thread), int8
made it 2.1x faster, the backbone 1.26x, YuNet 1.04x, and FaceMesh (depthwise convolutions) 0.68x, i.e. slower.
Never imported by facecheck.
"""
from __future__ import annotations

import argparse
import datetime
import hashlib
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from facecheck.evaluation.dataset import read_manifest, split_of  # noqa: E402
from facecheck.evaluation.evaluate import auc  # noqa: E402
from facecheck.runtime import QUANTIZED_ON_CPU, weights_path  # noqa: E402
from facecheck.spectrum import MODEL_FILE, batch_features  # noqa: E402
from training.card_writer import four, percent, table  # noqa: E402
from training.degraded_cache import Degradation  # noqa: E402

LABELS = ("stylegan", "real_ffhq", "real_natural")
BATCH = 8


def degraded_copies(folds: set[int], n: int, seed: int):
    """n random images of the given folds, one random platform copy each: (RGB arrays, is StyleGAN)."""
    from PIL import Image
    pool = [s for s in read_manifest() if s.label in LABELS and split_of(s) in folds]
    rng = np.random.default_rng(seed)
    picked = [pool[i] for i in rng.choice(len(pool), min(n, len(pool)), replace=False)]
    images = [np.asarray(Degradation().apply(Image.open(s.path).convert("RGB"), rng)) for s in picked]
    return images, np.array([s.label == "stylegan" for s in picked])


def session(path: Path):
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def scores(path: Path, batches) -> tuple[np.ndarray, float]:
    """Scores of every batch, and CPU ms per image (best of two passes)."""
    s = session(path)
    best, out = float("inf"), None
    for _ in range(2):
        start = time.process_time()
        out = np.concatenate([s.run(None, b)[0].reshape(-1) for b in batches])
        best = min(best, time.process_time() - start)
    return out, best * 1000 / len(out)


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p.astype(np.float64), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def main() -> None:
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calibration", type=int, default=256, help="degraded training-fold copies to calibrate on")
    ap.add_argument("--check", type=int, default=1200, help="degraded fold-1 copies to compare the models on")
    args = ap.parse_args()

    source, target = weights_path(MODEL_FILE), weights_path(QUANTIZED_ON_CPU[MODEL_FILE])
    calibration_images, _ = degraded_copies({2, 3, 4}, args.calibration, seed=1)
    calibration = [batch_features(calibration_images[i:i + BATCH]) for i in range(0, len(calibration_images), BATCH)]

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter(calibration)

        def get_next(self):
            return next(self.batches, None)

    quantize_static(str(source), str(target), Reader(), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True)
    # quantize_static drops the model's metadata: the operating thresholds must travel with it
    original, quantized = onnx.load(str(source)), onnx.load(str(target))
    del quantized.metadata_props[:]
    for entry in original.metadata_props:
        quantized.metadata_props.add(key=entry.key, value=entry.value)
    quantized.metadata_props.add(key="quantized_from", value=hashlib.sha256(source.read_bytes()).hexdigest()[:16])
    onnx.save(quantized, str(target))

    check_images, is_gan = degraded_copies({1}, args.check, seed=2)
    batches = [batch_features(check_images[i:i + BATCH]) for i in range(0, len(check_images), BATCH)]
    fp32, fp32_ms = scores(source, batches)
    int8, int8_ms = scores(target, batches)
    moved = np.abs(logit(int8) - logit(fp32))
    rows = []
    for name, s in (("float32 (spectral.onnx)", fp32), ("int8 (spectral.int8.onnx)", int8)):
        threshold = np.quantile(s[~is_gan], 0.99)
        rows.append([name, four(auc(s[~is_gan], s[is_gan])), percent(np.mean(s[is_gan] >= threshold))])
    card = f"""# spectral.int8.onnx: the spectral detector in int8, for CPU scans

Built {datetime.date.today()} by `PYTHONPATH=. .venv/bin/python training/quantize_spectral.py` from `spectral.onnx`
(sha256 {hashlib.sha256(source.read_bytes()).hexdigest()[:16]}; its card, `spectral.md`, says how that was trained,
on which data, and how well it does). `facecheck.runtime.Runtime` loads this file in place of `spectral.onnx` when
it runs on the CPU; on CUDA it runs the float32 model.

## How
ONNX Runtime static quantisation (`quantize_static`, QDQ format, uint8 activations, int8 weights per output channel),
calibrated on {len(calibration_images)} degraded copies (`facecheck.evaluation.degrade.random_platform`, every class alike) of
StyleGAN, FFHQ-aligned and natural images from folds 2-4 of ../shared/data, the folds the float32 model was trained
on. The operating thresholds in the model's metadata are copied over unchanged.

## Checked against the float32 model
On {len(check_images)} degraded copies of fold 1 ({int(is_gan.sum())} StyleGAN, {int((~is_gan).sum())} real;
never used for calibration), both models on the same inputs:

{chr(10).join(table(["model", "AUC", "TPR at 1% FPR (each model's own threshold)"], rows))}

- Logit moved by int8: mean {moved.mean():.3f}, 99th percentile {np.quantile(moved, 0.99):.3f}, largest {moved.max():.3f};
  correlation of the logits {np.corrcoef(logit(int8), logit(fp32))[0, 1]:.4f}.
- CPU time on one thread (ONNX run only, batches of {BATCH}): float32 {fp32_ms:.2f} ms per image, int8 {int8_ms:.2f} ms
  ({fp32_ms / int8_ms:.2f}x), on this machine (AVX-512 VNNI).
- What the verdict does with it is measured by `facecheck eval` on the test fold and recorded in `fusion.md`
  and the README (the fusion is fitted on the float32 scores).
"""
    weights_path(QUANTIZED_ON_CPU[MODEL_FILE].replace(".onnx", ".md")).write_text(card)
    print(card)


if __name__ == "__main__":
    main()
