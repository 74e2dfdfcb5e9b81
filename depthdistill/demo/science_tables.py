"""`make science` results -> docs/science/*.md: mean +- spread over seeds, commands, wall times.

Every number comes from the runs (`runs.json` rows: one per variant and seed, with the eval
AbsRel / delta1 of its student) or from `fig2.measure_fig2`; the sentences comparing with the
paper are chosen by the measured order, never typed in.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from .tables import Stat, aggregate, fmt, group_stats, markdown_table

PAPER = {
    "fig2": "local least-squares alignment beats global alignment on the crop (Fig. 2b)",
    "table1": "shared-context distillation works best with no normalization, local-global with hybrid (Table 1)",
    "table2": "both context terms together beat either alone and the baseline (Table 2)",
    "table4": "the multi-teacher student beats each single teacher (Table 4)",
}
WHY = {
    "fig2": ("a teacher whose errors are a smooth affine drift across the image gains little from local "
             "alignment; the tiny embedded teachers' errors are mostly local texture noise"),
    "table1": ("the tiny teachers disagree with the world's true depth mostly at object scale, short trainings "
               "favour whichever loss has the largest useful gradient early, and a random-init student is far "
               "from the teachers' output range (which hurts 'none')"),
    "table2": ("world images are 384x512, so a random crop changes the view much less than an SA-1B photo "
               "and the local patches are only up to 3x3 at 112 px; with few steps the extra term mostly "
               "adds noise"),
    "table4": ("a student of a few hundred steps is still far below its teachers; the multi-teacher gain of "
               "the paper needs a student that fits both teachers, and a weak second teacher (GenPercept-tiny) "
               "drags the average"),
}


def command_line() -> str:
    return "python -m depthdistill.demo.science " + shlex.join(sys.argv[1:])


def _header(title: str, s, seconds: float, extra: list[str]) -> list[str]:
    return [f"# {title}", "", f"Made by `{command_line()}` ({'quick path' if s.quick else 'full run'}: "
            f"{s.seeds} seed(s), {s.steps} steps per training, {s.eval_n} world eval images) in "
            f"{seconds / 60:.1f} min on this machine. Raw rows: `{s.out / 'runs.json'}`; every training's "
            f"command and time: `{s.out / 'science.jsonl'}`.", "", *extra]


def _verdict(table: str, agrees: bool) -> str:
    if agrees:
        return f"Measured order agrees with the paper: {PAPER[table]}."
    return (f"Measured order does NOT agree with the paper ({PAPER[table]}). What could explain it here: "
            f"{WHY[table]}.")


def write_fig2(fig2: dict[str, list[dict]], s, seconds: float) -> Path:
    keys = [("global_ls_abs_rel", "global LS AbsRel"), ("local_ls_abs_rel", "local LS AbsRel"),
            ("global_ls_delta1", "global LS δ1"), ("local_ls_delta1", "local LS δ1"),
            ("card_crop_global_abs_rel", "card: whole image fed, AbsRel"),
            ("card_crop_local_abs_rel", "card: crop fed, AbsRel")]
    rows, agree = [], True
    for teacher, seed_rows in fig2.items():
        stats = {k: aggregate(r[k] for r in seed_rows) for k, _ in keys}
        rows.append([teacher] + [stats[k].format() for k, _ in keys])
        agree &= stats["local_ls_abs_rel"].mean <= stats["global_ls_abs_rel"].mean
    lines = _header("Fig. 2: global vs local least-squares alignment on the central crop", s, seconds, [
        "Central (H/2, W/2) crop of world eval renders; the same whole-image prediction aligned to "
        "ground-truth disparity over the whole image (global LS) or over the crop (local LS); metrics on "
        "the crop. The card columns are `depthdistill.models.teacher_card.measure_teacher` (teacher fed the "
        "crop vs the whole image, each aligned on the crop). Mean ± sample std over world seeds.", "",
        markdown_table(["teacher", *[name for _, name in keys]], rows), "", _verdict("fig2", agree), ""])
    return _write(s.docs / "fig2.md", lines)


def _cell(stat: Stat) -> str:
    return stat.format()


def _best(stats: dict[str, Stat]) -> str:
    finite = {k: v.mean for k, v in stats.items() if v.n}
    return min(finite, key=finite.get) if finite else ""


def write_table(table: str, rows: list[dict], results: dict[str, dict], s, stores: dict, seconds: float) -> Path:
    mine = [r for r in rows if r["table"] == table]
    stats = group_stats(mine, "variant", ("abs_rel", "delta1"))
    extra = [f"Label stores: random crop `{stores.get('crop')}`"
             + (f", no random crop `{stores['nocrop']}` (`views.crop_min` above the short side: the crop is "
                "the whole short side, placed at a random x)" if "nocrop" in stores else "") + ".", ""]
    if table == "table1":
        return _write_table1(stats, s, seconds, extra)
    body = [[name, _cell(st["abs_rel"]), _cell(st["delta1"])] for name, st in stats.items()]
    if table == "table2":
        title = "Table 2: effect of cross-context distillation"
        note = ("L_feat and L_grad are off (w_feat = w_grad = 0) to isolate the context terms; normalization "
                "is the config's (norm_sc / norm_lg). 'both' = L_sc + 0.5 L_lg on the random-crop store.")
        best = _best({k: v["abs_rel"] for k, v in stats.items()})
        agree = best == "both"
    else:
        title = "Table 4: single-teacher students vs the multi-teacher student"
        note = ("Full loss of the config (L_sc + 0.5 L_lg + L_feat + 2 L_grad); one teacher drawn per batch with "
                "the weights shown. Teacher rows: the teacher itself on the same eval (no seeds).")
        teacher_rows = [[f"teacher {m[8:]}", fmt(r["abs_rel"]), fmt(r["delta1"])]
                        for m, r in results.items() if m.startswith("teacher:")]
        body = teacher_rows + body
        multi = [k for k in stats if k.startswith("multi")]
        teachers_best = min((r["abs_rel"] for m, r in results.items() if m.startswith("teacher:")), default=float("nan"))
        agree = bool(multi) and stats[multi[0]]["abs_rel"].mean < teachers_best
    lines = _header(title, s, seconds, extra + [note, "", markdown_table(
        ["variant", "world AbsRel ↓ (mean ± sd)", "world δ1 ↑ (mean ± sd)"], body), "", _verdict(table, agree), ""])
    return _write(s.docs / f"{table}.md", lines)


def _write_table1(stats: dict[str, dict[str, Stat]], s, seconds: float, extra: list[str]) -> Path:
    norms = list(dict.fromkeys(k.split("|")[0] for k in stats))
    cols = ("shared-context only", "local-global only")
    body = []
    for norm in norms:
        row = [norm]
        for col in cols:
            st = stats.get(f"{norm}|{col}")
            row += [_cell(st["abs_rel"]), _cell(st["delta1"])] if st else ["-", "-"]
        body.append(row)
    best = {col: _best({n: stats[f"{n}|{col}"]["abs_rel"] for n in norms if f"{n}|{col}" in stats}) for col in cols}
    agree = best[cols[0]] == "none" and best[cols[1]] == "hybrid"
    lines = _header("Table 1: normalization across cross-context distillation", s, seconds, extra + [
        "Shared-context only: L_sc alone (w_lg = 0) with the row's norm_sc. Local-global only: L_lg alone "
        "(w_sc = 0, w_lg = 1) with the row's norm_lg. L_feat and L_grad off. Random-crop store.", "",
        markdown_table(["normalization", "SC only AbsRel ↓", "SC only δ1 ↑", "LG only AbsRel ↓", "LG only δ1 ↑"], body),
        "", f"Best AbsRel: shared-context only → {best[cols[0]] or '-'}; local-global only → {best[cols[1]] or '-'}.",
        "", _verdict("table1", agree), ""])
    return _write(s.docs / "table1.md", lines)


def _write(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    return path
