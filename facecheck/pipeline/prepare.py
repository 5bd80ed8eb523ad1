"""Prepare one file: decode it safely, hash it, and keep what judging it needs (its evidence)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..hashing import Signature, signatures
from ..hashlists import pdq_probes
from ..loading import LoadError, load_image
from ..pdq import pdq
from ..result import Result
from ..settings import Settings
from .walk import NotRead

MODEL_MIN_SIDE = 1024   # JPEGs larger than twice this are decoded at reduced size


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
        signature = signatures([loaded.image])[0]
        result.phash, result.dct256 = str(signature.phash), str(signature.dct256)
        rgb = loaded.rgb()
        shared = pdq(loaded.full_rgb())   # at full size, as other PDQ tools hash the file
        result.pdq, result.pdq_quality = str(shared.hash), shared.quality
        # computed with or without hash lists (~1 ms), so that a rerun with lists needs no decoding
        evidence = {"pdq_probes": [str(h) for h in pdq_probes(rgb, shared.hash)]}
        return Prepared(result, size, mtime_ns, signature, rgb, evidence=evidence)
    except LoadError as e:
        result.error, result.sha256 = str(e), e.sha256
    except Exception as e:  # a decoder bug must not end a million-file scan
        result.error = f"unexpected {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}".strip()
    return Prepared(result, size, mtime_ns)
