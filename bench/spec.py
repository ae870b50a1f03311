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


@dataclass(frozen=True)
class TrainConfig:
    """Training settings. Every default on its own line, with its unit."""

    lr: float = 1e-4                       # peak learning rate (AdamW), per optimizer step
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
    max_train_examples: int = 0            # 0: all; else a seeded random subsample of the training split
    subsample_seed: int = 0                # seed of that subsample (fixed across methods and run seeds)
    max_eval_examples: int = 0             # 0: all; else the first N examples of each evaluated split
    eval_batch_size: int = 64              # examples per evaluation batch (classification)
    dropout: float | None = None           # None: the model's own; else every nn.Dropout's p (prefix: 0.0)
    grad_checkpointing: bool = False       # recompute activations in the backward pass (saves memory)
    eval_every_epoch: bool = True          # score dev after each epoch and keep the best; else only the last
    mixed_precision: Literal["auto", "no", "bf16", "fp16"] = "auto"  # auto: bf16 where the GPU/CPU has bf16 matmul


@dataclass(frozen=True)
class RunSpec:
    """One run. `method_config` holds the method's fields (JSON values); `decoding` overrides the task's
    Decoding fields for generation tasks; `init_from` is the run_id of a run (same preset) whose best saved
    method state initialises this one (LoRA: MRPC, RTE, STS-B start from MNLI)."""

    model: str
    task: str
    method: str
    method_config: dict = field(default_factory=dict)
    train: TrainConfig = field(default_factory=TrainConfig)
    seed: int = 0
    preset: str = "adhoc"
    decoding: dict = field(default_factory=dict)
    eval_splits: tuple[str, ...] = ()     # splits to evaluate and report; () = the task's eval_splits
    init_from: str | None = None
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
        return d

    @property
    def run_id(self) -> str:
        blob = json.dumps(self._identity(), sort_keys=True, separators=(",", ":"), default=_json_default)
        digest = hashlib.sha1(blob.encode()).hexdigest()[:10]
        return f"{self.task}-{self.method}-s{self.seed}-{digest}"

    @property
    def display(self) -> str:
        return self.label or self.method

    @staticmethod
    def from_dict(d: dict) -> "RunSpec":
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
    """Typed `--set` overrides on a spec. Method fields are checked by `resolve_method` (needs the methods)."""
    if not items:
        return spec
    groups = split_overrides(items)
    train = override(spec.train, groups["train"], what="train") if groups["train"] else spec.train
    changes: dict[str, Any] = {"train": train}
    if groups["spec"]:
        changes["seed"] = override(_SeedBox(spec.seed), groups["spec"], what="spec").seed
    if groups["method"]:
        # Stored as text; resolve_method parses each against the method's field type.
        changes["method_config"] = {**spec.method_config, **{k: _Text(v) for k, v in groups["method"].items()}}
    if groups["decoding"]:
        from bench.decode.protocol import Decoding

        parsed = override(Decoding(**spec.decoding), groups["decoding"], what="decoding")
        changes["decoding"] = {k: getattr(parsed, k) for k in {**spec.decoding, **groups["decoding"]}}
    return dataclasses.replace(spec, **changes)


@dataclass(frozen=True)
class _SeedBox:
    seed: int = 0


class _Text(str):
    """A method value still in its command-line form (parsed against the method's field type on resolve)."""


def resolve_method_config(method_cls_default: Any, config: dict, *, method: str) -> tuple[Any, dict]:
    """Build the method object from its defaults plus `config`; return (method, full JSON config).

    `method_cls_default` is a default instance (a dataclass). Unknown fields raise ConfigError.
    """
    if not dataclasses.is_dataclass(method_cls_default):
        raise TypeError(f"method {method!r} is not a dataclass instance: {method_cls_default!r}")
    text = {k: str(v) for k, v in config.items() if isinstance(v, _Text)}
    typed = {k: v for k, v in config.items() if not isinstance(v, _Text)}
    names = {f.name for f in dataclasses.fields(method_cls_default) if f.init}
    for key in typed:
        if key not in names:
            raise ConfigError(f"method {method!r} has no field {key!r}; fields are: {', '.join(sorted(names))}")
    import typing

    hints = typing.get_type_hints(type(method_cls_default))
    typed = {k: _like(getattr(method_cls_default, k), v, hints.get(k)) for k, v in typed.items()}
    try:
        obj = dataclasses.replace(method_cls_default, **typed)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"method {method!r}: {exc}") from None
    if text:
        obj = override(obj, text, what=f"method {method!r}")
    full = {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj) if f.init}
    return obj, full


def _like(default: Any, value: Any, hint: Any = None) -> Any:
    """JSON gives lists where the method has tuples and ints where it has floats: give the value the field's
    type, so that `alpha=16` and `--set method.alpha=16` (16.0) name the same run."""
    if isinstance(default, tuple) and isinstance(value, list):
        return tuple(value)
    if (hint is float or isinstance(default, float)) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


# -- resolution against the method library (imports torch via bench.models) ---------------------------------
def method_object(spec: RunSpec) -> Any:
    """The method dataclass the spec names, with its config applied (ConfigError on unknown name/field)."""
    return _resolve(spec)[0]


def method_fields(name: str) -> set[str]:
    """The settable fields of the method `name` (ConfigError for an unknown method)."""
    from bench.models import make_method

    return {f.name for f in dataclasses.fields(make_method(name, {})) if f.init}


def resolve(spec: RunSpec) -> RunSpec:
    """The same spec with every method field filled in (so equal runs hash equal)."""
    return dataclasses.replace(spec, method_config=_resolve(spec)[1])


def _resolve(spec: RunSpec) -> tuple[Any, dict]:
    from bench.models import make_method

    try:
        default = make_method(spec.method, {})
    except KeyError:
        raise ConfigError(f"unknown method {spec.method!r}") from None
    return resolve_method_config(default, spec.method_config, method=spec.method)
