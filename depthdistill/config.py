"""stages.yaml -> frozen, validated dataclasses.

Every stage of the project (images, views, teachers, labels, train, eval) reads its settings
from one YAML file. Loading checks everything before any model loads: an unknown key, a value
of the wrong type or out of range gives one `ConfigError` naming the file, the key path, the
bad value and the fix (the CLI prints it and exits 2).

Importing this module is cheap (stdlib + yaml only): the CLI imports it at start-up.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from depthdistill.models.kinds import KINDS, TEACHER_KINDS

# The project's vocabulary, defined once (cheap to import: depth, models, shards use it too).
PRECISIONS = ("fp32", "fp16", "bf16")
NORMALIZATIONS = ("none", "global", "local", "hybrid")  # depth.normalize kinds, in Table 1's order
SPACES = ("disparity", "depth")  # a teacher's output space, recorded with its labels
WORLD_IMAGE_HW = (384, 512)  # (H, W) of the embedded world's renders
STUDENT_PATCH = 14  # the DAv2 students' patch: their input (views.view_size) is a multiple of it
DEFAULT_INPUT_MULTIPLE = {name: k.input_multiple for name, k in KINDS.items()}
Norm = Literal[NORMALIZATIONS]  # type: ignore[valid-type]  # Literal["none", "global", "local", "hybrid"]
Precision = Literal[PRECISIONS]  # type: ignore[valid-type]


class ConfigError(ValueError):
    """A bad value in a config file: says which file, which key, and how to fix it."""


def _check(ok: bool, key: str, value: Any, allowed: str) -> None:
    """Raise ValueError('key: got value; allowed') — turned into a ConfigError by the loader."""
    if not ok:
        raise ValueError(f"{key}: got {value!r}; {allowed}")


@dataclass(frozen=True, kw_only=True)
class ImagesConfig:
    # folder, .tar shard(s), a text file of paths, or world://<split>?n=N
    source: str = "world://unlabeled?n=64"
    image_size: tuple[int, ...] = WORLD_IMAGE_HW  # (H, W) of world:// renders; real collections keep their own

    def __post_init__(self) -> None:
        _check(bool(self.source.strip()), "images.source", self.source, "give a folder, .tar, list file or world://unlabeled?n=N")
        _check(len(self.image_size) == 2 and min(self.image_size) >= 14, "images.image_size", self.image_size,
               "give [height, width], each at least 14")


@dataclass(frozen=True, kw_only=True)
class ViewsConfig:
    view_size: int = 112  # global view side fed to teacher and student (paper: 560)
    crop_min: int = 129  # smallest crop side in native pixels (paper: 644)
    patch_size: int = 112  # native patch side for the local-global patches (paper: 560)
    max_grid: int = 3  # largest k of the k x k patch grid
    min_overlap: float = 0.25  # neighbouring patches overlap by at least this fraction
    views_per_image: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        _check(self.view_size >= 14, "views.view_size", self.view_size, "use at least 14 pixels")
        _check(self.crop_min >= self.view_size, "views.crop_min", self.crop_min,
               f"must be >= views.view_size ({self.view_size}): a view never upsamples its crop")
        _check(self.patch_size >= 14, "views.patch_size", self.patch_size, "use at least 14 pixels")
        _check(1 <= self.max_grid <= 8, "views.max_grid", self.max_grid, "use 1..8")
        _check(0.0 <= self.min_overlap < 1.0, "views.min_overlap", self.min_overlap, "use a fraction in [0, 1)")
        _check(self.views_per_image >= 1, "views.views_per_image", self.views_per_image, "use 1 or more")


@dataclass(frozen=True, kw_only=True)
class TeacherConfig:
    name: str
    kind: str = "dav2"  # a key of models.kinds.KINDS: dav2 | genpercept | dpt
    model: str = "embedded://dav2-tiny"  # embedded://..., hub id, or local folder
    weight: float = 1.0  # probability weight of this teacher in the trainer's per-batch draw
    precision: Precision = "fp32"
    input_size: int = 112  # fixed square input side the teacher runs at
    batch_size: int = 16
    input_multiple: int = 0  # 0 = the kind's (models.kinds: 14 DAv2, 8 GenPercept, 32 DPT)
    unet_subfolder: str = "unet_disparity_v2"  # GenPercept only
    prompt_embedding: str = ""  # GenPercept only: cached empty-prompt embedding file ("" = in the model folder)

    def __post_init__(self) -> None:
        _check(self.name.replace("-", "").replace("_", "").isalnum(), "teachers[].name", self.name,
               "use letters, digits, '-' or '_' (it names a folder)")
        _check(self.kind in KINDS, f"teachers[{self.name}].kind", self.kind, f"use one of {', '.join(TEACHER_KINDS)}")
        for option in ("unet_subfolder", "prompt_embedding"):  # kind-specific keys (models.kinds options)
            default = type(self).__dataclass_fields__[option].default
            _check(getattr(self, option) == default or option in KINDS[self.kind].options,
                   f"teachers[{self.name}].{option}", getattr(self, option),
                   f"only {', '.join(k for k, v in KINDS.items() if option in v.options)} teachers read it; "
                   f"remove it from this {self.kind} teacher")
        _check(self.weight >= 0.0, f"teachers[{self.name}].weight", self.weight, "use a weight >= 0")
        _check(self.batch_size >= 1, f"teachers[{self.name}].batch_size", self.batch_size, "use 1 or more")
        if self.input_multiple == 0:
            object.__setattr__(self, "input_multiple", DEFAULT_INPUT_MULTIPLE[self.kind])
        _check(self.input_multiple >= 1, f"teachers[{self.name}].input_multiple", self.input_multiple, "use 1 or more")
        _check(self.input_size % self.input_multiple == 0, f"teachers[{self.name}].input_size", self.input_size,
               f"must be a multiple of {self.input_multiple} for a {self.kind} teacher")


@dataclass(frozen=True, kw_only=True)
class LabelsConfig:
    out: str = "runs/labels"  # parent folder of label stores
    format: Literal["webdataset", "zarr"] = "webdataset"
    shard_size: int = 16  # views per shard: the unit of work of one actor
    num_actors: int = 0  # per teacher; 0 = one per GPU on a cluster, 2 CPU actors locally
    max_retries: int = 2
    # label codec (depthdistill.shards.codec): png16 = 12-bit words in plain containers (16-bit PNG
    # in tars, numcodecs Delta + Blosc in Zarr), readable without depthdistill; q12 = compact custom
    codec: Literal["png16", "q12", "q16", "f16", "f32"] = "png16"
    prefetch: int = 2  # views decoded ahead of the model inside an actor
    max_image_pixels: int = 178_956_970  # decompression-bomb guard (PIL's default)
    actor_resources: dict = field(default_factory=dict)  # e.g. {"fake_gpu": 1} in tests

    def __post_init__(self) -> None:
        _check(self.shard_size >= 1, "labels.shard_size", self.shard_size, "use 1 or more views per shard")
        _check(self.num_actors >= 0, "labels.num_actors", self.num_actors, "use 0 (auto) or more")
        _check(self.max_retries >= 0, "labels.max_retries", self.max_retries, "use 0 or more")
        _check(self.prefetch >= 1, "labels.prefetch", self.prefetch, "use 1 or more")
        _check(self.max_image_pixels >= 1, "labels.max_image_pixels", self.max_image_pixels, "use a positive pixel count")


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    student: str = "tiny"  # tiny | small | base | large | hub id | folder
    init: Literal["random", "encoder_only", "full"] = "random"
    init_from: str = ""  # pretrained weights for encoder_only / full init
    steps: int = 300
    batch_size: int = 8
    lr_encoder: float = 5e-6
    lr_decoder: float = 5e-5
    weight_decay: float = 0.01
    warmup_steps: int = 20
    poly_power: float = 0.9
    grad_clip: float = 1.0
    grad_accum: int = 1
    amp: Literal["auto", "off", "bf16", "fp16"] = "auto"
    w_sc: float = 1.0
    w_lg: float = 0.5
    w_feat: float = 1.0
    w_grad: float = 2.0
    norm_sc: Norm = "hybrid"
    norm_lg: Norm = "hybrid"
    # gradient matching on the globally normalized residual: the MiDaS / Depth Anything convention
    # (hybrid's context-averaged residual jumps at the teacher's bin edges; docs/science/README.md)
    norm_grad: Norm = "global"
    feat_alpha: float = 0.85
    feat_reduce: Literal["kept", "all"] = "kept"
    # L_feat's frozen encoder: auto = the pretrained weights the student starts from (init_from),
    # none for a random student; off; or a model id / folder / embedded://NAME of the student's width
    feat_reference: str = "auto"
    # scale-drift guard: w_anchor * mean_b (log median(pred_b) - log anchor)^2; the anchor is
    # anchor_median, or (0) the student's median output on its first batch
    w_anchor: float = 0.0
    anchor_median: float = 0.0
    grad_scales: int = 4
    num_workers: int = 0
    shuffle_buffer: int = 64
    seed: int = 0
    eval_every: int = 100
    ckpt_every: int = 100
    eval_images: int = 16
    strict: bool = False
    export: Literal["last", "best"] = "last"  # student/ = the last weights, or the best on the val split
    out: str = "runs/train"

    def __post_init__(self) -> None:
        for key in ("steps", "batch_size", "grad_accum", "grad_scales", "eval_every", "ckpt_every"):
            _check(getattr(self, key) >= 1, f"train.{key}", getattr(self, key), "use 1 or more")
        for key in ("lr_encoder", "lr_decoder", "weight_decay", "grad_clip", "warmup_steps", "w_sc", "w_lg",
                    "w_feat", "w_grad", "w_anchor", "anchor_median", "num_workers", "shuffle_buffer",
                    "eval_images"):
            _check(getattr(self, key) >= 0, f"train.{key}", getattr(self, key), "use a value >= 0")
        _check(self.w_sc + self.w_lg + self.w_feat + self.w_grad > 0, "train.w_*", 0.0,
               "at least one loss weight must be positive")
        _check(0.0 < self.feat_alpha <= 1.0, "train.feat_alpha", self.feat_alpha, "use a cosine threshold in (0, 1]")
        _check(self.init == "random" or bool(self.init_from) or self.student not in ("tiny", "small", "base", "large"),
               "train.init_from", self.init_from, f"init '{self.init}' needs train.init_from (a model id or folder)")
        _check(bool(self.feat_reference.strip()), "train.feat_reference", self.feat_reference,
               "use auto, off, or a model id / folder / embedded://NAME")


@dataclass(frozen=True, kw_only=True)
class DatasetConfig:
    name: Literal["world", "nyuv2", "kitti", "eth3d", "scannet", "diode", "middlebury"] = "world"
    root: str = ""  # "" = the embedded world eval split, rendered on demand


@dataclass(frozen=True, kw_only=True)
class EvalConfig:
    datasets: tuple[DatasetConfig, ...] = (DatasetConfig(),)
    batch_size: int = 8
    eval_n: int = 32  # images of the world eval split
    out: str = "runs/eval"

    def __post_init__(self) -> None:
        _check(len(self.datasets) >= 1, "eval.datasets", self.datasets, "name at least one data set")
        _check(self.batch_size >= 1, "eval.batch_size", self.batch_size, "use 1 or more")
        _check(self.eval_n >= 1, "eval.eval_n", self.eval_n, "use 1 or more")


def _default_teachers() -> tuple[TeacherConfig, ...]:
    return (
        TeacherConfig(name="dav2", kind="dav2", model="embedded://dav2-tiny", weight=0.7),
        TeacherConfig(name="genpercept", kind="genpercept", model="embedded://genpercept-tiny", weight=0.3),
    )


def _student_patch(student: str) -> int | None:
    """The patch size of `train.student` when it can be known cheaply: the named DAv2 sizes, and
    a local or embedded folder's config.json; None for a hub id (checked when it is built)."""
    if student in ("tiny", "small", "base", "large"):
        return STUDENT_PATCH
    folder = Path(student)
    if student.startswith("embedded://"):
        from depthdistill.models.hub import EMBEDDED_ROOT

        folder = EMBEDDED_ROOT / student[len("embedded://"):]
    config = folder / "config.json"
    if not config.is_file():
        return None
    try:
        data = json.loads(config.read_text())
    except ValueError:
        return None
    return int(data.get("patch_size") or data.get("backbone_config", {}).get("patch_size") or STUDENT_PATCH)


@dataclass(frozen=True, kw_only=True)
class StagesConfig:
    images: ImagesConfig = field(default_factory=ImagesConfig)
    views: ViewsConfig = field(default_factory=ViewsConfig)
    teachers: tuple[TeacherConfig, ...] = field(default_factory=_default_teachers)
    labels: LabelsConfig = field(default_factory=LabelsConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    source_path: str = ""  # the file this was loaded from (not a YAML key)

    def __post_init__(self) -> None:
        names = [t.name for t in self.teachers]
        _check(len(names) >= 1, "teachers", names, "name at least one teacher")
        _check(len(set(names)) == len(names), "teachers[].name", names, "teacher names must be unique")
        total = sum(t.weight for t in self.teachers)
        _check(total > 0, "teachers[].weight", [t.weight for t in self.teachers],
               "teacher weights must sum to a positive number (they are the per-batch draw probabilities)")
        for t in self.teachers:
            for key in ("view_size", "patch_size"):
                size = getattr(self.views, key)
                _check(size % t.input_multiple == 0, f"views.{key}", size,
                       f"must be a multiple of teacher '{t.name}' patch size {t.input_multiple}")
        patch = _student_patch(self.train.student)
        _check(patch is None or self.views.view_size % patch == 0, "views.view_size", self.views.view_size,
               f"must be a multiple of the student's patch ({patch}, train.student {self.train.student!r}): the "
               "student is trained on the views and exported at that input size")

    def teacher(self, name: str) -> TeacherConfig:
        for t in self.teachers:
            if t.name == name:
                return t
        raise ConfigError(f"{self.source_path}: no teacher named {name!r}; the config has {[t.name for t in self.teachers]}")

    def teacher_probabilities(self) -> dict[str, float]:
        total = sum(t.weight for t in self.teachers)
        return {t.name: t.weight / total for t in self.teachers}

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


# ---------------------------------------------------------------------------------------------
# Loading: YAML mapping -> dataclasses, with type checks and key paths in every message.

def _describe(tp: Any) -> str:
    if typing.get_origin(tp) is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    return getattr(tp, "__name__", str(tp))


def _convert(value: Any, tp: Any, key: str) -> Any:
    """Check `value` against the annotation `tp`; return it converted (lists -> tuples)."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        _check(value in typing.get_args(tp), key, value, f"use {_describe(tp)}")
        return value
    if origin is tuple:
        (item_tp, _ellipsis) = typing.get_args(tp)
        _check(isinstance(value, (list, tuple)), key, value, "use a YAML list")
        return tuple(_convert(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value))
    if dataclasses.is_dataclass(tp):
        _check(isinstance(value, dict), key, value, "use a YAML mapping")
        return _build(tp, value, key)
    if tp is bool:
        _check(isinstance(value, bool), key, value, "use true or false")
        return value
    if tp is int:
        _check(isinstance(value, int) and not isinstance(value, bool), key, value, "use an integer")
        return value
    if tp is float:
        _check(isinstance(value, (int, float)) and not isinstance(value, bool), key, value, "use a number")
        return float(value)
    if tp is str:
        _check(isinstance(value, str), key, value, "use a string (quote it)")
        return value
    if tp is dict or origin is dict:
        _check(isinstance(value, dict), key, value, "use a YAML mapping")
        return dict(value)
    raise AssertionError(f"config.py: no converter for {tp!r} at {key}")


def _build(cls: type, data: dict, prefix: str) -> Any:
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls) if f.name != "source_path"}
    unknown = sorted(set(data) - fields)
    if unknown:
        where = f"{prefix}.{unknown[0]}" if prefix else unknown[0]
        raise ValueError(f"{where}: unknown key; allowed keys here: {', '.join(sorted(fields))}")
    kwargs = {}
    for name, value in data.items():
        key = f"{prefix}.{name}" if prefix else name
        if name == "teachers":
            _check(isinstance(value, (list, tuple)), key, value, "use a YAML list of teacher mappings")
            kwargs[name] = tuple(_build(TeacherConfig, t if isinstance(t, dict) else {"?": t}, f"teachers[{i}]")
                                 for i, t in enumerate(value))
        else:
            kwargs[name] = _convert(value, hints[name], key)
    try:
        return cls(**kwargs)
    except TypeError as exc:  # a required key is missing
        raise ValueError(f"{prefix or 'top level'}: {exc}") from None


def _apply_overrides(data: dict, overrides: dict[str, Any]) -> dict:
    """Set dotted keys (`labels.format`) in a nested dict; the type check happens in _build."""
    for dotted, value in overrides.items():
        node = data
        parts = dotted.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"{dotted}: cannot override inside a non-mapping")
        node[parts[-1]] = value
    return data


def load_config(path: str | Path = "stages.yaml", overrides: dict[str, Any] | None = None) -> StagesConfig:
    """Read and validate a stages file. Raises ConfigError naming the file, key and fix."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found; pass --config with the path to a stages.yaml "
                          "(the repository root has the embedded default)")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc}); fix the syntax at the line shown") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of stages (images, views, teachers, ...)")
    try:
        data = _apply_overrides(data, overrides or {})
        config = _build(StagesConfig, data, "")
    except ValueError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    object.__setattr__(config, "source_path", str(path))
    return config


def config_from_dict(data: dict, source: str = "<dict>") -> StagesConfig:
    """Build a config from a plain dict (checkpoints store the resolved config as JSON)."""
    data = {k: v for k, v in data.items() if k != "source_path"}
    try:
        config = _build(StagesConfig, data, "")
    except ValueError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    object.__setattr__(config, "source_path", source)
    return config
