"""results/paper.csv: its shape, its join keys, and that it is what the builder makes of the reference file."""
from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pytest

from bench.report.paper import COLUMNS, build_rows, read_paper, write_paper_csv

REPO = Path(__file__).resolve().parents[1]
PAPER_CSV = REPO / "results" / "paper.csv"
REFERENCE = REPO.parent / "shared" / "reference" / "paper_results.csv"


def test_paper_csv_shape():
    with PAPER_CSV.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == COLUMNS
        rows = list(reader)
    assert len(rows) == 488 + 24
    tables = {(r["paper_table"], r["paper_version"]) for r in rows}
    assert tables == {("lora/Table 2", "arxiv-v2"), ("lora/Table 3", "arxiv-v2"),
                      ("prefix-tuning/Table 1", "arxiv-v1"), ("prefix-tuning/Table 2", "acl-2021"),
                      ("vera/Table 2", "iclr-2024"), ("vera/Table 3", "iclr-2024")}
    # LoRA Table 2: 14 model x method rows, 8 tasks + the average each
    glue = Counter((r["model"], r["paper_method"], r["paper_params"], r["setting"]) for r in rows
                   if r["paper_table"] == "lora/Table 2")
    assert len(glue) == 14 and set(glue.values()) == {9}
    # Prefix-Tuning: 7 rows x 20 cells per version (+ 11 SOTA cells)
    for version in ("arxiv-v1", "acl-2021"):
        cells = [r for r in rows if r["paper_version"] == version and r["model"] != "-"]
        assert len(cells) == 7 * 20
    assert {r["scale"] for r in rows} == {"percent", "fraction", "raw"}
    assert {r["metric"] for r in rows if r["higher_is_better"] == "false"} == {"ter"}


def test_paper_rows_typed_and_unique():
    rows = read_paper(PAPER_CSV)
    keys = Counter(r.key() for r in rows)
    assert max(keys.values()) == 1  # the join key of a result row finds at most one paper value
    restricted = {r.paper_method for r in rows if r.setting.startswith("restricted")}
    assert restricted == {"LoRA\u2020", "AdptP\u2020", "AdptH\u2020"}
    lora = [r for r in rows if r.model == "roberta-base" and r.paper_method == "LoRA" and r.task == "mnli"]
    assert lora[0].value == 87.5 and lora[0].std == 0.3 and lora[0].params_approx == 300000
    # "0.1%" of GPT-2 Medium is placed at 0.1% of its 354.92M printed in LoRA Table 3
    prefix = [r for r in rows if r.paper_method == "PREFIX(0.1%)" and r.model == "gpt2-medium"]
    assert prefix[0].params_approx == pytest.approx(354920)
    top2 = [r for r in rows if r.paper_method == "FT-TOP2"]
    assert all(r.params_approx is None for r in top2)  # nothing printed, nothing made up


def test_paper_csv_is_rebuilt_from_reference(tmp_path):
    if not REFERENCE.is_file():
        pytest.skip(f"no reference file at {REFERENCE}")
    out = tmp_path / "paper.csv"
    assert write_paper_csv(REFERENCE, out) == 488 + 24     # the reference file's rows, then VeRA's
    assert out.read_text(encoding="utf-8") == PAPER_CSV.read_text(encoding="utf-8")
    assert len(build_rows(REFERENCE)) == 488


def test_vera_rows():
    """VeRA Table 2 (RoBERTa on six GLUE tasks + their mean) and Table 3 (GPT-2 on E2E), as the paper prints them."""
    rows = [r for r in read_paper(PAPER_CSV) if r.paper == "vera"]
    glue = [r for r in rows if r.paper_table == "vera/Table 2"]
    assert {(r.model, r.paper_params) for r in glue} == {("roberta-base", "0.043M"), ("roberta-large", "0.061M")}
    for model in ("roberta-base", "roberta-large"):
        cells = {r.task: r.value for r in glue if r.model == model}
        assert set(cells) == {"sst2", "mrpc", "cola", "qnli", "rte", "stsb", "glue-avg"}
        six = [v for t, v in cells.items() if t != "glue-avg"]
        assert abs(sum(six) / 6 - cells["glue-avg"]) <= 0.05 + 1e-9    # the printed avg: the mean of the six
    assert all(("no MNLI init" in r.setting) == (r.task in ("mrpc", "rte", "stsb")) for r in glue)
    assert all(r.split == "dev" for r in glue)
    e2e = {(r.model, r.metric): r.value for r in rows if r.paper_table == "vera/Table 3"}
    assert e2e[("gpt2-medium", "bleu")] == 70.1 and e2e[("gpt2-large", "cider")] == 2.54
    assert len(e2e) == 10 and all(r.std is None for r in rows)


def test_vera_cells_without_mnli_start_are_flagged_beside_the_difference():
    """VeRA's MRPC / RTE / STS-B start from the pretrained model, LoRA's from MNLI: those cells say so; its other
    cells and LoRA's carry no such flag (a setting shared by a whole row goes into the notes instead)."""
    from bench.report.aggregate import Cell, Run, RowKey, Stat
    from bench.report.tables import entry, index_paper

    index = index_paper(read_paper(PAPER_CSV))

    def cell(key: RowKey, task: str, metric: str) -> Cell:
        run = Run(run_id="r", created_at="", status="ok", error="", line=2, text={}, num={})
        stat = Stat(center=0.9, std=None, n=1, values=(0.9,), scale="fraction", higher_is_better=True, notes=())
        return Cell(row=key, task=task, runs=(run,), expected_seeds=1, stats={("dev", metric): stat})

    vera = RowKey(model="roberta-base", label="VeRA", method="vera", method_config="", recipe="paper",
                  paper_table="vera/Table 2", paper_version="iclr-2024", paper_method="VeRA", paper_params="0.043M")
    lora = RowKey(model="roberta-base", label="LoRA", method="lora", method_config="", recipe="paper",
                  paper_table="lora/Table 2", paper_version="arxiv-v2", paper_method="LoRA", paper_params="0.3M")
    rte = entry(cell(vera, "rte", "accuracy"), vera, "rte", "dev", "accuracy", "percent", index)
    assert rte.paper == 78.7 and rte.diff == pytest.approx(90.0 - 78.7) and "no MNLI init" in rte.flags
    sst2 = entry(cell(vera, "sst2", "accuracy"), vera, "sst2", "dev", "accuracy", "percent", index)
    assert sst2.paper == 94.6 and "MNLI" not in sst2.flags
    lora_rte = entry(cell(lora, "rte", "accuracy"), lora, "rte", "dev", "accuracy", "percent", index)
    assert lora_rte.paper == 86.6 and "MNLI" not in lora_rte.flags
