"""How numbers and counts read in report.html: plain text, never markup (the template escapes it)."""
from __future__ import annotations

import math


def number(x) -> float:
    """A sortable number: finite ints and floats as they are, anything else (None, NaN, a bool) -1."""
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) else -1.0


def score(x) -> str:
    return f"{x:.3f}" if isinstance(x, (int, float)) and not isinstance(x, bool) else "n/a"


def whole(x) -> str:
    """'1,000'; what is not a whole number stays as it is."""
    try:
        return f"{int(x):,}"
    except (TypeError, ValueError):
        return str(x)


def count(n: int, noun: str, plural: str | None = None) -> str:
    """'1 file', '2 files', '1,000 copies'."""
    return f"{whole(n)} {noun if n == 1 else plural or noun + 's'}"


def duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.1f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def short(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "\u2026"


def left_out(shown: int, total: int, what: str, order: str, column: str) -> str:
    """How many of the `what`s (singular) are shown, and where the rest are."""
    if shown >= total:
        return f"The only {what} is shown." if total == 1 else f"All {count(total, what)} are shown."
    return (f"Showing {whole(shown)} of {count(total, what)} ({order}); the other {whole(total - shown)} are "
            f"listed in results.jsonl and results.csv ({column}).")


def value_lines(v) -> list[str]:
    """A settings or summary value as lines of text: numbers to 3 decimals, a mapping one entry a line,
    never blank."""
    if v is None:
        return ["not set"]
    if isinstance(v, bool):
        return ["yes" if v else "no"]
    if isinstance(v, float):
        return [f"{v:.3f}"]
    if isinstance(v, int):
        return [whole(v)]
    if isinstance(v, dict):
        lines = []
        for k, x in v.items():
            first, *rest = value_lines(x)
            lines += [f"{k}: {first}", *rest]
        return lines or ["none"]
    if isinstance(v, (list, tuple)):
        return [", ".join("; ".join(value_lines(x)) for x in v) or "none"]
    return [str(v)]
