from pathlib import Path

import pytest
from PIL import Image

from facecheck.dataset import data_root


SAMPLES = Path(__file__).resolve().parent.parent / "samples" / "avatars"


@pytest.fixture(scope="session")
def photo() -> Image.Image:
    """A real photo (NASA's astronaut portrait, public domain, from samples/), 300x300 RGB."""
    with Image.open(SAMPLES / "account_a.png") as img:
        return img.convert("RGB")


@pytest.fixture(scope="session")
def shared_data():
    root = data_root()
    if root is None:
        pytest.skip("../shared/data is absent: tests on labelled face images are skipped")
    return root
