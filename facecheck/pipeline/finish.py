"""After the last file is in: reuse groups, the persistent index (look-ups, then this scan's entries),
each group's shared evidence, and the results files."""
from __future__ import annotations

import contextlib
import sqlite3
from dataclasses import asdict
from pathlib import Path
from typing import Callable

from .. import duplicates
from ..grouping import Grouper
from ..known import KnownAvatars
from ..scanstate import ScanState
from ..second_look import second_look_for
from ..settings import Settings
from ..verdict import flagged_copy_reason, reuse_reason
from ..writers import write_results
from .analyze import Analyzer
from .summary import ScanSummary


def settings_record(settings: Settings, analyzer: "Analyzer") -> dict:
    """What the report and eval.json say was used: settings, device, thresholds, model digests."""
    from .. import __version__
    from ..runtime import QUANTIZED_ON_CPU, Runtime, model_digests
    from ..verdict import FusionModel
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
           progress: Callable[[int, int], None] | None = None, scan_name: str | None = None,
           folder: Path | None = None) -> None:
    """Group reused avatars, look them up in (and add them to) the known index as `scan_name`
    (run_scan's choice), write the results. `progress(done, total)` is told how many of the decoded
    files have been matched so far. An index that fails now leaves summary.index_error, not an exception."""
    ids, codes = state.hashed()
    # pairs near the bar get a second look at their files, under `folder` (None: listed paths)
    grouper = Grouper(ids, codes, state.thumbnail,
                      second_look=second_look_for(state, folder, settings.max_pixels, settings.max_bytes))
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
            summary.stopped_early += result.depth in ("cheap", "eyes")
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
