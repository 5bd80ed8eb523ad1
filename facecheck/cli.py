"""The `facecheck` command line: a thin layer over facecheck.engine."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from . import engine
from .result import Result

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Find StyleGAN faces and reused avatars in profile photos, offline.")
err = Console(stderr=True)
out = Console()


MODE_HELP = ("Operating point: default flags <= 0.1% of real natural photos, strict <= 0.01%, "
             "sensitive <= 1% (see weights/fusion.md).")


def _check_options(mode: str, device: str = "auto") -> None:
    """Refuse a bad --mode or --device before any work starts."""
    from .runtime import providers_for
    from .verdict import MODES
    if mode not in MODES:
        _fail(f"--mode must be one of {', '.join(MODES)}, not {mode!r}")
    try:
        providers_for(device)
    except (ValueError, RuntimeError) as e:
        _fail(str(e))


def _check_index(index: Optional[Path]) -> None:
    """Refuse an --index that is not an index of known avatars before any work starts."""
    from .known import check_index
    if index is not None:
        try:
            check_index(index)
        except ValueError as e:
            _fail(str(e))


def _fail(message: str, code: int = 2) -> None:
    err.print(f"[bold red]error:[/] {message}", soft_wrap=True)   # one line, however long the path
    raise typer.Exit(code)


@app.command()
def scan(folder: Path = typer.Argument(..., help="Folder of images, scanned recursively."),
         out_dir: Path = typer.Option(Path("facecheck-out"), "--out", "-o", help="Where results go (created if missing)."),
         index: Optional[Path] = typer.Option(None, "--index", help="Persistent index of known avatars (SQLite), grown by every scan."),
         scan_name: Optional[str] = typer.Option(None, "--name", help="Name of this scan in the index (default: the --out folder's name)."),
         device: str = typer.Option("auto", help="auto | cpu | cuda"),
         mode: str = typer.Option("default", help=MODE_HELP),
         workers: Optional[int] = typer.Option(None, help="Decoding processes (default: one per core; 0: none)."),
         batch_size: int = typer.Option(32, help="Images per model batch; also how often state is committed."),
         max_pixels: int = typer.Option(engine.DEFAULT_MAX_PIXELS, help="Refuse images with more pixels than this."),
         follow_links: bool = typer.Option(False, "--follow-links", help="Read symbolic links that lead outside FOLDER "
                                           "(by default each gets a row saying it was not followed)."),
         quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or summary.")):
    """Scan FOLDER; write results.jsonl and results.csv to --out."""
    if not folder.is_dir():
        _fail(f"no such folder: {folder}")
    _check_index(index)
    try:
        engine.check_output_dir(folder, out_dir)
    except ValueError as e:
        _fail(str(e))
    _check_options(mode, device)
    settings = engine.Settings(device=device, workers=workers, batch_size=batch_size, max_pixels=max_pixels, index=index,
                               scan_name=scan_name, mode=mode, follow_links=follow_links)

    def entries():
        return engine.walk(folder, follow_links=follow_links, exclude=out_dir)

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
            summary = engine.run_scan(entries(), out_dir, settings, progress, folder, total, grouping_progress)
        except KeyboardInterrupt:
            err.print("interrupted: finished files are kept; run the same command again to continue")
            raise typer.Exit(130)
    if not quiet:
        table = Table(title=f"facecheck scan of {folder}", show_header=False)
        for name, value in [("files", summary.files), ("decoded this run", summary.scanned),
                            ("errors", summary.errors), ("GAN faces", summary.gan),
                            ("reused-avatar groups", f"{summary.groups} ({summary.grouped_files} files)"),
                            ("seen in earlier scans", summary.seen_before),
                            ("time", f"{summary.seconds:.1f} s"), ("results", str(out_dir / "results.jsonl")),
                            ("report", str(out_dir / "report.html"))]:
            table.add_row(name, str(value))
        err.print(table)


def describe(result: Result) -> str:
    """A person-readable account of one result."""
    lines = [f"{result.path}"]
    if result.error:
        lines.append(f"  error: {result.error}")
        return "\n".join(lines)
    lines.append(f"  verdict: {result.verdict or 'not assessed'}"
                 + (f" (GAN score {result.gan_score:.3f})" if result.gan_score is not None else ""))
    lines.append(f"  size: {result.width}x{result.height}  sha256: {result.sha256[:16]}...")
    lines.append(f"  phash: {result.phash}  dct256: {result.dct256}")
    if result.eyes:
        (lx, ly), (rx, ry) = result.eyes
        lines.append(f"  eyes at ({lx:.0f}, {ly:.0f}) and ({rx:.0f}, {ry:.0f}) px")
    for name in ("eye_score", "spectral_score"):
        value = getattr(result, name)
        if value is not None:
            lines.append(f"  {name.replace('_', ' ')}: {value:.3f}")
    if result.seen_before is not None:
        lines.append("  seen before in: " + ", ".join(result.seen_in) if result.seen_before
                     else "  not in the index of known avatars")
    lines += [f"  - {reason}" for reason in result.reasons]
    return "\n".join(lines)


@app.command()
def check(image: Path = typer.Argument(..., help="One image file."),
          as_json: bool = typer.Option(False, "--json", help="Print the results.jsonl record instead."),
          index: Optional[Path] = typer.Option(None, "--index", help="Look the image up in this index of known avatars."),
          device: str = typer.Option("auto", help="auto | cpu | cuda"),
          mode: str = typer.Option("default", help=MODE_HELP)):
    """Give a readable verdict on one IMAGE."""
    if not image.exists():
        _fail(f"no such file: {image}")
    _check_options(mode, device)
    _check_index(index)
    result = engine.score_image(image, engine.Settings(device=device, workers=0, index=index, mode=mode))
    if as_json:
        sys.stdout.write(result.to_json() + "\n")
    else:
        out.print(describe(result), highlight=False, markup=False, soft_wrap=True)


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
                 quiet: bool = typer.Option(False, "--quiet", "-q")):
    """Measure detection on labelled images: ROC, TPR at fixed FPR, by source and degradation."""
    from . import evaluation
    from .dataset import data_root
    _check_options("default", device)
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
    samples = evaluation.select(samples, [int(f) for f in folds.split(",")] if folds else None, per_source)
    reuse = ({(r.file, r.condition): r for r in evaluation.read_rows(reuse_geometry)} if reuse_geometry else None)
    analyzer = engine.Analyzer(engine.Settings(device=device))
    out_dir.mkdir(parents=True, exist_ok=True)
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
