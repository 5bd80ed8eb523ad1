"""Tests for the spectral StyleGAN detector (facecheck/spectrum.py, weights/spectral.onnx)."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from facecheck.dataset import data_root, read_manifest, split_of
from facecheck.degrade import downscale, jpeg
from facecheck.runtime import Runtime, weights_path
from facecheck.spectrum import (MODEL_FILE, OVERVIEW_SIDE, TILE, TILES_PER_IMAGE, TILES_PER_SCALE, SpectralDetector,
                                image_tiles, overview)

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
def test_tiles_have_one_layout_for_any_size(shape):
    tiles = image_tiles(_random_image(*shape))
    assert tiles.shape == (TILES_PER_IMAGE, TILE, TILE, 3) and tiles.dtype == np.uint8


def test_tiles_are_native_crops_then_overview_crops_corner_to_corner():
    img = _random_image(300, 200)
    tiles, small = image_tiles(img), overview(img)
    assert max(small.shape[:2]) == OVERVIEW_SIDE
    np.testing.assert_array_equal(tiles[0], img[:TILE, :TILE])
    np.testing.assert_array_equal(tiles[TILES_PER_SCALE - 1], img[-TILE:, -TILE:])
    np.testing.assert_array_equal(tiles[TILES_PER_SCALE], small[:TILE, :TILE])
    np.testing.assert_array_equal(tiles[-1], small[-TILE:, -TILE:])


def test_small_images_are_never_upscaled_for_the_overview():
    img = _random_image(120, 90)
    tiles = image_tiles(img)
    np.testing.assert_array_equal(tiles[:TILES_PER_SCALE], tiles[TILES_PER_SCALE:])


@pytest.mark.parametrize("grey", [lambda g: g, lambda g: g[:, :, None]])
def test_grey_images_tile_like_grey_rgb(grey):
    g = RNG.integers(0, 256, (120, 90), dtype=np.uint8)
    np.testing.assert_array_equal(image_tiles(grey(g)), image_tiles(np.stack([g] * 3, axis=2)))


def test_alpha_is_dropped_and_bad_shapes_refused():
    rgba = RNG.integers(0, 256, (80, 80, 4), dtype=np.uint8)
    np.testing.assert_array_equal(image_tiles(rgba), image_tiles(rgba[:, :, :3]))
    with pytest.raises(ValueError):
        image_tiles(np.zeros((10, 10, 2), np.uint8))


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


def test_score_is_the_onnx_model_on_the_shared_tiles(detector):
    """score() must be exactly the exported graph applied to image_tiles, the function training used."""
    images = [_random_image(256, 256), _random_image(150, 120)]
    tiles = np.stack([image_tiles(im) for im in images]).astype(np.float32)
    (direct,) = detector.runtime.run(MODEL_FILE, {"tiles": tiles})
    np.testing.assert_allclose(detector.score(images), direct.reshape(-1), atol=1e-6)


def test_operating_thresholds_ship_with_the_model(detector):
    t = detector.thresholds()
    assert set(t) == {"fpr_1pct", "fpr_0.1pct"}
    assert 0 < t["fpr_1pct"] <= t["fpr_0.1pct"] < 1


def test_onnx_matches_the_torch_model_it_was_exported_from(detector):
    """When the training checkpoint is around (after training/train_spectral.py), ONNX and torch must agree."""
    torch = pytest.importorskip("torch", reason="torch is a training-only dependency")
    from training.spectral_data import CACHE_DIR
    from training.spectral_model import SpectralNet
    checkpoint = CACHE_DIR / "spectral_model.pt"
    if not checkpoint.is_file():
        pytest.skip(f"no training checkpoint at {checkpoint}")
    model = SpectralNet()
    model.load_state_dict(torch.load(checkpoint))
    model.eval()
    images = [_random_image(300, 300), _random_image(90, 140)]
    tiles = np.stack([image_tiles(im) for im in images]).astype(np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(tiles)).numpy()
    np.testing.assert_allclose(detector.score(images), expected, atol=1e-4)


def test_held_out_stylegan_scores_above_held_out_real(detector, held_out):
    gans, reals = held_out
    assert detector.score(gans).mean() > detector.score(reals).mean() + 0.2


def test_held_out_stylegan_scores_above_real_after_platform_degradation(detector, held_out):
    gans, reals = held_out
    degrade = lambda im: np.asarray(jpeg(downscale(Image.fromarray(im), 256), 85))
    assert detector.score([degrade(g) for g in gans]).mean() > detector.score([degrade(r) for r in reals]).mean() + 0.2
