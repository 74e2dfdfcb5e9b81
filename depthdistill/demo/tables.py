"""Mean +- spread over seeds and Markdown tables (pure Python: no numpy, no torch).

Spread is the sample standard deviation (ddof = 1) over the finite values; with a single
finite value it is 0 and the table says "1 run". Non-finite values (a diverged run, a data
set without valid pixels) are counted as failed, never averaged in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Sequence


@dataclass(frozen=True)
class Stat:
    mean: float
    spread: float  # sample standard deviation (ddof=1); 0.0 when n < 2
    n: int  # finite values averaged
    failed: int = 0  # non-finite values left out

    def format(self, digits: int = 3) -> str:
        if self.n == 0:
            return f"failed ({self.failed} runs)" if self.failed else "-"
        text = f"{self.mean:.{digits}f}"
        text += f" ± {self.spread:.{digits}f}" if self.n > 1 else " (1 run)"
        return text + (f" ({self.failed} failed)" if self.failed else "")


def aggregate(values: Iterable[float]) -> Stat:
    """Mean and sample standard deviation of the finite values."""
    vals = [float(v) for v in values]
    finite = [v for v in vals if math.isfinite(v)]
    n = len(finite)
    if n == 0:
        return Stat(math.nan, math.nan, 0, len(vals))
    mean = sum(finite) / n
    spread = math.sqrt(sum((v - mean) ** 2 for v in finite) / (n - 1)) if n > 1 else 0.0
    return Stat(mean, spread, n, len(vals) - n)


def group_stats(rows: Sequence[dict], by: str, metrics: Sequence[str]) -> dict[str, dict[str, Stat]]:
    """rows (one per run, e.g. {"variant": "hybrid", "seed": 1, "abs_rel": .1}) -> per group, per metric.

    Groups keep their first-seen order.
    """
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(str(row[by]), []).append(row)
    return {g: {m: aggregate(r.get(m, math.nan) for r in rs) for m in metrics} for g, rs in groups.items()}


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub Markdown table; cells are str()-ed, '|' escaped."""
    def cell(x: object) -> str:
        return str(x).replace("|", "\\|")

    lines = ["| " + " | ".join(cell(h) for h in header) + " |",
             "|" + "|".join("---" for _ in header) + "|"]
    for row in rows:
        if len(row) != len(header):
            raise ValueError(f"markdown_table: a row has {len(row)} cells for {len(header)} columns")
        lines.append("| " + " | ".join(cell(c) for c in row) + " |")
    return "\n".join(lines)


def fmt(x: float, digits: int = 3) -> str:
    """A metric cell: fixed digits, '-' for a missing or non-finite value."""
    return f"{x:.{digits}f}" if isinstance(x, (int, float)) and math.isfinite(x) else "-"
