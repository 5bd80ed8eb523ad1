"""The one core behind `facecheck scan`, `facecheck check`, `facecheck.scan` and `facecheck.score_image`.

files -> loader -> per-image signals (hashes; face and eyes; spectrum) -> models -> verdict ->
writers. Worker processes decode and hash; on the CPU they also run the ONNX models on their own
files (every core does whole files), on CUDA the models run in the main process in batches. Finished
files are committed to DIR/state.sqlite batch by batch. Grouping reused avatars needs every hash, so
it runs once all files are in, streaming over the state rather than memory; then the results files
and report.html are written.
"""
from __future__ import annotations

import collections
import contextlib
import itertools
import json
import multiprocessing
import os
import signal
import sqlite3
import sys
import tempfile
import threading
import time
import types
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from . import duplicates
from .hashing import Signature, signatures
from .hashlists import load_lists, pdq_probes
from .pdq import pdq
from .grouping import Grouper
from .known import KnownAvatars, check_index, check_index_for_scan
from .report import write_report
from .loading import (DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS, LoadError, check_loadable, file_kind, file_sha256,
                      is_candidate_file, load_image, read_stream)
from .result import Result
from .scanstate import ScanState
from .verdict import flagged_copy_reason, reuse_reason
from .writers import PartialResults, write_results

MODEL_MIN_SIDE = 1024   # JPEGs larger than twice this are decoded at reduced size
IN_FLIGHT_PER_WORKER = 16   # files submitted to the workers and not yet consumed, per worker (bounds memory)
WORKER_CHUNK = 8            # files per worker task: one model batch when the models run in the workers


@dataclass
class Settings:
    device: str = "auto"                 # auto | cpu | cuda (ONNX Runtime provider)
    workers: int | None = None           # decoding processes; None: one per core; 0: in this process
    batch_size: int = 32
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_bytes: int = DEFAULT_MAX_BYTES
    index: Path | None = None            # persistent index of known avatars (SQLite), optional
    scan_name: str | None = None         # how this scan is named in the persistent index
    mode: str = "default"                # operating point of the verdict: strict | default | sensitive
    follow_links: bool = False           # read symbolic links that lead outside the scanned folder
    engine: str = "local"                # local (worker processes) | ray (Ray Data; facecheck[ray] extra)
    ray_address: str | None = None       # with engine "ray": a cluster to join; None starts a local one
    known_hashes: tuple = ()             # files of PDQ / pHash hashes to match every file against


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


@dataclass
class ScanSummary:
    files: int = 0
    scanned: int = 0                     # decoded in this run
    rejudged: int = 0                    # kept from an earlier run (unchanged) and judged again at this run's settings
    errors: int = 0
    gan: int = 0
    groups: int = 0
    grouped_files: int = 0
    seen_before: int = 0
    index_error: str | None = None       # the --index failed after the scan's checks: it was not updated
    seconds: float = 0.0
    # where the time went: decoding and analysing every file, then what runs once the last file is in
    analysis_seconds: float = 0.0        # from the start until the last file's signals are saved
    grouping_seconds: float = 0.0        # reuse groups, the known index, results.jsonl/csv (finish)
    report_seconds: float = 0.0          # report.html


@dataclass(frozen=True)
class NotRead:
    """A folder entry that gets a row but is not read: why (a link leaving the folder, a FIFO...)."""
    reason: str


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


_worker_analyzer: "Analyzer | None" = None   # one per worker process, when the models run there


def _prepare_chunk(job) -> list[Prepared]:
    """Prepare a few files in a worker; with `analyze_here` (CPU scans) also run the models on them,
    as one batch, so each core does whole files and decoded images never travel to the main process."""
    sources, settings, analyze_here = job
    prepared = [prepare(source, rel_path, settings) for source, rel_path in sources]
    if analyze_here:
        global _worker_analyzer
        if _worker_analyzer is None:
            _worker_analyzer = Analyzer(settings, intra_op_threads=1)
        _worker_analyzer.analyze(prepared)
        for item in prepared:
            item.image, item.analyzed = None, True
    return prepared


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


class Analyzer:
    """Per-image GAN signals and the verdict, on batches of decoded images. Every ONNX model is
    reached from here, through one Runtime (one session per model, one provider choice)."""

    def __init__(self, settings: Settings, intra_op_threads: int | None = None):
        """intra_op_threads: ONNX threads per run; None uses every core (one image, or no decoding
        processes beside it); scan workers, which share the cores, pass 1."""
        from .verdict import MODES
        if settings.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, not {settings.mode!r}")
        self.settings = settings
        self.intra_op_threads = intra_op_threads
        self._models = None

    def models(self):
        """(face locator, eye template, spectral detector, fusion model, backbone detector), loaded on
        first use (the spectral detector and the fusion model are factories, loaded when first called)."""
        if self._models is None:
            from .backbone import BackboneDetector
            from .faces import FaceLocator
            from .geometry import EyeTemplate
            from .runtime import Runtime
            from .spectrum import SpectralDetector
            from .verdict import FusionModel
            runtime = Runtime(self.settings.device, self.intra_op_threads)
            self.runtime = runtime
            # the spectral detector loads only when asked for: a fusion that does not use it never runs it
            self._models = (FaceLocator(runtime), EyeTemplate.load(), _lazy(lambda: SpectralDetector(runtime)),
                            _lazy(lambda: FusionModel(runtime)), BackboneDetector(runtime))
        return self._models

    def signals(self, images: list[np.ndarray], fuse: bool = True, geometry_of: list | None = None,
                detectors: set[str] | frozenset[str] | None = None) -> list[Signals]:
        """Face, eye geometry, the pixel detectors' scores and (with `fuse`) gan_score for each RGB image.
        `detectors`: which pixel detectors to run ("spectral", "backbone"); by default those the fusion
        uses when fusing, every one otherwise. `geometry_of` (evaluation only): objects with
        faces_found, geometry and eye_score from an earlier run on the same images, in place of running
        the face locator again."""
        from .geometry import eye_score, geometry_features
        from .verdict import fusion_features
        locator, template, spectral, fusion, backbone = self.models()
        if detectors is None:
            detectors = fusion().uses if fuse else {"spectral", "backbone"}
        none = [None] * len(images)
        spectral_scores = spectral().score(images).tolist() if "spectral" in detectors else none
        backbone_scores = backbone.score(images).tolist() if "backbone" in detectors else none
        out = []
        if geometry_of is not None:
            out = [Signals(g.faces_found, None, g.geometry, g.eye_score, s, b)
                   for g, s, b in zip(geometry_of, spectral_scores, backbone_scores)]
        else:
            for image, finding, s, b in zip(images, locator.locate(images), spectral_scores, backbone_scores):
                geometry = score = None
                if finding.face is not None:
                    h, w = image.shape[:2]
                    geometry = geometry_features(finding.face, w, h, template)
                    score = eye_score(geometry, template)
                out.append(Signals(finding.faces_found, finding.face, geometry, score, s, b))
        if fuse and out:
            model = fusion()
            # a detector the fusion does not use enters as None (feature 0, weight 0), even when it was run
            gan = model.score(np.stack([fusion_features(x.spectral_score if "spectral" in model.uses else None,
                                                        x.backbone_score if "backbone" in model.uses else None,
                                                        x.geometry, template) for x in out]))
            for x, g in zip(out, gan.tolist()):
                x.gan_score = float(g)
        return out

    def analyze(self, batch: list[Prepared]) -> None:
        """Fill faces, eyes and scores of each Result in the batch and its evidence, then judge it
        (judge_file: hash lists, verdict and reasons)."""
        from .verdict import ON_TEMPLATE_Z2
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
    from .verdict import judge
    match_known_hashes(result, evidence, settings.known_hashes)
    judge(result, evidence, fusion, settings.mode)


def match_known_hashes(result: Result, evidence: dict, known_hashes) -> None:
    """result.known_matches: the entries of the hash lists (None without lists) that the file's PDQ
    probes (kept in its evidence), pHash or sha256 match."""
    from .hashing import Hash
    result.known_matches = None
    if known_hashes:
        probes = [Hash.from_hex(h) for h in evidence["pdq_probes"]]
        matches = load_lists(known_hashes).match(probes, Hash.from_hex(result.phash), result.sha256)
        result.known_matches = [m.to_dict() for m in matches]


def _lazy(make):
    """A memoised factory: the model loads only when first asked for."""
    made = []

    def get():
        if not made:
            made.append(make())
        return made[0]
    return get


def walk(folder: Path, *, follow_links: bool = False, exclude: Path | None = None) -> Iterator[tuple[object, str]]:
    """Every non-hidden entry under `folder` that gets a row, depth first in name order, as (source,
    path relative to `folder` with '/' separators). The source is a Path to read, or a NotRead saying
    why an entry is not read: a symbolic link that leaves the folder (unless `follow_links`) or leads
    into `exclude` (the scan's own output), a dangling link, a FIFO, socket or device. Links inside
    the folder are followed; a link back to a folder already walked (a loop) is not."""
    root = folder.resolve()
    excluded = exclude.resolve() if exclude is not None else None
    seen_dirs: set[tuple[int, int]] = set()

    def inside(path: Path, top: Path) -> bool:
        return path == top or top in path.parents

    def visit(directory: Path, rel: str):
        try:
            st = directory.stat()
        except OSError:
            return
        if (st.st_dev, st.st_ino) in seen_dirs:
            return
        seen_dirs.add((st.st_dev, st.st_ino))
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError:
            return
        for entry in entries:
            if entry.name.startswith("."):
                continue
            entry_rel = f"{rel}{display_name(entry.name)}"
            try:
                if entry.is_symlink():
                    target = Path(os.path.realpath(entry.path))
                    if not target.exists():
                        yield NotRead("dangling symbolic link: its target does not exist"), entry_rel
                        continue
                    if excluded is not None and inside(target, excluded):
                        yield NotRead("symbolic link into the scan's output folder: not read"), entry_rel
                        continue
                    if not follow_links and not inside(target, root):
                        yield NotRead("symbolic link to outside the scanned folder: not followed "
                                      "(--follow-links reads it)"), entry_rel
                        continue
                if entry.is_dir():
                    yield from visit(Path(entry.path), entry_rel + "/")
                elif entry.is_file():
                    if is_candidate_file(Path(entry.path)):
                        yield Path(entry.path), entry_rel
                else:
                    yield NotRead(f"not a regular file ({file_kind(entry.stat().st_mode)})"), entry_rel
            except OSError as e:
                yield NotRead(f"cannot read folder entry: {e.strerror or e}"), entry_rel

    yield from visit(folder, "")


def display_name(name: str) -> str:
    """A file name as text for the results. Bytes that are not UTF-8 (Python keeps them as lone
    surrogates, which neither SQLite nor a UTF-8 file can store) are written as \\xNN escapes."""
    try:
        name.encode("utf-8")
        return name
    except UnicodeEncodeError:
        return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _batches(items: Iterable, size: int):
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


_SINGLE_THREAD_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@contextlib.contextmanager
def _single_threaded_env():
    saved = {k: os.environ.get(k) for k in _SINGLE_THREAD_ENV}
    os.environ.update(_SINGLE_THREAD_ENV)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _worker_init():
    """Each decoding process uses one core: BLAS and OpenCV thread pools would oversubscribe the CPU.
    (Ctrl-C, which reaches every process of the terminal's group, is ignored by the workers from their
    start, see _workers_born_ignoring_sigint: the main process alone stops the scan.)"""
    import cv2
    cv2.setNumThreads(1)


@contextlib.contextmanager
def _workers_born_ignoring_sigint():
    """Workers must ignore Ctrl-C from their first instruction (a worker still importing when it
    arrives would print a traceback): an ignored SIGINT survives the spawn, and Python keeps it
    ignored at start-up. So it is ignored here while the pool starts them (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def _caller_main_hidden():
    """Spawned processes re-run the caller's __main__ (its script, or the notebook's or `python -c`'s
    code) before they take work, so an unguarded script that calls scan() would scan again in every
    worker, without end. Our workers need nothing from it (their task functions live in this module),
    so while the pool starts them __main__ is a bare module with no file or spec to re-run."""
    caller = sys.modules.get("__main__")
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        if caller is not None:
            sys.modules["__main__"] = caller


def _runs_on_cpu(device: str) -> bool:
    from .runtime import cuda_available
    return device == "cpu" or (device == "auto" and not cuda_available())


MAX_WORKERS = 1024   # above this --workers is refused as a slip: no machine or Ray cluster here needs more


def worker_count(settings: Settings) -> int:
    """Processes that decode (and on the CPU analyse) files on this machine: --workers, or one per core
    by default, and never more than the cores (see worker_cap_note)."""
    cores = os.cpu_count() or 1
    return cores if settings.workers is None else min(settings.workers, cores)


def worker_cap_note(settings: Settings) -> str | None:
    """A line saying that --workers asks for more processes than this machine has cores, and gets one
    per core: each worker runs the models on one core and holds its own ~400 MB of models, so more
    only adds start-up and memory (64 workers on 2 cores took 158 s for 5 files, 15 s capped to 2).
    A Ray scan joining a cluster (--address) is not capped here: its actors are capped by the
    cluster's CPUs or GPUs."""
    if settings.workers is None or (settings.engine == "ray" and settings.ray_address):
        return None
    cores = os.cpu_count() or 1
    if settings.workers <= cores:
        return None
    return f"--workers {settings.workers} is more than this machine's {cores} cores: using {cores}"


def _prepared_stream(sources: Iterable[tuple[object, str]], settings: Settings) -> Iterator[Prepared]:
    """Prepared files, decoded in worker processes, WORKER_CHUNK files per task. At most
    IN_FLIGHT_PER_WORKER x workers files are submitted and not yet consumed: an unbounded queue
    would grow with the folder whenever the consumer is slower than the workers."""
    sources = iter(sources)
    workers = worker_count(settings)
    head = list(itertools.islice(sources, 4))
    if workers <= 0 or len(head) < 4:
        for source, rel in itertools.chain(head, sources):
            yield prepare(source, rel, settings)
        return
    # On the CPU each worker runs the models on its own files (one ONNX thread each): the cores then
    # all do whole files, instead of one main process running every model behind idle decoders.
    # On CUDA the models stay in this process, in batches, on one GPU context.
    analyze_here = _runs_on_cpu(settings.device)
    chunks_in_flight = max(1, max(IN_FLIGHT_PER_WORKER * workers, 2 * settings.batch_size) // WORKER_CHUNK)
    context = multiprocessing.get_context("spawn")
    with _single_threaded_env(), _caller_main_hidden(), _workers_born_ignoring_sigint():   # env: read by OpenBLAS
        pool = context.Pool(workers, initializer=_worker_init)
    with pool:
        window: collections.deque = collections.deque()
        for chunk in _batches(itertools.chain(head, sources), WORKER_CHUNK):
            window.append(pool.apply_async(_prepare_chunk, ((chunk, settings, analyze_here),)))
            if len(window) >= chunks_in_flight:
                yield from window.popleft().get()
        while window:
            yield from window.popleft().get()


ENGINES = ("local", "ray")


def scheduler(settings: Settings) -> Callable[[Iterable[tuple[object, str]], Settings], Iterator[Prepared]]:
    """Who runs the per-file analysis: local worker processes, or Ray Data (facecheck.ray_engine).
    Both call the same `prepare` and `Analyzer.analyze`, and yield the same Prepared files."""
    if settings.engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, not {settings.engine!r}")
    if settings.engine == "ray":
        from .ray_engine import ray_prepared_stream
        return ray_prepared_stream
    return _prepared_stream


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
    scan_name = settings.scan_name or default_scan_name(out_dir, folder)
    if settings.index:   # writable, not locked for long, and the name not another output folder's
        check_index_for_scan(settings.index, scan_name, str(out_dir.resolve()), notice=notice)
    if total is None and hasattr(sources, "__len__"):
        total = len(sources)
    out_dir.mkdir(parents=True, exist_ok=True)
    state = ScanState(out_dir / "state.sqlite")
    summary = ScanSummary()
    key = signals_key(settings)
    fusion = _lazy(lambda: _fusion_model(settings))   # judging a kept file needs the thresholds, not the models

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
        for batch in _batches(stream, settings.batch_size):
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
        finish(state, out_dir, settings, summary, grouping_progress, scan_name)
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
    from .runtime import Runtime
    from .verdict import FusionModel
    return FusionModel(Runtime(settings.device))


def signals_key(settings: Settings) -> str:
    """What a file's expensive signals (decoding, hashes, face, detector scores, gan_score) depend on
    besides its bytes: the size limits, the device and model files that run (CUDA runs float32 models
    where the CPU runs int8 twins) and every shipped model's digest. A rerun keeps a file's signals only
    under the same key; mode, hash lists and index only change the judgement (judge_file, finish)."""
    from . import __version__
    from .runtime import QUANTIZED_ON_CPU, Runtime, model_digests
    runtime = Runtime(settings.device)
    return json.dumps({"facecheck": __version__, "max_pixels": settings.max_pixels, "max_bytes": settings.max_bytes,
                       "model_min_side": MODEL_MIN_SIDE, "device": runtime.device,
                       "model files run": sorted(runtime.model_file(name) for name in QUANTIZED_ON_CPU),
                       "models": model_digests()}, sort_keys=True)


def settings_record(settings: Settings, analyzer: "Analyzer") -> dict:
    """What the report and eval.json say was used: settings, device, thresholds, model digests."""
    from . import __version__
    from .runtime import QUANTIZED_ON_CPU, Runtime, model_digests
    from .verdict import FusionModel
    record = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(settings).items()}
    runtime = getattr(analyzer, "runtime", None) or Runtime(settings.device)
    record["device used"] = runtime.device
    # which file ran for models with an int8 twin (the CPU runs it; see runtime.QUANTIZED_ON_CPU)
    record["model files run"] = ", ".join(runtime.model_file(name) for name in QUANTIZED_ON_CPU)
    record["thresholds (gan_score)"] = FusionModel(runtime).thresholds
    record["facecheck"] = __version__
    record["models (sha256)"] = model_digests()
    return record


GROUPING_CHUNK = 512   # files matched between two progress reports while grouping


def finish(state: ScanState, out_dir: Path, settings: Settings, summary: ScanSummary,
           progress: Callable[[int, int], None] | None = None, scan_name: str | None = None) -> None:
    """Group reused avatars, look them up in (and add them to) the known index as `scan_name`
    (run_scan's choice), write the results. `progress(done, total)` is told how many of the decoded
    files have been matched so far. An index that fails now leaves summary.index_error, not an exception."""
    ids, codes = state.hashed()
    grouper = Grouper(ids, codes, state.thumbnail)
    for same in state.identical_files():   # the same bytes are the same photo, whatever the hashes say
        grouper.same_bytes(same)
    scan_name = scan_name or settings.scan_name or default_scan_name(out_dir, None)
    origin = str(out_dir.resolve())

    def own_entry(scan: str, path: str) -> bool:
        # this scan's own entries from an earlier run (a rerun, a resume): not "seen before"
        return scan == scan_name and state.has_path(path)

    seen: dict[int, list[str]] = {}
    known = known_index = None

    def index_failed(e: Exception) -> None:
        # checked before the scan (run_scan), the index may still fail now (damaged or locked since):
        # the results and report are still written, without look-ups, and say so
        nonlocal known, known_index
        summary.index_error = (f"index {settings.index} could not be read ({e}): seen_before is left empty "
                               "and the index was not updated")
        if known is not None:
            with contextlib.suppress(sqlite3.Error):
                known.close()
        known = known_index = None
        seen.clear()

    if settings.index:
        try:
            known = KnownAvatars(settings.index)
            known_index = known.index() if len(known) else None
        except (sqlite3.Error, ValueError) as e:
            index_failed(e)
    matched = 0
    if progress:
        progress(0, len(ids))
    for chunk_ids, probes, thumbs, records in state.probes_in_chunks(GROUPING_CHUNK):
        grouper.match(chunk_ids, probes, thumbs)
        if known_index is not None:
            try:
                hits: dict[int, set[int]] = {}
                for m in duplicates.find_matches(probes, thumbs, known_index, query_ids=chunk_ids,
                                                 thumbnail_of=known.thumbnail, skip_self=False):
                    hits.setdefault(m.a, set()).add(m.b)
                for file_id, record in zip(chunk_ids.tolist(), records):
                    hits.setdefault(file_id, set()).update(known.by_sha256(record["sha256"]))
                for file_id, avatar_ids in hits.items():
                    places = known.where(avatar_ids, exclude=own_entry)
                    if places:
                        seen[file_id] = places
            except sqlite3.Error as e:
                index_failed(e)
        matched += len(chunk_ids)
        if progress:
            progress(matched, len(ids))
    groups = grouper.groups()
    # The copies of one photo share their evidence: each group's strongest gan_score, and its first
    # flagged file in path order (a dict entry per group, not per file). Verdicts stay per file.
    group_score: dict[int, float] = {}
    flagged_copy: dict[int, str] = {}
    for file_id, path, gan_score, verdict in state.judged():
        group = groups.group_of(file_id)
        if group is not None and gan_score is not None:
            group_score[group[0]] = max(gan_score, group_score.get(group[0], gan_score))
            if verdict == "gan":
                flagged_copy.setdefault(group[0], path)

    def final_results():
        for file_id, result in state.results():
            group = groups.group_of(file_id)
            if group is not None:
                result.cluster, result.cluster_size = group
                result.group_gan_score = group_score.get(result.cluster)
            if result.error is None and known is not None:
                result.seen_before = file_id in seen
                result.seen_in = seen.get(file_id, [])[:10] or None
            result.reasons.extend(reuse_reason(result.cluster_size, result.seen_in))
            if result.verdict != "gan" and result.cluster in flagged_copy:
                result.reasons.append(flagged_copy_reason(flagged_copy[result.cluster]))
            summary.errors += result.error is not None
            summary.gan += result.verdict == "gan"
            summary.seen_before += bool(result.seen_before)
            yield result

    write_results(final_results(), out_dir)
    summary.groups = groups.count()
    summary.grouped_files = int(groups.grouped().sum())
    if known is not None:
        try:
            known.add(scan_name, origin, state.db.execute(
                "SELECT path, json_extract(record, '$.sha256'), json_extract(record, '$.pdq'), dct256, thumbnail "
                "FROM files WHERE dct256 IS NOT NULL").fetchall())
        except sqlite3.Error as e:
            summary.index_error = (f"index {settings.index} was not updated ({e}); the results and report are "
                                   "complete: run the same scan again to add its files")
        finally:
            with contextlib.suppress(sqlite3.Error):
                known.close()


def default_scan_name(out_dir: Path, folder: Path | None) -> str:
    """How a scan without --name is named in the index: the output folder's name and the scanned
    folder ("facecheck-out of /data/takedown-1"), so that scans of different folders never share a
    name, even with the default --out; a scan of listed files: its output folder's full path.
    (':' separates the name from the path in seen_in, so a ':' in the folder becomes '_'.)"""
    out = out_dir.resolve()
    where = str(folder.resolve()) if folder is not None else f"listed files, results in {out}"
    return f"{out.name} of {where}".replace(":", "_")


def check_output_dir(folder: Path | None, out_dir: Path) -> None:
    """Refuse an output folder inside the scanned folder, or one that cannot be written."""
    out = out_dir.resolve()
    if folder is not None:
        root = folder.resolve()
        if out == root or root in out.parents:
            raise ValueError(f"--out {out_dir} is inside the scanned folder; facecheck never writes there")
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out_dir} is a file, not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=out, prefix=".write-test-", delete=True)
        probe.close()
    except OSError as e:
        raise ValueError(f"cannot write to {out_dir}: {e.strerror or e}") from None


def check_settings(settings: Settings, name: Callable[[str], str] = str) -> None:
    """Refuse settings that cannot work, before any work starts: ValueError (RuntimeError for a
    device that is not there), naming each setting as `name` spells it (the CLI: its option)."""
    from .runtime import providers_for
    from .verdict import MODES
    if settings.mode not in MODES:
        raise ValueError(f"{name('mode')} must be one of {', '.join(MODES)}, not {settings.mode!r}")
    providers_for(settings.device)
    if settings.engine not in ENGINES:
        raise ValueError(f"{name('engine')} must be one of {', '.join(ENGINES)}, not {settings.engine!r}")
    if settings.known_hashes:
        load_lists(settings.known_hashes)   # ValueError naming the file and line that cannot be read
    if settings.index:
        check_index(settings.index)         # ValueError: not an index of known avatars
    at_least = {"workers": 0, "batch_size": 1, "max_pixels": 1, "max_bytes": 1}
    for key, low in at_least.items():
        value = getattr(settings, key)
        if value is None and key == "workers":
            continue   # one per core
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name(key)} must be a whole number >= {low}, not {value!r}")
    if settings.workers is not None and settings.workers > MAX_WORKERS:
        raise ValueError(f"{name('workers')} must be at most {MAX_WORKERS}, not {settings.workers} "
                         f"(this machine has {os.cpu_count() or 1} cores)")
    if settings.ray_address is not None:
        if settings.engine != "ray":
            raise ValueError(f"{name('ray_address')} goes with {name('engine')} ray")
        from .ray_engine import check_address
        check_address(settings.ray_address, name("ray_address"))   # its form, and a TCP connect (at most 5 s)


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
    check_output_dir(folder, out)
    _warn_of_index_error(run_scan(sources, out, settings, progress, folder))
    return read_results(out)


def _warn_of_index_error(summary: ScanSummary) -> None:
    if summary.index_error:   # the results are complete; the index is not (RuntimeWarning, as CLI exit 1)
        import warnings
        warnings.warn(summary.index_error, RuntimeWarning, stacklevel=3)


def check_folder(folder: Path) -> None:
    """Refuse a folder to scan that is missing (FileNotFoundError) or not a folder (NotADirectoryError)."""
    if not folder.exists():
        raise FileNotFoundError(f"no such folder: {folder}")
    if not folder.is_dir():
        raise NotADirectoryError(f"not a folder: {folder} is a file")


def _read_then_remove(tmp: tempfile.TemporaryDirectory) -> Iterator[Result]:
    """The results in a temporary folder, which is removed once they are read (or, if the iterator
    is dropped unread, when TemporaryDirectory's finalizer runs)."""
    try:
        yield from read_results(Path(tmp.name))
    finally:
        tmp.cleanup()


def read_results(out_dir: Path) -> Iterator[Result]:
    with open(out_dir / "results.jsonl", encoding="utf-8") as f:
        for line in f:
            yield Result.from_dict(json.loads(line))


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


# One loaded set of models per process and model settings, for score_image: loading them costs far
# more than scoring one avatar. Keyed by what changes which model files run and where; the process id
# is in the key because ONNX Runtime sessions must not be used across a fork.
_loaded_models: dict[tuple, "Analyzer"] = {}
_loaded_models_lock = threading.Lock()


def model_settings_key(settings: Settings) -> tuple:
    """What decides which models an Analyzer loads: the device, the float32 switch, the weights folder."""
    from .runtime import weights_dir
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
    from .faces import FACEMESH_FILE, YUNET_FILE
    _, _, spectral, fusion, _ = analyzer.models()
    if "spectral" in fusion().uses:
        spectral()
    for filename in (YUNET_FILE, FACEMESH_FILE):
        analyzer.runtime.session(filename)
