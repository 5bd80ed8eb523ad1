"""Everything that can refuse a scan, checked before any work starts (and before --out is created)."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable

from ..hashlists import load_lists
from ..known import check_index, check_index_for_scan
from ..settings import MAX_WORKERS, Settings
from .finish import default_scan_name
from .schedulers import ENGINES, scheduler_module


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
    from ..cascade import DEPTHS
    from ..runtime import providers_for
    from ..verdict import MODES
    if settings.mode not in MODES:
        raise ValueError(f"{name('mode')} must be one of {', '.join(MODES)}, not {settings.mode!r}")
    providers_for(settings.device)
    if settings.depth not in DEPTHS:
        raise ValueError(f"{name('depth')} must be one of {', '.join(DEPTHS)}, not {settings.depth!r}")
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
    if settings.ray_address is not None and settings.engine != "ray":
        raise ValueError(f"{name('ray_address')} goes with {name('engine')} ray")
    scheduler_module(settings.engine).check_settings(settings, name)   # e.g. Ray: the address answers


def check_index_takes(settings: Settings, out_dir: Path, folder: Path | None,
                      notice: Callable[[str], None] | None = None) -> str:
    """The scan's name in --index (--name, or default_scan_name), after checking that the index can
    take this scan's entries: writable, not locked for long (`notice` is told while it waits), and the
    name not another output folder's. Raises IndexUnusable with one line. Creates nothing, so callers
    run it before --out is made."""
    scan_name = settings.scan_name or default_scan_name(out_dir, folder)
    if settings.index:
        check_index_for_scan(settings.index, scan_name, str(out_dir.resolve()), notice=notice)
    return scan_name
