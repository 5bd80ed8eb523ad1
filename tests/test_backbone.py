"""Tests for the pretrained-backbone StyleGAN detector (facecheck/backbone.py, weights/backbone.onnx)."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from facecheck.backbone import INPUT_SIDE, MODEL_FILE, BackboneDetector, model_input
from facecheck.runtime import Runtime, weights_path

RNG = np.random.default_rng(11)


@pytest.fixture(scope="module")
def detector() -> BackboneDetector:
    if not weights_path(MODEL_FILE).is_file():
        pytest.skip(f"weights/{MODEL_FILE} is not built yet: training/train_backbone.py makes it")
    return BackboneDetector(Runtime("cpu"))


@pytest.mark.parametrize("shape", [(64, 64), (128, 128), (400, 300), (37, 900), (1000, 1000, 4), (200, 150, 1)])
def test_model_input_is_square_uint8_at_any_size(shape):
    x = model_input(RNG.integers(0, 256, shape, dtype=np.uint8))
    assert x.shape == (INPUT_SIDE, INPUT_SIDE, 3) and x.dtype == np.uint8


def test_scores_are_probabilities_and_thresholds_are_stored(detector):
    images = [RNG.integers(0, 256, (s, s, 3), dtype=np.uint8) for s in (64, 150, 400, 700)] * 9
    scores = detector.score(images)
    assert scores.shape == (len(images),) and np.all((scores >= 0) & (scores <= 1))
    np.testing.assert_allclose(scores[:4], detector.score(images[:4]), atol=1e-5)   # batching does not matter
    thresholds = detector.thresholds()
    assert {"default", "sensitive"} <= set(thresholds) and 0 < thresholds["sensitive"] <= thresholds["default"] <= 1
    assert detector.score([]).shape == (0,)


def test_runtime_path_never_imports_torch():
    code = ("import sys, numpy as np; import facecheck.backbone as b; from facecheck.runtime import Runtime; "
            "import facecheck.runtime as r; "
            "d = b.BackboneDetector(Runtime('cpu')) if r.weights_path(b.MODEL_FILE).is_file() else None; "
            "d and d.score([np.zeros((100, 100, 3), np.uint8)]); "
            "assert 'torch' not in sys.modules and not any(m.startswith('training') for m in sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True)
