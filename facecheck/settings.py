"""The settings of a scan or a check, and how many worker processes they get on this machine.

Every room of the scan path may import this module; it imports none of them."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .loading import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS

WORKER_CHUNK = 8            # files per worker task: one model batch when the models run in the workers
MAX_WORKERS = 1024   # above this --workers is refused as a slip: no machine or Ray cluster here needs more


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
    depth: str = "cascade"               # cascade (skip a model where it cannot change the verdict) | full


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
