"""The eleven tasks of the two target tables, as short declarative records.

A Task says what the data is (kind, labels, where it comes from on the Hub and which local release format
holds it), how it is split, how it is scored (metric names as in `reference/paper_results.csv`), which dev
metric picks the best epoch, and, for generation, the decoding protocol of the paper. Loading lives in
`bench.data`; this module imports neither torch nor datasets.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from bench.config import ConfigError
from bench.decode.protocol import PREFIX_TUNING, Decoding

Kind = Literal["classify", "regress", "generate"]


@dataclass(frozen=True)
class Task:
    name: str                                # registry key, as in paper_results.csv ("sst2", "e2e", ...)
    kind: Kind                               # classify | regress | generate
    summary: str                             # one line for `peft-bench ls tasks`
    hub_id: str                              # datasets repository (parquet-backed, loadable with datasets>=4)
    hub_config: str | None                   # its config name (None: the default config)
    hub_revision: str | None                 # git revision holding the parquet files (None: main)
    hub_splits: tuple[tuple[str, str], ...]  # (our split name, the Hub split name)
    loader: str                              # local release format: glue | e2e | webnlg2017 | dart
    local_name: str                          # folder of the local release under --data-dir ("SST-2", "e2e", ...)
    splits: tuple[str, ...]                  # our split names, e.g. ("train", "dev", "test")
    metrics: tuple[str, ...]                 # reported metrics (names of paper_results.csv)
    select_metric: str                       # dev metric that picks the best epoch (higher is better)
    select_split: str = "dev"                # split on which select_metric is computed
    eval_splits: tuple[str, ...] = ("dev",)  # splits a run evaluates and reports
    subsets: tuple[str, ...] = ()            # reported subsets of generation test sets: result split "test-seen"
    num_labels: int = 0                      # classifier outputs (1 for regression, 0 for generation)
    label_names: tuple[str, ...] = ()        # label id -> name (ids as in the Hub's nyu-mll/glue)
    max_length: int = 512                    # tokens per example at most (source + target for generation)
    decoding: Decoding | None = None         # generation protocol (None for GLUE)

    def hub_split(self, split: str) -> str:
        """The Hub's name of our split `split` (ConfigError for an unknown split)."""
        for ours, theirs in self.hub_splits:
            if ours == split:
                return theirs
        raise ConfigError(f"task {self.name} has no split {split!r}; splits are: {', '.join(self.splits)}")

    def check_split(self, split: str) -> str:
        if split not in self.splits:
            raise ConfigError(f"task {self.name} has no split {split!r}; splits are: {', '.join(self.splits)}")
        return split


_GLUE_SPLITS = (("train", "train"), ("dev", "validation"), ("test", "test"))


def _glue(name: str, folder: str, summary: str, labels: tuple[str, ...], metrics: tuple[str, ...],
          select: str = "accuracy", kind: Kind = "classify") -> Task:
    return Task(
        name=name, kind=kind, summary=summary,
        hub_id="nyu-mll/glue", hub_config=name, hub_revision=None, hub_splits=_GLUE_SPLITS,
        loader="glue", local_name=folder, splits=("train", "dev", "test"),
        metrics=metrics, select_metric=select,
        num_labels=1 if kind == "regress" else len(labels), label_names=labels,
        max_length=512,  # LoRA RoBERTa-base scripts use 512 for every GLUE task; presets override per recipe
    )


MNLI = Task(
    name="mnli", kind="classify",
    summary="GLUE MNLI: entailment / neutral / contradiction (393k train; dev = matched, plus dev-mismatched)",
    hub_id="nyu-mll/glue", hub_config="mnli", hub_revision=None,
    hub_splits=(("train", "train"), ("dev", "validation_matched"), ("dev-mismatched", "validation_mismatched"),
                ("test", "test_matched"), ("test-mismatched", "test_mismatched")),
    loader="glue", local_name="MNLI",
    splits=("train", "dev", "dev-mismatched", "test", "test-mismatched"),
    metrics=("accuracy",), select_metric="accuracy", eval_splits=("dev", "dev-mismatched"),
    num_labels=3, label_names=("entailment", "neutral", "contradiction"), max_length=512,
)

# The Prefix-Tuning papers select on the dev set; we select on dev BLEU (the first metric of each table).
_NLG_SELECT = "bleu"

E2E = Task(
    name="e2e", kind="generate",
    summary="E2E NLG: restaurant meaning representation -> text (42k refs train, 547/630 dev/test inputs)",
    hub_id="tuetschek/e2e_nlg", hub_config=None, hub_revision="refs/convert/parquet",
    hub_splits=(("train", "train"), ("dev", "validation"), ("test", "test")),
    loader="e2e", local_name="e2e", splits=("train", "dev", "test"),
    metrics=("bleu", "nist", "meteor", "rouge_l", "cider"), select_metric=_NLG_SELECT,
    eval_splits=("dev", "test"), max_length=512, decoding=PREFIX_TUNING,
)

WEBNLG = Task(
    name="webnlg", kind="generate",
    summary="WebNLG 2017 challenge: DBpedia triples -> text (test 1,862 inputs: 971 seen / 891 unseen)",
    hub_id="webnlg-challenge/web_nlg", hub_config="webnlg_challenge_2017", hub_revision="refs/convert/parquet",
    hub_splits=(("train", "train"), ("dev", "dev"), ("test", "test")),
    loader="webnlg2017", local_name="webnlg_challenge_2017", splits=("train", "dev", "test"),
    metrics=("bleu", "meteor", "ter"), select_metric=_NLG_SELECT,
    eval_splits=("dev", "test"), subsets=("all", "seen", "unseen"), max_length=512, decoding=PREFIX_TUNING,
)

DART = Task(
    name="dart", kind="generate",
    summary="DART v1.1.1: open-domain triples -> text (dev 2,768 inputs, test 5,097)",
    hub_id="Yale-LILY/dart", hub_config=None, hub_revision="refs/convert/parquet",
    hub_splits=(("train", "train"), ("dev", "validation"), ("test", "test")),
    loader="dart", local_name="dart", splits=("train", "dev", "test"),
    metrics=("bleu", "meteor", "ter", "moverscore", "bertscore", "bleurt"), select_metric=_NLG_SELECT,
    eval_splits=("dev", "test"), max_length=512, decoding=PREFIX_TUNING,
)

# One explicit line per task. Metric per LoRA Table 2: MNLI matched accuracy, CoLA Matthews, STS-B Pearson,
# accuracy elsewhere (MRPC and QQP report F1 as a second metric).
TASKS: dict[str, Task] = {
    "mnli": MNLI,
    "sst2": _glue("sst2", "SST-2", "GLUE SST-2: binary sentiment of movie-review sentences",
                  ("negative", "positive"), ("accuracy",)),
    "mrpc": _glue("mrpc", "MRPC", "GLUE MRPC: is the sentence pair a paraphrase",
                  ("not_equivalent", "equivalent"), ("accuracy", "f1")),
    "cola": _glue("cola", "CoLA", "GLUE CoLA: grammatical acceptability (Matthews correlation)",
                  ("unacceptable", "acceptable"), ("matthews", "accuracy"), select="matthews"),
    "qnli": _glue("qnli", "QNLI", "GLUE QNLI: does the sentence answer the question",
                  ("entailment", "not_entailment"), ("accuracy",)),
    "qqp": _glue("qqp", "QQP", "GLUE QQP: are the two questions duplicates",
                 ("not_duplicate", "duplicate"), ("accuracy", "f1")),
    "rte": _glue("rte", "RTE", "GLUE RTE: textual entailment (2.5k train)",
                 ("entailment", "not_entailment"), ("accuracy",)),
    "stsb": _glue("stsb", "STS-B", "GLUE STS-B: sentence similarity 0-5 (regression; Pearson)",
                  (), ("pearson", "spearman"), select="pearson", kind="regress"),
    "e2e": E2E,
    "webnlg": WEBNLG,
    "dart": DART,
}


def get_task(name: str | Task) -> Task:
    """The registered task `name` (a Task passes through); ConfigError listing the names otherwise."""
    if isinstance(name, Task):
        return name
    try:
        return TASKS[name]
    except KeyError:
        raise ConfigError(f"unknown task {name!r}; tasks are: {', '.join(TASKS)}") from None
