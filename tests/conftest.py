import sys
from pathlib import Path

import pytest
from PIL import Image

from facecheck.evaluation.dataset import data_root


REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "samples" / "avatars"
# The tests import the installed facecheck (CI tests the built wheel); the checkout is appended, not
# prepended, so that only what is not installed (training/ and benchmarks/ scripts) comes from it.
if str(REPO) not in sys.path:
    sys.path.append(str(REPO))


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
