"""What one run is: `RunSpec` (model x task x method x training settings x seed) and its stable `run_id`.

No torch import here: `peft-bench show` and the grid planner build and hash specs without loading models.
A spec is *resolved* when its method config holds every field of the method (defaults filled in), so that
`--set method.r=8` on a default of r=8 names the same run.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Literal

from bench.config import ConfigError, override, parse_assignment

SPEC_VERSION = 1  # bump when the meaning of a field changes, so old run folders are not mistaken for new runs
# Training fields added after version 1: left out of the run_id while they hold their default (which is what runs
# did before they existed), so existing run folders keep their ids.
_LATER_TRAIN_FIELDS = {"loss": "token_mean", "select": "best", "cpu_fast_path": True, "tf32": False,
                       "head_lr": 0.0, "train_split": "train"}
# Method fields added after version 1, with the value that computes what runs did before they existed: left out of
# the run_id at that value, so existing run folders keep their ids.
_LATER_METHOD_FIELDS = {"prefix": {"shift_positions": False}}


@dataclass(frozen=True)
class TrainConfig:
    """Training settings. Every default on its own line, with its unit."""

    lr: float = 1e-4                       # peak learning rate (AdamW), per optimizer step
    head_lr: float = 0.0                   # peak learning rate of the task head; 0: the same as lr (VeRA's recipes
    #                                        give the head its own)
    epochs: int = 3                        # passes over the (possibly subsampled) training set
    batch_size: int = 16                   # examples per micro-batch, per device
    grad_accum: int = 1                    # micro-batches per optimizer step
    warmup_ratio: float = 0.0              # fraction of all optimizer steps spent in linear warmup
    warmup_steps: int = 0                  # optimizer steps of linear warmup (used when > 0, overrides the ratio)
    schedule: Literal["linear", "constant"] = "linear"  # after warmup: linear decay to 0, or constant
    weight_decay: float = 0.0              # AdamW decoupled weight decay (not applied to biases and norms)
    adam_beta1: float = 0.9                # AdamW beta1
    adam_beta2: float = 0.999              # AdamW beta2
    adam_eps: float = 1e-8                 # AdamW epsilon
    max_grad_norm: float = 1.0             # gradient clipping (L2 norm); 0 turns it off
    label_smoothing: float = 0.0           # cross-entropy label smoothing (classification and generation)
    max_length: int = 128                  # tokens per training / classification input (truncated beyond)
    train_split: str = "train"             # the split trained on: "train", or another split of the task where its
    #                                        train split cannot be had (it is then never evaluated; trained on the
    #                                        task's selection split, a run keeps its final state: select="final")
    max_train_examples: int = 0            # 0: all; else a seeded random subsample of the training split
    subsample_seed: int = 0                # seed of that subsample (fixed across methods and run seeds)
    max_eval_examples: int = 0             # 0: all; else the first N examples of each evaluated split
    eval_batch_size: int = 64              # examples per evaluation batch (classification)
    dropout: float | None = None           # None: as configured; else p of the model's own dropouts (not a method's)
    grad_checkpointing: bool = False       # recompute activations in the backward pass (saves memory)
    eval_every_epoch: bool = True          # score dev after each epoch (logged; `select` decides what is kept)
    loss: Literal["token_mean", "sentence_sum"] = "token_mean"  # generation loss: mean over the batch's target
    #                                        tokens, or each sentence's summed token losses averaged over the batch
    #                                        (the Prefix-Tuning script's default objective for prefix tuning)
    select: Literal["best", "final"] = "best"  # keep the best dev epoch, or the final state (Prefix-Tuning script)
    mixed_precision: Literal["auto", "no", "bf16", "fp16"] = "auto"  # auto: bf16 on CUDA sm_80+ and on CPUs with
    #                                        bf16 matmul units, fp16 (loss-scaled) on older CUDA cards, else fp32
    tf32: bool = False                     # fp32 runs on CUDA sm_80+: matmuls in TF32 (10-bit mantissa); off:
    #                                        full fp32, as on the papers' V100s (which have no TF32)
    cpu_fast_path: bool = True             # on a CPU: cheaper dropout masks and attention under dropout while
    #                                        training (bench.fastpath); False: torch's own kernels. No effect on GPUs

    def __post_init__(self) -> None:
        check_train(self)


# (field, test, what a value must be): settings outside these ranges cannot train, and are refused when the
# TrainConfig is made (a preset, `--set`), before any run folder exists.
_RANGES = (
    ("lr", lambda v: 0 < v < float("inf"), "a learning rate > 0"),
    ("head_lr", lambda v: 0 <= v < float("inf"), "a learning rate >= 0 (0: the head trains at lr)"),
    ("epochs", lambda v: v >= 1, "at least 1 epoch"),
    ("batch_size", lambda v: v >= 1, "at least 1 example per micro-batch"),
    ("grad_accum", lambda v: v >= 1, "at least 1 micro-batch per optimizer step"),
    ("warmup_ratio", lambda v: 0 <= v <= 1, "a fraction of the steps in [0, 1]"),
    ("warmup_steps", lambda v: v >= 0, "a number of steps >= 0"),
    ("weight_decay", lambda v: 0 <= v < float("inf"), "a decay >= 0"),
    ("adam_beta1", lambda v: 0 <= v < 1, "in [0, 1)"),
    ("adam_beta2", lambda v: 0 <= v < 1, "in [0, 1)"),
    ("adam_eps", lambda v: 0 < v < float("inf"), "> 0"),
    ("max_grad_norm", lambda v: 0 <= v < float("inf"), "a norm >= 0 (0 turns clipping off)"),
    ("label_smoothing", lambda v: 0 <= v < 1, "in [0, 1)"),
    ("max_length", lambda v: v >= 2, "at least 2 tokens"),
    ("max_train_examples", lambda v: v >= 0, "a count >= 0 (0: all)"),
    ("subsample_seed", lambda v: v >= 0, "a seed >= 0"),
    ("max_eval_examples", lambda v: v >= 0, "a count >= 0 (0: all)"),
    ("eval_batch_size", lambda v: v >= 1, "at least 1 example per batch"),
    ("dropout", lambda v: v is None or 0 <= v < 1, "a probability in [0, 1) or none"),
)


def check_train(cfg: TrainConfig) -> None:
    """ConfigError naming the first TrainConfig field that cannot train and what it must be."""
    import typing

    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(cfg):
        options = typing.get_args(hints[f.name]) if typing.get_origin(hints[f.name]) is Literal else ()
        value = getattr(cfg, f.name)
        if options and value not in options:
            raise ConfigError(f"train.{f.name} = {value!r}: expected one of {', '.join(map(str, options))}")
    for name, ok, what in _RANGES:
        value = getattr(cfg, name)
        if not ok(value):   # NaN fails every comparison
            raise ConfigError(f"train.{name} = {value!r}: expected {what}")


@dataclass(frozen=True)
class After:
    """A dependency named by what it is: the run of the same grid on `task` with this run's model, method and
    row label, and seed `seed` (None: this run's seed). `link` turns it into that run's run_id."""

    task: str
    seed: int | None = None


@dataclass(frozen=True)
class RunSpec:
    """One run. `method_config` holds the method's fields (JSON values); `decoding` overrides the task's
    Decoding fields for generation tasks; `init_from` names a run of the same grid whose best saved method
    state initialises this one (LoRA: MRPC, RTE, STS-B start from MNLI): an `After` in a preset, the run_id of
    that run once the grid is linked (`link`)."""

    model: str
    task: str
    method: str
    method_config: dict = field(default_factory=dict)
    train: TrainConfig = field(default_factory=TrainConfig)
    seed: int = 0
    preset: str = "adhoc"
    decoding: dict = field(default_factory=dict)
    eval_splits: tuple[str, ...] = ()     # splits to evaluate and report; () = the task's eval_splits
    init_from: str | After | None = None
    save_state: bool = False              # keep the best method state on disk (runs that others start from)
    label: str = ""
    paper_table: str = ""
    paper_version: str = ""
    paper_method: str = ""
    paper_params: str = ""
    recipe: str = "own"                   # paper | script | own

    # -- identity -------------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["spec_version"] = SPEC_VERSION
        return d

    def _identity(self) -> dict:
        # Cosmetic fields (label, paper join keys) and the preset name do not change what is computed.
        d = self.to_dict()
        for key in ("preset", "label", "paper_table", "paper_version", "paper_method", "paper_params", "recipe"):
            d.pop(key)
        for key, default in _LATER_TRAIN_FIELDS.items():
            if d["train"].get(key) == default:
                d["train"].pop(key)
        for key, old in _LATER_METHOD_FIELDS.get(self.method, {}).items():
            if key in d["method_config"] and d["method_config"][key] == old:
                d["method_config"] = {k: v for k, v in d["method_config"].items() if k != key}
        return d

    @property
    def run_id(self) -> str:
        if isinstance(self.init_from, After):
            raise ValueError(f"{self.task} {self.display} seed {self.seed}: its dependency {self.init_from} is not "
                             f"linked yet (bench.spec.link)")
        blob = json.dumps(self._identity(), sort_keys=True, separators=(",", ":"), default=_json_default)
        digest = hashlib.sha1(blob.encode()).hexdigest()[:10]
        return f"{self.task}-{self.method}-s{self.seed}-{digest}"

    @property
    def display(self) -> str:
        return self.label or self.method

    @staticmethod
    def from_dict(d: dict) -> RunSpec:
        d = dict(d)
        d.pop("spec_version", None)
        d["train"] = TrainConfig(**d.get("train", {}))
        d["eval_splits"] = tuple(d.get("eval_splits", ()))
        return RunSpec(**d)


def _json_default(obj: Any):
    if isinstance(obj, tuple):
        return list(obj)
    raise TypeError(f"not JSON-serialisable: {obj!r}")


def spec_json(spec: RunSpec) -> str:
    return json.dumps(spec.to_dict(), indent=2, sort_keys=True, default=_json_default) + "\n"


# -- overrides ------------------------------------------------------------------------------------------------
def split_overrides(items: list[str]) -> dict[str, dict[str, str]]:
    """`["method.r=16", "train.lr=3e-4", "decoding.num_beams=2", "seed=3"]` -> {"method": {...}, ...}."""
    groups: dict[str, dict[str, str]] = {"method": {}, "train": {}, "decoding": {}, "spec": {}}
    for item in items:
        key, value = parse_assignment(item)
        prefix, dot, rest = key.partition(".")
        if dot and prefix in ("method", "train", "decoding"):
            groups[prefix][rest] = value
        elif not dot and key in ("seed",):
            groups["spec"][key] = value
        else:
            raise ConfigError(
                f"--set {key}: expected method.<field>, train.<field>, decoding.<field> or seed"
            )
    return groups


def apply_overrides(spec: RunSpec, items: list[str]) -> RunSpec:
    """Typed `--set` overrides on a spec. Method fields are checked by `resolve`."""
    if not items:
        return spec
    groups = split_overrides(items)
    train = override(spec.train, groups["train"], what="train") if groups["train"] else spec.train
    changes: dict[str, Any] = {"train": train}
    if groups["spec"]:
        changes["seed"] = override(_SeedBox(spec.seed), groups["spec"], what="spec").seed
    if groups["method"]:
        from bench.method_config import Text   # parsed against the method's field type by resolve()

        changes["method_config"] = {**spec.method_config, **{k: Text(v) for k, v in groups["method"].items()}}
    if groups["decoding"]:
        from bench.decode.protocol import Decoding

        parsed = override(Decoding(**spec.decoding), groups["decoding"], what="decoding")
        changes["decoding"] = {k: getattr(parsed, k) for k in {**spec.decoding, **groups["decoding"]}}
    return dataclasses.replace(spec, **changes)


@dataclass(frozen=True)
class _SeedBox:
    seed: int = 0


# -- resolution: the method config once (torch-free), dependencies linked once -----------------------------
def method_object(spec: RunSpec) -> Any:
    """The method the (resolved) spec names, built the one way (`bench.method_config.build`)."""
    from bench.method_config import build

    return build(spec.method, spec.method_config)


def method_fields(name: str) -> set[str]:
    """The settable fields of the method `name` (ConfigError for an unknown method)."""
    from bench.method_config import schema

    return set(schema(name).names())


def resolve(spec: RunSpec) -> RunSpec:
    """The same spec with every method field filled in (so equal runs hash equal). No torch."""
    from bench.method_config import resolve_config

    return dataclasses.replace(spec, method_config=resolve_config(spec.method, spec.method_config))


def link(specs: list[RunSpec]) -> list[RunSpec]:
    """Replace every `After` dependency by the run_id of the run it names, once, after overrides and resolution
    (so `--set train.epochs=1` links MRPC to the overridden MNLI run). ConfigError when no run or several match."""
    groups: dict[tuple, list[int]] = {}
    for i, s in enumerate(specs):
        groups.setdefault((s.model, s.method, s.display, s.task, s.seed), []).append(i)
    linked: dict[int, RunSpec] = {}

    def one(i: int, chain: tuple[int, ...]) -> RunSpec:
        if i in linked:
            return linked[i]
        spec = specs[i]
        ref = spec.init_from
        if isinstance(ref, After):
            seed = spec.seed if ref.seed is None else ref.seed
            hits = groups.get((spec.model, spec.method, spec.display, ref.task, seed), [])
            what = f"{spec.task} {spec.display} seed {spec.seed} starts from {ref.task} seed {seed}"
            if not hits:
                raise ConfigError(f"preset {spec.preset}: {what}, which is not in the grid")
            if len(hits) > 1:
                raise ConfigError(f"preset {spec.preset}: {what}, which names {len(hits)} runs")
            if i in chain or hits[0] == i:
                raise ConfigError(f"preset {spec.preset}: dependency cycle through {what}")
            spec = dataclasses.replace(spec, init_from=one(hits[0], chain + (i,)).run_id)
        linked[i] = spec
        return spec

    return [one(i, ()) for i in range(len(specs))]
