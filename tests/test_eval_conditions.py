"""The greyscale conditions of `facecheck eval` (issue 20): grey_400px_q70-85 and grey_256px_q70-85."""
from __future__ import annotations

import json

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from facecheck.cli import app
from facecheck.evaluation import degrade
from facecheck.evaluation.evaluate import conditions

from conftest import SAMPLES

GREY = {"grey_400px_q70-85": ("400px_q70-85", 400), "grey_256px_q70-85": ("256px_q70-85", 256)}


def is_grey(img: Image.Image) -> bool:
    rgb = np.asarray(img.convert("RGB")).astype(int)
    return bool(np.all(rgb[..., 0] == rgb[..., 1]) and np.all(rgb[..., 1] == rgb[..., 2]))


def test_grey_conditions_are_grey_and_count_only_images_at_least_as_large(photo):
    named = conditions(list(GREY))
    large = photo.resize((512, 480))
    assert not is_grey(large)
    for name, (_, side) in GREY.items():
        out = named[name](large)
        assert is_grey(out) and max(out.size) == side and out.size == (side, round(480 * side / 512))
        assert out.format == "JPEG"
        exactly = photo.resize((side, side - 10))      # as large as the size: counted, not resized
        assert named[name](exactly).size == exactly.size and is_grey(named[name](exactly))
        smaller = photo.resize((side - 1, side - 40))  # smaller: never enlarged, no row
        assert named[name](smaller) is None


def test_grey_conditions_differ_from_their_colour_twin_by_the_colour_alone(photo):
    """Same downscale and the same JPEG quality per image as the colour condition (drawn from the colour original)."""
    named = conditions()
    for image in (photo.resize((512, 480)), photo.rotate(90).resize((420, 300)), photo.crop((0, 0, 290, 260))):
        for name, (twin, side) in GREY.items():
            if max(image.size) < side:
                assert named[name](image) is None and named[twin](image) is None
                continue
            colour = np.asarray(named[twin](image))
            qualities = [q for q in range(70, 86)
                         if np.array_equal(np.asarray(degrade.jpeg(degrade.downscale(image, side), q)), colour)]
            assert len(qualities) == 1
            expected = degrade.jpeg(degrade.downscale(degrade.greyscale(image), side), qualities[0])
            assert np.array_equal(np.asarray(named[name](image)), np.asarray(expected))


def test_greyscale_is_luma_back_in_rgb(photo):
    grey = degrade.greyscale(photo)
    assert grey.mode == "RGB" and grey.size == photo.size and is_grey(grey)
    assert np.array_equal(np.asarray(grey)[..., 0], np.asarray(photo.convert("L")))


def test_eval_runs_the_grey_conditions(tmp_path):
    data = tmp_path / "labelled"
    (data / "stylegan" / "demo").mkdir(parents=True)
    (data / "real_natural" / "demo").mkdir(parents=True)
    with Image.open(SAMPLES / "account_a.png") as im:       # 300 x 300
        im.convert("RGB").save(data / "stylegan" / "demo" / "a.png")
        im.convert("RGB").resize((200, 200)).save(data / "real_natural" / "demo" / "small.png")
    with Image.open(SAMPLES / "coffee.jpg") as im:
        im.convert("RGB").resize((480, 320)).save(data / "real_natural" / "demo" / "coffee.png")
    out = tmp_path / "eval"
    run = CliRunner().invoke(app, ["eval", str(data), "--out", str(out), "--conditions",
                                   "grey_400px_q70-85,grey_256px_q70-85", "--device", "cpu", "--quiet"])
    assert run.exit_code == 0, run.output
    record = json.loads((out / "eval.json").read_text())
    assert record["conditions"] == ["grey_400px_q70-85", "grey_256px_q70-85"]
    rows = [json.loads(line) for line in (out / "rows.jsonl").read_text().splitlines()]
    counted = sorted((r["condition"], r["file"].rsplit("/", 1)[-1]) for r in rows)
    # 480 px counts at 400 and 256; 300 px only at 256; 200 px in neither
    assert counted == [("grey_256px_q70-85", "a.png"), ("grey_256px_q70-85", "coffee.png"),
                       ("grey_400px_q70-85", "coffee.png")]
    assert all(r["error"] is None and 0 <= r["gan_score"] <= 1 for r in rows)


def test_eval_lists_the_grey_conditions_when_a_name_is_unknown(tmp_path):
    (tmp_path / "stylegan").mkdir()
    Image.new("RGB", (64, 64), (10, 20, 30)).save(tmp_path / "stylegan" / "a.png")
    run = CliRunner().invoke(app, ["eval", str(tmp_path), "--conditions", "grey_512px"])
    assert run.exit_code == 2 and "grey_400px_q70-85" in run.output and "Traceback" not in run.output
