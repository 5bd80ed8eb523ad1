"""The resize pyramid (facecheck.pyramid): the same pixels as before below LEVELS_FROM, one resize shared by
every model that asks for it, and on large images a result close to a direct area resize."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from facecheck import backbone, pyramid, spectrum
from facecheck.faces import YuNetDetector
from facecheck.pyramid import LEVELS_FROM, Pyramid

from conftest import SAMPLES

RNG = np.random.default_rng(7)


def _photo(width: int, height: int) -> np.ndarray:
    """A bundled photo resized to width x height (photo-like content at any size)."""
    with Image.open(SAMPLES / "rocket.jpg") as im:
        return np.asarray(im.convert("RGB").resize((width, height), Image.Resampling.LANCZOS))


@pytest.mark.parametrize("shape", [(400, 300, 3), (1023, 1600, 3), (90, 70, 3), (999, 999, 3)])
def test_images_under_the_level_size_are_resized_from_themselves_exactly(shape):
    image = RNG.integers(0, 256, shape, dtype=np.uint8)
    p = Pyramid(image)
    for size in ((128, 128), (320, 240), (160, 160), (500, 400)):
        for interpolation in (cv2.INTER_AREA, cv2.INTER_LINEAR):
            assert np.array_equal(p.resize(size, interpolation), cv2.resize(image, size, interpolation=interpolation))


def test_a_resize_asked_for_twice_is_made_once_and_shared_by_yunet_and_the_spectral_detector():
    p = Pyramid(_photo(900, 700))
    yunet = YuNetDetector.__new__(YuNetDetector)   # only its input: no model needed
    yunet.side = 320
    detector_view, scale = yunet.detector_input(p)
    assert detector_view is spectrum.capped(p)     # above 640 px both read the same area resize to 320
    assert scale == pytest.approx(320 / 900)
    assert backbone.model_input(p) is backbone.model_input(p)


def test_levels_are_exact_halvings_and_large_resizes_stay_close_to_direct_ones():
    image = _photo(2048, 1536)
    p = Pyramid(image)
    level = p.level_for(320, 240)
    assert level.shape[:2] == (768, 1024)   # 1024 >= 2 * 320 and 768 >= 2 * 240; one more halving is not
    even = image.astype(np.float32)
    manual = (even[0::2, 0::2] + even[1::2, 0::2] + even[0::2, 1::2] + even[1::2, 1::2]) / 4
    assert np.abs(level.astype(np.float32) - manual).max() <= 0.5 + 1e-3   # a 2 x 2 mean, rounded
    for size in ((128, 128), (320, 240), (160, 160)):
        via = p.resize(size, cv2.INTER_AREA).astype(np.int16)
        direct = cv2.resize(image, size, interpolation=cv2.INTER_AREA).astype(np.int16)
        assert np.abs(via - direct).mean() < 0.5 and np.abs(via - direct).max() <= 8


def test_an_odd_sized_large_image_keeps_its_geometry():
    image = _photo(2049, 1537)
    p = Pyramid(image)
    level = p.level_for(128, 128)
    assert min(image.shape[:2]) >= LEVELS_FROM and level.shape[:2] == (384, 512)   # 1537 -> 768 -> 384
    yunet = YuNetDetector.__new__(YuNetDetector)
    yunet.side = 320
    view, scale = yunet.detector_input(p)
    assert view.shape[:2] == (round(1537 * 320 / 2049), 320) and scale == pytest.approx(320 / 2049)


def test_the_analyzer_scores_a_large_photo_as_it_would_without_levels(monkeypatch):
    from facecheck import score_image
    image = _photo(2048, 1536)
    with_levels = score_image(image, depth="full", device="cpu")
    monkeypatch.setattr(pyramid, "LEVELS_FROM", 10 ** 9)
    without = score_image(image, depth="full", device="cpu")
    assert with_levels.verdict == without.verdict
    assert with_levels.faces == without.faces
    assert abs(with_levels.gan_score - without.gan_score) < 0.02
    for name in ("backbone_score", "spectral_score"):
        a, b = getattr(with_levels, name), getattr(without, name)
        assert (a is None) == (b is None) and (a is None or abs(a - b) < 0.02)
