"""Progress bars (planning, then one per teacher) and the closing summary of a labeling run."""

from __future__ import annotations

import time


class NullProgress:
    """No output: the library default (tests, benchmarks)."""

    def plan_start(self, source) -> None:
        pass

    def plan_advance(self, images: int, bad: int) -> None:
        pass

    def plan_stop(self) -> None:
        pass

    def start(self, run, num_shards: int) -> None:
        pass

    def advance(self, run, views: int) -> None:
        pass

    def stop(self, run) -> None:
        pass


class TqdmProgress(NullProgress):
    """A tqdm bar per teacher: shards done / to do, views/s, ETA (on stderr)."""

    def __init__(self) -> None:
        self.bars: dict[str, object] = {}
        self.began: dict[str, float] = {}

    def plan_start(self, source) -> None:
        """Planning: images inspected (read, hash, decode, plan), images/s, ETA, bad inputs."""
        from tqdm import tqdm

        total = getattr(source, "n", None)  # known for world://; a folder streams its listing
        self.bars["plan"] = tqdm(total=total, desc="plan", unit="img", dynamic_ncols=True)

    def plan_advance(self, images: int, bad: int) -> None:
        bar = self.bars["plan"]
        bar.set_postfix_str(f"bad inputs {bad}")
        bar.update(images - bar.n)

    def plan_stop(self) -> None:
        bar = self.bars.pop("plan", None)
        if bar is not None:
            bar.close()

    def start(self, run, num_shards: int) -> None:
        from tqdm import tqdm

        self.bars[run.name] = tqdm(total=num_shards, desc=f"{run.name}@{run.fingerprint[:8]}",
                                   unit="shard", dynamic_ncols=True)
        self.began[run.name] = time.perf_counter()

    def advance(self, run, views: int) -> None:
        bar = self.bars[run.name]
        seconds = max(time.perf_counter() - self.began[run.name], 1e-9)
        bar.set_postfix_str(f"{run.views / seconds:.1f} views/s, calls {run.teacher_calls}")
        bar.update(1)

    def stop(self, run) -> None:
        bar = self.bars.pop(run.name, None)
        if bar is not None:
            bar.close()


def teacher_rows(summary) -> list[list[str]]:
    """One row per teacher: the columns of the closing table."""
    rows = []
    for t in summary.teachers:
        rate = t.views / t.wall_s if t.wall_s > 0 and t.views else 0.0
        busy = t.busy_s / t.actor_wall_s if t.actor_wall_s > 0 else 0.0
        rows.append([f"{t.name}@{t.fingerprint}", str(t.done), str(t.skipped), str(t.retried),
                     str(len(t.failed)), str(t.teacher_calls), f"{rate:.1f}", f"{busy:.0%}",
                     str(len(t.nodes))])
    return rows


HEADER = ["teacher", "done", "skipped", "retried", "failed", "calls", "views/s", "busy",
          "nodes"]


def summary_lines(summary) -> list[str]:
    """The closing lines every run prints (the table is drawn separately)."""
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(summary.bad_reasons.items()))
    rate = summary.num_images / summary.plan_s if summary.plan_s > 0 else 0.0
    v = summary.verified
    lines = [
        f"store: {summary.store}",
        f"images: {summary.num_images}  views: {summary.num_views}  shards: {summary.num_shards}"
        f"  (views shards written now: {summary.views_shards_written})",
        f"planned {summary.num_images} images in {summary.plan_s:.1f} s ({rate:.0f} images/s: read, hash, "
        "decode, plan)",
        f"bad inputs: {summary.bad_inputs}" + (f" ({reasons}; see bad_inputs.jsonl)" if reasons else ""),
        f"verified {v.shards} finished shards ({v.bytes / 1e6:.1f} MB) against their markers in {v.seconds:.3f} s"
        + (f" ({v.bytes / 1e6 / v.seconds:.0f} MB/s, sha256)" if v.seconds > 0 and v.bytes else "")
        + (f"; {len(v.corrupt)} corrupt, relabeled" if v.corrupt else ""),
        f"teacher calls: {summary.teacher_calls} (model.predict batches; "
        f"{sum(t.teacher_images for t in summary.teachers)} images fed)",
    ]
    if summary.teacher_calls == 0:
        lines.append("all label shards were already finished: nothing to do (cache hit)")
    for corrupt in summary.verified.corrupt:
        lines.append(f"CORRUPT (relabeled) {corrupt}")
    for t in summary.teachers:
        for shard, err in sorted(t.failed.items()):
            lines.append(f"FAILED {t.name} shard {shard}: {err}")
    if not summary.ok:
        lines.append("some shards failed after retries; fix the cause and rerun the same "
                     "command: finished shards are kept and skipped")
    return lines


def render_summary(summary, console=None) -> None:
    """Print the table and the closing lines with rich (commands only)."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    table = Table(title="labels")
    for name in HEADER:
        table.add_column(name, justify="left" if name == "teacher" else "right")
    for row in teacher_rows(summary):
        table.add_row(*row)
    console.print(table)
    for line in summary_lines(summary):
        console.print(line, markup=False, highlight=False, soft_wrap=True)  # one line per fact in logs
