"""Tests for the spectral StyleGAN detector (facecheck/spectrum.py, weights/spectral.onnx)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from facecheck.evaluation.dataset import data_root, read_manifest, split_of
from facecheck.evaluation.degrade import downscale, jpeg
from facecheck.runtime import Runtime, weights_path
from facecheck.spectrum import (CAP_SIDE, MODEL_FILE, TILE, TILES_PER_IMAGE, WHOLE_SIDE, SpectralDetector,
                                batch_features, capped, image_features)

RNG = np.random.default_rng(7)


def _random_image(h: int, w: int) -> np.ndarray:
    return RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def detector() -> SpectralDetector:
    if not weights_path(MODEL_FILE).is_file():
        pytest.skip(f"weights/{MODEL_FILE} is not built yet: python training/train_spectral.py makes it")
    return SpectralDetector(Runtime("cpu"))


@pytest.fixture(scope="module")
def held_out():
    """A few test-fold StyleGAN faces and real photos (fold 0 is never trained or tuned on)."""
    if data_root() is None:
        pytest.skip("no labelled data: ../shared/data (or $FACECHECK_DATA) is absent")
    test = [s for s in read_manifest() if split_of(s) == 0]
    pick = lambda label: [s for s in test if s.label == label][:: max(1, sum(s.label == label for s in test) // 8)][:8]
    load = lambda s: np.asarray(Image.open(s.path).convert("RGB"))
    reals = [s for s in test if s.label == "real_ffhq"][:4] + [s for s in test if s.label == "real_natural"][::150][:4]
    return [load(s) for s in pick("stylegan")], [load(s) for s in reals]


@pytest.mark.parametrize("shape", [(64, 64), (2048, 1536), (100, 700), (700, 100), (10, 10), (1, 200)])
def test_features_have_one_layout_for_any_size(shape):
    tiles, whole = image_features(_random_image(*shape))
    assert tiles.shape == (TILES_PER_IMAGE, TILE, TILE, 3) and tiles.dtype == np.uint8
    assert whole.shape == (WHOLE_SIDE, WHOLE_SIDE, 3) and whole.dtype == np.uint8


def test_tiles_are_native_crops_corner_to_corner():
    img = _random_image(300, 200)
    tiles, whole = image_features(img)
    np.testing.assert_array_equal(tiles[0], img[:TILE, :TILE])
    np.testing.assert_array_equal(tiles[TILES_PER_IMAGE - 1], img[-TILE:, -TILE:])
    np.testing.assert_array_equal(whole, cv2.resize(img, (WHOLE_SIDE, WHOLE_SIDE), interpolation=cv2.INTER_AREA))


def test_large_images_are_area_reduced_to_the_cap_before_tiling():
    img = _random_image(2 * CAP_SIDE, CAP_SIDE)
    small = capped(img)
    assert small.shape[:2] == (CAP_SIDE, CAP_SIDE // 2)
    # a 2x area reduction is the mean of 2x2 blocks
    np.testing.assert_allclose(small.astype(float), img.reshape(CAP_SIDE, 2, CAP_SIDE // 2, 2, 3).mean((1, 3)), atol=1)
    tiles, _ = image_features(img)
    np.testing.assert_array_equal(tiles[0], small[:TILE, :TILE])
    assert capped(_random_image(CAP_SIDE, 90)).shape[:2] == (CAP_SIDE, 90)   # never enlarged


def test_small_images_are_enlarged_for_the_whole_view_only():
    img = _random_image(100, 80)
    tiles, whole = image_features(img)
    np.testing.assert_array_equal(tiles[0], img[:TILE, :TILE])
    np.testing.assert_array_equal(whole, cv2.resize(img, (WHOLE_SIDE, WHOLE_SIDE), interpolation=cv2.INTER_LINEAR))


@pytest.mark.parametrize("grey", [lambda g: g, lambda g: g[:, :, None]])
def test_grey_images_give_the_features_of_grey_rgb(grey):
    g = RNG.integers(0, 256, (120, 90), dtype=np.uint8)
    for a, b in zip(image_features(grey(g)), image_features(np.stack([g] * 3, axis=2))):
        np.testing.assert_array_equal(a, b)


def test_alpha_is_dropped_and_bad_shapes_refused():
    rgba = RNG.integers(0, 256, (80, 80, 4), dtype=np.uint8)
    for a, b in zip(image_features(rgba), image_features(rgba[:, :, :3])):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError):
        image_features(np.zeros((10, 10, 2), np.uint8))


def test_scores_are_probabilities_for_any_size(detector):
    grey = RNG.integers(0, 256, (333, 250), dtype=np.uint8)
    images = [_random_image(64, 64), _random_image(2048, 2048), _random_image(97, 513), _random_image(1500, 80),
              np.stack([grey] * 3, axis=2)]
    scores = detector.score(images)
    assert scores.shape == (len(images),) and scores.dtype == np.float32
    assert np.all((scores >= 0) & (scores <= 1)) and np.all(np.isfinite(scores))
    assert detector.score([]).shape == (0,)


def test_scores_are_deterministic_and_batch_independent(detector):
    images = [_random_image(200, 180), _random_image(512, 400), _random_image(64, 90)]
    together = detector.score(images)
    np.testing.assert_array_equal(together, detector.score(images))
    alone = np.concatenate([detector.score([im]) for im in images])
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_score_is_the_onnx_model_on_the_shared_features(detector):
    """score() must be exactly the exported graph applied to image_features, the function training used."""
    images = [_random_image(256, 256), _random_image(150, 120)]
    feats = [image_features(im) for im in images]
    inputs = {"tiles": np.stack([t for t, _ in feats]).astype(np.float32),
              "whole": np.stack([w for _, w in feats]).astype(np.float32)}
    (direct,) = detector.runtime.run(MODEL_FILE, inputs)
    np.testing.assert_allclose(detector.score(images), direct.reshape(-1), atol=1e-6)


def test_operating_thresholds_ship_with_the_model(detector):
    t = detector.thresholds()
    assert set(t) == {"fpr_1pct", "fpr_0.1pct"}
    assert 0 < t["fpr_1pct"] <= t["fpr_0.1pct"] < 1


def test_onnx_matches_the_torch_model_it_was_exported_from(detector):
    """When the training checkpoint is around (after training/train_spectral.py), ONNX and torch must agree."""
    torch = pytest.importorskip("torch", reason="torch is a training-only dependency")
    from training.spectral_data import CACHE_DIR
    from training.spectral_model import load_model
    checkpoint = CACHE_DIR / "spectral_model.pt"
    if not checkpoint.is_file():
        pytest.skip(f"no training checkpoint at {checkpoint}")
    model = load_model(checkpoint)
    images = [_random_image(300, 300), _random_image(90, 140)]
    inputs = batch_features(images)
    with torch.no_grad():
        expected = model(torch.from_numpy(inputs["tiles"]), torch.from_numpy(inputs["whole"])).numpy()
    np.testing.assert_allclose(detector.score(images), expected, atol=1e-4)


def test_held_out_stylegan_scores_above_held_out_real(detector, held_out):
    gans, reals = held_out
    assert detector.score(gans).mean() > detector.score(reals).mean() + 0.2


def test_held_out_stylegan_scores_above_real_after_platform_degradation(detector, held_out):
    gans, reals = held_out
    degrade = lambda im: np.asarray(jpeg(downscale(Image.fromarray(im), 256), 85))
    assert detector.score([degrade(g) for g in gans]).mean() > detector.score([degrade(r) for r in reals]).mean() + 0.2


def test_the_cpu_runs_the_int8_spectral_twin_with_the_same_thresholds(monkeypatch):
    """CPU scans run weights/spectral.int8.onnx (training/quantize_spectral.py); it carries the float32
    model's operating thresholds, scores like it, and FACECHECK_FLOAT32=1 brings the float32 model back."""
    import numpy as np
    from facecheck.runtime import Runtime
    from facecheck.spectrum import SpectralDetector
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (200, 180, 3), dtype=np.uint8) for _ in range(4)]
    quantized = Runtime("cpu", 1)
    assert quantized.model_file("spectral.onnx") == "spectral.int8.onnx"
    monkeypatch.setenv("FACECHECK_FLOAT32", "1")
    reference = Runtime("cpu", 1)
    assert reference.model_file("spectral.onnx") == "spectral.onnx"
    assert SpectralDetector(quantized).thresholds() == SpectralDetector(reference).thresholds() != {}
    a, b = SpectralDetector(quantized).score(images), SpectralDetector(reference).score(images)
    assert np.max(np.abs(a - b)) < 0.1
