"""`make science ARGS=--headline`: does distillation make a student stronger than its teachers?

    python -m depthdistill.demo.headline --out runs/headline --docs docs/science
    python -m depthdistill.demo.headline --split val ...   (choose settings: never on eval)
    python -m depthdistill.demo.headline --quick ...       (tiny: checks the path in minutes)

The spec (`configs/headline.yaml`) names the shared settings, the set-ups (Ours*: the teacher's
architecture initialised from it; a small student) and the students (global-SSI, cross-context
multi-teacher). Every step is the real CLI, as in `make demo`:

    labels (once, >= 1,000 images) -> world export (eval or val split) -> train every
    set-up x student x seed (2 at a time, one thread each) -> one eval: teachers, the two
    trivial baselines and every student on the world split and the Middlebury frame
    -> headline.json / headline.md (`headline_report`)

Rerunning with the same --out reuses the label store and every finished training.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from .chain import REPO, Step, StepFailedError, StepRecord, cli, derive_config, find_store, run_step, shown

BASELINES = ("baseline://constant", "baseline://ramp")


@dataclass
class Run:
    """One training: a set-up x student x seed."""

    setup: str
    student: str
    seed: int
    config: str
    out: str
    argv: list[str]
    seconds: float = float("nan")


@dataclass
class Headline:
    """What the harness decided and did; saved as <out>/headline-run.json."""

    spec: str
    stages: str
    out: str
    split: str
    eval_n: int
    steps: int
    seeds: int
    quick: bool
    overrides: dict = field(default_factory=dict)  # --quick's overrides on top of the spec
    store: str = ""
    eval_root: str = ""
    runs: list[Run] = field(default_factory=list)
    records: list[dict] = field(default_factory=list)
    models: dict[str, dict] = field(default_factory=dict)  # eval spec -> {name, role, setup, ...}
    wall_s: float = 0.0

    def save(self) -> None:
        Path(self.out).mkdir(parents=True, exist_ok=True)
        (Path(self.out) / "headline-run.json").write_text(json.dumps(asdict(self), indent=2))


def read_spec(path: Path) -> dict:
    data = yaml.safe_load(Path(path).read_text()) or {}
    for key in ("set", "seeds", "eval_n", "setups", "students"):
        if key not in data:
            raise ValueError(f"{path}: missing key '{key}'; see configs/headline.yaml for the layout")
    return data


def plan_runs(h: Headline, spec: dict, stages: Path, store: Path, quick: dict) -> list[Run]:
    """Derive and validate every training's config; one Run per set-up x student x seed."""
    out = Path(h.out)
    runs = []
    for setup, s in spec["setups"].items():
        for student, st in spec["students"].items():
            for seed in range(h.seeds):
                name = f"{setup}-{student}-s{seed}"
                overrides = {**spec["set"], **(s.get("set") or {}), **(st.get("set") or {}), **quick,
                             "train.seed": seed, "train.steps": h.steps}
                try:
                    cfg = derive_config(stages, overrides, out / "configs" / f"{name}.yaml")
                except ValueError as exc:
                    raise StepFailedError(f"configure {name}", 2, f"derive from {stages}", None, str(exc)) from None
                run_dir = out / "runs" / name
                argv = list(cli("train", "--shards", store, "--config", cfg, "--out", run_dir))
                runs.append(Run(setup, student, seed, str(cfg), str(run_dir), argv))
    return runs


def train_all(h: Headline, jobs: int, record) -> None:
    """Every training (finished ones are skipped), `jobs` at a time with one thread each."""
    todo = [r for r in h.runs if not (Path(r.out) / "headline-done.json").is_file()]
    for r in h.runs:
        if r not in todo:
            r.seconds = json.loads((Path(r.out) / "headline-done.json").read_text())["seconds"]
    print(f"training {len(todo)} students ({len(h.runs) - len(todo)} already done), {jobs} at a time", flush=True)

    def one(r: Run) -> None:
        rec = run_step(Step(f"train {Path(r.out).name}", tuple(r.argv), Path(h.out) / "logs" / f"{Path(r.out).name}.log"),
                       echo=False, threads=1 if jobs > 1 else None)
        r.seconds = rec.seconds
        (Path(r.out) / "headline-done.json").write_text(json.dumps({"seconds": rec.seconds, "command": rec.command}))
        record(rec)

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        list(pool.map(one, todo))


def eval_models(h: Headline, spec: dict, teachers: list[str]) -> dict[str, dict]:
    """Eval model spec -> row facts: teachers, baselines, then every student run."""
    models = {f"teacher:{t}": {"name": f"teacher {t}", "role": "teacher", "setup": "teacher"} for t in teachers}
    for b in BASELINES:
        models[b] = {"name": f"baseline {b.split('//')[1]}", "role": "baseline", "setup": "baseline"}
    for r in h.runs:
        models[str(Path(r.out) / "student")] = {
            "name": f"{r.setup} / {spec['students'][r.student].get('label', r.student)}", "role": "student",
            "setup": r.setup, "setup_label": spec["setups"][r.setup].get("label", r.setup), "student": r.student,
            "seed": r.seed, "config": r.config, "train_command": shown(r.argv)}
    return models


def run_headline(spec_path: Path, stages: Path, out: Path, docs: Path, *, split: str = "eval",
                 seeds: int | None = None, steps: int | None = None, eval_n: int | None = None,
                 jobs: int = 2, quick: bool = False) -> list[Path]:
    from depthdistill.config import load_config

    from .headline_report import write_headline

    start = time.perf_counter()
    spec = read_spec(spec_path)
    small = {"images.source": "world://unlabeled?n=16", "labels.shard_size": 8, "train.eval_images": 2,
             "train.eval_every": 2, "train.ckpt_every": 2} if quick else {}
    h = Headline(spec=str(spec_path), stages=str(stages), out=str(out), split=split, quick=quick,
                 eval_n=int(eval_n or (4 if quick else spec["eval_n"])), seeds=int(seeds or (1 if quick else spec["seeds"])),
                 steps=int(steps or (2 if quick else spec["set"].get("train.steps", 3000))), overrides=small)
    logs = out / "logs"

    def record(r: StepRecord) -> None:
        h.records.append(asdict(r))
        h.wall_s = time.perf_counter() - start
        h.save()
        print(f"  {r.name}: {r.seconds:.0f} s", flush=True)

    base = derive_config(stages, {**spec["set"], **small}, out / "configs" / "labels.yaml")
    cfg = load_config(base)
    record(run_step(Step("labels", cli("labels", "--config", base, "--out", out / "labels", "--no-progress"),
                         logs / "labels.log"), echo=False))
    h.store = str(find_store(out / "labels", logs / "labels.log"))
    h.eval_root = str(out / f"world-{split}-n{h.eval_n}")
    height, width = cfg.images.image_size
    record(run_step(Step("world export", cli("world", "export", "--split", split, "--n", h.eval_n, "--height", height,
                                             "--width", width, "--out", h.eval_root), logs / "world-export.log"),
                    echo=False))
    h.runs = plan_runs(h, spec, stages, Path(h.store), small)
    train_all(h, jobs, record)
    h.models = eval_models(h, spec, [t.name for t in cfg.teachers])
    argv = cli("eval", "--config", base, "--dataset", f"world={h.eval_root}", "--dataset", "middlebury",
               "--out", out / "eval", "--no-progress", *[a for m in h.models for a in ("--model", m)])
    record(run_step(Step("eval", argv, logs / "eval.log"), echo=False))
    h.wall_s = time.perf_counter() - start
    h.save()
    return write_headline(h, spec, docs, command_line())


def command_line() -> str:
    return "python -m depthdistill.demo.headline " + " ".join(sys.argv[1:])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m depthdistill.demo.headline", description=__doc__.splitlines()[0])
    p.add_argument("--spec", type=Path, default=REPO / "configs" / "headline.yaml")
    p.add_argument("--config", type=Path, default=Path("stages.yaml"), help="the stages file the spec overrides")
    p.add_argument("--out", type=Path, default=Path("runs/headline"))
    p.add_argument("--docs", type=Path, default=REPO / "docs" / "science", help="where headline.md / .json go")
    p.add_argument("--split", choices=("eval", "val"), default="eval",
                   help="world split scored: eval for the report, val to choose settings")
    p.add_argument("--seeds", type=int, default=None)
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--eval-n", type=int, default=None)
    p.add_argument("--jobs", type=int, default=2, help="trainings at once (one thread each)")
    p.add_argument("--quick", action="store_true", help="16 images, 2 steps, 1 seed, 4 eval images: checks the path")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from depthdistill.cli import setup_logging

    a = parse_args(argv)
    setup_logging()
    start = time.perf_counter()
    try:
        paths = run_headline(a.spec, a.config, a.out, a.docs, split=a.split, seeds=a.seeds, steps=a.steps,
                             eval_n=a.eval_n, jobs=max(1, a.jobs), quick=a.quick)
    except (StepFailedError, ValueError) as exc:
        print(f"\nHEADLINE FAILED: {exc}", file=sys.stderr)
        return 1
    print(f"\nheadline done in {(time.perf_counter() - start) / 60:.1f} min: " + ", ".join(map(str, paths)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
