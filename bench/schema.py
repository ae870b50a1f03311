"""The tidy result schema shared by the runner (writer) and the report (reader). No torch import.

One row per run x split x metric. The run's settings and all parameter counters repeat on every row.
"""
from __future__ import annotations

# Columns, in order. `value` is empty (never a sentinel) when a metric could not be computed; `note` says why.
COLUMNS = [
    "preset", "run_id", "model", "task", "method", "method_config", "seed", "lr", "epochs",
    "batch_size",        # examples per micro-batch (per device)
    "grad_accum",        # micro-batches per optimizer step: the effective batch is batch_size x grad_accum
    "recipe",            # paper | script | own: which recipe variant the run used
    "loss",              # token_mean | sentence_sum: the training loss's reduction (TrainConfig.loss)
    "select",            # best | final: the state the run kept, best dev epoch or last (TrainConfig.select)
    "label",             # the table row as displayed, e.g. "LoRA (r=8)", "Adapter^P (b=16)"
    "paper_table",       # "lora/Table 2", "prefix-tuning/Table 1", ... or "" when no paper row corresponds
    "paper_version",     # arxiv-v1 | acl-2021 | arxiv-v2 (the version of the paper table the preset targets)
    "paper_method",      # method name exactly as in results/paper.csv ("LoRA", "AdptP", "FT-TOP2", ...)
    "paper_params",      # params_reported exactly as in results/paper.csv ("0.8M", "0.3M", ...) to tell rows apart
    "split", "metric",
    "selection",         # dev: epoch selected on the split it scores (the papers') | heldout: selected on the other
                         # half of dev (bench/heldout.py) | final: select=final runs, no selection (one protocol)
    "value", "scale", "higher_is_better", "best_epoch", "note",
    "params_trained", "params_stored", "params_head", "params_total", "params_percent",
    "status",            # ok | failed
    "error",
    "train_seconds", "train_examples_per_s", "train_tokens_per_s", "eval_seconds", "peak_mem_mb",
    "device",
    "precision",         # fp32 | bf16 | fp16: what the run trained in (train.mixed_precision resolved on its machine)
    "tf32",              # on | off: fp32 matmuls in TF32 (train.tf32 on an fp32 run on CUDA sm_80+)
    "fast_path",         # cpu: trained with bench.fastpath's dropout and attention (CPU only) | none: torch's kernels
    "model_source",      # where the weights came from: hub | local | package:<dist> (<how it differs>, e.g. "Q4_1
    #                      dequantized") | tiny (random init)  (bench.models.model_source)
    "torch_version", "transformers_version", "git_commit", "created_at",
]

# Columns added after result files were first written: a file without them reads them as these values (the
# only behaviour the runner had before they existed).
# Files from before grad_accum held the effective batch in batch_size, which reads right with grad_accum 1.
# precision reads empty: such a file does not say what its runs trained in.
# fast_path reads empty: such a file does not record it (runs before the column existed trained with torch's kernels).
# selection reads from select (best -> dev, final -> final): every row of such a file is the runner's own.
# tf32 reads empty: such a file does not record it.
# model_source reads empty: such a file does not record where its weights came from.
LATER_COLUMNS = {"grad_accum": "1", "loss": "token_mean", "select": "best", "precision": "", "fast_path": "",
                 "selection": "", "tf32": "", "model_source": ""}


def selection_of(select: str) -> str:
    """The protocol of the runner's own rows: `dev` when it kept the best dev epoch, `final` when it kept the last."""
    return "final" if select == "final" else "dev"

NUMERIC = [
    "seed", "lr", "epochs", "batch_size", "grad_accum", "value", "best_epoch", "params_trained", "params_stored",
    "params_head", "params_total", "params_percent", "train_seconds", "train_examples_per_s", "train_tokens_per_s",
    "eval_seconds", "peak_mem_mb",
]

