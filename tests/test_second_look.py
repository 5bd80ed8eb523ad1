"""The second look (facecheck.second_look): pairs whose 64 px thumbnails score near the verification
bar are decided on the files themselves, by keypoints under one transform and detail at 320 px."""
import io
import os

import facecheck
import numpy as np
import pytest
from PIL import Image

from facecheck import duplicates
from facecheck.evaluation import degrade
from facecheck.evaluation.dataset import read_manifest
from facecheck.grouping import group_files
from facecheck.hashing import signatures
from facecheck.loading import load_image
from facecheck.result import Result
from facecheck.scanstate import ScanState
from facecheck.second_look import SecondLook, second_look_for

# Different people in FFHQ alignment whose thumbnails score near the bar: two thispersondoesnotexist
# faces (0.825, joined at the old bar of 0.81) and two FFHQ photos of one woman from one shoot (0.827):
# different photos of a person are not reposts of one photo.
LOOK_ALIKES = (("bhunakit_tpdne_128", "6d4ce46a08f5.jpg", "7218fb3adc32.jpg"),
               ("bhunakit_ffhq_thumb128", "e409d3a275c7.jpg", "1a7e0551754d.jpg"))


class CountingLook(SecondLook):
    """The second look on images in memory, counting the pairs it is asked about and its answers."""

    def __init__(self, images):
        super().__init__(lambda i: images[i])
        self.answers = []

    def __call__(self, a, b):
        answer = super().__call__(a, b)
        self.answers.append(answer)
        return answer


def group(images, look=None) -> list[int]:
    sigs = signatures(images)
    ids = np.arange(len(sigs))
    codes = np.stack([np.frombuffer(s.dct256.packed(), np.uint8) for s in sigs])
    thumbs = np.stack([s.thumbnail for s in sigs])
    groups = group_files(ids, codes, [(ids, np.stack([s.probes for s in sigs]), thumbs)],
                         thumbnail_of=lambda i: thumbs[i], second_look=look)
    return groups.roots.tolist()


def thumbnail_score(a: Image.Image, b: Image.Image) -> float:
    sa, sb = signatures([a, b])
    return duplicates.registered_similarity(sa.thumbnail, sb.thumbnail)


def in_band(score: float) -> bool:
    low, high = duplicates.SECOND_LOOK_BAND
    return low <= score < high


@pytest.mark.parametrize("source, a, b", LOOK_ALIKES)
def test_look_alike_faces_of_different_people_stay_apart(shared_data, source, a, b):
    by_name = {s.path.name: s for s in read_manifest() if s.source == source}
    assert by_name.get(a) and by_name.get(b), "the data no longer holds the look-alike pair"
    faces = [load_image(by_name[name].path).image for name in (a, b)]
    assert in_band(thumbnail_score(*faces)), "the pair no longer scores near the bar: the test tests nothing"
    look = CountingLook(faces)
    assert group(faces, look) == [0, 1]
    assert look.answers == [False]          # the second look itself told them apart


def jpeg(image: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    image.convert("RGB").save(buf, "JPEG", quality=quality)
    return load_image(buf.getvalue()).image


COPIES = {
    "crop 92%": lambda im: jpeg(degrade.crop_fraction(im, 0.08, np.random.default_rng(1)), 85),
    "resize 150->400": lambda im: jpeg(degrade.resize_to(degrade.resize_to(im, 150), 400), 85),
    "jpeg q60": lambda im: jpeg(im, 60),
    "mirrored": lambda im: jpeg(degrade.mirror(im), 85),
}


def copy_below_the_bar(face: Image.Image, transform) -> tuple[Image.Image, float]:
    """The copy by `transform` of the face turned by the smallest of a few small angles (a repost
    straightened or photographed off a screen) that takes its thumbnail score into the band below
    VERIFY_MIN, where the bar alone leaves it apart: the thumbnail registration tries scale and
    shift, not rotation."""
    for degrees in (1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0):
        copy = transform(face.rotate(degrees, resample=Image.Resampling.BICUBIC))
        score = thumbnail_score(face, copy)
        if in_band(score) and score < duplicates.VERIFY_MIN:
            return copy, score
    raise AssertionError("no small turn takes this copy's thumbnail score into the band below the bar")


@pytest.mark.parametrize("kind", list(COPIES))
@pytest.mark.parametrize("source", ["bhunakit_ffhq_thumb128", "bhunakit_tpdne_128"])
def test_copies_scoring_near_the_bar_are_grouped_by_the_second_look(shared_data, kind, source):
    face_sample = sorted((s for s in read_manifest() if s.source == source), key=lambda s: s.path.name)[0]
    face = load_image(face_sample.path).image
    copy, score = copy_below_the_bar(face, COPIES[kind])
    assert group([face, copy]) == [0, 1]    # the bar alone (no second look) leaves it apart
    look = CountingLook([face, copy])
    assert group([face, copy], look) == [0, 0], f"{kind} copy at thumbnail score {score:.3f} left apart"
    assert look.answers == [True]           # the band was reached and the second look decided


def test_without_an_answer_the_bar_decides(shared_data):
    """A second look that cannot read the files (None) leaves the thumbnail decision: a copy below the
    bar stays apart, as does the look-alike."""
    by_name = {s.path.name: s for s in read_manifest() if s.source == "bhunakit_tpdne_128"}
    face = load_image(by_name["6d4ce46a08f5.jpg"].path).image
    other = load_image(by_name["7218fb3adc32.jpg"].path).image
    copy, _ = copy_below_the_bar(face, COPIES["jpeg q60"])
    unreadable = CountingLook([None, None, None])
    assert group([face, copy, other], unreadable) == [0, 1, 2]
    assert unreadable.answers and set(unreadable.answers) == {None}


# -- second_look_for: a scan's files read again from their paths --------------------------------

def scanned(tmp_path, images: dict[str, Image.Image]) -> ScanState:
    """A scan state holding these files (saved under tmp_path/folder) as a scan records them."""
    folder = tmp_path / "folder"
    folder.mkdir()
    state = ScanState(tmp_path / "state.sqlite")
    items = []
    for name, image in images.items():
        image.save(folder / name)
        st = os.stat(folder / name)
        sig = signatures([image])[0]
        items.append((Result(path=name), st.st_size, st.st_mtime_ns, sig.dct256.packed(), sig.probes.tobytes(),
                      sig.thumbnail.tobytes(), None))
    state.save(items, "key")
    return state


def ids_of(state: ScanState) -> dict[str, int]:
    return {path: file_id for file_id, path, *_ in state.judged()}


def test_a_scan_s_files_are_read_again_from_their_paths(tmp_path, shared_data):
    by_name = {s.path.name: s for s in read_manifest() if s.source == "bhunakit_tpdne_128"}
    face = load_image(by_name["6d4ce46a08f5.jpg"].path).image
    other = load_image(by_name["7218fb3adc32.jpg"].path).image
    copy, _ = copy_below_the_bar(face, COPIES["crop 92%"])
    state = scanned(tmp_path, {"face.png": face, "copy.png": copy, "other.png": other, "gone.png": face,
                               "changed.png": copy})
    ids = ids_of(state)
    (tmp_path / "folder" / "gone.png").unlink()
    with open(tmp_path / "folder" / "changed.png", "ab") as f:
        f.write(b"\0" * 10)                      # changed since it was scanned: not what was hashed
    look = second_look_for(state, tmp_path / "folder")
    assert look(ids["face.png"], ids["copy.png"]) is True
    assert look(ids["face.png"], ids["other.png"]) is False
    assert look(ids["face.png"], ids["gone.png"]) is None
    assert look(ids["face.png"], ids["changed.png"]) is None
    assert look(ids["face.png"], 10 ** 6) is None     # no such file in the state
    state.close()


def test_a_file_that_no_longer_decodes_gives_no_answer(tmp_path, shared_data):
    by_name = {s.path.name: s for s in read_manifest() if s.source == "bhunakit_tpdne_128"}
    face = load_image(by_name["6d4ce46a08f5.jpg"].path).image
    state = scanned(tmp_path, {"face.png": face, "broken.png": face})
    ids = ids_of(state)
    path = tmp_path / "folder" / "broken.png"
    st = os.stat(path)
    path.write_bytes(b"\x89PNG" + b"\0" * (st.st_size - 4))   # same size, same mtime, not an image
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert second_look_for(state, tmp_path / "folder")(ids["face.png"], ids["broken.png"]) is None
    state.close()


def test_a_scan_groups_a_copy_below_the_bar_by_the_second_look(tmp_path, shared_data):
    """Through the scan (pipeline.finish builds the second look from its state and folder)."""
    by_name = {s.path.name: s for s in read_manifest() if s.source == "bhunakit_tpdne_128"}
    face = load_image(by_name["6d4ce46a08f5.jpg"].path).image
    copy, _ = copy_below_the_bar(face, COPIES["resize 150->400"])
    folder = tmp_path / "in"
    folder.mkdir()
    face.save(folder / "face.png")
    copy.save(folder / "copy.png")
    load_image(by_name["7218fb3adc32.jpg"].path).image.save(folder / "look-alike.png")
    rows = {r.path: r for r in facecheck.scan(folder, out=tmp_path / "out", workers=0)}
    assert rows["face.png"].cluster is not None and rows["face.png"].cluster == rows["copy.png"].cluster
    assert rows["face.png"].cluster_size == 2 and rows["look-alike.png"].cluster is None
