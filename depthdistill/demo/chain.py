"""`make demo`: the whole chain, each step a subprocess of the real CLI (what a user runs).

    labels -> shards validate -> train (baseline) + train (cross-context) on the same store
    -> eval (teachers + both students, one table) -> predict (a few eval images) -> report

A step that exits non-zero stops the chain with `StepFailedError` naming the step, its
command, its log file and the log's last lines. `<out>/demo.json` records every step's
command, log and wall time as it finishes; the report reads it. Rerunning with the same
`--out` reuses the label store (zero teacher calls) and the finished trainings (resume).
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import yaml

logger = logging.getLogger(__name__)
REPO = Path(__file__).resolve().parents[2]
DEFAULT_STUDENTS = REPO / "configs" / "demo-students.yaml"


class StepFailedError(RuntimeError):
    """A chain step exited non-zero; the message names the step, its command and log tail."""

    def __init__(self, step: str, returncode: int, command: str, log: Path | None, tail: str):
        self.step, self.returncode, self.log = step, returncode, log
        where = f"; full log: {log}" if log else ""
        super().__init__(f"step '{step}' failed (exit {returncode}): {command}{where}\n{tail}")


@dataclass(frozen=True)
class Step:
    name: str
    argv: tuple[str, ...]  # the full command line
    log: Path


@dataclass
class StepRecord:
    name: str
    command: str
    log: str
    seconds: float
    returncode: int


def cli(*args: str | Path) -> tuple[str, ...]:
    """argv of `depthdistill ARGS` with this interpreter (works without the script on PATH)."""
    return (sys.executable, "-m", "depthdistill", *map(str, args))


def shown(argv: Sequence[str]) -> str:
    """The command as a user would type it (`depthdistill ...` for our own CLI)."""
    argv = list(argv)
    if argv[:3] == [sys.executable, "-m", "depthdistill"]:
        argv = ["depthdistill"] + argv[3:]
    return shlex.join(argv)


def _tail(path: Path, lines: int = 15) -> str:
    """The last non-empty lines of a log ('\\r' progress updates count as lines)."""
    if not path.is_file():
        return ""
    text = path.read_bytes()[-20000:].decode(errors="replace").replace("\r", "\n")
    return "\n".join([x for x in text.splitlines() if x.strip()][-lines:])


def slug(text: str) -> str:
    """A folder-safe name: letters and digits, runs of anything else as one '-'."""
    return "-".join("".join(c if c.isalnum() else " " for c in text.lower()).split())


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.setdefault("COLUMNS", "200")  # rich wraps at 80 columns when not on a terminal
    return env


def run_step(step: Step, *, echo: bool = True, threads: int | None = None) -> StepRecord:
    """Run one step; its output goes to its log file and (echo) to this console as it comes.

    `threads` sets OMP_NUM_THREADS for the step (steps that share the cores run with 1).
    """
    step.log.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    env = _env() | ({"OMP_NUM_THREADS": str(threads)} if threads else {})
    with step.log.open("wb") as log:
        proc = subprocess.Popen(step.argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
        assert proc.stdout is not None
        while chunk := proc.stdout.read1(4096):
            log.write(chunk)
            if echo:
                sys.stdout.buffer.write(chunk)
                sys.stdout.flush()
        rc = proc.wait()
    record = StepRecord(step.name, shown(step.argv), str(step.log), time.perf_counter() - start, rc)
    if rc != 0:
        raise StepFailedError(step.name, rc, record.command, step.log, _tail(step.log))
    return record


def _status_line(log: Path) -> str:
    """The last progress fragment of a log (tqdm writes '\\r' updates)."""
    if not log.is_file():
        return "starting"
    data = log.read_bytes()[-2000:].decode(errors="replace").replace("\r", "\n")
    lines = [x.strip() for x in data.splitlines() if x.strip()]
    return lines[-1][:110] if lines else "starting"


def run_parallel(steps: Sequence[Step], *, echo: bool = True, poll_s: float = 10.0) -> list[StepRecord]:
    """Run steps at once (one thread each, logs to files); print a status line per step every poll_s.

    If one fails, the others (our own child processes) are terminated and the failure raised.
    """
    procs: dict[str, subprocess.Popen] = {}
    start = time.perf_counter()
    ended: dict[str, float] = {}
    handles = []
    for step in steps:
        step.log.parent.mkdir(parents=True, exist_ok=True)
        handle = step.log.open("wb")
        handles.append(handle)
        env = _env() | {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
        procs[step.name] = subprocess.Popen(step.argv, stdout=handle, stderr=subprocess.STDOUT, env=env)
    last_print = 0.0
    try:
        while len(ended) < len(steps):
            time.sleep(0.2)
            for step in steps:
                if step.name not in ended and procs[step.name].poll() is not None:
                    ended[step.name] = time.perf_counter() - start
                    if procs[step.name].returncode != 0:
                        for other in procs.values():
                            if other.poll() is None:
                                other.terminate()
                        raise StepFailedError(step.name, procs[step.name].returncode, shown(step.argv),
                                              step.log, _tail(step.log))
            if echo and time.perf_counter() - last_print >= poll_s:
                last_print = time.perf_counter()
                for step in steps:
                    state = "done" if step.name in ended else _status_line(step.log)
                    print(f"  [{step.name}] {state}", flush=True)
    finally:
        for other in procs.values():
            if other.poll() is None:
                other.wait()
        for handle in handles:
            handle.close()
    return [StepRecord(s.name, shown(s.argv), str(s.log), ended[s.name], 0) for s in steps]


def run_steps(steps: Sequence[Step], *, echo: bool = True, on_record: Callable[[StepRecord], None] | None = None,
              number: Callable[[], str] | None = None) -> list[StepRecord]:
    """Run steps in order; the first failure raises and nothing after it runs."""
    records = []
    for i, step in enumerate(steps, 1):
        if echo:
            tag = number() if number else f"{i}/{len(steps)}"
            print(f"\n== [{tag}] {step.name}: {shown(step.argv)}", flush=True)
        record = run_step(step, echo=echo)
        records.append(record)
        if on_record:
            on_record(record)
    return records


# ----------------------------------------------------------------------------- the demo


@dataclass
class DemoPlan:
    """What the chain decided before it ran (students, steps); saved into demo.json."""

    config: str
    out: str
    steps: int
    eval_every: int
    predict_images: int
    students: dict[str, dict]  # name -> {label, about, set, config (derived yaml), run}
    records: list[dict] = field(default_factory=list)
    store: str = ""
    eval_models: dict[str, str] = field(default_factory=dict)  # eval model spec -> row label
    predict_dirs: dict[str, str] = field(default_factory=dict)  # row label -> predict folder
    wall_s: float = 0.0

    def save(self) -> None:
        Path(self.out).mkdir(parents=True, exist_ok=True)
        (Path(self.out) / "demo.json").write_text(json.dumps(asdict(self), indent=2))


def derive_config(base: Path, overrides: dict, dest: Path) -> Path:
    """Write `base` with dotted `overrides` applied to `dest` and validate it (ConfigError on a bad key)."""
    from depthdistill.config import _apply_overrides, load_config

    data = yaml.safe_load(Path(base).read_text()) or {}
    data = _apply_overrides(data, dict(overrides))
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(f"# derived from {base} by depthdistill.demo with {json.dumps(overrides)}\n"
                    + yaml.safe_dump(data, sort_keys=False))
    load_config(dest)
    return dest


def read_students(path: Path) -> dict:
    data = yaml.safe_load(Path(path).read_text()) or {}
    for key in ("steps", "eval_every", "predict_images", "students"):
        if key not in data:
            raise ValueError(f"{path}: missing key '{key}'; see configs/demo-students.yaml for the layout")
    return data


def find_store(labels_out: Path, labels_log: Path | None = None) -> Path:
    """The label store the labels step wrote: its `store: PATH` line, else the one store there."""
    from depthdistill.shards.layout import MANIFEST_FILE

    if labels_log is not None and labels_log.is_file():
        for line in labels_log.read_text(errors="replace").splitlines():
            if line.startswith("store: ") and (Path(line[7:].strip()) / MANIFEST_FILE).is_file():
                return Path(line[7:].strip())
    stores = sorted(p.parent for p in Path(labels_out).glob(f"*/{MANIFEST_FILE}"))
    if len(stores) != 1:
        raise ValueError(f"{labels_out}: expected exactly one label store, found {len(stores)} "
                         f"({[s.name for s in stores]}); use a fresh --out")
    return stores[0]


def _student_steps(plan: DemoPlan, spec: dict, config: Path, store: Path, logs: Path) -> list[Step]:
    """Derive each student's config (validated) and its `depthdistill train` step."""
    out = Path(plan.out)
    steps = []
    for name, student in spec["students"].items():
        overrides = {**(student.get("set") or {}), "train.eval_every": plan.eval_every}
        dest = out / "configs" / f"{name}.yaml"
        try:
            derive_config(config, overrides, dest)
        except ValueError as exc:
            raise StepFailedError(f"configure {name}", 2, f"derive {dest} from {config}", None, str(exc)) from None
        run_dir = out / f"train-{name}"
        about = " ".join(str(student.get("about", "")).split())
        plan.students[name] = {"label": student.get("label", name), "about": about, "set": overrides,
                               "config": str(dest), "run": str(run_dir)}
        steps.append(Step(f"train {name}", cli("train", "--shards", store, "--config", dest, "--out", run_dir,
                                                "--steps", plan.steps), logs / f"train-{name}.log"))
    return steps


def _eval_models(plan: DemoPlan, config: Path) -> dict[str, str]:
    """Eval model spec -> row label: every teacher of the config, then each student."""
    from depthdistill.config import load_config

    models = {f"teacher:{t.name}": f"teacher {t.name}" for t in load_config(config).teachers}
    for student in plan.students.values():
        models[str(Path(student["run"]) / "student")] = student["label"]
    return models


def run_demo(config: Path, out: Path, *, students_file: Path = DEFAULT_STUDENTS, steps: int | None = None,
             images: str | None = None, parallel: bool = True, echo: bool = True) -> DemoPlan:
    """The whole chain; raises StepFailedError naming the first step that failed."""
    start = time.perf_counter()
    spec = read_students(students_file)
    config, out = Path(config), Path(out)
    logs = out / "logs"
    plan = DemoPlan(config=str(config), out=str(out), steps=int(steps or spec["steps"]),
                    eval_every=int(spec["eval_every"]), predict_images=int(spec["predict_images"]), students={})
    total = 6 + len(spec["students"])  # labels, validate, students, world export, eval, predict, report
    counter = iter(range(1, 1000))

    def number() -> str:
        return f"{next(counter)}/{total}"

    def record(r: StepRecord) -> None:
        plan.records.append(asdict(r))
        plan.wall_s = time.perf_counter() - start
        plan.save()

    def run(name: str, argv: tuple[str, ...], log: str) -> None:
        run_steps([Step(name, argv, logs / log)], echo=echo, on_record=record, number=number)

    run("labels", cli("labels", "--config", config, "--out", out / "labels",
                      *(("--images", images) if images else ())), "labels.log")
    store = find_store(out / "labels", logs / "labels.log")
    plan.store = str(store)
    run("shards validate", cli("shards", "validate", store), "validate.log")
    _train_students(plan, spec, config, store, logs, echo=echo, record=record, number=number, parallel=parallel)
    eval_root = out / "eval-world"
    run("world export", cli("world", "export", "--split", "eval", *_eval_split_args(config), "--out", eval_root),
        "world-export.log")
    plan.eval_models = _eval_models(plan, config)
    models = [a for spec_ in plan.eval_models for a in ("--model", spec_)]
    run("eval", cli("eval", "--config", config, "--dataset", f"world={eval_root}", "--out", out / "eval", *models),
        "eval.log")
    pictures = sorted((eval_root / "rgb").glob("*.png"))[: plan.predict_images]
    steps_ = []
    for i, (model, label) in enumerate(plan.eval_models.items()):
        dest = out / "predict" / f"{i}-{slug(label)}"
        plan.predict_dirs[label] = str(dest)
        steps_.append(Step(f"predict {label}", cli("predict", *pictures, "--model", model, "--config", config,
                                                   "--out", dest, "--no-progress"), logs / f"predict-{i}.log"))
    if echo:
        print(f"\n== [{number()}] predict ({len(steps_)} models at once, one thread each)", flush=True)
        for s in steps_:
            print(f"   {shown(s.argv)}", flush=True)
    for r in run_parallel(steps_, echo=echo):
        record(r)
    if echo:
        print(f"\n== [{number()}] report", flush=True)
    return finish(plan, start)


def _eval_split_args(config: Path) -> tuple[str, ...]:
    """`world export` size arguments: eval.eval_n images at images.image_size."""
    from depthdistill.config import load_config

    cfg = load_config(config)
    height, width = cfg.images.image_size
    return ("--n", str(cfg.eval.eval_n), "--height", str(height), "--width", str(width))


def _train_students(plan: DemoPlan, spec: dict, config: Path, store: Path, logs: Path, *, echo: bool,
                    record: Callable[[StepRecord], None], number: Callable[[], str], parallel: bool) -> None:
    trains = _student_steps(plan, spec, config, store, logs)
    if not parallel:
        run_steps(trains, echo=echo, on_record=record, number=number)
        return
    if echo:
        tags = [number() for _ in trains]
        print(f"\n== [{', '.join(tags)}] {' + '.join(s.name for s in trains)} at once, one thread each "
              f"(logs: {logs})", flush=True)
        for s in trains:
            print(f"   {shown(s.argv)}", flush=True)
    for r in run_parallel(trains, echo=echo):
        record(r)


def finish(plan: DemoPlan, start: float) -> DemoPlan:
    """Write the report (step 'report'); a failure is raised with that step's name."""
    from .report import build_report

    t0 = time.perf_counter()
    plan.wall_s = time.perf_counter() - start
    plan.save()
    try:
        path = build_report(Path(plan.out))
    except (ValueError, OSError, KeyError) as exc:
        raise StepFailedError("report", 1, f"build_report({plan.out})", None, f"{type(exc).__name__}: {exc}") from None
    plan.records.append(asdict(StepRecord("report", "python -m depthdistill.demo.report " + plan.out, str(path),
                                          time.perf_counter() - t0, 0)))
    plan.wall_s = time.perf_counter() - start
    plan.save()
    build_report(Path(plan.out))  # again, so the report's timing table includes itself and the total
    return plan
