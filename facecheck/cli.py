"""The `facecheck` command line: a thin layer over the scan path (facecheck.pipeline) and facecheck.api."""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Optional

import typer
from typer.core import TyperGroup
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from .api import score_image
from .loading import DEFAULT_MAX_PIXELS
from .pipeline.analyze import Analyzer
from .pipeline.checks import check_index_takes, check_output_dir, check_settings
from .pipeline.run import run_scan
from .pipeline.walk import check_folder, walk
from .settings import Settings, worker_cap_note
from .writers import read_results
from .known import IndexUnusable
from .hashlists import EXPORT_MIN_QUALITY
from .result import Result



class _Commands(TyperGroup):
    """facecheck's commands, whose -h/--help shows as a plain flag (typer labels it `<bool>`)."""

    def get_command(self, ctx, name):
        command = super().get_command(ctx, name)
        if command is not None:
            plain_flag(command.get_help_option(ctx))
        return command

    def get_help_option(self, ctx):
        return plain_flag(super().get_help_option(ctx))


def plain_flag(option):
    """Help shows an on/off option bare (`--json`), not as one that takes a value (`--json <bool>`)."""
    if option is not None:
        option.metavar = ""
    return option


def flag(*names: str, help: str, **options):
    """An on/off option, off by default (see plain_flag)."""
    return typer.Option(False, *names, help=help, metavar="", **options)


app = typer.Typer(cls=_Commands, add_completion=False, no_args_is_help=True,
                  context_settings={"help_option_names": ["-h", "--help"]},
                  help="Find StyleGAN faces and reused avatars in profile photos, offline.")

NOT_A_TERMINAL_WIDTH = 1000   # piped to a file or a log, nothing is cut to a terminal's width


def _console(stderr: bool) -> Console:
    """A Console that wraps to the terminal when there is one; otherwise (a file, a pipe, a CI log)
    rich would cut tables at 80 columns, so it gets room for every column."""
    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, width=None if stream.isatty() else NOT_A_TERMINAL_WIDTH)


err = _console(stderr=True)
out = Console()


MODE_HELP = ("Operating point: default flags <= 0.1% of real natural photos, strict <= 0.01%, "
             "sensitive <= 1% (see weights/fusion.md).")
DEPTH_HELP = ("cascade: skip FaceMesh and the spectral detector where they cannot change the verdict at any mode "
              "(rows say how far they went); full: run every model on every file.")


def _show_version(value: bool) -> None:
    if value:
        from . import __version__
        print(f"facecheck {__version__}")
        raise typer.Exit()


# The same eager option on the app and on every command: `facecheck --version`, `facecheck scan --version`.
VERSION = flag("--version", callback=_show_version, is_eager=True, help="Print the version and exit.")


@app.callback()
def _app(version: bool = VERSION) -> None:
    """Options of facecheck itself (--version); the commands do the work."""


OPTION_OF_SETTING = {"ray_address": "--address"}   # settings whose option is not "--" + their name


def _check_options(settings: Settings) -> None:
    """Refuse bad options (--mode, --device, --workers, --batch-size, --max-pixels, --engine, --address)
    before any work starts."""
    try:
        check_settings(settings, name=lambda key: OPTION_OF_SETTING.get(key, "--" + key.replace("_", "-")))
    except (ValueError, RuntimeError, ConnectionError) as e:
        _fail(str(e))


KNOWN_HASHES_HELP = ("A list of PDQ or pHash hashes (CSV or text, with optional labels) to match every file "
                     "against; repeatable.")


def _fail(message: str, code: int = 2) -> None:
    err.print(Text.assemble(("error:", "bold red"), " ", message))   # a Text: file names are not markup
    raise typer.Exit(code)


@app.command()
def scan(folder: Path = typer.Argument(..., help="Folder of images, scanned recursively."),
         out_dir: Path = typer.Option(Path("facecheck-out"), "--out", "-o", help="Where results go (created if missing)."),
         index: Optional[Path] = typer.Option(None, "--index", help="Persistent index of known avatars (SQLite), grown by every scan."),
         scan_name: Optional[str] = typer.Option(None, "--name", help="Name of this scan in the index (default: the --out folder's name and FOLDER's path)."),
         device: str = typer.Option("auto", help="auto | cpu | cuda"),
         mode: str = typer.Option("default", help=MODE_HELP),
         depth: str = typer.Option("cascade", help=DEPTH_HELP),
         workers: Optional[int] = typer.Option(None, help="Decoding processes (default, and at most: one per core; "
                                               "0: none). With --engine ray on a cluster: actors."),
         batch_size: int = typer.Option(32, help="Images per model batch; also how often state is committed."),
         max_pixels: int = typer.Option(DEFAULT_MAX_PIXELS, help="Refuse images with more pixels than this."),
         follow_links: bool = flag("--follow-links", help="Read symbolic links that lead outside FOLDER "
                                   "(by default each gets a row saying it was not followed)."),
         engine_name: str = typer.Option("local", "--engine", help="local (worker processes on this machine) | "
                                          "ray (Ray Data; pip install 'facecheck\\[ray]')."),
         address: Optional[str] = typer.Option(None, "--address", help="With --engine ray: the Ray cluster to join "
                                               "(auto, ray://host:10001); default: start a local one."),
         known_hashes: Optional[list[Path]] = typer.Option(None, "--known-hashes", help=KNOWN_HASHES_HELP),
         quiet: bool = flag("--quiet", "-q", help="No progress bar or summary."),
         version: bool = VERSION):
    """Scan FOLDER; write results.jsonl and results.csv to --out."""
    settings = Settings(device=device, workers=workers, batch_size=batch_size, max_pixels=max_pixels, index=index,
                               scan_name=scan_name, mode=mode, depth=depth, follow_links=follow_links, engine=engine_name,
                               ray_address=address, known_hashes=tuple(str(p) for p in known_hashes or ()))
    if engine_name == "ray":
        from .pipeline.ray_scheduler import require_ray
        try:
            require_ray()
        except RuntimeError as e:
            _fail(str(e))
    _check_options(settings)
    try:
        check_folder(folder)
    except NotADirectoryError as e:
        _fail(f"{e} (for one image: facecheck check {folder})")
    except FileNotFoundError as e:
        _fail(str(e))
    if address:   # join the cluster now: one that cannot be joined is refused before --out exists
        from .pipeline.ray_scheduler import connect
        try:
            connect(settings)
        except (ValueError, RuntimeError, ConnectionError) as e:
            _fail(str(e))
    try:   # a damaged, read-only or locked index is refused before --out exists
        check_index_takes(settings, out_dir, folder, notice=lambda message: err.print(Text(message)))
    except IndexUnusable as e:
        _fail(str(e))
    try:
        check_output_dir(folder, out_dir)   # creates --out: every check that can refuse comes first
    except ValueError as e:
        _fail(str(e))
    note = worker_cap_note(settings)
    if note and not quiet:
        err.print(Text("note: " + note))

    def entries():
        return walk(folder, follow_links=follow_links, exclude=out_dir)

    total = sum(1 for _ in entries())   # a first, cheap pass, so progress has an end
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
                  TimeElapsedColumn(), TimeRemainingColumn(), console=err, disable=quiet) as bar:
        task = bar.add_task("scanning", total=total, rate="")
        grouping = bar.add_task("grouping", total=None, rate="", visible=False, start=False)

        def progress(done: int, total: int) -> None:
            elapsed = bar.tasks[0].elapsed or 0
            bar.update(task, completed=done, rate=f"{done / elapsed:.0f} img/s" if elapsed > 1 else "")

        def grouping_progress(done: int, total: int) -> None:   # files matched against the others
            bar.start_task(grouping)   # its clock starts with the grouping (a no-op once started)
            bar.update(grouping, completed=done, total=total, visible=True)

        try:
            summary = run_scan(entries(), out_dir, settings, progress, folder, total, grouping_progress,
                                      notice=lambda message: err.print(Text(message)))
        except IndexUnusable as e:   # found before any work
            _fail(str(e))
        except KeyboardInterrupt:
            err.print("interrupted: finished files are kept; run the same command again to continue")
            raise typer.Exit(130)
    if not quiet:
        table = Table(title=f"facecheck scan of {folder}", show_header=False)
        for name, value in [("files", summary.files), ("decoded this run", summary.scanned),
                            ("kept from an earlier run, judged again", summary.rejudged),
                            ("errors", summary.errors), ("GAN faces", summary.gan),
                            ("stopped early by the cascade (--depth)", summary.stopped_early),
                            ("reused-avatar groups", f"{summary.groups} ({summary.grouped_files} files)"),
                            ("seen in earlier scans", summary.seen_before),
                            ("time", f"{summary.seconds:.1f} s"), ("results", str(out_dir / "results.jsonl")),
                            ("report", str(out_dir / "report.html"))]:
            table.add_row(name, str(value))
        err.print(table)
    if summary.index_error:   # the scan is complete, its index entries are not: exit 1
        _fail(summary.index_error, code=1)


def describe(result: Result, mode: str | None = None) -> str:
    """A person-readable account of one result; `mode` adds what its operating point promises."""
    from .verdict import operating_point
    lines = [f"{result.path}"]
    if result.error:
        lines.append(f"  error: {result.error}")
        return "\n".join(lines)
    lines.append(f"  verdict: {result.verdict or 'not assessed'}"
                 + (f" (GAN score {result.gan_score:.3f})" if result.gan_score is not None else ""))
    if mode is not None and result.verdict is not None:
        lines.append(f"  operating point: {operating_point(mode)}")
    lines.append(f"  size: {result.width}x{result.height}  sha256: {result.sha256[:16]}...")
    lines.append(f"  phash: {result.phash}  dct256: {result.dct256}")
    if result.pdq:
        lines.append(f"  pdq: {result.pdq} (quality {result.pdq_quality}"
                     + (", below ~50 the hash says little)" if result.pdq_quality is not None and result.pdq_quality < 50
                        else ")"))
    if result.eyes:
        (lx, ly), (rx, ry) = result.eyes
        lines.append(f"  eyes at ({lx:.0f}, {ly:.0f}) and ({rx:.0f}, {ry:.0f}) px")
    for name in ("eye_score", "backbone_score", "spectral_score"):
        value = getattr(result, name)
        if value is not None:
            lines.append(f"  {name.replace('_', ' ')}: {value:.3f}")
    if result.seen_before is not None:
        lines.append("  seen before in: " + ", ".join(result.seen_in) if result.seen_before
                     else "  not in the index of known avatars")
    lines += [f"  - {reason}" for reason in result.reasons]
    return "\n".join(lines)


URL = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)   # http://, https://, ftp://, s3://...


@app.command()
def check(image: str = typer.Argument(..., help="One image file; - reads it from standard input."),
          as_json: bool = flag("--json", help="Print the results.jsonl record instead."),
          index: Optional[Path] = typer.Option(None, "--index", help="Look the image up in this index of known avatars."),
          device: str = typer.Option("auto", help="auto | cpu | cuda"),
          mode: str = typer.Option("default", help=MODE_HELP),
          depth: str = typer.Option("cascade", help=DEPTH_HELP),
          known_hashes: Optional[list[Path]] = typer.Option(None, "--known-hashes", help=KNOWN_HASHES_HELP),
          version: bool = VERSION):
    """Give a readable verdict on one IMAGE. Exit status 1 when none was reached (not an image, unreadable)."""
    settings = Settings(device=device, workers=0, index=index, mode=mode, depth=depth,
                               known_hashes=tuple(str(p) for p in known_hashes or ()))
    _check_options(settings)
    if image == "-":
        result = score_image(sys.stdin.buffer, settings)   # a file object: read up to the 64 MB file limit
        result.path = "<stdin>"
    else:
        if not Path(image).exists():
            if URL.match(image):
                _fail(f"{image} is a URL: facecheck works offline and fetches nothing; download the image first, "
                      "then give its file (or pipe it: ... | facecheck check -)")
            _fail(f"no such file: {image}")
        result = score_image(Path(image), settings)
    if as_json:
        sys.stdout.write(result.to_json() + "\n")
    else:
        out.print(describe(result, mode), highlight=False, markup=False, soft_wrap=True)
    if result.verdict in (None, "error"):
        raise typer.Exit(1)


@app.command("export")
def export(out_dir: Path = typer.Argument(..., help="The --out folder of a finished scan."),
           fmt: str = typer.Option("pdq", "--format", help="pdq: a CSV list (pdq,quality,label) that --known-hashes reads."),
           to: Optional[Path] = typer.Option(None, "--to", help="Write here instead of standard output."),
           min_quality: int = typer.Option(EXPORT_MIN_QUALITY, "--min-quality",
                                           help="Leave out hashes of PDQ quality below this (0 keeps them all; "
                                                "the PDQ documentation calls hashes below 50 unreliable)."),
           version: bool = VERSION):
    """Write the PDQ hashes of a scan's flagged files and reuse groups, to share what it found."""
    from .hashlists import write_list
    if fmt != "pdq":
        _fail(f"--format must be pdq, not {fmt!r}")
    if not 0 <= min_quality <= 100:
        _fail(f"--min-quality must be between 0 and 100, not {min_quality}")
    rows, low = _export_rows(out_dir, min_quality)
    try:
        if to is None:
            n = write_list(rows, sys.stdout)
        else:
            with open(to, "w", encoding="utf-8", newline="") as f:
                n = write_list(rows, f)
    except OSError as e:
        _fail(f"cannot write --to {to}: {e.strerror or e}")
    left_out = f" ({low} left out: PDQ quality below {min_quality}; --min-quality 0 keeps them)" if low else ""
    err.print(f"exported {n} PDQ hashes" + (f" to {to}" if to else "") + left_out, highlight=False, markup=False)


def _export_rows(out_dir: Path, min_quality: int):
    """The rows `export` writes, from a finished scan's results.jsonl; refuses (one line, exit 2) a
    folder without them, and results that a later, unfinished scan into the folder made stale."""
    from .hashlists import export_rows
    from .writers import PARTIAL_NAME
    results = out_dir / "results.jsonl"
    if not results.is_file():
        _fail(f"{out_dir} holds no results.jsonl: give the --out folder of a finished scan")
    if (out_dir / PARTIAL_NAME).exists():
        # written from a scan's start and removed when it completes: a rerun stopped (or still running)
        _fail(f"the results in {out_dir} are stale: a later scan into it did not finish ({PARTIAL_NAME} is "
              f"there); rerun it to the end, then export")
    try:
        return export_rows(read_results(out_dir), min_quality)
    except (OSError, ValueError, KeyError, TypeError) as e:
        _fail(f"cannot read {results}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")


@app.command("eval")
def eval_command(data: Optional[Path] = typer.Argument(None, help="Manifest CSV, or a folder of <label>/[<source>/] "
                                                                  "images (default: ../shared/data)."),
                 out_dir: Path = typer.Option(Path("facecheck-eval"), "--out", "-o", help="Where eval.json, rows.jsonl and plots go."),
                 folds: Optional[str] = typer.Option(None, help="Keep these dataset folds, e.g. 0 (the shipped models' test fold)."),
                 conditions: Optional[str] = typer.Option(None, help="Comma-separated degradation names (default: all)."),
                 per_source: Optional[int] = typer.Option(None, help="At most this many images per source."),
                 reuse_geometry: Optional[Path] = typer.Option(None, help="rows.jsonl of an earlier eval with the same face "
                                                                          "models: skip the face locator for those copies."),
                 device: str = typer.Option("auto", help="auto | cpu | cuda"),
                 depth: str = typer.Option("full", help=DEPTH_HELP + " Default full: every score measured."),
                 quiet: bool = flag("--quiet", "-q", help="No progress bar or summary table."),
                 version: bool = VERSION):
    """Measure detection on labelled images: ROC, TPR at fixed FPR, by source and degradation."""
    from .evaluation import evaluate as evaluation
    from .evaluation.dataset import data_root
    settings = Settings(device=device, depth=depth)
    _check_options(settings)
    if per_source is not None and per_source < 1:
        _fail(f"--per-source must be a whole number >= 1, not {per_source}")
    try:
        kept_folds = [int(f) for f in folds.split(",")] if folds else None
    except ValueError:
        _fail(f"--folds must be comma-separated fold numbers, e.g. 0 or 0,1, not {folds!r}")
    if data is None:
        root = data_root()
        if root is None:
            _fail("no labelled data: give a manifest CSV or a folder, or put shared/data beside the checkout")
        data = root / "manifest.csv"
    try:
        samples = evaluation.labelled_samples(data)
        named = evaluation.conditions(conditions.split(",") if conditions else None)
    except (FileNotFoundError, ValueError) as e:
        _fail(str(e))
    samples = evaluation.select(samples, kept_folds, per_source)
    reuse = ({(r.file, r.condition): r for r in evaluation.read_rows(reuse_geometry)} if reuse_geometry else None)
    try:
        check_output_dir(None, out_dir)
    except ValueError as e:
        _fail(str(e))
    analyzer = Analyzer(settings)
    with Progress(TextColumn("evaluating"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TimeRemainingColumn(), console=err, disable=quiet) as bar:
        task = bar.add_task("eval", total=len(samples))
        rows = evaluation.collect(samples, named, analyzer, reuse_geometry=reuse,
                                  progress=lambda done, total: bar.update(task, completed=done))
    thresholds = analyzer.models()[3]().thresholds
    summary = evaluation.summarize(rows, thresholds)
    evaluation.write_rows(rows, out_dir / "rows.jsonl")
    record = {"command": "facecheck eval " + " ".join(sys.argv[2:]), "data": str(data), "images": len(samples),
              "conditions": list(named), "models": evaluation.model_digests(), "summary": summary}
    (out_dir / "eval.json").write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    plots = evaluation.write_plots(rows, summary, out_dir)
    if not quiet:
        table = Table(title=f"facecheck eval: {len(samples)} images x {len(named)} conditions "
                            f"(thresholds: default {thresholds['default']:.3f})")
        for column in ("condition", "StyleGAN n", "AUC vs natural", "AUC vs FFHQ", "TPR default",
                       "FPR natural", "FPR FFHQ", "TPR sensitive", "SD flagged"):
            table.add_column(column)
        pct = evaluation.percent
        auc = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
        for name, b in list(summary["by_condition"].items()) + [("all", summary["all_conditions"])]:
            d = b["default"]
            table.add_row(name, str(b["n"]["stylegan"]), auc(b["auc_vs_real_natural"]), auc(b["auc_vs_real_ffhq"]),
                          evaluation.percent_of(d, "tpr"), evaluation.percent_of(d, "flagged_real_natural"),
                          evaluation.percent_of(d, "flagged_real_ffhq"),
                          pct(b["sensitive"]["tpr"]), pct(d["flagged_other_gen"]))
        err.print(table)
        err.print("(in brackets: 95% exact binomial intervals; each image enters a condition once)")
        if summary["errors"]:
            err.print(f"{summary['errors']} of {len(rows)} copies could not be scored and are left out of every rate "
                      "(their reasons: the `error` field of rows.jsonl)")
        err.print(f"wrote {out_dir / 'eval.json'}, {out_dir / 'rows.jsonl'}, " + ", ".join(str(p) for p in plots))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
