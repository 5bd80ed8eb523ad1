"""Prepare one file: decode it safely, hash it, and keep what judging it needs (its evidence)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..hashing import Signature, plain_border, signatures
from ..hashlists import pdq_probes
from ..loading import LoadError, load_image
from ..pdq import luminance, pdq_of_luminance
from ..result import Result
from ..settings import Settings
from .walk import NotRead

MODEL_MIN_SIDE = 1024   # JPEGs larger than twice this are decoded at reduced size
# Raised whenever what a kept file's signals would be changes without a model or setting changing, so
# that a rerun computes them again (it is part of run.signals_key). 2: the PDQ probes read the plain
# frame found on Pillow's grey image, as dct256 does, instead of finding it again on OpenCV's.
SIGNALS_REVISION = 2


@dataclass
class Prepared:
    """What a worker hands back for one file: its Result (scored already when `analyzed`), what the
    state keeps for matching, and the decoded image when the models still have to run."""
    result: Result
    size: int | None = None
    mtime_ns: int | None = None
    signature: Signature | None = None
    image: np.ndarray | None = None      # RGB for the models
    analyzed: bool = False               # the models already ran (in the worker; see _prepared_stream)
    # what judging the file needs besides its scores, kept in the scan state so that a rerun can judge
    # it again without decoding it: PDQ probes for hash lists ("pdq_probes"), then face geometry
    # (see verdict.judge); None for files that were not decoded
    evidence: dict | None = None


def prepare(source, rel_path: str, settings: Settings) -> Prepared:
    """Load and hash one image; never raises: a bad file becomes a Result with `error` set."""
    size = mtime_ns = None
    if isinstance(source, NotRead):
        return Prepared(Result(path=rel_path, error=source.reason))
    if isinstance(source, (str, Path)):
        try:
            st = os.stat(source)
            size, mtime_ns = st.st_size, st.st_mtime_ns
        except OSError:
            pass
    result = Result(path=rel_path)
    try:
        loaded = load_image(source, max_pixels=settings.max_pixels, max_bytes=settings.max_bytes,
                            min_side=MODEL_MIN_SIDE)
        result.sha256, result.width, result.height = loaded.sha256, loaded.width, loaded.height
        result.warnings.extend(loaded.warnings)
        # Each view of the pixels is made once and handed to every hash that reads it: the grey
        # image and its plain frame (dct256 and the PDQ probes), the PDQ luminance (the shared PDQ
        # and its probes, when the image was decoded at full size).
        grey = loaded.image.convert("L")
        border = plain_border(np.asarray(grey))
        signature = signatures([grey], borders=[border])[0]
        result.phash, result.dct256 = str(signature.phash), str(signature.dct256)
        rgb = loaded.rgb()
        luma = luminance(rgb)
        full = luma if loaded.reduced_from is None else luminance(loaded.full_rgb())
        shared = pdq_of_luminance(full)   # at full size, as other PDQ tools hash the file
        result.pdq, result.pdq_quality = str(shared.hash), shared.quality
        # computed with or without hash lists (~1 ms), so that a rerun with lists needs no decoding
        evidence = {"pdq_probes": [str(h) for h in pdq_probes(luma, shared.hash, border)]}
        return Prepared(result, size, mtime_ns, signature, rgb, evidence=evidence)
    except LoadError as e:
        result.error, result.sha256 = str(e), e.sha256
    except Exception as e:  # a decoder bug must not end a million-file scan
        result.error = f"unexpected {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}".strip()
    return Prepared(result, size, mtime_ns)
