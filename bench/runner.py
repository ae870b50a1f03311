"""`run_one(spec)`: seeds, model, method, data, `fit`, final evaluation, atomic run folder.

The only place that turns a RunSpec into work. It never asks which method it runs (the method object
applies itself); the task's kind picks the loss and the evaluation.
"""
from __future__ import annotations

import functools
import json
import random
import subprocess
import time
import traceback
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

from bench.results import (ROWS_FILE, failed_rows, metric_rows, read_rows, rows_status, run_dir, write_atomic,
                           write_jsonl)
from bench.distributed import evaluate_shared, process_index, record_first_failure, world_size
from bench.spec import RunSpec, spec_json

STATE_FILE = "state.pt"


# -- environment ------------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def git_commit() -> str:
    """HEAD of the checkout the code was imported from (once per process: what this process runs)."""
    root = Path(__file__).resolve().parents[1]
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "bench", "methods"],
                               cwd=root, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""
    return f"{sha}-dirty" if sha and dirty else sha


def environment(device) -> dict:
    import torch
    import transformers

    name = str(device)
    if getattr(device, "type", "") == "cuda":
        name = f"cuda:{torch.cuda.get_device_name(device)}"
    elif getattr(device, "type", "") == "cpu":
        name = f"cpu x{torch.get_num_threads()} threads"
    return {"device": name, "torch_version": torch.__version__, "transformers_version": transformers.__version__,
            "git_commit": git_commit()}


def _reset_peak_memory() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    try:  # Linux: "5" resets the process's peak resident set size (VmHWM)
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def peak_memory_mb() -> float:
    """CUDA max allocated since the reset, or the process's peak RSS (VmHWM) on CPU."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -- data -------------------------------------------------------------------------------------------------------
def subsample(examples: list, n: int, seed: int) -> list:
    if not n or n >= len(examples):
        return examples
    keep = sorted(random.Random(seed).sample(range(len(examples)), n))
    return [examples[i] for i in keep]


def load_data(spec: RunSpec, task, data_dir) -> dict[str, list]:
    """Train (subsampled) and every evaluated split; DataError (a ConfigError) when a file is missing."""
    from bench.data import load_split

    cfg = spec.train
    splits = {"train": subsample(load_split(task, cfg.train_split, data_dir), cfg.max_train_examples,
                                 cfg.subsample_seed)}
    for split in eval_splits_of(spec, task):
        examples = load_split(task, split, data_dir)
        splits[split] = examples[: cfg.max_eval_examples] if cfg.max_eval_examples else examples
    return splits


def train_loader(spec: RunSpec, task, tokenizer, examples, max_length: int | None = None):
    from bench.data import encode_classification, encode_generation_train, make_loader
    from bench.models import pad_id

    encode = encode_generation_train if task.kind == "generate" else encode_classification
    encoded = encode(tokenizer, task, examples, max_length or spec.train.max_length)
    return make_loader(encoded, batch_size=spec.train.batch_size, pad_id=pad_id(tokenizer), shuffle=True,
                       seed=spec.seed)


def fitted_max_length(model, max_length: int) -> int:
    """`train.max_length`, cut to the tokens that fit in the model's positions with the method applied (a soft
    prompt of length 20 leaves RoBERTa 492 of its 512)."""
    from methods.base import input_budget

    budget = input_budget(model)
    return max_length if budget is None else min(max_length, budget)


def eval_splits_of(spec: RunSpec, task) -> tuple[str, ...]:
    """The splits a run evaluates: the spec's choice or the task's, always including the selection split, never
    the split it trained on (`train.train_split`)."""
    chosen = tuple(spec.eval_splits) or tuple(task.eval_splits)
    trained = spec.train.train_split
    chosen = tuple(split for split in chosen if split != trained or trained == "train")
    select = selection_split(spec, task)
    return chosen if select is None or select in chosen else (select, *chosen)


def selection_split(spec: RunSpec, task) -> str | None:
    """The split a run selects its epoch on: the task's, None when the run trains on it (then it keeps its final
    state and nothing is evaluated between epochs)."""
    return None if spec.train.train_split == task.select_split else task.select_split


def check_train_split(spec: RunSpec, task) -> None:
    """ValueError unless `train.train_split` is a split of the task; training on the selection split needs
    select="final" and no evaluation between epochs."""
    split = spec.train.train_split
    if split not in task.splits:
        raise ValueError(f"train.train_split={split!r}: task {task.name} has splits {', '.join(task.splits)}")
    if selection_split(spec, task) is None and (spec.train.select != "final" or spec.train.eval_every_epoch):
        raise ValueError(f"train.train_split={split!r} is task {task.name}'s selection split: set train.select=final "
                         f"and train.eval_every_epoch=false (no epoch can be selected on the training data)")


def decoding_of(spec: RunSpec, task):
    if task.kind != "generate":
        return None
    return replace(task.decoding, **spec.decoding) if spec.decoding else task.decoding


# -- the run ----------------------------------------------------------------------------------------------------
def run_one(spec: RunSpec, *, results_dir="results", data_dir=None, model_dir=None, progress: bool = True,
            force: bool = False) -> list[dict]:
    """Train and evaluate `spec`; write its run folder; return its rows. A finished ok run is not redone.

    Exceptions inside the run become one `status=failed` row carrying the error (traceback in error.txt).
    """
    folder = run_dir(results_dir, spec.preset, spec.run_id)
    done = read_rows(folder)
    if done is not None and not force and rows_status(done) == "ok":
        return done
    shared = folder if world_size() > 1 else None     # DDP: where any process records the job's first failure
    if process_index() != 0:      # under `accelerate launch` only the first process writes the run folder
        import tempfile

        with tempfile.TemporaryDirectory(prefix="peft-bench-rank-") as scratch:
            return _run_into(spec, Path(scratch), results_dir=results_dir, data_dir=data_dir, model_dir=model_dir,
                             progress=False, shared=shared)
    return _run_into(spec, folder, results_dir=results_dir, data_dir=data_dir, model_dir=model_dir,
                     progress=progress, shared=shared)


def _run_into(spec: RunSpec, folder: Path, *, results_dir, data_dir, model_dir, progress: bool,
              shared: Path | None = None) -> list[dict]:
    """Run into `folder`. Under DDP (`shared`: the run folder) a process whose run fails records that failure in
    the run folder unless another process has already recorded one (the first failure is the reason: the others'
    are the broken connection it leaves), and returns; the CLI then exits non-zero, and the launcher ends the
    other processes instead of leaving them blocked in a collective until its timeout."""
    if shared is None or folder == shared:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / ROWS_FILE).unlink(missing_ok=True)   # a rerun of a failed run is not complete until it ends
        for stale in folder.rglob(".*.tmp"):            # temp files of a run killed while writing
            stale.unlink(missing_ok=True)
        write_atomic(folder / "spec.json", spec_json(spec))
    folder.mkdir(parents=True, exist_ok=True)
    context: dict = {}
    try:
        rows = _execute(spec, folder, context, results_dir=results_dir, data_dir=data_dir, model_dir=model_dir,
                        progress=progress)
    except Exception as exc:  # noqa: BLE001 - recorded as a failed run, the grid goes on
        message = f"{type(exc).__name__}: {exc}".replace("\n", " ")[:2000]
        if shared is not None:
            message = f"process {process_index()} of {world_size()}: {message}"
        rows = failed_rows(spec, message, counts=context.get("counts"), env=context.get("env"))
        if shared is not None:
            record_first_failure(shared, rows, traceback.format_exc())
            return rows
        write_atomic(folder / "error.txt", traceback.format_exc())
    write_atomic(folder / ROWS_FILE, json.dumps(rows, indent=1) + "\n")
    return rows


def _execute(spec: RunSpec, folder: Path, context: dict, *, results_dir, data_dir, model_dir,
             progress: bool) -> list[dict]:
    import torch
    from accelerate.utils import set_seed

    from bench.evaluate import score_value
    from bench.heldout import keep_epoch_predictions, keep_gold
    from bench.models import apply_method, load_model, model_source
    from bench.precision import precision_name, tf32_in_effect
    from bench.tasks import get_task
    from bench.train import enable_grad_checkpointing, fit, improves, make_accelerator, set_dropout
    from methods import count_params, method_state_dict

    from bench.spec import method_object

    cfg = spec.train
    task = get_task(spec.task)
    method = method_object(spec)
    data = load_data(spec, task, data_dir)
    decoding = decoding_of(spec, task)

    set_seed(spec.seed)
    model, tokenizer = load_model(spec.model, kind=task.kind, num_labels=max(task.num_labels, 1),
                                  model_dir=model_dir)
    arch = apply_method(model, method)
    if cfg.dropout is not None:
        set_dropout(model, cfg.dropout)
    if spec.init_from:
        _init_from(model, arch, run_dir(results_dir, spec.preset, spec.init_from) / STATE_FILE)
    context["counts"] = counts = count_params(model, arch, method)
    if cfg.grad_checkpointing:
        enable_grad_checkpointing(model)
    accelerator = make_accelerator(cfg)
    fast = cfg.cpu_fast_path and accelerator.device.type == "cpu" and not cfg.grad_checkpointing  # bench.fastpath
    trained_in = str(accelerator.mixed_precision)
    context["env"] = env = {**environment(accelerator.device), "precision": precision_name(trained_in),
                            "tf32": "on" if tf32_in_effect(cfg.tf32, trained_in, accelerator.device) else "off",
                            "fast_path": "cpu" if fast else "none",
                            "model_source": model_source(spec.model, model_dir).label}
    max_length = fitted_max_length(model, cfg.max_length)
    loader = train_loader(spec, task, tokenizer, data["train"], max_length)
    if accelerator.num_processes > 1:   # DDP: the model is built alike everywhere; each process its own dropout
        set_seed(spec.seed, device_specific=True)       # stream (seed + process index)
    _reset_peak_memory()

    select_split, select_metric = selection_split(spec, task), task.select_metric
    best: dict = {}   # the best epoch so far (fit's rule): {"epoch", "score", "result"}; one epoch's predictions only

    def evaluate_once(m, split: str):
        return evaluate_shared(accelerator, m, tokenizer, task, split, data[split], max_length=max_length,
                               batch_size=cfg.eval_batch_size, decoding=decoding, progress=progress)

    def evaluate(m, epoch: int):
        if select_split is None:              # trained on the selection split: the final state, nothing scored
            return None, True, {"select": f"final (trained on {cfg.train_split})"}
        res = evaluate_once(m, select_split)
        keep_epoch_predictions(folder, select_split, epoch, res.predictions, data[select_split], task)
        logged, score, higher = {"eval_examples": res.examples}, None, True
        for split_name, metrics in res.scores.items():
            for metric, s in metrics.items():
                logged[f"{split_name}_{metric}"] = score_value(s)
        chosen = res.scores.get(select_split, {}).get(select_metric)
        if chosen is not None:
            score, higher = score_value(chosen), getattr(chosen, "higher_is_better", True)
        logged["select"] = f"{select_split}_{select_metric}"
        if cfg.select == "final" or not best or improves(score, best["score"], higher):  # fit's rule
            best.update(epoch=epoch, score=score, result=res)
        return score, higher, logged

    from bench.trackers import Tracker

    tracker = Tracker(spec, folder)

    def on_epoch(log: list[dict]) -> None:
        write_jsonl(folder / "log.jsonl", log)
        tracker.log(log[-1])

    try:
        fitted = fit(model, loader, kind=task.kind, cfg=cfg, evaluate=evaluate, accelerator=accelerator,
                     on_epoch=on_epoch, progress=progress)
    finally:
        tracker.finish()
    if keeps_state(spec, counts):
        _save_state(folder / STATE_FILE, {k: v.to("cpu") for k, v in method_state_dict(model, arch).items()})

    eval_start = time.perf_counter()
    scores: dict = {}
    for split in eval_splits_of(spec, task):
        res = best["result"] if split == select_split and best.get("epoch") == fitted.best_epoch else None
        if res is None:
            res = evaluate_once(model, split)
        write_atomic(folder / "predictions" / f"{split}.txt", "".join(p + "\n" for p in res.predictions))
        if task.kind == "generate" and split != select_split:
            keep_gold(folder, split, data[split], task)      # the NLG table's bootstrap (bench/heldout.py)
        scores.update(res.scores)
    eval_seconds = fitted.eval_seconds + (time.perf_counter() - eval_start)
    peak = peak_memory_mb()   # training and every evaluation
    if not scores:
        splits = ", ".join(eval_splits_of(spec, task))
        raise RuntimeError(f"task {task.name}: no evaluated split has labels ({splits})")

    stats = fitted.train
    env = {**env, "train_seconds": round(stats.seconds, 3),
           "train_examples_per_s": round(stats.examples / stats.seconds, 3) if stats.seconds else "",
           "train_tokens_per_s": round(stats.tokens / stats.seconds, 3) if stats.seconds else "",
           "eval_seconds": round(eval_seconds, 3), "peak_mem_mb": round(peak, 1),
           "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    model = loader = accelerator = None    # free them before the next run of this process
    if torch.cuda.is_available():
        import gc

        gc.collect()
        torch.cuda.empty_cache()
    return metric_rows(spec, scores, best_epoch=fitted.best_epoch, counts=counts, env=env)


def keeps_state(spec: RunSpec, counts) -> bool:
    """Whether a run keeps its best method state (`state.pt`, what `init_from` and `peft-bench export` read):
    always when it is smaller than the base model (every parameter-efficient method), full fine-tuning only
    when the spec asks (`save_state`, e.g. a run that others start from)."""
    return spec.save_state or counts.percent < 100.0


def _save_state(path: Path, state: dict) -> None:
    import io

    import torch

    buf = io.BytesIO()
    torch.save(state, buf)
    write_atomic(path, buf.getvalue())


def _init_from(model, arch, path: Path) -> None:
    """Load a dependency's trained method weights, strictly (`methods.load_method_state`): every name must match;
    the task head is excepted and stays fresh (label sets differ)."""
    import torch

    from methods import load_method_state

    if not path.is_file():
        raise FileNotFoundError(f"init_from: {path} does not exist (the run it starts from has not finished)")
    state = torch.load(path, map_location="cpu", weights_only=True)
    try:
        load_method_state(model, state, arch, except_head=True)
    except ValueError as exc:
        raise ValueError(f"init_from {path}: {exc}") from None
