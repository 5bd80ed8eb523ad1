"""Find the dominant face in a photo and its two eye centres, on ONNX Runtime.

Two shipped models, both run through `facecheck.runtime.Runtime`:
- YuNet (weights/yunet.onnx, OpenCV Zoo 2023mar, MIT) finds faces: boxes, 5 coarse keypoints, scores.
  Every image is resized so its longer side is DETECTOR_SIDE px (small avatars are upscaled, which is
  what lets YuNet find a face that fills a 48 px image) and padded into one square batch.
- MediaPipe FaceMesh (weights/facemesh.onnx, Apache-2.0) places 468 landmarks in a 192x192 crop that
  is centred on the face and rotated so the eyes are level; each crop and its mirror run in one batch
  and the paired eye points are averaged (FaceMesh alone is not mirror-symmetric). `refine=True` adds
  a second pass framed from the first pass's landmarks (MediaPipe's tracking ROI): slightly more
  accurate, twice the cost (numbers in weights/facemesh.md).

Eye centres follow FFHQ's definition: the mean of each eye's 6 contour points of dlib's 68-point model.
We average the 6 FaceMesh points that sit where dlib's do, then add a small offset (in units of the
inter-ocular distance, along and across the eye line) that removes FaceMesh's remaining bias against
dlib; `training/learn_eye_template.py --calibrate` fits it and weights/facemesh.md records it.

Coordinates are continuous: pixel (i, j) covers [i, i+1) x [j, j+1), so its centre is (i+0.5, j+0.5).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import cv2
import numpy as np
from PIL import Image

from .pyramid import Pyramid, as_pyramid, as_rgb

if TYPE_CHECKING:
    from facecheck.runtime import Runtime

YUNET_FILE = "yunet.onnx"
FACEMESH_FILE = "facemesh.onnx"

DETECTOR_SIDE = 320          # YuNet input: longer side, a multiple of 32
DETECTION_THRESHOLD = 0.7    # YuNet score (geometric mean of class and objectness) for "a face"
NMS_IOU = 0.3
YUNET_STRIDES = (8, 16, 32)

MESH_SIDE = 192
MESH_ROI_SCALE = 1.5         # MediaPipe: ROI side = 1.5 x the face's longer side
MESH_PRESENCE_THRESHOLD = 0.5
YUNET_TO_MESH_SHIFT_Y = 0.05  # see frame_from_detection
YUNET_TO_MESH_SIDE = 0.9
BATCH = 8                    # images (YuNet) or crops (FaceMesh) per ONNX run: as fast per image as 32 on
                             # CPU, and half the peak memory (ORT keeps its largest activations)

# FaceMesh indices at the places of dlib's 6 eye-contour points (outer corner, two upper lid,
# inner corner, two lower lid). "Subject's right" is the eye seen on the image's left in an
# unmirrored photo; we do not rely on that and order the eyes by image position instead.
MESH_EYE_SUBJECT_RIGHT = (33, 160, 158, 133, 153, 144)
MESH_EYE_SUBJECT_LEFT = (263, 387, 385, 362, 380, 373)
MESH_ROLL_POINTS = (33, 263)  # MediaPipe's own choice for the ROI rotation
# Offset from the FaceMesh 6-point mean to dlib's, for the eye on the image's left, in units of the
# inter-ocular distance: (along the eye line towards the other eye, perpendicular downwards).
# The eye on the right is mirrored (-along, same across). Fitted by learn_eye_template.py --calibrate.
EYE_OFFSET_IOD = (0.0188, 0.0144)


@dataclass
class Face:
    box: tuple[float, float, float, float]        # x, y, w, h in original-image pixels
    confidence: float
    eyes: tuple[tuple[float, float], tuple[float, float]]  # (left-in-image, right-in-image), FFHQ-style centres, px
    cut_by_border: bool


@dataclass
class FaceFinding:
    faces_found: int            # how many faces above the detection threshold
    face: Face | None           # the dominant face, None when faces_found == 0


# --- YuNet ---------------------------------------------------------------------------------------

def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> list[int]:
    """Greedy non-maximum suppression over (x, y, w, h) boxes; indices kept, best first."""
    x1, y1 = boxes[:, 0], boxes[:, 1]
    x2, y2 = x1 + boxes[:, 2], y1 + boxes[:, 3]
    areas = boxes[:, 2] * boxes[:, 3]
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        best, rest = order[0], order[1:]
        keep.append(int(best))
        iw = np.clip(np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest]), 0, None)
        ih = np.clip(np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest]), 0, None)
        inter = iw * ih
        iou = inter / np.maximum(areas[best] + areas[rest] - inter, 1e-9)
        order = rest[iou <= iou_threshold]
    return keep


def decode_yunet(outputs: dict[str, np.ndarray], item: int, padded_hw: tuple[int, int],
                 threshold: float = DETECTION_THRESHOLD) -> np.ndarray:
    """One image's YuNet head outputs -> (n, 15) rows [x, y, w, h, 5 x (kx, ky), score], NMS applied,
    in pixels of the padded detector input.

    YuNet is anchor-free: each cell (row r, col c) of a stride-s map predicts the box centre as
    ((c, r) + offset) * s, its size as exp(log-size) * s, keypoints as ((c, r) + offset) * s, and a
    score sqrt(class * objectness)."""
    rows_out = []
    for stride in YUNET_STRIDES:
        cols = padded_hw[1] // stride
        cls = np.clip(outputs[f"cls_{stride}"][item, :, 0], 0, 1)
        obj = np.clip(outputs[f"obj_{stride}"][item, :, 0], 0, 1)
        score = np.sqrt(cls * obj)
        hit = np.flatnonzero(score >= threshold)
        if hit.size == 0:
            continue
        cell = np.stack([hit % cols, hit // cols], axis=1).astype(np.float32)   # (c, r)
        bbox = outputs[f"bbox_{stride}"][item, hit]
        kps = outputs[f"kps_{stride}"][item, hit].reshape(-1, 5, 2)
        centre = (cell + bbox[:, :2]) * stride
        size = np.exp(bbox[:, 2:4]) * stride
        points = (cell[:, None, :] + kps) * stride
        rows_out.append(np.concatenate([centre - size / 2, size, points.reshape(-1, 10), score[hit, None]], axis=1))
    if not rows_out:
        return np.zeros((0, 15), np.float32)
    found = np.concatenate(rows_out)
    return found[nms(found[:, :4], found[:, 14], NMS_IOU)]


class YuNetDetector:
    """Face boxes and coarse keypoints for a batch of images, in each image's own pixels."""

    def __init__(self, runtime: "Runtime", side: int = DETECTOR_SIDE, threshold: float = DETECTION_THRESHOLD):
        assert side % 32 == 0
        self.runtime, self.side, self.threshold = runtime, side, threshold

    def detector_input(self, image: "np.ndarray | Pyramid") -> tuple[np.ndarray, float]:
        """The image resized so its longer side is `side` (up or down), as RGB uint8, and the scale."""
        h, w = image.shape[:2]
        scale = self.side / max(h, w)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        # OpenCV bilinear (area averaging below half size, where bilinear would alias): 5-10x faster than
        # PIL's resize on 400 px avatars (benchmarks/bench_scan.py, stage "yunet").
        interpolation = cv2.INTER_AREA if scale < 0.5 else cv2.INTER_LINEAR
        return as_pyramid(image).resize(size, interpolation), scale

    def detect_resized(self, resized: Sequence[np.ndarray]) -> list[np.ndarray]:
        """YuNet on images already no larger than side x side: (n, 15) rows each, in their pixels."""
        found = []
        for start in range(0, len(resized), BATCH):
            chunk = resized[start:start + BATCH]
            # Bottom/right zero padding into one square: one batch whatever the aspect ratios.
            blob = np.zeros((len(chunk), 3, self.side, self.side), np.float32)
            for i, img in enumerate(chunk):
                h, w = img.shape[:2]
                blob[i, :, :h, :w] = img[:, :, ::-1].transpose(2, 0, 1)   # YuNet wants BGR, 0..255
            names = self.runtime.session(YUNET_FILE).get_outputs()
            outputs = dict(zip([o.name for o in names], self.runtime.run(YUNET_FILE, {"input": blob})))
            found += [decode_yunet(outputs, i, (self.side, self.side), self.threshold) for i in range(len(chunk))]
        return found

    def detect(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        prepared = [self.detector_input(img) for img in images]
        found = self.detect_resized([p[0] for p in prepared])
        for rows, (_, scale) in zip(found, prepared):
            rows[:, :14] /= scale
        return found


# --- FaceMesh ------------------------------------------------------------------------------------

@dataclass
class CropFrame:
    """A square, rotated region of an image: centre (px), side (px), angle (radians, image y down)."""
    cx: float
    cy: float
    side: float
    angle: float

    def matrix(self, out_side: int) -> np.ndarray:
        """2x3 affine map from crop pixels (continuous, 0..out_side) to image pixels."""
        s = self.side / out_side
        c, n = np.cos(self.angle) * s, np.sin(self.angle) * s
        half = out_side / 2
        return np.array([[c, -n, self.cx - c * half + n * half],
                         [n, c, self.cy - n * half - c * half]])

    def to_image(self, points: np.ndarray, out_side: int) -> np.ndarray:
        m = self.matrix(out_side)
        return points @ m[:, :2].T + m[:, 2]

    def crop(self, image: np.ndarray, out_side: int) -> np.ndarray:
        """Bilinear crop; outside the image is black, as in MediaPipe's ImageToTensor."""
        m = self.matrix(out_side)
        # Shrink big faces first: a bilinear warp does not antialias.
        shrink = int(self.side / out_side / 2)
        if shrink >= 2:
            image = np.asarray(Image.fromarray(image).reduce(shrink))
            m = m / shrink
            # reduce() maps continuous coordinates by 1/shrink exactly (box filter over blocks).
        # OpenCV samples at pixel indices (pixel i's centre at i), our matrix maps continuous coordinates
        # (centre at i + 0.5): index map = continuous map applied to (out + 0.5), minus 0.5. Same pixels as
        # PIL's affine transform (within 1 grey level), 3x faster.
        m = m.copy()
        m[:, 2] += m[:, :2].sum(axis=1) * 0.5 - 0.5
        return cv2.warpAffine(np.ascontiguousarray(image), m, (out_side, out_side),
                              flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))


def level_frame(points_left: np.ndarray, points_right: np.ndarray, box_centre, box_side: float) -> CropFrame:
    """A frame centred on a box, scaled MESH_ROI_SCALE, rotated so that the eye line is level."""
    dx, dy = np.asarray(points_right, float) - np.asarray(points_left, float)
    return CropFrame(float(box_centre[0]), float(box_centre[1]), MESH_ROI_SCALE * box_side, float(np.arctan2(dy, dx)))


def frame_from_detection(row: np.ndarray) -> CropFrame:
    """A YuNet box, moved and scaled to where FaceMesh's own landmark box would be (medians measured
    on 200 dataset faces: centre 0.05 h lower, longer side 0.9 x the YuNet box's)."""
    x, y, w, h = row[:4]
    eyes = sorted([row[4:6], row[6:8]], key=lambda p: p[0])
    return level_frame(eyes[0], eyes[1], (x + w / 2, y + h / 2 + YUNET_TO_MESH_SHIFT_Y * h),
                       YUNET_TO_MESH_SIDE * max(w, h))


def frame_from_landmarks(landmarks: np.ndarray) -> CropFrame:
    """MediaPipe's tracking ROI: the landmarks' axis-aligned box, squared on its longer side."""
    lo, hi = landmarks.min(axis=0), landmarks.max(axis=0)
    a, b = landmarks[MESH_ROLL_POINTS[0]], landmarks[MESH_ROLL_POINTS[1]]
    left, right = (a, b) if a[0] <= b[0] else (b, a)
    return level_frame(left, right, (lo + hi) / 2, float((hi - lo).max()))


@dataclass
class MeshLandmarks:
    """FaceMesh's 468 points for one face, in image pixels, from the crop and from its mirror image.

    FaceMesh is not mirror-symmetric: on a crop and its flip, paired eye points disagree by ~1 px of
    the 192 px crop (~2% of the inter-ocular distance). Averaging both runs removes that bias and
    makes the eye centres of a mirrored photo the mirror of the original's. In `from_mirror`, index j
    still means landmark j of the face the model saw, which is the subject's other side."""
    points: np.ndarray
    from_mirror: np.ndarray
    presence: float


class FaceMeshLandmarker:
    """FaceMesh landmarks for given crop frames, run on each crop and its mirror in one batch."""

    def __init__(self, runtime: "Runtime"):
        self.runtime = runtime

    def landmarks(self, images: Sequence[np.ndarray], frames: Sequence[CropFrame]) -> list[MeshLandmarks]:
        if not frames:
            return []
        crops = np.stack([f.crop(img, MESH_SIDE) for img, f in zip(images, frames)])
        crops = np.concatenate([crops, crops[:, :, ::-1]])
        points, presence = [], []
        for start in range(0, len(crops), BATCH):
            blob = crops[start:start + BATCH].transpose(0, 3, 1, 2).astype(np.float32) / 255.0
            real = len(blob)
            if self.runtime.pads_batches and real < BATCH:
                blob = np.concatenate([blob, np.zeros((BATCH - real, *blob.shape[1:]), blob.dtype)])
            raw, logit = self.runtime.run(FACEMESH_FILE, {"image": blob})
            # FaceMesh answers in pixel-index coordinates (pixel i's centre at i): shift to continuous.
            # Measured: on a crop and its mirror, midline landmarks agree only after this +0.5.
            points.append(raw[:real].reshape(real, 468, 3)[:, :, :2] + 0.5)
            presence.append(1 / (1 + np.exp(-logit[:real].reshape(-1))))
        points, presence = np.concatenate(points), np.concatenate(presence)
        n = len(frames)
        flipped = points[n:].copy()
        flipped[:, :, 0] = MESH_SIDE - flipped[:, :, 0]
        return [MeshLandmarks(f.to_image(points[i], MESH_SIDE), f.to_image(flipped[i], MESH_SIDE),
                              float((presence[i] + presence[n + i]) / 2)) for i, f in enumerate(frames)]


def eye_centres(mesh: MeshLandmarks, offset_iod=EYE_OFFSET_IOD) -> tuple[np.ndarray, np.ndarray]:
    """FFHQ-style eye centres (left-in-image, right-in-image) from FaceMesh on a crop and its mirror."""
    right_idx, left_idx = list(MESH_EYE_SUBJECT_RIGHT), list(MESH_EYE_SUBJECT_LEFT)
    a = (mesh.points[right_idx].mean(axis=0) + mesh.from_mirror[left_idx].mean(axis=0)) / 2
    b = (mesh.points[left_idx].mean(axis=0) + mesh.from_mirror[right_idx].mean(axis=0)) / 2
    left, right = (a, b) if a[0] <= b[0] else (b, a)
    along = right - left
    iod = float(np.hypot(*along))
    if iod == 0:
        return left, right
    along = along / iod
    down = np.array([-along[1], along[0]])   # perpendicular, pointing down the face in image coordinates
    shift_along, shift_down = offset_iod[0] * iod, offset_iod[1] * iod
    return left + shift_along * along + shift_down * down, right - shift_along * along + shift_down * down


def is_cut_by_border(landmarks: np.ndarray, width: int, height: int, tolerance: float = 0.02) -> bool:
    """True when part of the face outline lies outside the image (by more than `tolerance` of its size)."""
    lo, hi = landmarks.min(axis=0), landmarks.max(axis=0)
    margin = tolerance * float((hi - lo).max())
    return bool(lo[0] < -margin or lo[1] < -margin or hi[0] > width + margin or hi[1] > height + margin)


def dominant(rows: np.ndarray) -> int:
    """The face that a profile photo is about: the largest box (ties to the higher score)."""
    return int(np.lexsort((-rows[:, 14], -(rows[:, 2] * rows[:, 3])))[0])


def coarse_finding(rows: np.ndarray) -> FaceFinding:
    """The dominant face as YuNet alone places it: its box, and its two eye keypoints as the eyes (the
    pupils at the detector's 320 px, not FFHQ's eye-contour centres: off the template by more than
    FaceMesh's eyes would be). What the cascade reports for a file it stopped before FaceMesh."""
    if not len(rows):
        return FaceFinding(0, None)
    row = rows[dominant(rows)]
    left, right = sorted([row[4:6], row[6:8]], key=lambda p: p[0])
    return FaceFinding(len(rows), Face(box=tuple(float(v) for v in row[:4]), confidence=float(row[14]),
                                       eyes=((float(left[0]), float(left[1])), (float(right[0]), float(right[1]))),
                                       cut_by_border=False))


class FaceLocator:
    """Dominant face and its FFHQ-style eye centres, for a batch of RGB images: `detect` (YuNet) then
    `locate` (FaceMesh on what it found), or both at once."""

    def __init__(self, runtime: "Runtime", refine: bool = False):
        self.detector = YuNetDetector(runtime)
        self.mesh = FaceMeshLandmarker(runtime)
        self.refine = refine

    def detect(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """YuNet's faces in each image: (n, 15) rows [x, y, w, h, 5 x (kx, ky), score] in image pixels."""
        return self.detector.detect([as_pyramid(img) for img in images])

    def locate_with_landmarks(self, images: Sequence[np.ndarray], detections: list[np.ndarray] | None = None
                              ) -> list[tuple[FaceFinding, MeshLandmarks | None]]:
        """As `locate`, plus the FaceMesh landmarks of the dominant face (for measurement scripts)."""
        images = [img.image if isinstance(img, Pyramid) else as_rgb(img) for img in images]
        if detections is None:
            detections = self.detector.detect(images)
        picked = [(i, rows[dominant(rows)]) for i, rows in enumerate(detections) if len(rows)]
        todo = [images[i] for i, _ in picked]
        meshes = self.mesh.landmarks(todo, [frame_from_detection(row) for _, row in picked])
        if self.refine:
            meshes = self.mesh.landmarks(todo, [frame_from_landmarks(m.points) for m in meshes])
        results: list[tuple[FaceFinding, MeshLandmarks | None]] = [(FaceFinding(0, None), None) for _ in images]
        for (i, row), mesh in zip(picked, meshes):
            if mesh.presence < MESH_PRESENCE_THRESHOLD:
                # YuNet fired but FaceMesh sees no face in its crop: a false detection (seen on
                # textures and drawings). Report no face rather than eyes we cannot trust.
                continue
            h, w = images[i].shape[:2]
            left, right = eye_centres(mesh)
            face = Face(box=tuple(float(v) for v in row[:4]), confidence=float(row[14]),
                        eyes=((float(left[0]), float(left[1])), (float(right[0]), float(right[1]))),
                        cut_by_border=is_cut_by_border(mesh.points, w, h))
            results[i] = (FaceFinding(len(detections[i]), face), mesh)
        return results

    def locate(self, images: Sequence[np.ndarray], detections: list[np.ndarray] | None = None) -> list[FaceFinding]:
        """The dominant face of each image with FaceMesh's eyes; `detections`: this images' `detect`, when
        already run."""
        return [finding for finding, _ in self.locate_with_landmarks(images, detections)]
