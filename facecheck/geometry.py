"""How closely a face sits where StyleGAN puts every face: the FFHQ eye template.

StyleGAN (1/2/3, trained on FFHQ) draws faces in FFHQ alignment, so both eye centres land at almost
fixed fractions of the image. Real profile photos put eyes anywhere. `EyeTemplate` holds where the
eyes fall on StyleGAN images (learned by training/learn_eye_template.py, weights/eye_template.json)
and how much they scatter there once images are downscaled, recompressed and re-located.

Positions are fractions of the image's own width (x) and height (y), so the template applies at any
resolution; on a non-square image it is stretched with the image, which is what a platform resize
does. A crop of a StyleGAN image moves the eyes off the template, as it should.

Features (all floats, fractions of the image width unless said otherwise):
- template_distance: mean over both eyes of the distance from the eye to its template position.
- eye_mid_dx, eye_mid_dy: eye midpoint minus the template's (x / width, y / height).
- iod: inter-ocular distance / width; scale_error: log(iod / template iod).
- roll_deg: angle of the eye line, degrees, clockwise positive (image y points down).
- box_x, box_y, box_w, box_h: face box, x and w over width, y and h over height.
- aspect: height / width; cut_by_border: 1.0 when the face runs off the image; confidence.
- template_z2: the squared, spread-normalised distance that `eye_score` turns into a score.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

from facecheck.faces import Face
from facecheck.runtime import weights_path

TEMPLATE_FILE = "eye_template.json"


@dataclass
class EyeTemplate:
    left_eye: tuple[float, float]    # (x / width, y / height) of the eye on the image's left
    right_eye: tuple[float, float]
    iod: float                       # inter-ocular distance / width
    roll_deg: float
    # Spreads on degraded StyleGAN images (robust standard deviations), the units of `eye_score`:
    distance_spread: float           # of template_distance, fraction of width
    scale_spread: float              # of scale_error (log ratio)
    roll_spread_deg: float
    samples: int = 0
    notes: str = ""

    @classmethod
    def load(cls, path: str | Path | None = None) -> "EyeTemplate":
        path = Path(path) if path is not None else weights_path(TEMPLATE_FILE)
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        fields = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        fields["left_eye"], fields["right_eye"] = tuple(fields["left_eye"]), tuple(fields["right_eye"])
        return cls(**fields)

    def save(self, path: str | Path, extra: dict | None = None) -> None:
        data = asdict(self) | (extra or {})
        Path(path).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def geometry_features(face: Face, width: int, height: int, template: EyeTemplate) -> dict[str, float]:
    """Named features of one located face against the template (see the module docstring)."""
    (lx, ly), (rx, ry) = face.eyes
    w, h = float(width), float(height)
    # Template eye positions in this image's pixels, then distances in fractions of the width.
    tlx, tly = template.left_eye[0] * w, template.left_eye[1] * h
    trx, try_ = template.right_eye[0] * w, template.right_eye[1] * h
    distance = (math.hypot(lx - tlx, ly - tly) + math.hypot(rx - trx, ry - try_)) / 2 / w
    iod = math.hypot(rx - lx, ry - ly) / w
    scale_error = math.log(max(iod, 1e-6) / template.iod)
    roll = math.degrees(math.atan2(ry - ly, rx - lx))
    bx, by, bw, bh = face.box
    features = {
        "template_distance": distance,
        "eye_mid_dx": ((lx + rx) / 2 - (tlx + trx) / 2) / w,
        "eye_mid_dy": ((ly + ry) / 2 - (tly + try_) / 2) / h,
        "iod": iod,
        "scale_error": scale_error,
        "roll_deg": roll,
        "box_x": bx / w, "box_y": by / h, "box_w": bw / w, "box_h": bh / h,
        "aspect": h / w,
        "cut_by_border": float(face.cut_by_border),
        "confidence": float(face.confidence),
    }
    features["template_z2"] = template_z2(features, template)
    return features


def template_z2(features: dict[str, float], template: EyeTemplate) -> float:
    """Sum of squared, spread-normalised deviations: position, scale and roll."""
    return ((features["template_distance"] / template.distance_spread) ** 2
            + (features["scale_error"] / template.scale_spread) ** 2
            + ((features["roll_deg"] - template.roll_deg) / template.roll_spread_deg) ** 2)


def eye_score(features: dict[str, float], template: EyeTemplate) -> float:
    """exp(-z2 / 6), z2 = (d / s_d)^2 + (log(iod / iod_t) / s_s)^2 + ((roll - roll_t) / s_r)^2.

    Each spread s is the scatter of that term on degraded StyleGAN images, so a typical StyleGAN face
    has z2 near 3 and scores about exp(-0.5) = 0.6; a face exactly on the template scores 1; a natural
    photo with its eyes 10% of the width away scores ~0. Monotone in every deviation, in [0, 1]."""
    z2 = features.get("template_z2")
    if z2 is None:
        z2 = template_z2(features, template)
    return float(math.exp(-z2 / 6.0))
