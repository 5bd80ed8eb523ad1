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


def _fail(message: str, code: int = 2) -> None:
    err.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


@app.command()
def scan(folder: Path = typer.Argument(..., help="Folder of images, scanned recursively."),
         out_dir: Path = typer.Option(Path("facecheck-out"), "--out", "-o", help="Where results go (created if missing)."),
         index: Optional[Path] = typer.Option(None, "--index", help="Persistent index of known avatars (SQLite), grown by every scan."),
         scan_name: Optional[str] = typer.Option(None, "--name", help="Name of this scan in the index (default: the --out folder's name)."),
         device: str = typer.Option("auto", help="auto | cpu | cuda"),
         workers: Optional[int] = typer.Option(None, help="Decoding processes (default: one per core; 0: none)."),
         max_pixels: int = typer.Option(engine.DEFAULT_MAX_PIXELS, help="Refuse images with more pixels than this."),
         quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or summary.")):
    """Scan FOLDER; write results.jsonl and results.csv to --out."""
    if not folder.is_dir():
        _fail(f"no such folder: {folder}")
    try:
        engine.check_output_dir(folder, out_dir)
    except ValueError as e:
        _fail(str(e))
    settings = engine.Settings(device=device, workers=workers, max_pixels=max_pixels, index=index,
                               scan_name=scan_name)
    sources = list(engine.walk(folder))
    with Progress(TextColumn("scanning"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
                  TimeElapsedColumn(), TimeRemainingColumn(), console=err, disable=quiet) as bar:
        task = bar.add_task("scan", total=len(sources), rate="")

        def progress(done: int, total: int) -> None:
            elapsed = bar.tasks[0].elapsed or 0
            bar.update(task, completed=done, rate=f"{done / elapsed:.0f} img/s" if elapsed > 1 else "")

        try:
            summary = engine.run_scan(sources, out_dir, settings, progress)
        except KeyboardInterrupt:
            err.print("interrupted: finished files are kept; run the same command again to continue")
            raise typer.Exit(130)
    if not quiet:
        table = Table(title=f"facecheck scan of {folder}", show_header=False)
        for name, value in [("files", summary.files), ("decoded this run", summary.scanned),
                            ("errors", summary.errors), ("GAN faces", summary.gan),
                            ("reused-avatar groups", f"{summary.groups} ({summary.grouped_files} files)"),
                            ("seen in earlier scans", summary.seen_before),
                            ("time", f"{summary.seconds:.1f} s"), ("results", str(out_dir / "results.jsonl"))]:
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
          device: str = typer.Option("auto", help="auto | cpu | cuda")):
    """Give a readable verdict on one IMAGE."""
    if not image.exists():
        _fail(f"no such file: {image}")
    result = engine.score_image(image, engine.Settings(device=device, workers=0, index=index))
    if as_json:
        sys.stdout.write(result.to_json() + "\n")
    else:
        out.print(describe(result), highlight=False, markup=False)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
