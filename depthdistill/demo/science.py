"""`make science`: the paper's ablations in miniature, real trainings on one label store.

    python -m depthdistill.demo.science --config stages.yaml --out runs/science --docs docs/science
    python -m depthdistill.demo.science --quick ...        (1 seed, 2 steps: checks the path)
    python -m depthdistill.demo.science --headline ...     (the headline: `depthdistill.demo.headline`)

Labels are computed once per store (`depthdistill labels`): the random-crop store of the
config, and for Table 2's "no random crop" rows a second store whose crop is the whole short
side (`views.crop_min` set above any image's short side; `plan_view` then uses the short side,
the square still placed at a random x). Every training is `depthdistill train` on a store with
a fixed step budget, one per seed; every student is scored by one `depthdistill eval` on the
world eval split. Tables with mean +- spread over seeds go to `<docs>/*.md` (see `science_tables`).

- Fig. 2: per teacher, central (H/2, W/2) crop: least-squares alignment on the whole image then
  cropped (global LS) vs alignment on the crop (local LS), same prediction; plus the teacher
  cards' `measure_teacher` (teacher fed the crop vs the whole image). Spread over world seeds.
- Table 1: normalization none/global/local/hybrid x (shared-context only, local-global only).
- Table 2: baseline (no random crop, L_sc) / + shared context (random crop) / + local-global / both.
- Table 4: student from each single teacher vs the multi-teacher student (config weights).
Tables 1 and 2 switch L_feat and L_grad off to isolate the context losses (say so in the docs).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from depthdistill.config import NORMALIZATIONS as NORMS  # Table 1's rows

from .chain import REPO, Step, StepFailedError, StepRecord, cli, find_store, run_step

logger = logging.getLogger(__name__)
NO_CROP_MIN = 1_000_000  # larger than any short side: the crop is the whole short side
ISOLATE = {"train.w_feat": 0.0, "train.w_grad": 0.0}


@dataclass(frozen=True)
class Variant:
    table: str  # "table1" | "table2" | "table4"
    name: str  # row / cell name in the table
    store: str  # "crop" | "nocrop"
    overrides: tuple[tuple[str, object], ...]  # dotted keys; "teacher_weights" = {name: weight}


@dataclass
class Settings:
    config: Path
    out: Path
    docs: Path
    steps: int = 200
    seeds: int = 3
    eval_n: int = 32
    jobs: int = 2
    images: str | None = None
    only: tuple[str, ...] = ("fig2", "table1", "table2", "table4")
    quick: bool = False


def variants(teachers: dict[str, float], norm_sc: str, norm_lg: str) -> list[Variant]:
    """Every training cell of Tables 1, 2 and 4 (before seeds)."""
    out = []
    for norm in NORMS:
        out.append(Variant("table1", f"{norm}|shared-context only", "crop", tuple(
            {**ISOLATE, "train.w_sc": 1.0, "train.w_lg": 0.0, "train.norm_sc": norm}.items())))
        out.append(Variant("table1", f"{norm}|local-global only", "crop", tuple(
            {**ISOLATE, "train.w_sc": 0.0, "train.w_lg": 1.0, "train.norm_lg": norm}.items())))
    t2 = {"baseline (no random crop, L_sc)": ("nocrop", 0.0), "+ shared context (random crop)": ("crop", 0.0),
          "+ local-global (no random crop)": ("nocrop", 0.5), "both": ("crop", 0.5)}
    for name, (store, w_lg) in t2.items():
        out.append(Variant("table2", name, store, tuple({**ISOLATE, "train.w_sc": 1.0, "train.w_lg": w_lg,
                                                         "train.norm_sc": norm_sc, "train.norm_lg": norm_lg}.items())))
    for name in teachers:
        only = {t: (1.0 if t == name else 0.0) for t in teachers}
        out.append(Variant("table4", f"student of {name} only", "crop", (("teacher_weights", only),)))
    weights = "/".join(f"{w:g}" for w in teachers.values())
    out.append(Variant("table4", f"multi-teacher student ({weights})", "crop", (("teacher_weights", dict(teachers)),)))
    return out


def derive(base: dict, overrides: dict, seed: int, steps: int) -> dict:
    """The config dict of one training: base + overrides + seed + final-only checkpoint; no trainer eval."""
    from depthdistill.config import _apply_overrides

    data = json.loads(json.dumps(base))
    weights = overrides.get("teacher_weights")
    for t in data.get("teachers", []):
        if weights is not None:
            t["weight"] = float(weights[t["name"]])
    dotted = {k: v for k, v in overrides.items() if k != "teacher_weights"}
    dotted.update({"train.seed": seed, "train.eval_images": 0, "train.ckpt_every": steps, "train.eval_every": steps})
    return _apply_overrides(data, dotted)


def run_key(store: Path, data: dict) -> str:
    """Same store + same resolved config = same run (Tables 1 and 2 share cells)."""
    blob = json.dumps({"store": str(store), "train": data.get("train"), "teachers": data.get("teachers")},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def label_stores(s: Settings, base: dict, log: Path) -> dict[str, Path]:
    """`depthdistill labels` for the random-crop store, and the no-crop one when Table 2 runs."""
    from depthdistill.config import load_config

    stores = {}
    needed = {"crop"} | ({"nocrop"} if "table2" in s.only else set())
    for kind in sorted(needed):
        cfg = s.config
        if kind == "nocrop":
            data = json.loads(json.dumps(base))
            data.setdefault("views", {})["crop_min"] = NO_CROP_MIN
            cfg = s.out / "configs" / "labels-nocrop.yaml"
            cfg.parent.mkdir(parents=True, exist_ok=True)
            cfg.write_text(yaml.safe_dump(data, sort_keys=False))
            load_config(cfg)
        argv = cli("labels", "--config", cfg, "--out", s.out / f"labels-{kind}", "--no-progress",
                   *(("--images", s.images) if s.images else ()))
        record(log, run_step(Step(f"labels ({kind})", argv, s.out / "logs" / f"labels-{kind}.log"), echo=False))
        stores[kind] = find_store(s.out / f"labels-{kind}", s.out / "logs" / f"labels-{kind}.log")
    return stores


def record(log: Path, r: StepRecord, **extra) -> None:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as f:
        f.write(json.dumps({**asdict(r), **extra}) + "\n")
    prefix = f"[{extra['done']}] " if "done" in extra else ""
    print(f"  {prefix}{r.name}: {r.seconds:.0f} s", flush=True)


def plan_runs(s: Settings, base: dict, stores: dict[str, Path]) -> list[dict]:
    """One row per (variant, seed): its config file, run folder and the train step (deduplicated runs)."""
    norm_sc = base.get("train", {}).get("norm_sc", "hybrid")
    norm_lg = base.get("train", {}).get("norm_lg", "hybrid")
    teachers = {t["name"]: float(t.get("weight", 1.0)) for t in base.get("teachers", [])}
    rows = []
    for v in variants(teachers, norm_sc, norm_lg):
        if v.table not in s.only:
            continue
        for seed in range(s.seeds):
            data = derive(base, dict(v.overrides), seed, s.steps)
            key = run_key(stores[v.store], data)
            cfg = s.out / "configs" / f"{key}.yaml"
            if not cfg.is_file():
                cfg.parent.mkdir(parents=True, exist_ok=True)
                cfg.write_text(f"# {v.table} / {v.name} / seed {seed}\n" + yaml.safe_dump(data, sort_keys=False))
            run = s.out / "runs" / key
            rows.append({"table": v.table, "variant": v.name, "seed": seed, "key": key, "config": str(cfg),
                         "run": str(run), "store": str(stores[v.store]),
                         "argv": list(cli("train", "--shards", stores[v.store], "--config", cfg, "--out", run,
                                          "--steps", s.steps))})
    return rows


def train_all(rows: list[dict], s: Settings, log: Path) -> dict[str, float]:
    """Run each distinct training once (s.jobs at a time); returns key -> seconds (NaN if it failed)."""
    todo = {r["key"]: r for r in rows}
    seconds: dict[str, float] = {}

    def one(row: dict) -> None:
        done = Path(row["run"]) / "science-done.json"
        if done.is_file():
            seconds[row["key"]] = json.loads(done.read_text())["seconds"]
            return
        step = Step(f"train {row['table']} / {row['variant']} / seed {row['seed']}", tuple(row["argv"]),
                    s.out / "logs" / f"train-{row['key']}.log")
        try:
            r = run_step(step, echo=False, threads=1 if s.jobs > 1 else None)
        except StepFailedError as exc:
            logger.error("%s", exc)
            seconds[row["key"]] = float("nan")
            return
        done.write_text(json.dumps({"seconds": r.seconds, "command": r.command}))
        seconds[row["key"]] = r.seconds
        record(log, r, key=row["key"], done=f"{len(seconds)}/{len(todo)}")

    print(f"training {len(todo)} students ({s.steps} steps each, {s.jobs} at a time)", flush=True)
    with ThreadPoolExecutor(max_workers=s.jobs) as pool:
        list(pool.map(one, todo.values()))
    failed = [k for k, v in seconds.items() if not math.isfinite(v)]
    if failed and len(failed) == len(todo):
        raise StepFailedError("train", 1, "every training failed", s.out / "logs" / f"train-{failed[0]}.log", "")
    return seconds


def evaluate_all(rows: list[dict], s: Settings, base_cfg: Path, teachers: list[str], eval_root: Path,
                 log: Path, done: dict[str, float]) -> dict[str, dict]:
    """One `depthdistill eval` over every finished student (+ the teachers): spec -> result row."""
    finished = {str(Path(r["run"]) / "student") for r in rows if math.isfinite(done.get(r["key"], math.nan))}
    specs = [f"teacher:{t}" for t in teachers] + sorted(finished)
    argv = cli("eval", "--config", base_cfg, "--dataset", f"world={eval_root}", "--out", s.out / "eval",
               "--no-progress", *[a for m in specs for a in ("--model", m)])
    record(log, run_step(Step("eval", argv, s.out / "logs" / "eval.log"), echo=False))
    results = json.loads((s.out / "eval" / "results.json").read_text())["results"]
    return {r["model"]: r for r in results}


def parse_args(argv: list[str] | None = None) -> Settings:
    p = argparse.ArgumentParser(prog="python -m depthdistill.demo.science", description=__doc__.splitlines()[0])
    p.add_argument("--config", type=Path, default=Path("stages.yaml"))
    p.add_argument("--out", type=Path, default=Path("runs/science"))
    p.add_argument("--docs", type=Path, default=REPO / "docs" / "science", help="where the tables go")
    p.add_argument("--quick", action="store_true", help="1 seed, 2 steps, 4 eval images: checks the path")
    p.add_argument("--steps", type=int, default=None, help="steps per training (default 200; quick 2)")
    p.add_argument("--seeds", type=int, default=None, help="seeds per cell (default 3; quick 1)")
    p.add_argument("--eval-n", type=int, default=None, help="world eval images (default 32; quick 4)")
    p.add_argument("--jobs", type=int, default=2, help="trainings at once (each one thread)")
    p.add_argument("--images", default=None, help="override images.source, e.g. world://unlabeled?n=16")
    p.add_argument("--only", default="fig2,table1,table2,table4", help="comma-separated subset")
    a = p.parse_args(argv)
    only = tuple(x.strip() for x in a.only.split(",") if x.strip())
    bad = sorted(set(only) - {"fig2", "table1", "table2", "table4"})
    if bad:
        p.error(f"--only {','.join(bad)}: choose from fig2, table1, table2, table4")
    q = a.quick
    return Settings(config=a.config, out=a.out, docs=a.docs, steps=a.steps or (2 if q else 200),
                    seeds=a.seeds or (1 if q else 3), eval_n=a.eval_n or (4 if q else 32), jobs=max(1, a.jobs),
                    images=a.images, only=only, quick=q)


def run_science(s: Settings) -> list[Path]:
    """Everything, in order; returns the Markdown files written."""
    from depthdistill.config import load_config

    from . import science_tables as st
    from .fig2 import measure_fig2

    start = time.perf_counter()
    cfg = load_config(s.config)  # a bad config stops here, before any work
    base = yaml.safe_load(s.config.read_text()) or {}
    log = s.out / "science.jsonl"
    written: list[Path] = []
    if "fig2" in s.only:
        t0 = time.perf_counter()
        fig2 = measure_fig2(cfg, num_images=s.eval_n, seeds=s.seeds)
        written.append(st.write_fig2(fig2, s, time.perf_counter() - t0))
    if not set(s.only) & {"table1", "table2", "table4"}:
        return written
    stores = label_stores(s, base, log)
    eval_root = s.out / "eval-world"
    height, width = cfg.images.image_size
    export = cli("world", "export", "--split", "eval", "--n", s.eval_n, "--height", height, "--width", width,
                 "--out", eval_root)
    record(log, run_step(Step("world export", export, s.out / "logs" / "world-export.log"), echo=False))
    rows = plan_runs(s, base, stores)
    seconds = train_all(rows, s, log)
    results = evaluate_all(rows, s, s.config, [t.name for t in cfg.teachers], eval_root, log, seconds)
    for row in rows:
        res = results.get(str(Path(row["run"]) / "student"), {})
        row.update(abs_rel=res.get("abs_rel", float("nan")), delta1=res.get("delta1", float("nan")),
                   seconds=seconds.get(row["key"], float("nan")))
    (s.out / "runs.json").write_text(json.dumps(rows, indent=2))
    for table in ("table1", "table2", "table4"):
        if table in s.only:
            written.append(st.write_table(table, rows, results, s, stores, time.perf_counter() - start))
    return written


def main(argv: list[str] | None = None) -> int:
    from depthdistill.cli import setup_logging

    argv = list(sys.argv[1:] if argv is None else argv)
    if "--headline" in argv:  # make science ARGS=--headline: the headline experiment instead
        from . import headline

        rest = [a for a in argv if a != "--headline"]
        if "--out" in rest:  # the science default (runs/science) would mix with the ablations' runs
            i = rest.index("--out")
            rest[i + 1] = str(Path(rest[i + 1]).with_name(Path(rest[i + 1]).name + "-headline"))
        return headline.main(rest)
    s = parse_args(argv)
    setup_logging()
    start = time.perf_counter()
    try:
        paths = run_science(s)
    except (StepFailedError, ValueError) as exc:
        print(f"\nSCIENCE FAILED: {exc}", file=sys.stderr)
        return 1
    print(f"\nscience done in {(time.perf_counter() - start) / 60:.1f} min "
          f"({'quick' if s.quick else 'full'}: {s.seeds} seed(s), {s.steps} steps): "
          + ", ".join(str(p) for p in paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
