"""Results -> a Table-5-style rich table (rows = models, columns = data sets) + JSON + CSV."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    from rich.table import Table

    from depthdistill.evaluation.runner import DatasetResult

# Paper Table 5 (AbsRel, delta1): what a user compares against (DAv2-L teacher and student).
PAPER_TABLE5 = {
    "DAv2-L (paper)": {"nyuv2": (0.045, 0.979), "kitti": (0.074, 0.946), "diode": (0.262, 0.754),
                       "scannet": (0.042, 0.978), "eth3d": (0.131, 0.865)},
    "Distill Any Depth-L (paper)": {"nyuv2": (0.043, 0.981), "kitti": (0.070, 0.949), "diode": (0.233, 0.753),
                                    "scannet": (0.043, 0.980), "eth3d": (0.054, 0.981)},
}
CSV_FIELDS = ("model", "dataset", "abs_rel", "abs_rel_se", "delta1", "delta1_se", "edge_f1", "edge_f1_se",
              "thin_abs_rel", "thin_abs_rel_se", "num_images", "num_skipped", "space", "seconds")


def _cell(abs_rel: float, delta1: float) -> str:
    if math.isnan(abs_rel):
        return "-"
    return f"{abs_rel:.3f} / {delta1:.3f}"


def build_table(results: Sequence["DatasetResult"], *, paper_rows: bool = True) -> "Table":
    """Rows = models (in run order), columns = data sets, cells `AbsRel / delta1`."""
    from rich.table import Table

    models = list(dict.fromkeys(r.model for r in results))
    datasets = list(dict.fromkeys(r.dataset for r in results))
    table = Table(title="Affine-aligned AbsRel (lower is better) / delta1 (higher is better)")
    table.add_column("model", style="bold")
    for name in datasets:
        table.add_column(name, justify="right")
    cells = {(r.model, r.dataset): r for r in results}
    for model in models:
        row = [model]
        for name in datasets:
            r = cells.get((model, name))
            row.append("-" if r is None else _cell(r.abs_rel, r.delta1)
                       + (f" ({r.num_skipped} skipped)" if r.num_skipped else ""))
        table.add_row(*row)
    if paper_rows and any(name in ref for ref in PAPER_TABLE5.values() for name in datasets):
        for model, ref in PAPER_TABLE5.items():
            table.add_row(model, *[_cell(*ref[n]) if n in ref else "" for n in datasets], style="dim")
    return table


def write_results(results: Sequence["DatasetResult"], out: str | Path, extra: dict | None = None) -> dict[str, Path]:
    """results.json (summary + skipped lists), results.csv (one row per model x set),
    per_image.jsonl (every image's metrics). Returns the paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "results.json", "csv": out / "results.csv", "per_image": out / "per_image.jsonl"}
    payload = {"protocol": "marigold-affine-lsq", **(extra or {}),
               "results": [{**r.summary(), "skipped": [list(s) for s in r.skipped]} for r in results]}
    paths["json"].write_text(json.dumps(payload, indent=2, allow_nan=True))
    with paths["csv"].open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
        for r in results:
            writer.writerow(r.summary())
    with paths["per_image"].open("w") as f:
        for r in results:
            for row in r.per_image:
                f.write(json.dumps({"model": r.model, "dataset": r.dataset, **row}) + "\n")
    return paths
