"""Colour changes of training/colour_augment.py (issue 20: colour is not evidence), applied to every class alike."""
import numpy as np
from PIL import Image

from training.colour_augment import CHOICES, colour_cast, desaturated, greyscale, random_colour, sepia


def image(seed=0):
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (24, 32, 3), dtype=np.uint8))


def test_greyscale_and_fully_desaturated_copies_have_no_colour():
    for out in (greyscale(image()), desaturated(image(), 0.0)):
        arr = np.asarray(out).astype(int)
        assert out.mode == "RGB" and out.size == (32, 24)
        assert np.abs(arr[..., 0] - arr[..., 1]).max() <= 1 and np.abs(arr[..., 1] - arr[..., 2]).max() <= 1


def test_sepia_is_warm_and_cast_moves_channels():
    arr = np.asarray(sepia(image())).astype(int)
    assert (arr[..., 0] >= arr[..., 1]).all() and (arr[..., 1] >= arr[..., 2]).all()
    grey = Image.new("RGB", (4, 4), (100, 100, 100))
    assert np.asarray(colour_cast(grey, (1.1, 1.0, 0.9), (0, 5, 0)))[0, 0].tolist() == [110, 105, 90]


def test_random_colour_draws_every_change_at_its_rate_and_repeats_with_its_seed():
    names = [random_colour(image(), np.random.default_rng(s))[1] for s in range(2000)]
    for name, p in CHOICES:
        assert abs(names.count(name) / len(names) - p) < 0.04
    assert abs(names.count("none") / len(names) - (1 - sum(p for _, p in CHOICES))) < 0.04
    a, b = (np.asarray(random_colour(image(), np.random.default_rng(7))[0]) for _ in range(2))
    assert (a == b).all()
