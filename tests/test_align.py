"""The FFHQ alignment recipe of training/align_ffhq.py (hard negatives for the v3 GAN detector): its quad math, and
the augmentation that takes faces off the template."""
import numpy as np
import pytest
from PIL import Image

from training.align_ffhq import align, ffhq_quad, off_template, quad_side


def rotate(points, angle, centre=(0.0, 0.0)):
    c, s = np.cos(angle), np.sin(angle)
    p = np.asarray(points, float) - centre
    return p @ np.array([[c, s], [-s, c]]) + centre


FACE = [(100.0, 100.0), (160.0, 100.0), (110.0, 170.0), (150.0, 170.0)]   # eyes, mouth corners (image left/right)


def test_quad_of_a_level_face_is_an_axis_aligned_square_around_it():
    quad = ffhq_quad(*FACE)
    side = quad_side(quad)
    # FFHQ: half-side = max(2 x eye distance, 1.8 x eye-to-mouth distance) = max(120, 126)
    assert side == pytest.approx(2 * 126.0)
    edges = np.roll(quad, -1, axis=0) - quad
    assert np.allclose(np.hypot(*edges.T), side)
    assert np.allclose(edges[:, 0] * edges[:, 1], 0, atol=1e-9)          # axis-aligned
    # centred between the eyes, a tenth of the way down to the mouth
    assert np.allclose(quad.mean(axis=0), (130.0, 100.0 + 0.1 * 70.0))
    assert quad[0][1] < quad[1][1]                                       # first corner on top


def test_quad_turns_and_moves_with_the_face():
    angle, centre = np.radians(17.0), np.array([40.0, -12.0])
    turned = [rotate(p, angle, centre) for p in FACE]
    assert np.allclose(ffhq_quad(*turned), rotate(ffhq_quad(*FACE), angle, centre))
    shifted = [np.asarray(p) + (33.0, 7.0) for p in FACE]
    assert np.allclose(ffhq_quad(*shifted), ffhq_quad(*FACE) + (33.0, 7.0))


def test_align_puts_the_eyes_where_ffhq_puts_them():
    # two dark dots as eyes on a grey photo; aligned at 256 px they must land at FFHQ's mean eye height (quad
    # centre sits 0.1 x eye-to-mouth below the eyes: eyes at 0.5 - 7/252 of the side) and symmetric about the middle
    arr = np.full((300, 260, 3), 200, np.uint8)
    for x, y in FACE[:2]:
        arr[int(y) - 3:int(y) + 3, int(x) - 3:int(x) + 3] = 0
    out = np.asarray(align(Image.fromarray(arr), ffhq_quad(*FACE), 256).convert("L"), float)
    assert out.shape == (256, 256)
    ys, xs = np.nonzero(out < 120)
    left, right = xs < 128, xs >= 128
    expected_y = 256 * (0.5 - 7.0 / 252)
    assert abs(ys.mean() - expected_y) < 2
    assert abs(xs[left].mean() - (128 - 256 * 30 / 252)) < 2 and abs(xs[right].mean() - (128 + 256 * 30 / 252)) < 2


def test_align_pads_where_the_quad_leaves_the_photo():
    # a face near the top-left corner: the quad leaves the photo, and the padded part is filled (no black border)
    arr = np.random.default_rng(0).integers(60, 200, (200, 200, 3), dtype=np.uint8)
    corner = [np.asarray(p) - 90 for p in FACE]
    out = np.asarray(align(Image.fromarray(arr), ffhq_quad(*corner), 256))
    assert out.shape == (256, 256, 3) and out[:20, :20].min() > 30


def test_off_template_keeps_the_size_and_moves_the_content():
    rng = np.random.default_rng(1)
    arr = rng.integers(0, 256, (64, 80, 3), dtype=np.uint8)
    moved = off_template(Image.fromarray(arr), rng)
    assert moved.size == (80, 64)
    assert np.abs(np.asarray(moved, float) - arr).mean() > 10
    still = off_template(Image.fromarray(arr), rng, max_angle=0, zoom=(1.0, 1.0), max_shift=0)
    assert np.abs(np.asarray(still, float) - arr).max() <= 1


def test_degenerate_landmarks_are_refused_not_turned_into_nan():
    same = (50.0, 50.0)
    with pytest.raises(ValueError, match="degenerate"):
        ffhq_quad(same, same, same, same)
    with pytest.raises(ValueError, match="degenerate"):
        ffhq_quad((np.nan, 1.0), (2.0, 1.0), (1.0, 3.0), (2.0, 3.0))
