"""Face and eye locator (facecheck.faces) and the StyleGAN eye template (facecheck.geometry)."""
from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest
from PIL import Image

from facecheck.evaluation.dataset import data_root, read_manifest, split_of
from facecheck.faces import Face, FaceLocator, YuNetDetector, nms
from facecheck.geometry import EyeTemplate, eye_score, geometry_features
from facecheck.runtime import Runtime, weights_path

HELD_OUT = (3, 4)   # folds the template was not learned on (training/learn_eye_template.py)


@pytest.fixture(scope="module")
def runtime():
    return Runtime("cpu")


@pytest.fixture(scope="module")
def locator(runtime):
    return FaceLocator(runtime)


@pytest.fixture(scope="module")
def template():
    return EyeTemplate.load()


def dataset_images(label: str, count: int, source: str | None = None, min_side: int = 250) -> list[np.ndarray]:
    """`count` held-out images of a label, each at least `min_side` px on its shorter side. The
    manifest's order and the images' sizes are not assumed (the data grows): images are picked by a
    stable hash of their file name among those large enough."""
    if data_root() is None:
        pytest.skip("needs ../shared/data (or FACECHECK_DATA): facecheck.evaluation.dataset.data_root() is None")
    samples = sorted((s for s in read_manifest() if s.label == label and split_of(s) in HELD_OUT
                      and (source is None or s.source == source)),
                     key=lambda s: hashlib.sha256(s.path.name.encode()).hexdigest())
    images = []
    for s in samples:
        with Image.open(s.path) as img:
            if min(img.size) >= min_side:
                images.append(np.asarray(img.convert("RGB")))
        if len(images) == count:
            return images
    pytest.skip(f"fewer than {count} held-out {label} images of at least {min_side} px in ../shared/data")


def square(image: np.ndarray, side: int) -> np.ndarray:
    return np.asarray(Image.fromarray(image).resize((side, side), Image.Resampling.LANCZOS))


def test_nms_keeps_best_of_overlapping_boxes():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [50, 50, 10, 10]], np.float32)
    assert nms(boxes, np.array([0.8, 0.9, 0.7]), 0.3) == [1, 2]


def test_yunet_matches_opencv_face_detector(runtime):
    cv2 = pytest.importorskip("cv2")
    images = dataset_images("stylegan", 3) + dataset_images("real_natural", 3, "zhfe99_helen_subset")
    detector = YuNetDetector(runtime)
    checked = 0
    for image in images:
        resized, _ = detector.detector_input(image)
        h, w = resized.shape[:2]
        canvas = np.zeros((detector.side, detector.side, 3), np.uint8)   # same padded pixels for both
        canvas[:h, :w] = resized
        reference = cv2.FaceDetectorYN.create(str(weights_path("yunet.onnx")), "", (detector.side, detector.side),
                                              detector.threshold, 0.3, 5000)
        _, expected = reference.detect(np.ascontiguousarray(canvas[:, :, ::-1]))
        expected = np.zeros((0, 15)) if expected is None else expected[np.argsort(-expected[:, 14])]
        got = detector.detect_resized([resized])[0]
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, atol=1e-3)
        checked += len(got)
    assert checked >= 5


def test_stylegan_eyes_land_on_template(locator, template):
    images = dataset_images("stylegan", 8)
    distances = []
    for image, finding in zip(images, locator.locate(images)):
        assert finding.faces_found >= 1 and finding.face is not None
        f = geometry_features(finding.face, image.shape[1], image.shape[0], template)
        assert f["template_distance"] < 0.03, f     # StyleGAN faces vary a little in size
        distances.append(f["template_distance"])
    assert np.median(distances) < 0.01


def test_mirrored_image_gives_mirrored_eyes(locator):
    image = dataset_images("real_ffhq", 1)[0]
    width = image.shape[1]
    original, mirrored = locator.locate([image, np.ascontiguousarray(image[:, ::-1])])
    (lx, ly), (rx, ry) = original.face.eyes
    (mlx, mly), (mrx, mry) = mirrored.face.eyes
    assert lx < rx and mlx < mrx                      # left-in-image first, in both
    iod = math.hypot(rx - lx, ry - ly)
    assert abs(mlx - (width - rx)) < 0.03 * iod and abs(mly - ry) < 0.03 * iod
    assert abs(mrx - (width - lx)) < 0.03 * iod and abs(mry - ly) < 0.03 * iod


def test_blank_and_noise_images_have_no_face(locator):
    rng = np.random.default_rng(0)
    blank = np.full((300, 400, 3), 200, np.uint8)
    noise = rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)
    for finding in locator.locate([blank, noise, np.zeros((48, 48, 3), np.uint8)]):
        assert finding.faces_found == 0 and finding.face is None


def test_tiny_avatar_still_finds_the_face(locator, template):
    image = dataset_images("stylegan", 1)[0]
    tiny = np.asarray(Image.fromarray(image).resize((64, 64), Image.Resampling.LANCZOS))
    finding = locator.locate([tiny])[0]
    assert finding.face is not None
    f = geometry_features(finding.face, 64, 64, template)
    assert f["template_distance"] < 0.04, f


def test_grayscale_works_and_agrees_with_colour(locator):
    image = dataset_images("real_ffhq", 1)[0]
    grey = np.asarray(Image.fromarray(image).convert("L"))
    colour, grey3, grey2d = locator.locate([image, np.stack([grey] * 3, axis=2), grey])
    iod = math.dist(*colour.face.eyes)
    for finding in (grey3, grey2d):
        assert finding.face is not None
        for a, b in zip(colour.face.eyes, finding.face.eyes):
            assert math.dist(a, b) < 0.05 * iod


def test_face_cut_by_border_is_flagged(locator):
    image = dataset_images("stylegan", 1)[0]
    h, w = image.shape[:2]
    cut = np.ascontiguousarray(image[: int(h * 0.62), : int(w * 0.55)])   # chin and right cheek cut off
    whole, part = locator.locate([image, cut])
    assert whole.face is not None and not whole.face.cut_by_border
    assert part.face is not None and part.face.cut_by_border


def test_several_faces_counted_and_dominant_chosen(locator):
    big, small = dataset_images("stylegan", 2)
    canvas = np.full((512, 768, 3), 255, np.uint8)
    canvas[:512, :512] = square(big, 512)
    canvas[150:406, 512:768] = square(small, 256)
    finding = locator.locate([canvas])[0]
    assert finding.faces_found == 2
    assert finding.face.eyes[0][0] < 512 and finding.face.box[2] > 150


def test_score_is_one_on_template_and_scales_with_image(template):
    for width, height in ((1024, 1024), (150, 150), (400, 600)):
        eyes = ((template.left_eye[0] * width, template.left_eye[1] * height),
                (template.right_eye[0] * width, template.right_eye[1] * height))
        roll = math.radians(template.roll_deg)   # tiny; keep the eye line consistent with it
        face = Face(box=(0.25 * width, 0.25 * height, 0.5 * width, 0.6 * height), confidence=0.9,
                    eyes=eyes, cut_by_border=False)
        f = geometry_features(face, width, height, template)
        assert f["template_distance"] == pytest.approx(0, abs=1e-9)
        if width == height:
            assert eye_score(f, template) == pytest.approx(1, abs=0.02 + abs(roll))
    off = Face(box=(0, 0, 50, 50), confidence=0.9, eyes=((20, 60), (60, 62)), cut_by_border=False)
    f = geometry_features(off, 200, 200, template)
    assert f["template_distance"] > 0.1 and eye_score(f, template) < 1e-3


def test_crop_matches_pil_affine_convention():
    """CropFrame.crop (OpenCV) samples the same continuous coordinates as PIL's affine transform."""
    from facecheck.faces import CropFrame
    rng = np.random.default_rng(1)
    image = np.asarray(Image.fromarray(rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)).resize((400, 300)))
    for cx, cy, side, angle in ((200, 150, 250, 0.0), (180, 160, 330, 0.2), (60, 40, 200, -0.35)):
        frame = CropFrame(cx, cy, side, angle)
        got = frame.crop(image, 192).astype(int)
        m = frame.matrix(192)
        expected = np.asarray(Image.fromarray(image).transform((192, 192), Image.Transform.AFFINE, tuple(m.ravel()),
                                                              resample=Image.Resampling.BILINEAR,
                                                              fillcolor=(0, 0, 0))).astype(int)
        inside = np.ones((192, 192), bool)
        inside[[0, -1], :] = inside[:, [0, -1]] = False   # edge pixels: black fill blends differently
        diff = np.abs(got - expected)[inside]
        assert np.percentile(diff, 99) <= 2 and diff.mean() < 1.0, (diff.mean(), diff.max())
