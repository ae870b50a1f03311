"""Display names, scales and number formatting; the task facts (names, table columns, headline metric) are
read from the Task records of `bench.tasks`.

Pure data and small functions; no torch, no matplotlib.
"""
from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal

from bench.tasks import TASKS

def table_tasks(table: str) -> list[str]:
    """The registered tasks of a paper-layout table ("glue": LoRA Table 2, "nlg": Prefix-Tuning Table 1), in
    the table's column order (the registry's)."""
    return [name for name, t in TASKS.items() if t.table == table]


METRIC_NAMES = {
    "accuracy": "Acc", "matthews": "MCC", "pearson": "Pearson", "spearman": "Spearman", "f1": "F1",
    "bleu": "BLEU", "nist": "NIST", "meteor": "MET", "rouge_l": "R-L", "cider": "CIDEr", "ter": "TER",
    "moverscore": "Mover", "bertscore": "BERT", "bleurt": "BLEURT", "average": "Avg.",
}
SPLIT_SHORT = {"test-seen": "S", "test-unseen": "U", "test-all": "A"}
MODEL_NAMES = {
    "roberta-base": "RoBERTa-base", "roberta-large": "RoBERTa-large", "deberta-v2-xxlarge": "DeBERTa-XXL",
    "gpt2-medium": "GPT-2 Medium", "gpt2-large": "GPT-2 Large", "minilm-l6": "MiniLM-L6",
    "smollm2-135m": "SmolLM2-135M", "smollm2-1.7b": "SmolLM2-1.7B", "qwen2.5-0.5b": "Qwen2.5-0.5B",
    "tiny-roberta": "tiny RoBERTa", "tiny-gpt2": "tiny GPT-2",
}

# Task name spellings mapped to the names used in results/paper.csv.
TASK_ALIASES = {"sst-2": "sst2", "sst_2": "sst2", "sts-b": "stsb", "sts_b": "stsb", "web_nlg": "webnlg",
                "web-nlg": "webnlg"}
# Split spellings mapped to the paper's: GLUE "dev" is the validation set (MNLI: matched).
SPLIT_ALIASES = {"validation": "dev", "validation_matched": "dev", "dev_matched": "dev", "dev-matched": "dev",
                 "validation-matched": "dev"}

SCALES = ("percent", "fraction", "raw")


def canonical_task(task: str) -> str:
    key = task.strip().lower()
    return TASK_ALIASES.get(key, key)


def canonical_split(split: str) -> str:
    key = split.strip().lower()
    return SPLIT_ALIASES.get(key, key)


def convert(value: float | None, from_scale: str, to_scale: str) -> float | None:
    """`value` expressed on `to_scale`; None when the scales cannot be converted (raw vs percent, unknown)."""
    if value is None:
        return None
    if from_scale == to_scale:
        return value
    if from_scale == "fraction" and to_scale == "percent":
        return value * 100.0
    if from_scale == "percent" and to_scale == "fraction":
        return value / 100.0
    return None


def decimals(scale: str) -> int:
    """Digits the papers print: 87.6 (percent), 0.45 (fraction), 8.62 / 2.47 (raw: NIST, CIDEr)."""
    return 1 if scale == "percent" else 2


def rounded(value: float, scale: str) -> float:
    """`value` as printed: half away from zero on its shortest decimal form (56.25 -> 56.3, not 56.2)."""
    q = Decimal(1).scaleb(-decimals(scale))
    return float(Decimal(repr(value)).quantize(q, rounding=ROUND_HALF_UP))


def fmt(value: float | None, scale: str, signed: bool = False) -> str:
    if value is None or not math.isfinite(value):
        return ""
    d = decimals(scale)
    shown = rounded(value, scale)
    if signed and shown == 0:
        return f"\u00b1{0:.{d}f}"  # no "-0.0" / "+0.0" for a difference that rounds to zero
    text = f"{shown:+.{d}f}" if signed else f"{shown:.{d}f}"
    return text.replace("-", "\u2212")  # a real minus sign


def fmt_percent(value: float) -> str:
    """Share of the base model: 100%, 3.1%, 0.069%."""
    if value >= 10:
        return f"{value:.0f}%"
    if value >= 1:
        return f"{value:.1f}%"
    return f"{value:.2g}%"


def unit_label(scale: str) -> str:
    return {"percent": "%", "fraction": "0\u20131", "raw": ""}.get(scale, scale)


def fmt_params(n: float | None) -> str:
    """Parameter counts as the papers print them: 0.3M, 125.0M; small counts keep two significant digits."""
    if n is None:
        return ""
    if n >= 1e5:
        return f"{n / 1e6:.1f}M"
    if n >= 1e3:
        return f"{n / 1e3:.3g}K"
    return f"{int(n)}"


def arrow(higher_is_better: bool | None) -> str:
    if higher_is_better is None:
        return ""
    return "\u2191" if higher_is_better else "\u2193"


def task_name(task: str) -> str:
    t = TASKS.get(task)
    return t.display if t is not None else task


def model_name(model: str) -> str:
    return MODEL_NAMES.get(model, model)


def metric_name(metric: str) -> str:
    return METRIC_NAMES.get(metric, metric)


def headline(task: str) -> tuple[str, str] | None:
    """(split, metric) a task is plotted with, for the tasks of the two tables; None for other tasks."""
    t = TASKS.get(task)
    return t.plotted() if t is not None and t.table else None
