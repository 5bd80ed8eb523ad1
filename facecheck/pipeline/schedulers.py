"""Who runs prepare and the Analyzer on each file: a registry of schedulers, by name.

Each scheduler is a module with `prepared_stream(sources, settings)` (Prepared files, analysed where the
models run beside the decoding) and `check_settings(settings, name)` (what it needs, checked before any
work). The registry names modules instead of importing them, so run_scan reaches a scheduler without
importing it, and the optional Ray engine is imported only when asked for."""
from __future__ import annotations

import importlib
from typing import Callable, Iterable, Iterator

from ..settings import Settings

SCHEDULERS = {"local": "facecheck.pipeline.local_scheduler",    # worker processes on this machine
              "ray": "facecheck.pipeline.ray_scheduler"}        # Ray Data (the facecheck[ray] extra)
ENGINES = tuple(SCHEDULERS)


def scheduler_module(engine: str):
    if engine not in SCHEDULERS:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, not {engine!r}")
    return importlib.import_module(SCHEDULERS[engine])


def scheduler(settings: Settings) -> Callable[[Iterable[tuple[object, str]], Settings], Iterator]:
    """settings.engine's prepared_stream. Every scheduler calls the same prepare and Analyzer.analyze,
    and yields the same Prepared files."""
    return scheduler_module(settings.engine).prepared_stream
