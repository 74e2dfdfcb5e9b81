"""The headline's numbers -> `headline.json` + `headline.md`, all read from the run's own files.

Per model and metric (`METRICS`): the mean over the world images and its standard error
(sample std / sqrt(n)). A student is trained with several seeds: its per-image value is the
mean over its seeds, so its standard error is over images like a teacher's; the spread over
seeds is reported beside it. Comparisons are paired (same images): the mean of the per-image
difference and its standard error; "beats by > 2 SE" means the difference is more than twice
that error in the better direction. The Middlebury frame is one image: a value, no error.
The sentences that say whether the paper's claim held are chosen by these numbers.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from .tables import fmt, markdown_table

METRICS = ("abs_rel", "delta1", "edge_f1", "thin_abs_rel")
LOWER_IS_BETTER = {"abs_rel": True, "delta1": False, "edge_f1": False, "thin_abs_rel": True}
LABELS = {"abs_rel": "AbsRel ↓", "delta1": "δ1 ↑", "edge_f1": "edge F1 ↑", "thin_abs_rel": "thin AbsRel ↓"}


def mean_se(values) -> dict[str, float]:
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], dtype=np.float64)
    if v.size == 0:
        return {"mean": math.nan, "se": math.nan, "n": 0}
    se = float(v.std(ddof=1) / math.sqrt(v.size)) if v.size > 1 else math.nan
    return {"mean": float(v.mean()), "se": se, "n": int(v.size)}


def read_per_image(eval_dir: Path) -> dict[tuple[str, str], dict[str, dict[str, float]]]:
    """per_image.jsonl -> {(model spec, dataset): {image key: {metric: value}}}."""
    rows: dict[tuple[str, str], dict[str, dict[str, float]]] = {}
    for line in (Path(eval_dir) / "per_image.jsonl").read_text().splitlines():
        r = json.loads(line)
        rows.setdefault((r["model"], r["dataset"]), {})[r["key"]] = {m: r.get(m, math.nan) for m in METRICS}
    return rows


def model_images(h, per_image, dataset: str) -> dict[str, dict[str, dict[str, float]]]:
    """Model name -> image key -> metric, students averaged over their seeds."""
    grouped: dict[str, list[dict]] = {}
    for spec, facts in h.models.items():
        grouped.setdefault(facts["name"], []).append(per_image.get((spec, dataset), {}))
    out = {}
    for name, seeds in grouped.items():
        keys = set.intersection(*(set(s) for s in seeds)) if seeds else set()
        out[name] = {k: {m: float(np.nanmean([s[k][m] for s in seeds])) if any(
            math.isfinite(s[k][m]) for s in seeds) else math.nan for m in METRICS} for k in sorted(keys)}
    return out


def paired(a: dict[str, dict], b: dict[str, dict], metric: str) -> dict[str, float]:
    """Mean and SE of (a - b) over the images both have a finite value on."""
    keys = [k for k in a if k in b and math.isfinite(a[k][metric]) and math.isfinite(b[k][metric])]
    return mean_se([a[k][metric] - b[k][metric] for k in keys])


def beats(diff: dict[str, float], metric: str) -> bool:
    """`a` better than `b` by more than 2 standard errors of the paired difference."""
    if not (math.isfinite(diff["mean"]) and math.isfinite(diff["se"])):
        return False
    sign = -1.0 if LOWER_IS_BETTER[metric] else 1.0
    return sign * diff["mean"] > 2 * diff["se"]


def summarize(h, spec: dict, eval_command: str) -> dict:
    """The headline.json payload."""
    per_image = read_per_image(Path(h.out) / "eval")
    world = model_images(h, per_image, "world")
    middlebury = model_images(h, per_image, "middlebury")
    models: dict[str, dict] = {}
    for spec_id, facts in h.models.items():
        name = facts["name"]
        entry = models.setdefault(name, {"role": facts["role"], "setup": facts.get("setup_label", facts["setup"]),
                                         "eval_command": eval_command, "model": []})
        entry["model"].append(spec_id)
        if facts["role"] == "student":
            entry.setdefault("train_commands", []).append(facts["train_command"])
            seed_means = {m: mean_se(v[m] for v in per_image.get((spec_id, "world"), {}).values())["mean"]
                          for m in METRICS}
            entry.setdefault("seeds", []).append({"seed": facts["seed"], **seed_means})
    for name, entry in models.items():
        images = world.get(name, {})
        for m in METRICS:
            entry[m] = mean_se(v[m] for v in images.values())
        entry["num_images"] = len(images)
        frame = next(iter(middlebury.get(name, {}).values()), None)
        entry["middlebury"] = {m: frame[m] for m in ("abs_rel", "delta1", "edge_f1")} if frame else None
        if "seeds" in entry:
            entry["seed_spread"] = {m: float(np.std([s[m] for s in entry["seeds"]], ddof=1))
                                    if len(entry["seeds"]) > 1 else math.nan for m in METRICS}
        entry["command"] = " && ".join(entry.get("train_commands", []) + [eval_command])
    teachers = [n for n, e in models.items() if e["role"] == "teacher"]
    best_teacher = min(teachers, key=lambda n: models[n]["abs_rel"]["mean"])
    comparisons = []
    for setup in spec["setups"]:
        names = {f["student"]: f["name"] for f in h.models.values() if f.get("setup") == setup}
        cc, gssi = names.get("cross-context"), names.get("global-ssi")
        for kind, a, b in (("vs_teacher", cc, best_teacher), ("vs_global_ssi", cc, gssi),
                           ("global_ssi_vs_teacher", gssi, best_teacher)):
            if a is None or b is None:
                continue
            row = {"setup": setup, "kind": kind, "a": a, "b": b}
            for m in METRICS:
                d = paired(world[a], world[b], m)
                row[m] = {**d, "a_beats_b_by_2se": beats(d, m)}
            comparisons.append(row)
    return {"models": models, "best_teacher": best_teacher, "comparisons": comparisons,
            "claim": claim(comparisons), "settings": settings(h, spec),
            "wall_time_s": round(h.wall_s, 1), "records": h.records}


def claim(comparisons: list[dict]) -> dict[str, dict]:
    """Per set-up: did the cross-context student beat the better teacher and the global-SSI
    student by > 2 SE on AbsRel, and on edge F1?"""
    out: dict[str, dict] = {}
    for row in comparisons:
        if row["kind"] in ("vs_teacher", "vs_global_ssi"):
            out.setdefault(row["setup"], {})[row["kind"]] = {m: row[m]["a_beats_b_by_2se"] for m in ("abs_rel", "edge_f1")}
    for verdict in out.values():
        verdict["held"] = len(verdict) == 2 and all(all(v.values()) for v in verdict.values())
    return out


def settings(h, spec: dict) -> dict:
    return {"spec": h.spec, "stages": h.stages, "split": h.split, "eval_images": h.eval_n, "seeds": h.seeds,
            "steps": h.steps, "store": h.store, "shared": spec["set"],
            "setups": {k: v.get("set", {}) for k, v in spec["setups"].items()},
            "students": {k: v.get("set", {}) for k, v in spec["students"].items()}, "quick": h.quick,
            "quick_overrides": h.overrides}


def _cell(stat: dict | None, digits: int = 3) -> str:
    if not stat or not math.isfinite(stat.get("mean", math.nan)):
        return "-"
    se = stat.get("se", math.nan)
    return f"{stat['mean']:.{digits}f} ± {se:.{digits}f}" if math.isfinite(se) else f"{stat['mean']:.{digits}f}"


def _diff_cell(d: dict) -> str:
    mark = " ✔" if d["a_beats_b_by_2se"] else ""
    return f"{d['mean']:+.4f} ± {d['se']:.4f}{mark}" if math.isfinite(d["mean"]) else "-"


def markdown(payload: dict, command: str) -> str:
    s = payload["settings"]
    models = payload["models"]
    rows = []
    for name, e in models.items():
        mb = e.get("middlebury") or {}
        rows.append([name, e["role"], *[_cell(e[m]) for m in METRICS],
                     f"{fmt(mb.get('abs_rel', math.nan))} / {fmt(mb.get('delta1', math.nan))}"])
    comp = [[c["setup"], c["a"], c["b"], *[_diff_cell(c[m]) for m in METRICS]] for c in payload["comparisons"]]
    held = {k: v["held"] for k, v in payload["claim"].items()}
    verdict = ("**The paper's claim held here** in " + ", ".join(k for k, v in held.items() if v)
               if any(held.values()) else "**The paper's claim did not hold here**")
    verdict += (": the cross-context multi-teacher student beats the better teacher "
                f"({payload['best_teacher']}) and the global-SSI student by more than 2 standard errors on "
                "both AbsRel and edge F1" if any(held.values()) else
                ": in no set-up does the cross-context multi-teacher student beat both the better teacher "
                f"({payload['best_teacher']}) and the global-SSI student by more than 2 standard errors on "
                "both AbsRel and edge F1")
    verdict += " (" + "; ".join(f"{k}: {'held' if v else 'not held'}" for k, v in held.items()) + ")."
    split_note = ([] if s["split"] == "eval" else
                  [f"**Scored on the world `{s['split']}` split: a settings run, not the headline.**", ""])
    return "\n".join([
        "# Headline: does distillation make a stronger student?", "", *split_note,
        f"Made by `{command}` in {payload['wall_time_s'] / 60:.1f} min on this machine "
        f"({'quick path: the numbers mean nothing' if s['quick'] else 'full run'}; {s['seeds']} seed(s) per "
        f"student, {s['steps']} steps each, {s['eval_images']} world `{s['split']}` images). "
        f"Label store: `{s['store']}`. Every number below is read from `depthdistill eval`'s "
        "`per_image.jsonl` of this run; `headline.json` holds them with the commands that made them.", "",
        verdict, "",
        "## Models", "",
        "World columns: mean over images ± standard error (students: each image averaged over the seeds "
        "first; the spread over seeds is in `headline.json`). Middlebury: the one real frame that ships with "
        "scikit-image (AbsRel / δ1, no error bar). **The embedded teachers were trained only on the synthetic "
        "world**; the two baselines look at no pixel (a constant map; lower rows nearer), so a model that "
        "does not beat them on Middlebury knows nothing about real photos.", "",
        markdown_table(["model", "role", *[f"world {LABELS[m]}" for m in METRICS], "Middlebury AbsRel / δ1"], rows),
        "", "## Paired comparisons (a − b over the same images, ± standard error; ✔ = a better by > 2 SE)", "",
        markdown_table(["set-up", "a", "b", *[LABELS[m] for m in METRICS]], comp), "",
        "## Settings", "", f"```json\n{json.dumps({k: s[k] for k in ('shared', 'setups', 'students')}, indent=1)}\n```",
        "", "## Steps and wall times", "",
        markdown_table(["step", "command", "s"], [[r["name"], f"`{r['command']}`", f"{r['seconds']:.0f}"]
                                                 for r in payload["records"]]), ""])


def write_headline(h, spec: dict, docs: Path, command: str) -> list[Path]:
    eval_command = next((r["command"] for r in h.records if r["name"] == "eval"), "depthdistill eval")
    payload = summarize(h, spec, eval_command)
    payload["command"] = command
    stem = "headline" if h.split == "eval" else f"headline-{h.split}"
    docs = Path(docs)
    docs.mkdir(parents=True, exist_ok=True)
    paths = [docs / f"{stem}.json", docs / f"{stem}.md"]
    paths[0].write_text(json.dumps(payload, indent=1, allow_nan=True))
    paths[1].write_text(markdown(payload, command))
    return paths
