"""Rebuild the bundled samples from public-domain / CC0 images that scikit-image ships.

    pip install scikit-image && python samples/make_samples.py

astronaut (NASA, public domain) becomes one avatar reposted four ways: a reused-avatar group.
rocket (NASA, public domain), coffee and chelsea (CC0) are unrelated photos. Two broken files show
how a scan reports bad input without stopping.
"""
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data

from facecheck.evaluation import degrade

HERE = Path(__file__).resolve().parent


def main() -> None:
    astronaut = Image.fromarray(data.astronaut()).crop((100, 0, 400, 300))   # head and shoulders
    avatars = HERE / "avatars"
    (avatars / "account_b").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(2026)

    astronaut.save(avatars / "account_a.png")
    degrade.jpeg(degrade.resize_to(astronaut, 150), 60).save(avatars / "account_b" / "profile.jpg")
    mirrored = degrade.resize_to(degrade.mirror(degrade.crop_fraction(astronaut, 0.06, rng)), 256)
    degrade.jpeg(mirrored, 85).save(avatars / "account_c.jpg")
    framed = degrade.brightness_gamma(degrade.add_border(astronaut, 0.04, (250, 250, 250)), 1.1, 0.8)
    degrade.jpeg(degrade.resize_to(framed, 400), 75).save(avatars / "account_d.jpg")
    framed.resize((200, 200)).save(avatars / "account_e.webp", quality=80)

    degrade.jpeg(degrade.resize_to(Image.fromarray(data.rocket()), 400), 90).save(avatars / "rocket.jpg")
    degrade.jpeg(degrade.resize_to(Image.fromarray(data.coffee()), 300), 90).save(avatars / "coffee.jpg")
    Image.fromarray(data.chelsea()).resize((256, 170)).save(avatars / "account_b" / "cat.png")

    good = (avatars / "rocket.jpg").read_bytes()
    (avatars / "truncated.jpg").write_bytes(good[: len(good) // 3])
    (avatars / "not_an_image.jpg").write_text("<html><body>404 Not Found</body></html>\n")


if __name__ == "__main__":
    main()
