"""The folder walk: every entry that gets a row, and which of them are not read (and why)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from ..loading import file_kind, is_candidate_file


@dataclass(frozen=True)
class NotRead:
    """A folder entry that gets a row but is not read: why (a link leaving the folder, a FIFO...)."""
    reason: str


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


def check_folder(folder: Path) -> None:
    """Refuse a folder to scan that is missing (FileNotFoundError) or not a folder (NotADirectoryError)."""
    if not folder.exists():
        raise FileNotFoundError(f"no such folder: {folder}")
    if not folder.is_dir():
        raise NotADirectoryError(f"not a folder: {folder} is a file")
