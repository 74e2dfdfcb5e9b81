"""The eval loop: models x benchmarks -> per-image AbsRel / delta1 -> one result per pair.

Protocol: `depthdistill.depth.evaluate_depth`, the project's one implementation (least-squares
scale and shift in the model's space, disparity models against 1/GT, clip, invert, clip to the
set's range, per-image metrics). The prediction is brought to the GT resolution with bilinear
interpolation (`views.resize`), as Marigold resizes its prediction to the GT size.
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
    from depthdistill.evaluation.predictor import DepthPredictor

logger = logging.getLogger(__name__)


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
    per_image: list[dict] = field(default_factory=list)  # key, abs_rel, delta1

    def summary(self) -> dict:
        return {k: getattr(self, k) for k in
                ("model", "dataset", "abs_rel", "delta1", "num_images", "num_skipped", "space", "seconds")}


def score_sample(pred: np.ndarray, sample: EvalSample, space: str,
                 depth_range: tuple[float, float]) -> tuple[float, float] | None:
    """One image: raw prediction (any size) -> (abs_rel, delta1), None if no valid GT pixel."""
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
    metrics = evaluate_depth(p, gt, mask, space=space, depth_range=depth_range)
    return float(metrics["abs_rel"][0]), float(metrics["delta1"][0])


def _batches(items: Iterable[EvalSample], n: int) -> Iterable[list[EvalSample]]:
    it = iter(items)
    while batch := list(itertools.islice(it, n)):
        yield batch


def evaluate_dataset(predictor: "DepthPredictor", data: BenchmarkDataset, *, batch_size: int = 8,
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
                per_image.append({"key": sample.key, "abs_rel": scores[0], "delta1": scores[1]})
        bar.update(len(batch))
    bar.close()
    skipped = data.skipped[:] + no_gt
    data.skipped[skipped_before:] = []  # decode failures belong to this pass only
    n = len(per_image)
    return DatasetResult(
        model=predictor.spec, dataset=data.spec.name,
        abs_rel=float(np.mean([r["abs_rel"] for r in per_image])) if n else math.nan,
        delta1=float(np.mean([r["delta1"] for r in per_image])) if n else math.nan,
        num_images=n, num_skipped=len(skipped), space=predictor.space,
        seconds=time.perf_counter() - start, skipped=skipped, per_image=per_image)


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
        elif not root:
            raise DatasetLayoutError(layout_message(name, f"no --root given for data set '{name}'")
                                     if name in SPECS else f"unknown data set {name!r}; choose one of {sorted(SPECS)}")
        opened.append(open_benchmark(name, root))
    return opened


def run_eval(models: Sequence[str], pairs: Sequence[tuple[str, str]], config: "StagesConfig", *,
             device: str = "cpu", batch_size: int | None = None, input_size: int | None = None,
             out: str | Path | None = None, progress: bool = True) -> list[DatasetResult]:
    """Every model on every data set; writes results.json / results.csv / per_image.jsonl to `out`."""
    from depthdistill.evaluation.predictor import DepthPredictor
    from depthdistill.evaluation.report import write_results

    out = Path(out or config.eval.out)
    datasets = open_datasets(pairs, config, out / "cache")
    results = []
    for spec in models:
        predictor = DepthPredictor(spec, config, device=device, input_size=input_size)
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
