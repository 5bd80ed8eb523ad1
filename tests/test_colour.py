"""facecheck.colour: black-and-white images are told apart from colour ones, however they are stored."""
import io

import numpy as np
from PIL import Image

from facecheck.colour import COLOURLESS_CHROMA, chroma, is_colourless
from facecheck.evaluation import degrade

from conftest import SAMPLES


def decoded(image: Image.Image, quality: int = 75) -> np.ndarray:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))


def test_greyscale_avatars_are_colourless_however_stored():
    with Image.open(SAMPLES / "account_a.png") as im:
        colour = im.convert("RGB")
    grey = degrade.greyscale(colour)
    assert is_colourless(np.asarray(grey.convert("L")))        # one channel
    assert is_colourless(np.asarray(grey))                      # three equal channels
    assert is_colourless(decoded(grey, 60))                     # an RGB JPEG of a grey image
    assert chroma(np.asarray(colour)) > 3 * COLOURLESS_CHROMA
    assert not is_colourless(decoded(colour, 60))


def test_a_faint_tint_is_still_colour():
    """Sepia-like toning is colour to the flag: only an image without chroma gets the grey calibration."""
    grey = np.full((64, 64), 128, np.uint8)
    tinted = np.stack([grey + 12, grey + 4, grey - 8], axis=2)
    assert chroma(tinted) == 20
    assert not is_colourless(tinted)
    assert is_colourless(np.stack([grey] * 3, axis=2))
