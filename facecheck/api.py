"""The public Python API: scan() a folder or a list of files, score_image() one image. Thin layers over
the scan path (facecheck.pipeline), as the CLI is."""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from . import duplicates
from .known import KnownAvatars, check_index
from .loading import LoadError, check_loadable, read_stream
from .pipeline.analyze import loaded_analyzer
from .pipeline.checks import check_index_takes, check_output_dir, check_settings
from .pipeline.prepare import prepare
from .pipeline.run import run_scan
from .pipeline.summary import ScanSummary
from .pipeline.walk import check_folder, display_name, walk
from .result import Result
from .settings import Settings
from .verdict import reuse_reason
from .writers import read_results


def scan(target, out: str | Path | None = None, settings: Settings | None = None,
         progress: Callable[[int, int], None] | None = None, **options) -> Iterator[Result]:
    """Scan a folder (recursively) or a list of image paths now, and return an iterator over the
    results: one Result per file, in path order, read from results.jsonl as you iterate (so a
    million files never sit in memory at once). The scan is done when scan() returns, whether or
    not the iterator is used.

    With `out`, the state and results files are kept there (and a rerun resumes); without it they
    live in a temporary folder, removed once the iterator is exhausted or dropped.
    Bad arguments raise at the call, before any work: FileNotFoundError (no such folder),
    NotADirectoryError (a file given as the folder), ValueError (bad settings, or an `out` that is
    inside the folder or cannot be written)."""
    settings = settings or Settings(**options)
    check_settings(settings)
    if isinstance(target, (str, Path)):
        folder = Path(target)
        check_folder(folder)
        sources = walk(folder, follow_links=settings.follow_links, exclude=Path(out) if out is not None else None)
    else:
        folder = None
        sources = [(Path(p), display_name(str(p))) for p in target]
    if out is None:
        tmp = tempfile.TemporaryDirectory(prefix="facecheck-")
        try:
            _warn_of_index_error(run_scan(sources, Path(tmp.name), settings, progress, folder))
        except BaseException:
            tmp.cleanup()
            raise
        return _read_then_remove(tmp)
    out = Path(out)
    check_index_takes(settings, out, folder)   # IndexUnusable before --out is made
    check_output_dir(folder, out)
    _warn_of_index_error(run_scan(sources, out, settings, progress, folder))
    return read_results(out)


def _warn_of_index_error(summary: ScanSummary) -> None:
    if summary.index_error:   # the results are complete; the index is not (RuntimeWarning, as CLI exit 1)
        import warnings
        warnings.warn(summary.index_error, RuntimeWarning, stacklevel=3)


def _read_then_remove(tmp: tempfile.TemporaryDirectory) -> Iterator[Result]:
    """The results in a temporary folder, which is removed once they are read (or, if the iterator
    is dropped unread, when TemporaryDirectory's finalizer runs)."""
    try:
        yield from read_results(Path(tmp.name))
    finally:
        tmp.cleanup()


def score_image(source, settings: Settings | None = None, **options) -> Result:
    """Score one image: a path, bytes, a binary file object (BytesIO, an open file), a PIL image or a
    numpy array (see loading.array_to_rgb for the dtypes). With `index`, look it up among the known
    avatars (read-only: a missing index file means "not in the index").

    The models load on the first call and stay loaded for the process (one set per device and model
    files, see loaded_analyzer), so later calls cost the analysis alone; calls from several threads
    may run at once. Bad settings raise ValueError and a source of the wrong type TypeError, at the
    call; a bad image gives a Result with `error` set."""
    settings = settings or Settings(**options)
    check_loadable(source)
    if settings.index:
        check_index(settings.index)
    if not isinstance(source, (str, Path, bytes, bytearray, memoryview, np.ndarray)) and hasattr(source, "read"):
        try:
            source = read_stream(source, settings.max_bytes)   # a TypeError (a text stream) is the caller's
        except LoadError as e:
            return Result(path="<image>", error=str(e), verdict="error")
    rel = str(source) if isinstance(source, (str, Path)) else "<image>"
    prepared = prepare(Path(source) if isinstance(source, str) else source, rel, settings)
    loaded_analyzer(settings).analyze([prepared])
    result = prepared.result
    if settings.index and prepared.signature is not None:
        result.seen_before = False
        if not Path(settings.index).exists():
            return result
        known = KnownAvatars(settings.index, read_only=True)
        try:
            if len(known):
                s = prepared.signature
                matches = duplicates.find_matches(s.probes[None], s.thumbnail[None], known.index(),
                                                  query_ids=np.array([-1]), thumbnail_of=known.thumbnail,
                                                  skip_self=False)
                ids = {m.b for m in matches} | set(known.by_sha256(result.sha256))
                result.seen_before = bool(ids)
                result.seen_in = known.where(ids)[:10] or None
                result.reasons.extend(reuse_reason(None, result.seen_in))
        finally:
            known.close()
    return result
