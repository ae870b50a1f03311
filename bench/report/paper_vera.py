"""VeRA's published rows beside the lecture's tables (Kopiczko, Blankevoort, Asano; ICLR 2024; arXiv 2310.11454),
in the reference file's columns (`bench.report.paper.SOURCE_COLUMNS`); `write_paper_csv` appends them to
results/paper.csv after the reference file's rows.

Table 2: GLUE dev, RoBERTa-base (r=1024, 0.043M) and RoBERTa-large (r=256, 0.061M), W_q and W_v adapted,
median of 5 seeds; unlike LoRA Table 2, MRPC, RTE and STS-B start from the pretrained model (no MNLI
checkpoint). The paper's avg column is the mean of its six tasks (85.2, 87.8). Table 3: E2E test, GPT-2 Medium
(0.098M) and Large (0.17M). Standard deviations are not carried over (empty).
"""
from __future__ import annotations

VERSION = "iclr-2024"
# MRPC, RTE and STS-B: LoRA Table 2 starts them from the MNLI run, VeRA from the pretrained model. The setting
# is on those cells only, so the report flags them beside the difference (bench.report.tables.entry).
NO_MNLI = ("mrpc", "rte", "stsb")
GLUE_SETTING = "no MNLI init: from the pretrained model (LoRA Table 2: from its MNLI run)"
GLUE_METRICS = {"sst2": "accuracy", "mrpc": "accuracy", "cola": "matthews", "qnli": "accuracy", "rte": "accuracy",
                "stsb": "pearson", "glue-avg": "average"}
# model -> (params printed, values in GLUE_METRICS order)
TABLE_2 = {
    "roberta-base": ("0.043M", (94.6, 89.5, 65.6, 91.8, 78.7, 90.7, 85.2)),
    "roberta-large": ("0.061M", (96.1, 90.9, 68.0, 94.4, 85.9, 91.7, 87.8)),
}
E2E_METRICS = (("bleu", "percent"), ("nist", "raw"), ("meteor", "percent"), ("rouge_l", "percent"),
               ("cider", "raw"))
TABLE_3 = {
    "gpt2-medium": ("0.098M", (70.1, 8.81, 46.6, 71.5, 2.50)),
    "gpt2-large": ("0.17M", (70.3, 8.85, 46.9, 71.6, 2.54)),
}


def source_rows() -> list[dict]:
    """VeRA's rows as the reference file would hold them (all values as strings)."""
    common = {"paper": "vera", "version": VERSION, "method": "VeRA", "std": ""}
    out = []
    for model, (params, values) in TABLE_2.items():
        for (task, metric), value in zip(GLUE_METRICS.items(), values):
            setting = GLUE_SETTING if task in NO_MNLI else ""
            out.append({**common, "table": "Table 2", "model": model, "setting": setting,
                        "params_reported": params, "task": task, "split": "dev", "metric": metric,
                        "value": f"{value}", "scale": "percent"})
    for model, (params, values) in TABLE_3.items():
        for (metric, scale), value in zip(E2E_METRICS, values):
            out.append({**common, "table": "Table 3", "model": model, "setting": "", "params_reported": params,
                        "task": "e2e", "split": "test", "metric": metric, "value": f"{value:.2f}" if scale == "raw"
                        else f"{value}", "scale": scale})
    return out
