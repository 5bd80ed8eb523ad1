"""The Analyzer: the models on batches of decoded images (faces and eyes, pixel detectors, fusion) and
the judgement of each file (hash lists, verdict and reasons at the mode). Every ONNX model is reached
from here, through one Runtime."""
from __future__ import annotations

import functools
import os
import threading
from dataclasses import dataclass

import numpy as np

from ..hashlists import load_lists
from ..result import Result
from ..settings import Settings
from .prepare import Prepared


@dataclass
class Signals:
    """What the models say about one decoded image."""
    faces_found: int
    face: object | None                   # facecheck.faces.Face of the scored (largest) face
    geometry: dict | None                 # facecheck.geometry.geometry_features of that face
    eye_score: float | None
    spectral_score: float | None          # None when not computed (the shipped fusion does not use it)
    backbone_score: float | None = None   # likewise
    gan_score: float | None = None        # None when fusion was not asked for
    colourless: bool = False              # facecheck.colour.is_colourless (black and white)
    depth: str = "full"                   # facecheck.cascade: "cheap" (no FaceMesh, no spectral), "eyes" (no spectral)


class Analyzer:
    """Per-image GAN signals and the verdict, on batches of decoded images. Every ONNX model is
    reached from here, through one Runtime (one session per model, one provider choice)."""

    def __init__(self, settings: Settings, intra_op_threads: int | None = None):
        """intra_op_threads: ONNX threads per run; None uses every core (one image, or no decoding
        processes beside it); scan workers, which share the cores, pass 1."""
        from ..cascade import DEPTHS
        from ..verdict import MODES
        if settings.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, not {settings.mode!r}")
        if settings.depth not in DEPTHS:
            raise ValueError(f"depth must be one of {', '.join(DEPTHS)}, not {settings.depth!r}")
        self.settings = settings
        self.intra_op_threads = intra_op_threads
        self._models = None

    def models(self):
        """(face locator, eye template, spectral detector, fusion model, backbone detector), loaded on
        first use (the spectral detector and the fusion model are factories, loaded when first called)."""
        if self._models is None:
            from ..backbone import BackboneDetector
            from ..faces import FaceLocator
            from ..geometry import EyeTemplate
            from ..runtime import Runtime
            from ..spectrum import SpectralDetector
            from ..verdict import FusionModel
            runtime = Runtime(self.settings.device, self.intra_op_threads)
            self.runtime = runtime
            # the spectral detector loads only when asked for: a fusion that does not use it never runs it
            self._models = (FaceLocator(runtime), EyeTemplate.load(),
                            functools.cache(lambda: SpectralDetector(runtime)),
                            functools.cache(lambda: FusionModel(runtime)), BackboneDetector(runtime))
        return self._models

    def signals(self, images: list[np.ndarray], fuse: bool = True, geometry_of: list | None = None,
                detectors: set[str] | frozenset[str] | None = None) -> list[Signals]:
        """Face, eye geometry, the pixel detectors' scores and (with `fuse`) gan_score for each RGB image.
        `detectors`: which pixel detectors to run ("spectral", "backbone"); by default those the fusion
        uses when fusing, every one otherwise. With fusion at settings.depth "cascade", FaceMesh and the
        spectral detector run only where they could change the verdict (facecheck.cascade). `geometry_of`
        (evaluation only): objects with faces_found, geometry and eye_score from an earlier run on the
        same images, in place of running the face locator again."""
        from ..colour import is_colourless
        from ..pyramid import Pyramid
        locator, template, spectral, fusion, backbone = self.models()
        if detectors is None:
            detectors = fusion().uses if fuse else {"spectral", "backbone"}
        cascade = fuse and self.settings.depth == "cascade"
        colourless = [is_colourless(image) for image in images]
        # one resize pyramid per image, read by every model (facecheck.pyramid)
        images = [Pyramid(image) for image in images]
        backbone_scores = (backbone.score(images, colourless).tolist() if "backbone" in detectors
                           else [None] * len(images))
        if geometry_of is not None:
            out = [Signals(g.faces_found, None, g.geometry, g.eye_score, None, b)
                   for g, b in zip(geometry_of, backbone_scores)]
        else:
            out = self._faces(images, backbone_scores, colourless, fusion() if cascade else None)
        for x, flag in zip(out, colourless):
            x.colourless = flag
        if "spectral" in detectors and out:
            past_eyes = [i for i, x in enumerate(out) if x.depth != "cheap"]
            todo = self._spectral_needed(out, past_eyes, fusion(), template) if cascade else past_eyes
            for i, s in zip(todo, spectral().score([images[i] for i in todo]).tolist() if todo else []):
                out[i].spectral_score = s
            for i in set(past_eyes) - set(todo):
                out[i].depth = "eyes"
        if fuse and out:
            for x, g in zip(out, self._fuse(out, fusion(), template).tolist()):
                x.gan_score = float(g)
        return out

    def _faces(self, images, backbone_scores, colourless, gate) -> list[Signals]:
        """YuNet on every image, then FaceMesh on the faces it found; with `gate` (the FusionModel, at
        depth "cascade") only on those whose verdict the face models could change or whose eyes YuNet puts
        near the template, the others keeping YuNet's keypoints as their eyes (depth "cheap")."""
        from ..cascade import face_models_can_matter, near_template
        from ..faces import coarse_finding
        from ..geometry import eye_score, geometry_features
        locator, template = self.models()[:2]
        detections = locator.detect(images)
        coarse = [coarse_finding(rows) for rows in detections]
        coarse_geometry = [None if c.face is None else geometry_features(c.face, im.shape[1], im.shape[0], template)
                           for c, im in zip(coarse, images)]
        todo = [i for i, g in enumerate(coarse_geometry) if g is not None and (
                gate is None or near_template(g["template_z2"])
                or face_models_can_matter(gate, backbone_scores[i], colourless[i], g["box_w"], g["box_h"]))]
        located = dict(zip(todo, locator.locate([images[i] for i in todo], [detections[i] for i in todo])))
        out = []
        for i, (image, b) in enumerate(zip(images, backbone_scores)):
            finding, geometry = (located[i], None) if i in located else (coarse[i], coarse_geometry[i])
            if finding.face is not None and geometry is None:
                h, w = image.shape[:2]
                geometry = geometry_features(finding.face, w, h, template)
            score = None if geometry is None else eye_score(geometry, template)
            out.append(Signals(finding.faces_found, finding.face, geometry, score, None, b,
                               depth="cheap" if i not in located and finding.face is not None else "full"))
        return out

    @staticmethod
    def _fuse(signals: list[Signals], model, template) -> np.ndarray:
        """gan_score of each; a detector the fusion does not use, or that was not run, enters as None
        (feature 0)."""
        from ..verdict import fusion_features
        return model.score(np.stack([fusion_features(x.spectral_score if "spectral" in model.uses else None,
                                                     x.backbone_score if "backbone" in model.uses else None,
                                                     x.geometry, template, x.colourless) for x in signals]))

    def _spectral_needed(self, signals: list[Signals], todo: list[int], model, template) -> list[int]:
        """Those of `todo` whose verdict the spectral detector could still change (facecheck.cascade)."""
        from ..cascade import spectral_can_matter
        if "spectral" not in model.uses or not todo:
            return []
        without = self._fuse([signals[i] for i in todo], model, template).tolist()   # spectral_score is None yet
        return [i for i, score in zip(todo, without) if spectral_can_matter(model, score, signals[i].colourless)]

    def analyze(self, batch: list[Prepared]) -> None:
        """Fill faces, eyes and scores of each Result in the batch and its evidence, then judge it
        (judge_file: hash lists, verdict and reasons)."""
        from ..verdict import ON_TEMPLATE_Z2
        batch = [item for item in batch if not item.analyzed]
        for item in batch:
            if item.result.error is not None:
                item.result.verdict = "error"
        live = [item for item in batch if item.image is not None]
        if not live:
            return
        fusion = self.models()[3]()
        for item, sig in zip(live, self.signals([item.image for item in live])):
            result = item.result
            result.faces = sig.faces_found
            if sig.spectral_score is not None:
                result.spectral_score = round(sig.spectral_score, 4)
            if sig.backbone_score is not None:
                result.backbone_score = round(sig.backbone_score, 4)
            result.gan_score = round(sig.gan_score, 4)
            result.depth = sig.depth
            evidence = item.evidence
            evidence.update(template_z2=None, template_distance=None, cut_by_border=False)
            if sig.face is not None:
                h, w = item.image.shape[:2]
                to_full = result.width / w   # the loader may have decoded a large JPEG at reduced size
                result.eyes = [[round(x * to_full, 1), round(y * to_full, 1)] for x, y in sig.face.eyes]
                result.eye_score = round(sig.eye_score, 4)
                result.on_template = bool(sig.geometry["template_z2"] <= ON_TEMPLATE_Z2)
                # plain floats: the evidence is stored as JSON and must judge the same when read back
                evidence.update(template_z2=float(sig.geometry["template_z2"]),
                                template_distance=float(sig.geometry["template_distance"]),
                                cut_by_border=bool(sig.face.cut_by_border))
            judge_file(result, evidence, fusion, self.settings)


def judge_file(result: Result, evidence: dict, fusion, settings: Settings) -> None:
    """The cheap part of a file's analysis, which depends on the settings: matching the hash lists
    (settings.known_hashes) and the verdict and reasons at settings.mode (verdict.judge). A fresh
    file and a file kept from an earlier run (run_scan) both go through here, so a rerun with other
    settings gives the rows a fresh scan with them gives."""
    from ..verdict import judge
    match_known_hashes(result, evidence, settings.known_hashes)
    judge(result, evidence, fusion, settings.mode)


def match_known_hashes(result: Result, evidence: dict, known_hashes) -> None:
    """result.known_matches: the entries of the hash lists (None without lists) that the file's PDQ
    probes (kept in its evidence), pHash or sha256 match."""
    from ..hashing import Hash
    result.known_matches = None
    if known_hashes:
        probes = [Hash.from_hex(h) for h in evidence["pdq_probes"]]
        matches = load_lists(known_hashes).match(probes, Hash.from_hex(result.phash), result.sha256)
        result.known_matches = [m.to_dict() for m in matches]


# One loaded set of models per process and model settings, for score_image: loading them costs far
# more than scoring one avatar. Keyed by what changes which model files run and where; the process id
# is in the key because ONNX Runtime sessions must not be used across a fork.
_loaded_models: dict[tuple, "Analyzer"] = {}
_loaded_models_lock = threading.Lock()


def model_settings_key(settings: Settings) -> tuple:
    """What decides which models an Analyzer loads: the device, the float32 switch, the weights folder."""
    from ..runtime import weights_dir
    return (os.getpid(), settings.device, bool(os.environ.get("FACECHECK_FLOAT32")), str(weights_dir()))


def loaded_analyzer(settings: Settings) -> Analyzer:
    """An Analyzer for `settings` that shares this process's loaded models (loading them on first use).

    Thread-safe: the models are loaded once under a lock, with every ONNX session created up front (no
    lazy loader is left to race), and afterwards only read; ONNX Runtime's run is thread-safe. The
    Analyzer itself is new on each call, so its settings (the mode) are never shared between calls."""
    key = model_settings_key(settings)
    with _loaded_models_lock:
        loaded = _loaded_models.get(key)
        if loaded is None:
            loaded = Analyzer(Settings(device=settings.device))
            _create_every_session(loaded)
            _loaded_models[key] = loaded
    analyzer = Analyzer(settings)
    analyzer._models, analyzer.runtime = loaded.models(), loaded.runtime
    return analyzer


def _create_every_session(analyzer: Analyzer) -> None:
    """Load every model an analysis may run, now: the face models' sessions are otherwise made on the
    first image with a face, and the spectral detector and fusion model on first use."""
    from ..faces import FACEMESH_FILE, YUNET_FILE
    _, _, spectral, fusion, _ = analyzer.models()
    if "spectral" in fusion().uses:
        spectral()
    for filename in (YUNET_FILE, FACEMESH_FILE):
        analyzer.runtime.session(filename)
