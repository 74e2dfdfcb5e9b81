"""runs/demo/report.md + PNGs, from the runs' own outputs only (nothing typed in by hand).

    python -m depthdistill.demo.report runs/demo     (rebuild the report of a finished demo)

Sources: `demo.json` (steps, commands, wall times; written by `chain`), `eval/results.json`
(`depthdistill eval`), each student's `tb/` TensorBoard events (`depthdistill train`), the
`predict/` folders (`depthdistill predict`) and the eval split's ground truth that `eval`
exported under `eval/cache/`. Every number in the report names the command that made it.
"""

from __future__ import annotations

import json
import logging
import math
import sys
from pathlib import Path

import numpy as np

from .tables import fmt, markdown_table

logger = logging.getLogger(__name__)
LOSS_TAGS = ("loss/total", "loss/sc", "loss/lg", "loss/feat", "loss/grad")


def eval_table(results: list[dict], labels: dict[str, str]) -> tuple[list[str], list[list[str]]]:
    """eval results rows -> (header, rows): one row per model, `AbsRel / delta1 (n)` per data set."""
    datasets = list(dict.fromkeys(r["dataset"] for r in results))
    models = list(dict.fromkeys(r["model"] for r in results))
    cells = {(r["model"], r["dataset"]): r for r in results}
    header = ["model"] + [f"{d}: AbsRel ↓ / δ1 ↑" for d in datasets]
    rows = []
    for model in models:
        row = [labels.get(model, model)]
        for d in datasets:
            r = cells.get((model, d))
            row.append("-" if r is None else f"{fmt(r['abs_rel'])} / {fmt(r['delta1'])} ({r['num_images']} images)")
        rows.append(row)
    return header, rows


def read_scalars(tb_dir: str | Path) -> dict[str, list[tuple[int, float]]]:
    """All scalar series of a TensorBoard run folder: tag -> [(step, value)] sorted by step."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tb_dir), size_guidance={"scalars": 0})
    acc.Reload()
    out = {}
    for tag in acc.Tags().get("scalars", []):
        last: dict[int, float] = {}
        for event in acc.Scalars(tag):
            last[event.step] = event.value  # a resumed run rewrites steps: keep the latest value
        out[tag] = sorted(last.items())
    return out


def eval_progress(scalars: dict[str, list[tuple[int, float]]]) -> dict[str, float]:
    """First and last trainer eval (AbsRel, delta1) with their steps; NaN when missing."""
    ar, d1 = scalars.get("eval/abs_rel", []), scalars.get("eval/delta1", [])
    nan = math.nan
    return {"first_step": ar[0][0] if ar else nan, "first_abs_rel": ar[0][1] if ar else nan,
            "last_step": ar[-1][0] if ar else nan, "last_abs_rel": ar[-1][1] if ar else nan,
            "first_delta1": d1[0][1] if d1 else nan, "last_delta1": d1[-1][1] if d1 else nan,
            "best_abs_rel": min(v for _, v in ar) if ar else nan}


def _smooth(values: list[float], k: int = 10) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    if v.size < k:
        return v
    c = np.cumsum(np.insert(v, 0, 0.0))
    head = c[1:k] / np.arange(1, k)
    return np.concatenate([head, (c[k:] - c[:-k]) / k])


def plot_curves(runs: dict[str, dict[str, list[tuple[int, float]]]], path: Path) -> Path:
    """Three panels: loss terms (moving average of 10 steps), trainer eval AbsRel, median output."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.2))
    styles = ["-", "--", ":", "-."]
    for i, (label, s) in enumerate(runs.items()):
        ls = styles[i % len(styles)]
        for j, tag in enumerate(LOSS_TAGS):
            if s.get(tag):
                steps, vals = zip(*s[tag])
                axes[0].plot(steps, _smooth(list(vals)), ls, color=f"C{j}", label=f"{tag[5:]} ({label})")
        for ax, tag in ((axes[1], "eval/abs_rel"), (axes[2], "train/median_output")):
            if s.get(tag):
                steps, vals = zip(*s[tag])
                ax.plot(steps, vals, ls, marker="o" if tag.startswith("eval") else None, ms=3, label=label)
    axes[0].set(title="loss terms (10-step moving average)", xlabel="step", yscale="log")
    axes[1].set(title="trainer eval AbsRel (world eval renders)", xlabel="step")
    axes[2].set(title="median student output", xlabel="step")
    for ax in axes:
        if ax is not axes[0]:
            ax.ticklabel_format(axis="y", useOffset=False)
        ax.legend(fontsize=6)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def align_to_gt(pred: np.ndarray, gt_depth: np.ndarray, valid: np.ndarray, space: str,
                depth_range: tuple[float, float]) -> np.ndarray:
    """A raw map aligned to GT by the eval protocol (`depth.aligned_depth`), as disparity to draw."""
    import torch

    from depthdistill.depth import aligned_depth

    depth, *_ = aligned_depth(torch.from_numpy(np.asarray(pred, np.float64))[None],
                              torch.from_numpy(np.asarray(gt_depth, np.float64))[None],
                              torch.from_numpy(np.asarray(valid, bool))[None], space, depth_range)
    return 1.0 / depth[0].numpy()  # [H, W]


def picture_grid(eval_root: Path, names: list[str], predict_dirs: dict[str, str], path: Path) -> Path:
    """Rows = eval images; columns: input, each model's map (aligned to GT), GT; disparity, one scale per row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    from depthdistill.evaluation.datasets import SPECS

    cols = ["input", *predict_dirs, "ground truth"]
    cmap = plt.get_cmap("inferno").copy()
    cmap.set_bad("black")  # no ground truth (sky)
    fig, axes = plt.subplots(len(names), len(cols), figsize=(2.4 * len(cols), 1.9 * len(names)), squeeze=False)
    for r, name in enumerate(names):
        rgb = np.asarray(Image.open(eval_root / "rgb" / f"{name}.png").convert("RGB"))
        gt = np.asarray(Image.open(eval_root / "depth" / f"{name}.png"), dtype=np.float64) / 1000.0  # [H, W] m
        valid = (gt > 0) & (np.asarray(Image.open(eval_root / "mask" / f"{name}.png")) > 0)
        gt_disp = np.where(valid, 1.0 / np.where(valid, gt, 1.0), np.nan)
        lo, hi = np.nanpercentile(gt_disp, [2, 98])
        panels = [rgb]
        for label, folder in predict_dirs.items():
            pred = np.load(Path(folder) / f"{name}.npy")
            space = json.loads((Path(folder) / f"{name}.depth16.json").read_text()).get("space", "disparity")
            panels.append(align_to_gt(pred, gt, valid, space, SPECS["world"].depth_range))
        panels.append(gt_disp)
        for c, panel in enumerate(panels):
            ax = axes[r][c]
            if c == 0:
                ax.imshow(panel)
            else:
                ax.imshow(np.ma.masked_invalid(panel), cmap=cmap, vmin=lo, vmax=hi)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(cols[c], fontsize=8)
        axes[r][0].set_ylabel(name, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def _commands_section(demo: dict) -> list[str]:
    rows = [[f"`{r['name']}`", f"`{r['command']}`", f"{r['seconds']:.0f} s"] for r in demo["records"]]
    rows.append(["**total**", "`make demo`", f"**{demo['wall_s']:.0f} s** ({demo['wall_s'] / 60:.1f} min)"])
    return ["## How it was made", "", markdown_table(["step", "command", "wall time"], rows), ""]


def build_report(out: str | Path) -> Path:
    """Write <out>/report.md, curves.png and pictures.png; returns the report's path."""
    out = Path(out)
    demo = json.loads((out / "demo.json").read_text())
    results = json.loads((out / "eval" / "results.json").read_text())["results"]
    header, rows = eval_table(results, demo["eval_models"])
    runs = {s["label"]: read_scalars(Path(s["run"]) / "tb") for s in demo["students"].values()}
    plot_curves(runs, out / "curves.png")
    eval_cmd = next((r["command"] for r in demo["records"] if r["name"] == "eval"), "depthdistill eval")
    lines = ["# depthdistill demo report", "",
             f"Made by `make demo` (`python -m depthdistill.demo --config {demo['config']} --out {demo['out']}`) "
             f"in {demo['wall_s'] / 60:.1f} min. Label store: `{demo['store']}` (labels computed once; both "
             f"students trained {demo['steps']} steps on it).", "",
             "## World eval split (Marigold protocol: affine-aligned disparity)", "",
             f"From `{out / 'eval' / 'results.json'}`, made by `{eval_cmd}`.", "",
             markdown_table(header, rows), ""]
    lines += ["## Students", ""]
    prog_rows = []
    for name, s in demo["students"].items():
        p = eval_progress(runs[s["label"]])
        prog_rows.append([s["label"], f"`{s['config']}`", f"{fmt(p['first_abs_rel'])} (step {p['first_step']})",
                          f"{fmt(p['last_abs_rel'])} (step {p['last_step']})", fmt(p["best_abs_rel"])])
        lines.append(f"- **{s['label']}** (`{name}`): {s['about']}; overrides `{json.dumps(s['set'])}`.")
    lines += ["", "Trainer's own eval (`eval/abs_rel` in each run's `tb/`, on `train.eval_images` world eval "
              "renders at the view size) at its first and last evaluation:", "",
              markdown_table(["student", "config", "first eval AbsRel", "last eval AbsRel", "best"], prog_rows), ""]
    if demo.get("predict_dirs"):
        eval_root = out / "eval-world"
        first = next(iter(demo["predict_dirs"].values()))
        names = sorted(p.name[: -len(".npy")] for p in Path(first).glob("*.npy"))
        picture_grid(eval_root, names, demo["predict_dirs"], out / "pictures.png")
        lines += ["## Pictures", "", "Each model's raw output from `depthdistill predict`, least-squares aligned "
                  "to the ground-truth disparity of its image and drawn on that image's colour scale (near = "
                  "bright); black = no ground truth (sky).", "", "![pictures](pictures.png)", ""]
    tb_dirs = ", ".join(f"`{s['run']}/tb`" for s in demo["students"].values())
    lines += ["## Training curves", "", f"Read from the TensorBoard event files the trainer wrote ({tb_dirs}).", "",
              "![curves](curves.png)", ""]
    lines += _commands_section(demo)
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path


def headline(out: str | Path) -> str:
    """'label AbsRel x / delta1 y; ...' for every model on the first data set of the eval."""
    out = Path(out)
    demo = json.loads((out / "demo.json").read_text())
    results = json.loads((out / "eval" / "results.json").read_text())["results"]
    first = results[0]["dataset"] if results else ""
    return "; ".join(f"{demo['eval_models'].get(r['model'], r['model'])} {fmt(r['abs_rel'])}/{fmt(r['delta1'])}"
                     for r in results if r["dataset"] == first) + f" (AbsRel/δ1 on {first} eval)"


if __name__ == "__main__":
    print(build_report(sys.argv[1] if len(sys.argv) > 1 else "runs/demo"))
