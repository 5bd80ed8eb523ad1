"""The local scheduler: worker processes on this machine, each preparing (and on the CPU analysing)
whole files, with at most IN_FLIGHT_PER_WORKER files per worker in flight."""
from __future__ import annotations

import collections
import contextlib
import itertools
import multiprocessing
import os
import signal
import sys
import threading
import types
from typing import Iterable, Iterator

from ..runtime import runs_on_cpu
from ..settings import WORKER_CHUNK, Settings, worker_count
from .analyze import Analyzer
from .batches import batches
from .prepare import Prepared, prepare

IN_FLIGHT_PER_WORKER = 16   # files submitted to the workers and not yet consumed, per worker (bounds memory)


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


def prepared_stream(sources: Iterable[tuple[object, str]], settings: Settings) -> Iterator[Prepared]:
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
    analyze_here = runs_on_cpu(settings.device)
    chunks_in_flight = max(1, max(IN_FLIGHT_PER_WORKER * workers, 2 * settings.batch_size) // WORKER_CHUNK)
    context = multiprocessing.get_context("spawn")
    with _single_threaded_env(), _caller_main_hidden(), _workers_born_ignoring_sigint():   # env: read by OpenBLAS
        pool = context.Pool(workers, initializer=_worker_init)
    with pool:
        window: collections.deque = collections.deque()
        for chunk in batches(itertools.chain(head, sources), WORKER_CHUNK):
            window.append(pool.apply_async(_prepare_chunk, ((chunk, settings, analyze_here),)))
            if len(window) >= chunks_in_flight:
                yield from window.popleft().get()
        while window:
            yield from window.popleft().get()


def check_settings(settings: Settings, name=str) -> None:
    """Nothing beyond the common checks (facecheck.pipeline.checks): --workers is capped there."""
