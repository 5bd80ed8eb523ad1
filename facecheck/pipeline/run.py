"""run_scan: one scan from the folder's entries to the results and the report.

Files go to the scheduler, come back analysed in batches and are committed to DIR/state.sqlite batch by
batch (an interrupted scan resumes); a file unchanged since an earlier run keeps its signals and is only
judged again at this run's settings. Once every file is in, finish groups and writes the results, then
the report is written."""
from __future__ import annotations

import functools
import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Iterable

from ..loading import file_sha256
from ..report import write_report
from ..scanstate import ScanState
from ..settings import Settings
from ..writers import PartialResults, read_results
from .analyze import Analyzer, judge_file
from .batches import batches
from .checks import check_index_takes, check_settings
from .finish import finish, settings_record
from .prepare import MODEL_MIN_SIDE, SIGNALS_REVISION
from .schedulers import scheduler
from .summary import ScanSummary


def run_scan(sources: Iterable[tuple[object, str]], out_dir: Path, settings: Settings,
             progress: Callable[[int, int | None], None] | None = None, folder: Path | None = None,
             total: int | None = None, grouping_progress: Callable[[int, int], None] | None = None,
             notice: Callable[[str], None] | None = None) -> ScanSummary:
    """Scan (source, relative path) pairs into out_dir: state, results.jsonl, results.csv and
    report.html. `sources` may be a generator (it is read once, as the scan goes, so a million
    files are never listed in memory); `total`, if known, is what progress counts towards.
    `folder`, the scanned folder the relative paths start from, lets the report show thumbnails
    and names the scan in the index (default_scan_name).
    `grouping_progress` follows the grouping of reused avatars, once every file is in (see finish).
    `notice` is told when the scan waits (for another process's lock on the index).
    Raises IndexUnusable before any work when the index cannot take this scan's entries."""
    started = time.time()
    check_settings(settings)   # a bad index, list or option fails now, not after the whole scan
    scan_name = check_index_takes(settings, out_dir, folder, notice)   # writable, not locked, name free
    if total is None and hasattr(sources, "__len__"):
        total = len(sources)
    out_dir.mkdir(parents=True, exist_ok=True)
    state = ScanState(out_dir / "state.sqlite")
    summary = ScanSummary()
    key = signals_key(settings)
    fusion = functools.cache(lambda: _fusion_model(settings))   # judging a kept file needs the thresholds, not the models

    def todo():
        for source, rel in sources:
            summary.files += 1
            if isinstance(source, Path):
                try:
                    st = source.stat()
                    done = state.finished_sha256(rel, st.st_size, st.st_mtime_ns, key)
                    # Same size and mtime is not proof of the same bytes (a tool may keep both): an
                    # earlier row is kept only when the bytes still hash the same (benchmarks/bench_scan.py
                    # measures what this costs).
                    if done is not None and file_sha256(source) == done:
                        # its signals are kept; what depends on this run's settings is judged again
                        result, evidence = state.kept_row(rel)
                        judge_file(result, evidence, fusion(), settings)
                        state.keep(result)
                        summary.rejudged += 1
                        continue
                except OSError:
                    pass
            yield source, rel

    stream = scheduler(settings)(todo(), settings)
    partial = PartialResults(out_dir)
    finished = False
    try:
        analyzer = Analyzer(settings)
        if progress:
            progress(0, total)
        for batch in batches(stream, settings.batch_size):
            analyzer.analyze(batch)
            state.save(((p.result, p.size, p.mtime_ns,
                         p.signature.dct256.packed() if p.signature else None,
                         p.signature.probes.tobytes() if p.signature else None,
                         p.signature.thumbnail.tobytes() if p.signature else None, p.evidence) for p in batch), key)
            partial.add(p.result for p in batch)
            summary.scanned += len(batch)
            if progress:
                progress(summary.rejudged + summary.scanned, total)
        state.commit()
        if progress:
            progress(summary.rejudged + summary.scanned, total)
        state.drop_missing()
        summary.analysis_seconds = time.time() - started
        finish(state, out_dir, settings, summary, grouping_progress, scan_name, folder)
        summary.grouping_seconds = time.time() - started - summary.analysis_seconds
        finished = True
    finally:
        stream.close()   # on an error too: stops the decoding pool at once
        partial.close(remove=finished)   # results.jsonl replaces it once the scan is complete
        state.close()
    summary.seconds = time.time() - started
    write_report(out_dir, read_results(out_dir), folder=folder, settings=settings_record(settings, analyzer),
                 summary=asdict(summary))
    summary.report_seconds = time.time() - started - summary.seconds
    summary.seconds = time.time() - started
    return summary


def _fusion_model(settings: Settings):
    from ..runtime import Runtime
    from ..verdict import FusionModel
    return FusionModel(Runtime(settings.device))


def signals_key(settings: Settings) -> str:
    """What a file's expensive signals (decoding, hashes, face, detector scores, gan_score) depend on
    besides its bytes: the size limits, the device and model files that run (CUDA runs float32 models
    where the CPU runs int8 twins) and every shipped model's digest. A rerun keeps a file's signals only
    under the same key; mode, hash lists and index only change the judgement (judge_file, finish)."""
    from .. import __version__
    from ..runtime import QUANTIZED_ON_CPU, Runtime, model_digests
    runtime = Runtime(settings.device)
    return json.dumps({"facecheck": __version__, "max_pixels": settings.max_pixels, "max_bytes": settings.max_bytes,
                       "model_min_side": MODEL_MIN_SIDE, "signals": SIGNALS_REVISION, "device": runtime.device, "depth": settings.depth,
                       "model files run": sorted(runtime.model_file(name) for name in QUANTIZED_ON_CPU),
                       "models": model_digests()}, sort_keys=True)
