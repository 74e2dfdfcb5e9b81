"""The training loop: label store -> distilled student. Reads top to bottom like nanoGPT.

    train(config, shards, out)
      setup_distributed        torchrun env -> gloo (CPU) / nccl (GPU); rank 0 logs and writes
      check_store              the store exists, has shards and every configured teacher
      build_state              student (fresh or from ckpt_last.pt), frozen encoder, AdamW, schedule
      build_loader             ShardStream at the saved data position
      for step: train_step     one teacher per batch, loss terms, NaN guard, clip, AdamW
                log_step       TensorBoard scalars + tqdm
                evaluate       world eval split every eval_every steps; best checkpoint kept
                save           ckpt_last.pt every ckpt_every steps (atomic)
      export_student           DIR/student/ loadable by transformers.pipeline("depth-estimation")

Run folder: config.json, ckpt_last.pt, ckpt_best.pt, tb/ (TensorBoard), student/.
A killed run restarted with the same `out` resumes from ckpt_last.pt and continues the same
loss curve (model, optimizer, schedule, RNG and data position are restored).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from depthdistill.background import BackgroundIterator
from depthdistill.models import student as students

from . import checkpoint as ckpt
from . import data as tdata
from .export import export_student
from .losses import TERMS, DistillationLoss
from .optim import PolyWarmupSchedule, amp_dtype, build_optimizer, clip_and_norm, grad_scaler

if TYPE_CHECKING:
    from depthdistill.config import TrainConfig

logger = logging.getLogger(__name__)
MAX_BAD_STEPS = 3


class TrainingDivergedError(RuntimeError):
    """Several non-finite losses in a row; the last good checkpoint is kept."""


# ----------------------------------------------------------------------------- distributed


@dataclass
class Dist:
    rank: int = 0
    world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def close(self) -> None:
        if self.world_size > 1 and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def setup_distributed() -> Dist:
    """torchrun's env (RANK, WORLD_SIZE, LOCAL_RANK) -> process group; gloo on CPU, nccl on GPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    cuda = torch.cuda.is_available()
    if world == 1:
        return Dist(device=torch.device("cuda" if cuda else "cpu"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device("cuda", local) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if cuda else "gloo")
    return Dist(rank=torch.distributed.get_rank(), world_size=world, device=device)


def all_true(flag: bool, dist: Dist) -> bool:
    if dist.world_size == 1:
        return flag
    t = torch.tensor([0 if flag else 1], device=dist.device)
    torch.distributed.all_reduce(t)  # sync point: sum of "bad" flags
    return int(t.item()) == 0


def gather_objects(obj: Any, dist: Dist) -> list[Any]:
    if dist.world_size == 1:
        return [obj]
    out: list[Any] = [None] * dist.world_size
    torch.distributed.all_gather_object(out, obj)  # sync point
    return out


# ----------------------------------------------------------------------------- eval


@dataclass
class EvalSetup:
    """What the periodic eval needs: `train.eval_images` renders of the world's `val` split
    (settings are chosen there, never on `eval`) and the student's input size."""

    dataset: Any  # evaluation.rendered.RenderedWorldDataset, rendered once and kept
    input_size: int  # views.view_size

    @classmethod
    def of(cls, config) -> "EvalSetup":
        from depthdistill.evaluation.rendered import RenderedWorldDataset

        data = RenderedWorldDataset("val", config.train.eval_images, image_hw=tuple(config.images.image_size))
        return cls(data, config.views.view_size)


def evaluate_student(model, setup: EvalSetup, device: torch.device) -> dict[str, float]:
    """The student scored by the evaluation runner (`evaluate_dataset`, the protocol and metrics
    of `depthdistill eval`); it runs as its export would (`DepthPredictor`)."""
    from depthdistill.evaluation.predictor import DepthPredictor, InMemoryStudent
    from depthdistill.evaluation.runner import evaluate_dataset

    was_training = model.training
    model.eval()
    try:
        predictor = DepthPredictor.wrap("student", InMemoryStudent(model, device), input_size=setup.input_size)
        result = evaluate_dataset(predictor, setup.dataset, progress=False)
    finally:
        model.train(was_training)
    return {k: v["mean"] for k, v in result.stats.items()}


@dataclass
class TrainResult:
    out: Path
    steps: int
    last_terms: dict[str, float] = field(default_factory=dict)
    skipped_steps: int = 0
    skipped_shards: int = 0
    best_abs_rel: float = math.inf
    export_dir: Path | None = None


@dataclass
class RunState:
    """Everything the loop mutates, in one place."""

    model: Any  # DepthAnythingForDepthEstimation
    net: Any  # StudentWithTokens, DDP-wrapped when distributed
    frozen: Any  # L_feat's frozen reference encoder (train.feat_reference) or None
    optimizer: Any
    schedule: PolyWarmupSchedule
    scaler: Any
    step: int = 0
    position: tdata.DataPosition = field(default_factory=tdata.DataPosition)
    best: float = math.inf
    bad_streak: int = 0
    skipped_steps: int = 0
    rng: dict | None = None
    pending_best: bool = False
    anchor: float | None = None  # L_anchor's median output (train.anchor_median or the first batch's)


def build_state(tc: "TrainConfig", dist: Dist, resume_from: Path | None) -> RunState:
    saved = ckpt.load_checkpoint(resume_from) if resume_from else None
    if saved is None:
        model = students.build_student(tc.student, tc.init, tc.init_from, seed=tc.seed)
    else:
        model = students.model_from_args(saved["model_args"])
        model.load_state_dict(saved["model"])
    model.to(dist.device).train()
    # L_feat's reference encoder (train.feat_reference); on resume its weights come from the checkpoint
    frozen = None
    source = students.feature_reference_source(tc.feat_reference, tc.init, tc.init_from, tc.student)
    if tc.w_feat > 0 and source:
        frozen = students.reference_encoder(source, model)
        if saved is not None and saved.get("frozen_encoder") is not None:
            frozen.load_state_dict(saved["frozen_encoder"])
        frozen.to(dist.device)
        logger.info("L_feat aligns to the frozen encoder of %s", source)
    elif tc.w_feat > 0:
        logger.warning("L_feat is off: train.feat_reference %r names no pretrained encoder for a %s-init "
                       "student (set it to a model of the student's width to align to one)", tc.feat_reference,
                       tc.init)
    net = students.with_tokens(model)
    if dist.world_size > 1:
        net = torch.nn.parallel.DistributedDataParallel(net, device_ids=[dist.device.index] if dist.device.type == "cuda" else None)
    optimizer = build_optimizer(model, tc)
    state = RunState(model=model, net=net, frozen=frozen, optimizer=optimizer,
                     schedule=PolyWarmupSchedule(optimizer, tc), scaler=grad_scaler(amp_dtype(tc.amp, dist.device), dist.device))
    if saved is not None:
        optimizer.load_state_dict(saved["optimizer"])
        state.schedule.load_state_dict(saved["scheduler"])
        state.scaler.load_state_dict(saved["scaler"])
        state.step, state.best = saved["step"], saved["best"]
        state.skipped_steps = saved.get("skipped_steps", 0)
        state.anchor = saved.get("anchor")
        ranks = saved["data"]["ranks"]
        if len(ranks) == dist.world_size:
            state.position = tdata.DataPosition.from_state(ranks[dist.rank])
        else:  # a different world size cannot replay the old split: start the next epoch afresh
            epoch = 1 + max((e for r in ranks for e, _ in r["workers"].values()), default=0)
            logger.warning("resuming with %d ranks (checkpoint had %d): data restarts at epoch %d",
                           dist.world_size, len(ranks), epoch)
            state.position = tdata.DataPosition(workers={str(w): [epoch, 0] for w in range(max(1, tc.num_workers))})
        state.rng = saved["rng"][min(dist.rank, len(saved["rng"]) - 1)]
        logger.info("resumed from %s at step %d", resume_from, state.step)
    return state


def save(state: RunState, config, dist: Dist, path: Path) -> None:
    """Write a checkpoint (every rank contributes its data position and RNG; rank 0 writes)."""
    positions = gather_objects(state.position.state_dict(), dist)  # sync point: all ranks
    rngs = gather_objects(ckpt.rng_state(), dist)  # sync point: all ranks
    if not dist.is_main:
        return
    blob = {"model": state.model.state_dict(), "model_args": students.model_args(state.model),
            "frozen_encoder": state.frozen.state_dict() if state.frozen is not None else None,
            "optimizer": state.optimizer.state_dict(), "scheduler": state.schedule.state_dict(),
            "scaler": state.scaler.state_dict(), "rng": rngs, "step": state.step,
            "data": {"ranks": positions}, "config": config.to_dict(), "best": state.best,
            "skipped_steps": state.skipped_steps, "anchor": state.anchor}
    try:
        ckpt.save_checkpoint(path, blob)
    except ckpt.CheckpointWriteError as exc:
        logger.error("%s", exc)


def _to_device(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def train_step(state: RunState, batches, sampler: tdata.TeacherSampler, loss_fn: DistillationLoss,
               tc: "TrainConfig", dist: Dist) -> dict[str, float] | None:
    """One optimizer step over `grad_accum` micro-batches; None when skipped (non-finite)."""
    lrs = state.schedule.apply(state.step)
    state.optimizer.zero_grad(set_to_none=True)
    dtype = amp_dtype(tc.amp, dist.device)
    sums: dict[str, float] = {}
    samples, finite = 0, True
    for micro in range(tc.grad_accum):
        raw = next(batches)
        state.position.update(raw)
        teacher = sampler.draw(state.position.batches - 1)
        batch = _to_device(tdata.select_teacher(raw, teacher), dist.device)
        pixels = students.normalize_images(batch["image"])  # [B, 3, V, V]
        last = micro == tc.grad_accum - 1
        sync = contextlib.nullcontext() if last or dist.world_size == 1 else state.net.no_sync()
        with sync:
            with torch.autocast(dist.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                pred, tokens = state.net(pixels)  # [B, V, V], [B, N, C]
                frozen_tokens = students.encoder_tokens(state.frozen, pixels) if loss_fn.needs_features else None
            if state.anchor is None:  # the first batch fixes the level the scale guard holds
                state.anchor = tc.anchor_median or first_batch_anchor(pred, dist)
            loss, terms = loss_fn(pred.float(), batch, tokens, frozen_tokens, anchor=state.anchor)
            state.scaler.scale(loss / tc.grad_accum).backward()
        finite &= bool(torch.isfinite(loss.detach()))
        for k, v in terms.items():
            sums[k] = sums.get(k, 0.0) + float(v.detach()) / tc.grad_accum
        sums["total"] = sums.get("total", 0.0) + float(loss.detach()) / tc.grad_accum
        sums[f"teacher/{teacher}"] = sums.get(f"teacher/{teacher}", 0.0) + 1.0
        sums["median_output"] = float(pred.detach().float().median())
        samples += batch["image"].shape[0]
    if not all_true(finite, dist):  # sync point: every rank skips together
        state.optimizer.zero_grad(set_to_none=True)
        return None
    state.scaler.unscale_(state.optimizer)
    sums["grad_norm"] = clip_and_norm(state.model, tc.grad_clip)
    state.scaler.step(state.optimizer)
    state.scaler.update()
    sums.update({f"lr/{k}": v for k, v in lrs.items()})
    sums["samples"] = samples * dist.world_size
    return sums


def first_batch_anchor(pred: torch.Tensor, dist: Dist) -> float:
    """The median output of the first batch (rank 0's, broadcast: every rank holds one level)."""
    value = torch.tensor([max(float(pred.detach().float().median()), 1e-6)], device=dist.device)
    if dist.world_size > 1:
        torch.distributed.broadcast(value, 0)  # sync point
    return float(value.item())


def log_step(writer, bar, stats: dict[str, float], step: int, seconds: float) -> None:
    if writer is None:
        return
    for key, value in stats.items():
        if key == "samples":
            continue
        tag = key if "/" in key else (f"loss/{key}" if key in TERMS + ("total",) else f"train/{key}")
        writer.add_scalar(tag, value, step)
    writer.add_scalar("train/samples_per_s", stats["samples"] / max(seconds, 1e-9), step)
    bar.set_postfix(loss=f"{stats['total']:.4f}", med=f"{stats['median_output']:.3g}")


def _handle_bad_step(state: RunState, step: int) -> None:
    state.bad_streak += 1
    state.skipped_steps += 1
    logger.warning("step %d: non-finite loss, step skipped (%d in a row)", step, state.bad_streak)
    if state.bad_streak >= MAX_BAD_STEPS:
        raise TrainingDivergedError(f"{MAX_BAD_STEPS} non-finite losses in a row at step {step}; stopped. The last "
                                    "good checkpoint is kept: lower the learning rates or check the labels")


def _initial_eval(state: RunState, setup: EvalSetup | None, dist: Dist, writer) -> None:
    """Score the untrained student once (step 0), so curves start from the real initial value."""
    if not dist.is_main or setup is None or state.step != 0:
        return
    metrics = evaluate_student(state.model, setup, dist.device)
    for k, v in metrics.items():
        writer.add_scalar(f"eval/{k}", v, 0)
    logger.info("step 0 eval (initial student): abs_rel %.4f delta1 %.4f", metrics["abs_rel"], metrics["delta1"])


def _maybe_eval(state: RunState, setup: EvalSetup | None, every: int, dist: Dist, writer, step: int,
                final: bool) -> None:
    if not dist.is_main or setup is None or not (step % every == 0 or final):
        return
    metrics = evaluate_student(state.model, setup, dist.device)
    for k, v in metrics.items():
        writer.add_scalar(f"eval/{k}", v, step)
    logger.info("step %d eval: abs_rel %.4f delta1 %.4f", step, metrics["abs_rel"], metrics["delta1"])
    if metrics["abs_rel"] < state.best:
        state.best = metrics["abs_rel"]
        state.pending_best = True


def exported_model(state: RunState, tc: "TrainConfig", out: Path):
    """The model `student/` receives: the last one, or (train.export: best) the checkpoint that
    scored best in the periodic eval on the world val split (model selection on val)."""
    best = out / ckpt.BEST
    if tc.export != "best" or not best.is_file():
        return state.model
    model = students.model_from_args(ckpt.load_checkpoint(best)["model_args"])
    model.load_state_dict(ckpt.load_checkpoint(best)["model"])
    logger.info("exporting the best-on-val checkpoint (%s, val AbsRel %.4f)", best, state.best)
    return model


def train(config, shards: str | Path, out: str | Path | None = None, *, steps: int | None = None) -> TrainResult:
    """Distill a student from the label store at `shards` into run folder `out`."""
    from torch.utils.tensorboard import SummaryWriter
    from tqdm.auto import tqdm

    if steps is not None:
        config = dataclasses.replace(config, train=dataclasses.replace(config.train, steps=steps))
    tc = config.train
    out = Path(out or tc.out)
    dist = setup_distributed()
    writer = prefetcher = None
    try:
        teachers = tuple(t.name for t in config.teachers)
        tdata.check_store(shards, teachers)
        resume_from = ckpt.find_resume(out)
        torch.manual_seed(tc.seed)
        state = build_state(tc, dist, resume_from)
        dataset = tdata.ShardStream(shards, teachers, batch_size=tc.batch_size, max_grid=config.views.max_grid,
                                    seed=tc.seed, shuffle_buffer=tc.shuffle_buffer, strict=tc.strict,
                                    rank=dist.rank, world_size=dist.world_size, num_workers=tc.num_workers,
                                    position=dataclasses.replace(state.position))
        batches = iter(tdata.build_loader(dataset, tc.num_workers))
        if tc.num_workers == 0:  # decode in a thread, overlapping the step (workers do that otherwise)
            batches = prefetcher = BackgroundIterator(batches, name="batch-prefetch")
        if state.rng is not None:
            ckpt.set_rng_state(state.rng)
        sampler = tdata.TeacherSampler({t.name: t.weight for t in config.teachers}, seed=tc.seed)
        loss_fn = DistillationLoss(tc)
        if state.frozen is None:
            loss_fn.without_features()
        if dist.is_main:
            out.mkdir(parents=True, exist_ok=True)
            (out / "config.json").write_text(config.to_json())
            writer = SummaryWriter(str(out / "tb"), purge_step=state.step + 1)
        setup = EvalSetup.of(config) if dist.is_main and tc.eval_images > 0 else None
        _initial_eval(state, setup, dist, writer)
        bar = tqdm(total=tc.steps, initial=state.step, disable=not dist.is_main, desc="train")
        stats: dict[str, float] = {}
        while state.step < tc.steps:
            t0 = time.perf_counter()
            result = train_step(state, batches, sampler, loss_fn, tc, dist)
            if result is None:
                _handle_bad_step(state, state.step)
                continue
            state.bad_streak, stats = 0, result
            state.step += 1
            bar.update(1)
            log_step(writer, bar, stats, state.step, time.perf_counter() - t0)
            state.pending_best = False
            _maybe_eval(state, setup, tc.eval_every, dist, writer, state.step, final=state.step == tc.steps)
            if state.pending_best:
                save(state, config, dist, out / ckpt.BEST)
            if state.step % tc.ckpt_every == 0 or state.step == tc.steps:
                save(state, config, dist, out / ckpt.LAST)
        bar.close()
        export_dir = None
        if dist.is_main:
            export_dir = export_student(exported_model(state, tc, out), out / "student",
                                        input_size=config.views.view_size, config=config)
        return TrainResult(out=out, steps=state.step, last_terms=stats, skipped_steps=state.skipped_steps,
                           skipped_shards=state.position.skipped_shards, best_abs_rel=state.best,
                           export_dir=export_dir)
    finally:
        if prefetcher is not None:
            prefetcher.close()
        if writer is not None:
            writer.close()
        dist.close()
