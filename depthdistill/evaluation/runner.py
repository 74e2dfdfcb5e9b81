"""The eval loop: models x benchmarks -> per-image metrics -> one result per pair.

Protocol: `depthdistill.depth.evaluate_depth`, the project's one implementation (least-squares
scale and shift in the model's space, disparity models against 1/GT, clip, invert, clip to the
set's range, per-image metrics). The prediction is brought to the GT resolution with bilinear
interpolation (`views.resize`), as Marigold resizes its prediction to the GT size.

Metrics per image (`METRICS`): AbsRel and delta1 on the evaluation mask, depth-edge F1, and
AbsRel on thin-structure pixels where the set has a thin mask (the world). A result holds the
plain mean over images and its standard error (sample std / sqrt(n), NaN for one image).
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Sequence

import numpy as np

from depthdistill.evaluation.datasets import (SPECS, BenchmarkDataset, DatasetLayoutError, EvalSample,
                                             layout_message, open_benchmark)

if TYPE_CHECKING:
    from depthdistill.config import StagesConfig
    from depthdistill.evaluation.predictor import BaselinePredictor, DepthPredictor

logger = logging.getLogger(__name__)


METRICS = ("abs_rel", "delta1", "edge_f1", "thin_abs_rel")


def mean_and_se(values: Iterable[float]) -> tuple[float, float]:
    """(mean, standard error of the mean) over the finite values; NaN where undefined."""
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], dtype=np.float64)
    if v.size == 0:
        return math.nan, math.nan
    return float(v.mean()), float(v.std(ddof=1) / math.sqrt(v.size)) if v.size > 1 else math.nan


@dataclass
class DatasetResult:
    model: str
    dataset: str
    abs_rel: float  # mean over images
    delta1: float  # mean over images
    num_images: int
    num_skipped: int
    space: str
    seconds: float
    skipped: list[tuple[str, str]] = field(default_factory=list)
    per_image: list[dict] = field(default_factory=list)  # key + every METRICS value
    stats: dict[str, dict[str, float]] = field(default_factory=dict)  # metric -> {"mean", "se", "n"}

    def summary(self) -> dict:
        base = {k: getattr(self, k) for k in
                ("model", "dataset", "abs_rel", "delta1", "num_images", "num_skipped", "space", "seconds")}
        for metric, st in self.stats.items():
            base[f"{metric}_se"] = st["se"]
            if metric not in base:
                base[metric] = st["mean"]
        return base


def score_sample(pred: np.ndarray, sample: EvalSample, space: str,
                 depth_range: tuple[float, float]) -> dict[str, float] | None:
    """One image: raw prediction (any size) -> {metric: value}, None if no valid GT pixel."""
    import torch

    from depthdistill.depth import evaluate_depth
    from depthdistill.views import resize

    if not sample.mask.any():
        return None
    p = torch.from_numpy(np.ascontiguousarray(pred, dtype=np.float32))[None]  # [1, h, w]
    if tuple(p.shape[-2:]) != sample.depth.shape:
        p = resize(p, sample.depth.shape)  # [1, H, W] bilinear to the GT size
    gt = torch.from_numpy(sample.depth)[None]  # [1, H, W]
    mask = torch.from_numpy(sample.mask)[None]  # [1, H, W]
    thin = torch.from_numpy(sample.thin)[None] if sample.thin is not None else None  # [1, H, W]
    metrics = evaluate_depth(p, gt, mask, space=space, depth_range=depth_range, thin=thin)
    return {k: float(metrics[k][0]) for k in METRICS}


def _batches(items: Iterable[EvalSample], n: int) -> Iterable[list[EvalSample]]:
    it = iter(items)
    while batch := list(itertools.islice(it, n)):
        yield batch


def evaluate_dataset(predictor: "DepthPredictor | BaselinePredictor", data: BenchmarkDataset, *, batch_size: int = 8,
                     progress: bool = True) -> DatasetResult:
    from tqdm.auto import tqdm

    start = time.perf_counter()
    skipped_before = len(data.skipped)
    per_image: list[dict] = []
    no_gt: list[tuple[str, str]] = []
    bar = tqdm(total=len(data), desc=f"{predictor.spec} | {data.spec.name}", disable=not progress, leave=False)
    for batch in _batches(data, batch_size):
        preds = predictor.predict([s.rgb for s in batch])
        for sample, pred in zip(batch, preds):
            scores = score_sample(pred, sample, predictor.space, data.depth_range)
            if scores is None:
                no_gt.append((sample.key, "no valid ground-truth pixel in the mask"))
            else:
                per_image.append({"key": sample.key, **scores})
        bar.update(len(batch))
    bar.close()
    skipped = data.skipped[:] + no_gt
    data.skipped[skipped_before:] = []  # decode failures belong to this pass only
    stats = {}
    for metric in METRICS:
        values = [r[metric] for r in per_image]
        mean, se = mean_and_se(values)
        stats[metric] = {"mean": mean, "se": se, "n": sum(math.isfinite(v) for v in values)}
    return DatasetResult(
        model=predictor.spec, dataset=data.spec.name, abs_rel=stats["abs_rel"]["mean"],
        delta1=stats["delta1"]["mean"], num_images=len(per_image), num_skipped=len(skipped),
        space=predictor.space, seconds=time.perf_counter() - start, skipped=skipped,
        per_image=per_image, stats=stats)


def world_eval_root(config: "StagesConfig", cache: str | Path) -> Path:
    """Export the world eval split (eval.eval_n images) once into `cache`; reuse it after."""
    from depthdistill.world import export_split

    h, w = config.images.image_size
    n = config.eval.eval_n
    root = Path(cache) / f"world-eval-n{n}-{h}x{w}"
    if (root / "meta.json").is_file() and len(list((root / "rgb").glob("*.png"))) == n:
        return root
    logger.info("exporting %d world eval images to %s", n, root)
    export_split("eval", n, root, height=h, width=w)
    return root


def open_datasets(pairs: Sequence[tuple[str, str]], config: "StagesConfig",
                  cache: str | Path) -> list[BenchmarkDataset]:
    """(name, root) pairs -> opened data sets; every layout problem is raised before models load."""
    opened = []
    for name, root in pairs:
        if name == "world" and not root:
            root = str(world_eval_root(config, cache))
        elif not root and name != "middlebury":
            raise DatasetLayoutError(layout_message(name, f"no --root given for data set '{name}'")
                                     if name in SPECS else f"unknown data set {name!r}; choose one of {sorted(SPECS)}")
        opened.append(open_benchmark(name, root))
    return opened


def run_eval(models: Sequence[str], pairs: Sequence[tuple[str, str]], config: "StagesConfig", *,
             device: str = "cpu", batch_size: int | None = None, input_size: int | None = None,
             out: str | Path | None = None, progress: bool = True) -> list[DatasetResult]:
    """Every model on every data set; writes results.json / results.csv / per_image.jsonl to `out`."""
    from depthdistill.evaluation.predictor import make_predictor
    from depthdistill.evaluation.report import write_results

    out = Path(out or config.eval.out)
    datasets = open_datasets(pairs, config, out / "cache")
    results = []
    for spec in models:
        predictor = make_predictor(spec, config, device=device, input_size=input_size)
        for data in datasets:
            res = evaluate_dataset(predictor, data, batch_size=batch_size or config.eval.batch_size,
                                   progress=progress)
            logger.info("%s on %s: abs_rel %.4f delta1 %.4f (%d images, %d skipped, %.1fs)", spec,
                        res.dataset, res.abs_rel, res.delta1, res.num_images, res.num_skipped, res.seconds)
            results.append(res)
    write_results(results, out, extra={"device": device, "config": config.source_path,
                                       "datasets": [{"name": d.spec.name, "root": str(d.root),
                                                     "list_file": d.list_file} for d in datasets]})
    return results


def load_results(path: str | Path) -> list[dict]:
    return json.loads(Path(path).read_text())["results"]
