"""One training measurement of the performance benchmark: a model, a task, a method, an engine and a padding
policy. The engine trains `warmup` untimed steps, then the `steps` batches to be timed once untimed and once
more timed (`TrainCase.warm_timed`, the default), so that the timed window is a steady state: every batch shape
of the window has been trained before (oneDNN has generated its kernels, the allocator holds its peak), as in a
real run, whose batch shapes recur all epoch. With `warm_timed=False` the window is the first sight of its
batches. See `bench.perf.measure` for the timing itself.

Engines:
  suite     the suite's own loop, `bench.train.train_steps`, on `bench.data.make_loader` batches: dynamic
            padding with length-grouped batches, or padding to `max_length` (no grouping);
  baseline  `transformers.Trainer` with `peft` (LoRA, prompt tuning, prefix tuning) or the plain model (full
            fine-tuning), Trainer defaults as the papers' scripts used them (fused AdamW, linear schedule), with
            Hugging Face's collators: `DataCollatorWithPadding` / `DataCollatorForSeq2Seq` padding to
            `max_length` (the scripts' `pad_to_max_length`) or to the longest example of the batch.

At equal padding policy the two engines train on the SAME batches in the same order: the baseline's dataset
is the suite's batch order written out, read by Trainer sequentially (`train_sampling_strategy="sequential"`);
with dynamic padding both pad each batch to its longest example, so both do the same arithmetic and the
difference is the engine. The suite's dynamic batches are length-grouped (`group_by_length=True`); its
max_length batches are a plain seeded shuffle.

Both engines get the same base model (same weights), the same tokenised examples, batch size, learning rate,
schedule (linear, no warmup), weight decay 0, gradient clipping at 1.0 and precision (`TrainCase.precision`: fp32,
or bf16 autocast for both: the suite through `bench.train` (frozen matmul weights stored in bf16,
`bench.precision.keep_frozen_in`), Trainer with `bf16=True`, on a CPU as on a GPU).
"""
from __future__ import annotations

import random
import tempfile
from dataclasses import asdict, dataclass, field

import torch

from bench.perf.measure import PeakMemory, StepRecorder, matmul_params, step_flops

ENGINES = ("suite", "baseline")
PADDINGS = ("dynamic", "max_length")
BASELINE_METHODS = ("full", "lora", "prompt", "prefix")  # what Trainer (+ peft) can run


@dataclass(frozen=True)
class TrainCase:
    engine: str                   # suite | baseline
    method: str                   # a key of methods.METHODS
    padding: str                  # dynamic | max_length
    model: str = "minilm-l6"      # a key of bench.models.MODELS
    task: str = "sst2"            # a key of bench.tasks.TASKS
    split: str = "train"          # split whose examples are trained on
    data_dir: str | None = None   # local release files (None: the Hub)
    model_dir: str | None = None
    batch_size: int = 16          # examples per optimizer step
    steps: int = 10               # timed optimizer steps
    warmup: int = 2               # untimed optimizer steps before them
    max_length: int = 128         # tokens per example at most; the width of max_length padding
    examples: int = 2000          # seeded subsample of the split (length grouping works within it)
    lr: float = 1e-4              # peak learning rate, linear decay, no warmup
    seed: int = 0
    device: str = "cpu"
    precision: str = "auto"       # no (fp32) | bf16 | auto (bench.precision.resolve_precision on `device`)
    random_weights: bool = False  # `model`'s architecture with random weights (bench.perf.shapes; no download)
    method_set: tuple[str, ...] = field(default_factory=tuple)  # `--set`-style overrides of the method
    fast_path: bool = True        # the suite's CPU fast path (train.cpu_fast_path; bench.fastpath)
    warm_timed: bool = True       # train the timed batches once untimed before timing them (module docstring)

    @property
    def label(self) -> str:
        return f"{self.engine}/{self.method}/{self.padding}/{self.precision}"


def case_precision(case: TrainCase) -> str:
    """The mixed precision both engines train a case in: "bf16" or "no" (fp32)."""
    from bench.precision import resolve_precision

    return resolve_precision(case.precision, case.device)


def _encoded(case: TrainCase, task, tokenizer):
    from bench.data import encode_classification, encode_generation_train, load_split

    examples = load_split(task, case.split, case.data_dir)
    need = case.batch_size * _distinct_batches(case)
    if len(examples) < need:  # a small split (the shipped fixtures) is repeated: the same lengths, enough batches
        examples = [examples[i % len(examples)] for i in range(need)]
    n = min(case.examples or len(examples), len(examples))
    n -= n % case.batch_size  # full batches only, so that both engines cut the same batches
    if n < len(examples):
        examples = [examples[i] for i in sorted(random.Random(case.seed).sample(range(len(examples)), n))]
    if task.kind == "generate":
        return encode_generation_train(tokenizer, task, examples, max_length=case.max_length)
    return encode_classification(tokenizer, task, examples, max_length=case.max_length)


def _pad_id(tokenizer) -> int:
    return int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id)


def _distinct_batches(case: TrainCase) -> int:
    return case.warmup + case.steps + 1  # +1: the batch whose fetch closes the timed window


def _untimed_steps(case: TrainCase) -> int:
    """Steps trained before the timed window: the warm-up, and the timed batches once when warm_timed."""
    return case.warmup + (case.steps if case.warm_timed else 0)


def _total_steps(case: TrainCase) -> int:
    return _untimed_steps(case) + case.steps + 1


def step_batches(case: TrainCase, batches: list) -> list:
    """The batches both engines train, in order: warm-up, the timed batches (untimed) when warm_timed, the timed
    batches, the closing batch."""
    need = _distinct_batches(case)
    if len(batches) < need:
        raise ValueError(f"{len(batches)} batches; {case.warmup} warm-up + {case.steps} timed + 1 need {need}")
    warm, timed, close = batches[:case.warmup], batches[case.warmup:case.warmup + case.steps], batches[need - 1]
    return warm + (timed if case.warm_timed else []) + timed + [close]


class _Batches(torch.utils.data.Sampler):
    """A batch sampler over a fixed list of batches."""

    def __init__(self, batches: list[list[int]]):
        self.batches = batches

    def __len__(self):
        return len(self.batches)

    def __iter__(self):
        return iter(self.batches)


# ------------------------------------------------------------------------------------------------- suite


def suite_loader(case, encoded, tokenizer):
    """The suite's training loader for a case (a seeded shuffle; length-grouped with dynamic padding)."""
    from bench.data import make_loader

    return make_loader(encoded, batch_size=case.batch_size, pad_id=_pad_id(tokenizer), shuffle=True,
                       seed=case.seed, padding=case.padding, max_length=case.max_length,
                       group_by_length=case.padding == "dynamic")


def case_batches(case, loader) -> list[list[int]]:
    """The example positions of every batch a case trains, in order (`step_batches` over the first epoch of
    `loader`, the case's `suite_loader`); both engines train exactly these."""
    batches = step_batches(case, loader.batch_sampler.batches(0))
    if any(len(b) != case.batch_size for b in batches):
        raise ValueError(f"{len(loader.batch_sampler.lengths)} examples do not fill {_distinct_batches(case)} "
                         f"batches of {case.batch_size}")
    return [[int(i) for i in b] for b in batches]


def _run_suite(case, task, model, tokenizer, encoded):
    from bench.models import apply_method, make_method
    from bench.spec import TrainConfig
    from bench.train import train_steps

    apply_method(model, make_method(case.method, list(case.method_set)))
    model.to(case.device)
    shuffled = suite_loader(case, encoded, tokenizer)
    recorder = StepRecorder(shuffled.collate_fn, sync_cuda=torch.device(case.device).type == "cuda")
    loader = torch.utils.data.DataLoader(range(len(encoded)), batch_sampler=_Batches(case_batches(case, shuffled)),
                                         collate_fn=recorder)
    cfg = TrainConfig(lr=case.lr, batch_size=case.batch_size, max_length=case.max_length, warmup_ratio=0.0,
                      weight_decay=0.0, max_grad_norm=1.0, mixed_precision=case_precision(case),
                      cpu_fast_path=case.fast_path)
    with PeakMemory(case.device) as mem:
        train_steps(model, loader, kind=task.kind, cfg=cfg, max_steps=_total_steps(case))
    return model, recorder, mem, "torch.optim.AdamW (bench.train.make_optimizer)"


# ---------------------------------------------------------------------------------------------- baseline


def peft_config(method, arch, task_kind: str):
    """The peft config equivalent to one of our methods (same rank / scaling / targets / lengths)."""
    from peft import LoraConfig, PrefixTuningConfig, PromptTuningConfig, TaskType

    task_type = TaskType.CAUSAL_LM if task_kind == "generate" else TaskType.SEQ_CLS
    if method.name == "lora":
        names = {"q": arch.q, "k": arch.k, "v": arch.v, "o": arch.attn_out, "ffn_in": arch.ffn_in,
                 "ffn_out": arch.ffn_out}
        if arch.qkv is not None and any(t in ("q", "k", "v") for t in method.targets):
            # peft adapts a fused projection as a whole (q, k and v); ours adapts only the chosen slices
            names.update({"q": arch.qkv, "k": arch.qkv, "v": arch.qkv})
        targets = sorted({names[t].rsplit(".", 1)[-1] for t in method.targets})
        return LoraConfig(task_type=task_type, r=method.r, lora_alpha=method.alpha, lora_dropout=method.dropout,
                          target_modules=targets)
    if method.name == "prompt":
        return PromptTuningConfig(task_type=task_type, num_virtual_tokens=method.length)
    if method.name == "prefix":
        return PrefixTuningConfig(task_type=task_type, num_virtual_tokens=method.length, prefix_projection=True,
                                  encoder_hidden_size=method.mlp_hidden)
    raise ValueError(f"no Trainer + peft equivalent of method {method.name!r}; baseline methods: "
                     f"{', '.join(BASELINE_METHODS)}")


class _ListDataset(torch.utils.data.Dataset):
    def __init__(self, rows):
        self.rows = rows

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        return self.rows[i]


def _rows(encoded, order) -> list[dict]:
    names = list(encoded.features)
    out = []
    for i in order:
        row = {}
        for name in names:
            values = encoded.features[name]
            v = values[i]
            row[name] = v.tolist() if hasattr(v, "tolist") else v
        out.append(row)
    return out


def _collator(case, task, tokenizer):
    from transformers import DataCollatorForSeq2Seq, DataCollatorWithPadding

    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    padding = "max_length" if case.padding == "max_length" else "longest"
    if task.kind == "generate":
        return DataCollatorForSeq2Seq(tokenizer, padding=padding, max_length=case.max_length,
                                      label_pad_token_id=-100, return_tensors="pt")
    return DataCollatorWithPadding(tokenizer, padding=padding, max_length=case.max_length, return_tensors="pt")


def _run_baseline(case, task, model, tokenizer, encoded):
    from transformers import Trainer, TrainingArguments

    from bench.models import make_method
    from bench.precision import allow_precision
    from methods import arch_of

    method = make_method(case.method, list(case.method_set))
    if method.name != "full":
        try:
            from peft import get_peft_model
        except ImportError:
            raise ImportError("the Trainer + peft baseline needs the peft package: pip install 'peft>=0.17,<1' "
                              "(it is in peft-bench's [test] extra)") from None

        model = get_peft_model(model, peft_config(method, arch_of(model), task.kind))
    recorder = StepRecorder(_collator(case, task, tokenizer), sync_cuda=torch.device(case.device).type == "cuda")
    order = [i for b in case_batches(case, suite_loader(case, encoded, tokenizer)) for i in b]
    with tempfile.TemporaryDirectory() as tmp:
        args = TrainingArguments(
            output_dir=tmp, per_device_train_batch_size=case.batch_size, max_steps=_total_steps(case),
            learning_rate=case.lr, lr_scheduler_type="linear", warmup_steps=0, weight_decay=0.0, max_grad_norm=1.0,
            logging_strategy="no", save_strategy="no", eval_strategy="no", report_to="none", seed=case.seed,
            dataloader_num_workers=0, use_cpu=case.device == "cpu", disable_tqdm=True,
            bf16=case_precision(case) == "bf16",
            remove_unused_columns=False,
            train_sampling_strategy="sequential",  # the suite's batches, in the suite's order
        )
        allow_precision(case_precision(case))
        trainer = Trainer(model=model, args=args, train_dataset=_ListDataset(_rows(encoded, order)),
                          data_collator=recorder, processing_class=tokenizer)
        with PeakMemory(case.device) as mem:
            trainer.train()
        optim = f"Trainer optim={args.optim}"
    return model, recorder, mem, optim


# ------------------------------------------------------------------------------------------------- one case


def run_train_case(case: TrainCase) -> dict:
    """Build, train and time one case; returns its record (see docs/perf.md for the fields)."""
    from bench import allocator
    from bench.models import load_model
    from bench.precision import precision_name
    from bench.tasks import get_task

    if case.engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {case.engine!r}")
    if case.padding not in PADDINGS:
        raise ValueError(f"padding must be one of {PADDINGS}, got {case.padding!r}")
    task = get_task(case.task)
    torch.manual_seed(case.seed)
    if case.random_weights:
        from bench.perf.shapes import random_model

        model, tokenizer, tokenizer_name = random_model(case.model, kind=task.kind,
                                                        num_labels=max(task.num_labels, 2), device=case.device,
                                                        model_dir=case.model_dir)
    else:
        model, tokenizer = load_model(case.model, kind=task.kind, num_labels=max(task.num_labels, 2),
                                      model_dir=case.model_dir)
        tokenizer_name = case.model
    encoded = _encoded(case, task, tokenizer)
    run = _run_suite if case.engine == "suite" else _run_baseline
    model, recorder, mem, optimizer = run(case, task, model, tokenizer, encoded)
    window = recorder.window(_untimed_steps(case), case.steps)
    p_all, p_train = matmul_params(model)
    trainable = sum(int(p.numel()) for p in {id(p): p for p in model.parameters() if p.requires_grad}.values())
    seconds = window["seconds"]
    flops = step_flops(p_all, p_train, window["padded_tokens"])
    return {
        "kind": "train", "engine": case.engine, "method": case.method, "padding": case.padding,
        "model": case.model + (" (random weights)" if case.random_weights else ""), "task": case.task,
        "precision": precision_name(case_precision(case)), "tokenizer": tokenizer_name,
        "fast_path": "cpu" if case.engine == "suite" and case.fast_path and torch.device(case.device).type == "cpu"
        else "none",
        "batch_size": case.batch_size, "steps": case.steps,
        "warmup_steps": case.warmup, "timed_batches_warmed": case.warm_timed,
        "batches_fetched": len(recorder.stamps), "max_length": case.max_length,
        "examples_per_s": window["examples"] / seconds, "tokens_per_s": window["tokens"] / seconds,
        "examples_per_cpu_s": window["examples"] / window["cpu_seconds"],
        "tokens_per_cpu_s": window["tokens"] / window["cpu_seconds"], "cpu_seconds": window["cpu_seconds"],
        "padded_tokens_per_s": window["padded_tokens"] / seconds,
        "real_token_fraction": window["tokens"] / window["padded_tokens"],
        "timed_examples": window["examples"], "timed_tokens": window["tokens"],
        "timed_padded_tokens": window["padded_tokens"],
        "seconds": seconds, "step_seconds": window["step_seconds"],
        "peak_mem_mb": mem.peak_mb, "mem_before_steps_mb": mem.start_mb, "mem_measure": mem.kind,
        "params_trainable": trainable, "matmul_params": p_all, "matmul_params_trainable": p_train,
        "flops_per_s": flops / seconds, "optimizer": optimizer, "allocator": allocator.state(),
        "case": asdict(case),
    }
