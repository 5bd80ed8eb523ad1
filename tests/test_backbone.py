"""Tests for the pretrained-backbone StyleGAN detector (facecheck/backbone.py, weights/backbone.onnx)."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from facecheck.backbone import INPUT_SIDE, MODEL_FILE, PATCH, BackboneDetector, model_input, native_patches, patch_inputs
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


def test_native_patches_are_cut_at_stored_resolution_from_the_centre():
    image = RNG.integers(0, 256, (300, 500, 3), dtype=np.uint8)
    patches = native_patches(image)
    assert patches.shape == (4, PATCH, PATCH, 3)
    top, left = (300 - 2 * PATCH) // 2, (500 - 2 * PATCH) // 2      # the central 2*PATCH square, a 2x2 grid
    np.testing.assert_array_equal(patches[0], image[top:top + PATCH, left:left + PATCH])
    np.testing.assert_array_equal(patches[3], image[top + PATCH:top + 2 * PATCH, left + PATCH:left + 2 * PATCH])
    small = image[:200, :150]                                        # under 2*PATCH: the patches overlap
    np.testing.assert_array_equal(native_patches(small)[3], small[200 - PATCH:, 150 - PATCH:])
    assert native_patches(image[:PATCH - 1]) is None                 # no native patch fits
    assert native_patches(np.zeros((300, 300), np.uint8)).shape == (4, PATCH, PATCH, 3)   # grey becomes RGB


def test_patch_inputs_pool_each_image_over_its_own_patches():
    images = [np.full((300, 300, 3), 10, np.uint8), np.zeros((90, 400, 3), np.uint8), np.full((130, 600, 3), 200, np.uint8)]
    feeds = patch_inputs(images)
    patches, pool = feeds["patches"], feeds["pool"]
    assert patches.shape == (8, PATCH, PATCH, 3) and pool.shape == (3, 8)
    np.testing.assert_allclose(pool.sum(axis=1), [1, 0, 1])          # the small image has none: its row is all zero
    np.testing.assert_allclose(pool @ patches.reshape(8, -1)[:, :1], [[10], [0], [200]])
    only_small = patch_inputs(images[1:2])                            # still one (unpooled) patch: no empty input
    assert only_small["patches"].shape == (1, PATCH, PATCH, 3) and not only_small["pool"].any()


def test_scores_are_probabilities_and_thresholds_are_stored(detector):
    images = [RNG.integers(0, 256, (s, s, 3), dtype=np.uint8) for s in (64, 150, 400, 700)] * 9
    scores = detector.score(images)
    assert scores.shape == (len(images),) and np.all((scores >= 0) & (scores <= 1))
    np.testing.assert_allclose(scores[:4], detector.score(images[:4]), atol=1e-5)   # batching does not matter
    alone = [detector.score([im])[0] for im in images[:4]]        # nor do the other images' patches in a batch
    np.testing.assert_allclose(scores[:4], alone, atol=1e-5)
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


def test_colourless_images_go_to_the_grey_model_where_one_ships(detector):
    """Routing only (a stand-in grey model): black-and-white images get the grey model's score, the others the main
    model's, in the order given; without flags, or without a grey model, every image gets the main model's."""
    rng = np.random.default_rng(3)
    images = [rng.integers(0, 256, (s, s, 3), dtype=np.uint8) for s in (90, 200, 300)]
    main = detector.main.score(images)

    class StandIn:
        def score(self, imgs):
            return np.full(len(imgs), 0.25, np.float32)
    routed = BackboneDetector(detector.runtime)
    routed.grey = StandIn()
    assert np.allclose(routed.score(images, [False, True, False]), [main[0], 0.25, main[2]])
    assert np.allclose(routed.score(images, [True, True, True]), 0.25)
    assert np.allclose(routed.score(images), main)
