"""Hash parity with imagehash, and the duplicate finder on generated fixtures."""
import imagehash
import numpy as np
import pytest
from PIL import Image

from facecheck.evaluation import degrade
from facecheck.evaluation.dataset import read_manifest
from facecheck.duplicates import registered_similarity
from facecheck.grouping import group_files as group_scan_files
from facecheck.hashing import Hash, signatures


def test_hash_objects_compare_like_imagehash():
    a, b = Hash.from_hex("ff00"), Hash.from_hex("f0f0")
    assert a - b == 8 and str(a) == "ff00" and Hash.from_hex(str(b)) == b


def test_phash_parity_on_synthetic_images():
    rng = np.random.default_rng(1)
    images = [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
              for h, w in [(64, 64), (100, 37), (37, 100), (300, 300)]]
    images += [Image.new("RGB", (50, 50), (10, 20, 30)), Image.new("L", (40, 40), 255).convert("RGB")]
    for image, sig in zip(images, signatures(images)):
        assert str(sig.phash) == str(imagehash.phash(image))


def test_phash_parity_on_hundreds_of_faces(shared_data):
    samples = read_manifest()[::19][:300]
    images = [Image.open(s.path).convert("RGB") for s in samples]
    images = [degrade.downscale(im, 200) if i % 2 else im for i, im in enumerate(images)]
    sigs = signatures(images)
    mismatches = [s.path.name for s, im, sig in zip(samples, images, sigs) if str(sig.phash) != str(imagehash.phash(im))]
    assert len(images) == 300 and mismatches == []


def test_mirror_hash_is_the_hash_of_the_mirrored_image(photo):
    plain, mirrored = signatures([photo, degrade.mirror(photo)])
    assert plain.dct256_mirror - mirrored.dct256 <= 4
    assert plain.dct256 - mirrored.dct256 > 60


def group_files(images):
    sigs = signatures(images)
    ids = np.arange(len(sigs))
    codes = np.stack([np.frombuffer(s.dct256.packed(), np.uint8) for s in sigs])
    thumbs = np.stack([s.thumbnail for s in sigs])
    groups = group_scan_files(ids, codes, [(ids, np.stack([s.probes for s in sigs]), thumbs)],
                              thumbnail_of=lambda i: thumbs[i])
    return groups.roots.tolist()


def pair_scores(labels, truth):
    labels, truth = np.array(labels), np.array(truth)
    iu = np.triu_indices(len(labels), 1)
    pred, true = labels[iu[0]] == labels[iu[1]], truth[iu[0]] == truth[iu[1]]
    return (pred & true).sum() / true.sum(), (pred & true).sum() / max(1, pred.sum())


def test_reposts_of_generated_photos_group_together(photo):
    rng = np.random.default_rng(3)
    originals = [photo, photo.rotate(90), photo.transpose(Image.Transpose.FLIP_TOP_BOTTOM),
                 Image.fromarray(255 - np.asarray(photo))]
    images, truth = [], []
    for k, original in enumerate(originals):
        for _ in range(4):
            images.append(degrade.random_repost(original, rng))
            truth.append(k)
    recall, precision = pair_scores(group_files(images), truth)
    assert recall == 1.0 and precision == 1.0


def test_aligned_faces_do_not_merge_but_their_reposts_do(shared_data):
    """Distinct StyleGAN/FFHQ faces sit within a few pHash bits of each other; the finder must
    still keep them apart while joining each face's reposts."""
    aligned = [s for s in read_manifest() if s.label in ("stylegan", "real_ffhq")]
    rng = np.random.default_rng(4)
    faces = [aligned[i] for i in rng.choice(len(aligned), 40, replace=False)]   # any source, any size
    images, truth = [], []
    for k, s in enumerate(faces):
        original = Image.open(s.path).convert("RGB")
        copies = 3 if k < 10 else 1
        for _ in range(copies):
            images.append(degrade.random_repost(original, rng))
            truth.append(k)
    recall, precision = pair_scores(group_files(images), truth)
    assert recall >= 0.95 and precision == 1.0


def test_verification_separates_copies_from_lookalikes(photo):
    sig_a, sig_b, sig_c = signatures([photo, degrade.jpeg(degrade.resize_to(degrade.crop_fraction(photo, 0.08), 150), 60),
                                      Image.fromarray(np.asarray(photo)[::-1].copy())])
    assert registered_similarity(sig_a.thumbnail, sig_b.thumbnail) > 0.85
    assert registered_similarity(sig_a.thumbnail, sig_c.thumbnail) < 0.5


def test_nearest_candidates_keep_each_images_closest_probe_and_cap_the_count():
    from facecheck.duplicates import nearest_candidates
    rng = np.random.default_rng(0)
    small = [(np.array([5, 7, 3]), np.array([40, 12, 30])), (np.array([7, 9, 1]), np.array([8, 50, 2]))]
    assert nearest_candidates(small, exclude=1) == [(7, 8), (3, 30), (5, 40), (9, 50)]
    assert nearest_candidates(small, exclude=None, limit=2) == [(1, 2), (7, 8)]
    # many hits (the numpy path) give what the plain path gives
    big = [(rng.integers(0, 500, 300), rng.integers(0, 64, 300)) for _ in range(4)]
    closest = {}
    for ids, dist in big:
        for i, d in zip(ids.tolist(), dist.tolist()):
            if i != 3 and closest.get(i, 99) > d:
                closest[i] = d
    expected = sorted(closest.items(), key=lambda item: (item[1], item[0]))[:64]
    assert nearest_candidates(big, exclude=3) == expected


def test_a_frame_on_a_narrow_photo_is_trimmed_on_every_side(photo):
    """A 12 px frame at 300 px is 6% of a narrow photo's width: it must come off the sides too."""
    from facecheck.hashing import trim_plain_border
    narrow = degrade.resize_to(photo.crop((60, 0, 240, 300)), 276)      # 166 x 276
    framed = Image.new("RGB", (narrow.width + 24, narrow.height + 24), (0, 0, 0))
    framed.paste(narrow, (12, 12))
    trimmed = trim_plain_border(np.asarray(framed.convert("L")))
    assert abs(trimmed.shape[0] - narrow.height) <= 2 and abs(trimmed.shape[1] - narrow.width) <= 2
    plain, with_frame = signatures([narrow, framed])
    assert plain.dct256 - with_frame.dct256 <= 16


def framed(img: Image.Image, width: int, colour) -> Image.Image:
    out = Image.new("RGB", (img.width + 2 * width, img.height + 2 * width), colour)
    out.paste(img, (width, width))
    return out


@pytest.mark.parametrize("colour", [(255, 255, 255), (0, 0, 0), (40, 170, 90)])
def test_a_12px_frame_on_a_150px_photo_groups_with_it(photo, colour):
    """12 px is 8% of each side of a 150 px photo (the held-out set's misses): the frame comes off."""
    from facecheck.hashing import plain_border
    small = degrade.resize_to(photo, 150)
    copy = degrade.jpeg(framed(small, 12, colour), 75)
    assert all(abs(side - 12) <= 1 for side in plain_border(np.asarray(copy.convert("L"))))
    assert group_files([small, copy]) == [0, 0]


def test_a_frame_of_a_quarter_of_each_side_comes_off(photo):
    from facecheck.hashing import plain_border
    small = degrade.resize_to(photo, 150)
    for colour in ((255, 255, 255), (0, 0, 0), (200, 60, 60)):
        copy = degrade.jpeg(framed(small, 74, colour), 85)     # 74 of 298 px: 24.8% of each side
        assert all(abs(side - 74) <= 1 for side in plain_border(np.asarray(copy.convert("L"))))
        assert group_files([small, copy]) == [0, 0]


def sky_photo(photo) -> Image.Image:
    """The photo under 40 rows of sky: a flat, slightly noisy blue that shades off towards the horizon."""
    rng = np.random.default_rng(5)
    below = np.asarray(degrade.resize_to(photo, 150).convert("RGB"), np.float32)
    shade = np.linspace(0, 45, 40)[:, None, None]
    sky = np.array([150, 190, 235], np.float32)[None, None, :] - shade + rng.normal(0, 1.5, (40, 150, 3))
    return degrade.jpeg(Image.fromarray(np.clip(np.concatenate([sky, below]), 0, 255).astype(np.uint8)), 85)


def test_a_photos_own_flat_edges_are_not_trimmed_into(photo):
    from facecheck.hashing import plain_border
    assert plain_border(np.asarray(sky_photo(photo).convert("L")))[0] == 0
    # a studio wall that a head rises from: a flat run ended by the head, not by a step across the line
    wall = np.full((150, 150), 180, np.uint8)
    yy, xx = np.mgrid[:150, :150]
    wall[((xx - 75) / 45) ** 2 + ((yy - 110) / 80) ** 2 <= 1] = 60
    assert plain_border(np.asarray(degrade.jpeg(Image.fromarray(wall).convert("RGB"), 85).convert("L"))) == (0, 0, 0, 0)


def test_a_black_frame_on_a_photo_with_a_dark_edge_comes_off_on_every_side(photo):
    """LFW photos often end in dark clothes: a black frame runs into them with no step to see, and
    must still come off there (as wide as on the other sides), not deeper. A full-width black strip
    of the photo's own is a frame of its own, and comes off the photo and its framed copy alike."""
    from facecheck.hashing import plain_border
    rng = np.random.default_rng(6)
    for left, right in ((25, 125), (0, 150)):                   # dark clothes, or a strip across
        pixels = np.asarray(degrade.resize_to(photo, 150).convert("RGB")).copy()
        pixels[-30:, left:right] = rng.integers(0, 20, (30, right - left, 3))
        dark_edged = degrade.jpeg(Image.fromarray(pixels), 90)
        copy = degrade.jpeg(framed(dark_edged, 12, (0, 0, 0)), 80)
        own = plain_border(np.asarray(dark_edged.convert("L")))
        assert all(abs(side - mine - 12) <= 1 for side, mine in zip(plain_border(np.asarray(copy.convert("L"))), own))
        assert group_files([dark_edged, copy]) == [0, 0]


def test_a_frame_of_nearly_the_backgrounds_colour_comes_off_when_drawn_all_round(photo):
    """No side shows a clear step when the frame matches the photo's own background (a grey frame
    on a studio-grey face photo): the frame is known by its four sides ending at one distance."""
    from facecheck.hashing import plain_border
    rng = np.random.default_rng(7)
    pixels = np.asarray(degrade.resize_to(photo, 150).convert("RGB")).astype(np.int16)
    backdrop = np.full((150, 150, 3), 128) + rng.integers(-25, 26, (150, 150, 1))   # a textured grey wall
    near_edge = np.zeros((150, 150), bool)
    near_edge[:20], near_edge[-20:], near_edge[:, :20], near_edge[:, -20:] = True, True, True, True
    pixels[near_edge] = backdrop[near_edge]            # a noisy grey backdrop round the sitter
    studio = degrade.jpeg(Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)), 90)
    copy = degrade.jpeg(framed(studio, 30, (128, 128, 128)), 85)
    assert all(abs(side - 30) <= 1 for side in plain_border(np.asarray(copy.convert("L"))))
    assert plain_border(np.asarray(studio.convert("L"))) == (0, 0, 0, 0)
    assert group_files([studio, copy]) == [0, 0]
