"""The eleven tasks of the two target tables, as short declarative records.

A Task holds every fact about a task: what the data is (kind, label names), where it comes from (the Hub
repository, config, revision and split names; the local release format, its files and columns), how it is
scored (metrics with their units and direction, names as in `reference/paper_results.csv`), which dev metric
picks the best epoch, how the report shows it (display name, paper-table columns, median or mean over seeds)
and, for generation, the decoding protocol of the paper. Loading lives in `bench.data` (one format object per
`Task.loader`), scoring in `bench.scorers`, layout in `bench.report`; all of them read these records.
This module imports neither torch nor datasets.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from bench.config import ConfigError
from bench.decode.protocol import PREFIX_TUNING, Decoding

Kind = Literal["classify", "regress", "generate"]
Scale = Literal["percent", "fraction", "raw"]


@dataclass(frozen=True)
class Metric:
    name: str                        # as in paper_results.csv ("accuracy", "bleu", ...)
    scale: Scale = "percent"         # unit the scorer returns it in (the paper's)
    higher_is_better: bool = True


@dataclass(frozen=True)
class Columns:
    """Where the text and label of an example are in a table (a TSV file, or the Hub's rows): header names,
    or 0-based positions for header-less files (`ncols` is then the expected column count)."""
    text_a: str | int
    text_b: str | int | None = None
    label: str | int | None = "label"    # None: unlabelled (GLUE test files)
    header: bool = True
    ncols: int | None = None             # header-less files only


@dataclass(frozen=True)
class LocalFile:
    """One split of a local release that keeps a split in one file (GLUE, E2E)."""
    split: str
    name: str                            # file name inside the release folder
    columns: Columns | None = None       # table formats: where the fields are


@dataclass(frozen=True)
class Task:
    name: str                                # registry key, as in paper_results.csv ("sst2", "e2e", ...)
    kind: Kind                               # classify | regress | generate
    summary: str                             # one line for `peft-bench ls tasks`
    display: str                             # name in tables and plots ("SST-2")
    hub_id: str                              # datasets repository (parquet-backed, loadable with datasets>=4)
    hub_config: str | None                   # its config name (None: the default config)
    hub_revision: str | None                 # git revision holding the parquet files (None: main)
    hub_splits: tuple[tuple[str, str], ...]  # (our split name, the Hub split name)
    loader: str                              # local release format (bench.data.formats): glue | e2e | webnlg2017 | dart
    local_name: str                          # folder of the local release under --data-dir ("SST-2", "e2e", ...)
    splits: tuple[str, ...]                  # our split names, e.g. ("train", "dev", "test")
    metrics: tuple[Metric, ...]              # reported metrics, in the order the papers print them
    select_metric: str                       # dev metric that picks the best epoch (higher is better)
    select_split: str = "dev"                # split on which select_metric is computed
    eval_splits: tuple[str, ...] = ("dev",)  # splits a run evaluates and reports
    subsets: tuple[str, ...] = ()            # reported subsets of generation test sets: result split "test-seen"
    label_names: tuple[str, ...] = ()        # label id -> name (ids as in the Hub's nyu-mll/glue)
    label_values: tuple[str, ...] = ()       # label id -> its spelling in the local files ("0", "entailment")
    files: tuple[LocalFile, ...] = ()        # the local release's file per split (single-file formats)
    hub_columns: Columns | None = None       # text/label columns of the Hub rows (table formats)
    hub_fields: tuple[str, ...] = ()         # Hub columns a generation format reads (table formats: hub_columns)
    hub_keep: tuple[tuple[str, str, str], ...] = ()  # (split, column, value): only these rows of a Hub split
    max_length: int = 512                    # tokens per example at most (source + target for generation)
    decoding: Decoding | None = None         # generation protocol (None for GLUE)
    table: str = ""                          # paper-layout table of the report: glue | nlg | "" (none)
    table_columns: tuple[tuple[str, str], ...] = ()  # its (split, metric) columns; () = the selection metric
    headline: tuple[str, str] | None = None  # (split, metric) plotted; None = the first table column
    center: Literal["median", "mean"] = "mean"  # over seeds: GLUE median (LoRA Table 2), generation mean

    @property
    def num_labels(self) -> int:
        """Classifier outputs: the label count, 1 for regression, 0 for generation."""
        return {"classify": len(self.label_names), "regress": 1, "generate": 0}[self.kind]

    @property
    def metric_names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.metrics)

    def metric(self, name: str) -> Metric:
        for m in self.metrics:
            if m.name == name:
                return m
        raise ConfigError(f"task {self.name} has no metric {name!r}; metrics are: {', '.join(self.metric_names)}")

    def columns(self) -> tuple[tuple[str, str], ...]:
        """The (split, metric) columns of the task in its paper-layout table."""
        return self.table_columns or ((self.select_split, self.select_metric),)

    def plotted(self) -> tuple[str, str]:
        return self.headline or self.columns()[0]

    def local_file(self, split: str) -> LocalFile:
        self.check_split(split)
        for f in self.files:
            if f.split == split:
                return f
        raise ConfigError(f"task {self.name}: no local file for split {split!r}")

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


# ------------------------------------------------------------------------------------------------ GLUE
ACC, F1, MCC = Metric("accuracy"), Metric("f1"), Metric("matthews")
PEARSON, SPEARMAN = Metric("pearson"), Metric("spearman")
_GLUE_SPLITS = (("train", "train"), ("dev", "validation"), ("test", "test"))


def glue_files(text_a: str, text_b: str | None, label: str, dev: str = "dev.tsv",
               test: str = "test.tsv") -> tuple[LocalFile, ...]:
    """A GLUE task's TSVs with one header layout; the test file has the same text columns and no label."""
    return (LocalFile("train", "train.tsv", Columns(text_a, text_b, label)),
            LocalFile("dev", dev, Columns(text_a, text_b, label)),
            LocalFile("test", test, Columns(text_a, text_b, None)))


def glue_task(name: str, display: str, summary: str, labels: tuple[str, ...], metrics: tuple[Metric, ...],
              files: tuple[LocalFile, ...], hub_columns: tuple[str, str | None], *, select: str = "accuracy",
              kind: Kind = "classify", values: tuple[str, ...] = ("0", "1"), folder: str | None = None,
              hub_id: str = "nyu-mll/glue") -> Task:
    """A GLUE-format task: TSVs under --data-dir/<folder>, the Hub's config `name` of `hub_id`."""
    return Task(
        name=name, kind=kind, summary=summary, display=display,
        hub_id=hub_id, hub_config=name, hub_revision=None, hub_splits=_GLUE_SPLITS,
        loader="glue", local_name=folder or display, splits=("train", "dev", "test"),
        metrics=metrics, select_metric=select, label_names=labels,
        label_values=values if kind == "classify" else (), files=files,
        hub_columns=Columns(*hub_columns),
        max_length=512,  # LoRA RoBERTa-base scripts use 512 for every GLUE task; presets override per recipe
        table="glue", center="median",
    )


_MNLI_COLUMNS = Columns("sentence1", "sentence2", "gold_label")
MNLI = Task(
    name="mnli", kind="classify", display="MNLI",
    summary="GLUE MNLI: entailment / neutral / contradiction (393k train; dev = matched, plus dev-mismatched)",
    hub_id="nyu-mll/glue", hub_config="mnli", hub_revision=None,
    hub_splits=(("train", "train"), ("dev", "validation_matched"), ("dev-mismatched", "validation_mismatched"),
                ("test", "test_matched"), ("test-mismatched", "test_mismatched")),
    loader="glue", local_name="MNLI",
    splits=("train", "dev", "dev-mismatched", "test", "test-mismatched"),
    metrics=(ACC,), select_metric="accuracy", eval_splits=("dev", "dev-mismatched"),
    label_names=("entailment", "neutral", "contradiction"), label_values=("entailment", "neutral", "contradiction"),
    files=(LocalFile("train", "train.tsv", _MNLI_COLUMNS), LocalFile("dev", "dev_matched.tsv", _MNLI_COLUMNS),
           LocalFile("dev-mismatched", "dev_mismatched.tsv", _MNLI_COLUMNS),
           LocalFile("test", "test_matched.tsv", Columns("sentence1", "sentence2", None)),
           LocalFile("test-mismatched", "test_mismatched.tsv", Columns("sentence1", "sentence2", None))),
    hub_columns=Columns("premise", "hypothesis"),
    max_length=512, table="glue", center="median",
)

# CoLA's train/dev files have no header: source, label, original label (blank), sentence.
_COLA_FILES = (LocalFile("train", "train.tsv", Columns(3, None, 1, header=False, ncols=4)),
               LocalFile("dev", "dev.tsv", Columns(3, None, 1, header=False, ncols=4)),
               LocalFile("test", "test.tsv", Columns("sentence", None, None)))

# ------------------------------------------------------------------------------------------------- NLG
# The Prefix-Tuning papers select on the dev set; we select on dev BLEU (the first metric of each table).
_NLG_SELECT = "bleu"
_NLG_SPLITS = (("train", "train"), ("dev", "validation"), ("test", "test"))
BLEU = Metric("bleu")
METEOR_FRACTION, TER = Metric("meteor", "fraction"), Metric("ter", "fraction", higher_is_better=False)

E2E = Task(
    name="e2e", kind="generate", display="E2E",
    summary="E2E NLG: restaurant meaning representation -> text (42k refs train, 547/630 dev/test inputs)",
    hub_id="tuetschek/e2e_nlg", hub_config=None, hub_revision="refs/convert/parquet", hub_splits=_NLG_SPLITS,
    hub_fields=("meaning_representation", "human_reference"),
    loader="e2e", local_name="e2e", splits=("train", "dev", "test"),
    metrics=(BLEU, Metric("nist", "raw"), Metric("meteor"), Metric("rouge_l"), Metric("cider", "raw")),
    select_metric=_NLG_SELECT, eval_splits=("dev", "test"),
    files=(LocalFile("train", "trainset.csv"), LocalFile("dev", "devset.csv"),
           LocalFile("test", "testset_w_refs.csv")),
    max_length=512, decoding=PREFIX_TUNING,
    table="nlg", table_columns=tuple(("test", m) for m in ("bleu", "nist", "meteor", "rouge_l", "cider")),
)

WEBNLG = Task(
    name="webnlg", kind="generate", display="WebNLG",
    summary="WebNLG 2017 challenge: DBpedia triples -> text (test 1,862 inputs: 971 seen / 891 unseen)",
    hub_id="webnlg-challenge/web_nlg", hub_config="webnlg_challenge_2017", hub_revision="refs/convert/parquet",
    hub_splits=(("train", "train"), ("dev", "dev"), ("test", "test")),
    hub_fields=("category", "modified_triple_sets", "lex"),
    # The Hub's test split is every XML of test/ in name order (testdata_no_lex 1,862, testdata_unseen_with_lex
    # 891, testdata_with_lex 1,862 rows), tagged with the file name: the official test set is the last.
    hub_keep=(("test", "test_category", "testdata_with_lex"),),
    loader="webnlg2017", local_name="webnlg_challenge_2017", splits=("train", "dev", "test"),
    metrics=(BLEU, METEOR_FRACTION, TER), select_metric=_NLG_SELECT,
    eval_splits=("dev", "test"), subsets=("all", "seen", "unseen"), max_length=512, decoding=PREFIX_TUNING,
    table="nlg", table_columns=tuple((f"test-{s}", m) for m in ("bleu", "meteor", "ter")
                                     for s in ("seen", "unseen", "all")),
    headline=("test-all", "bleu"),
)

DART = Task(
    name="dart", kind="generate", display="DART",
    summary="DART v1.1.1: open-domain triples -> text (dev 2,768 inputs, test 5,097)",
    hub_id="Yale-LILY/dart", hub_config=None, hub_revision="refs/convert/parquet", hub_splits=_NLG_SPLITS,
    hub_fields=("tripleset", "annotations"),
    loader="dart", local_name="dart", splits=("train", "dev", "test"),
    metrics=(BLEU, METEOR_FRACTION, TER, Metric("moverscore", "fraction"), Metric("bertscore", "fraction"),
             Metric("bleurt", "fraction")),
    select_metric=_NLG_SELECT, eval_splits=("dev", "test"), max_length=512, decoding=PREFIX_TUNING,
    table="nlg", table_columns=tuple(("test", m) for m in ("bleu", "meteor", "ter", "moverscore", "bertscore",
                                                           "bleurt")),
)

# One explicit line per task, GLUE in the column order of LoRA Table 2. Metric per LoRA Table 2: MNLI matched
# accuracy, CoLA Matthews, STS-B Pearson, accuracy elsewhere (MRPC and QQP report F1 as a second metric).
TASKS: dict[str, Task] = {
    "mnli": MNLI,
    "sst2": glue_task("sst2", "SST-2", "GLUE SST-2: binary sentiment of movie-review sentences",
                      ("negative", "positive"), (ACC,), glue_files("sentence", None, "label"), ("sentence", None)),
    "mrpc": glue_task("mrpc", "MRPC", "GLUE MRPC: is the sentence pair a paraphrase",
                      ("not_equivalent", "equivalent"), (ACC, F1),
                      glue_files("#1 String", "#2 String", "Quality"), ("sentence1", "sentence2")),
    "cola": glue_task("cola", "CoLA", "GLUE CoLA: grammatical acceptability (Matthews correlation)",
                      ("unacceptable", "acceptable"), (MCC,), _COLA_FILES, ("sentence", None), select="matthews"),
    "qnli": glue_task("qnli", "QNLI", "GLUE QNLI: does the sentence answer the question",
                      ("entailment", "not_entailment"), (ACC,), glue_files("question", "sentence", "label"),
                      ("question", "sentence"), values=("entailment", "not_entailment")),
    "qqp": glue_task("qqp", "QQP", "GLUE QQP: are the two questions duplicates",
                     ("not_duplicate", "duplicate"), (ACC, F1), glue_files("question1", "question2", "is_duplicate"),
                     ("question1", "question2")),
    "rte": glue_task("rte", "RTE", "GLUE RTE: textual entailment (2.5k train)",
                     ("entailment", "not_entailment"), (ACC,), glue_files("sentence1", "sentence2", "label"),
                     ("sentence1", "sentence2"), values=("entailment", "not_entailment")),
    "stsb": glue_task("stsb", "STS-B", "GLUE STS-B: sentence similarity 0-5 (regression; Pearson)",
                      (), (PEARSON, SPEARMAN), glue_files("sentence1", "sentence2", "score"),
                      ("sentence1", "sentence2"), select="pearson", kind="regress"),
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


def find_task(name: str) -> Task | None:
    """The registered task `name`, or None (the report reads CSVs that may name tasks no longer registered)."""
    return TASKS.get(name)
