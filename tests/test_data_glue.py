"""GLUE loading from the download_glue_data.py TSVs (fixtures) and from nyu-mll/glue rows (in memory)."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bench.data import ClassificationExample, DataError, MissingSplitError, examples_from_hub_rows, load_split
from bench.data.glue import read_glue_tsv

FIX = Path(__file__).resolve().parent / "fixtures" / "data"


def test_sst2_with_header_and_unlabelled_test():
    train = load_split("sst2", "train", FIX)
    assert [ex.label for ex in train] == [1, 0, 1, 0]
    assert train[2] == ClassificationExample('the cast is " wonderful ', None, 1, 2)  # quotes are text
    test = load_split("sst2", "test", FIX)
    assert [ex.text_a for ex in test] == ["a quiet triumph .", "it drags ."]
    assert all(ex.label is None for ex in test)


def test_cola_has_no_header_and_mrpc_starts_with_a_bom():
    cola = load_split("cola", "train", FIX)
    assert [(ex.text_a, ex.label) for ex in cola] == [
        ("The dog barked loudly.", 1), ("Dog the loudly barked.", 0), ("We saw her leave.", 1)]
    assert (FIX / "glue_data/MRPC/dev.tsv").read_bytes().startswith(b"\xef\xbb\xbf")
    mrpc = load_split("mrpc", "dev", FIX)
    assert mrpc[1] == ClassificationExample("Sales fell 5 % .", "Sales dropped by 5 percent .", 1, 1)


def test_mnli_matched_and_mismatched_labels_use_hub_ids():
    dev = load_split("mnli", "dev", FIX)
    assert [ex.label for ex in dev] == [0, 2, 1]  # entailment, contradiction, neutral
    assert dev[0].text_b == "The shop opens in the morning."
    mism = load_split("mnli", "dev-mismatched", FIX)
    assert len(mism) == 1 and mism[0].label == 2


def test_stsb_scores_are_floats_and_rte_names_map_to_ids():
    stsb = load_split("stsb", "dev", FIX)
    assert [ex.label for ex in stsb] == [4.8, 0.0]
    assert isinstance(stsb[0].label, float)
    assert [ex.label for ex in load_split("rte", "dev", FIX)] == [0, 1]


def test_glue_folder_layout_and_task_folder_itself(tmp_path):
    shutil.copytree(FIX / "glue_data" / "SST-2", tmp_path / "glue" / "SST-2")
    assert load_split("sst2", "dev", tmp_path) == load_split("sst2", "dev", FIX)
    assert load_split("sst2", "dev", tmp_path / "glue" / "SST-2") == load_split("sst2", "dev", FIX)


def test_missing_split_names_the_file_looked_for(tmp_path):
    with pytest.raises(MissingSplitError) as err:
        load_split("mnli", "train", FIX)
    assert err.value.looked_for == (str(FIX / "glue_data" / "MNLI" / "train.tsv"),)
    with pytest.raises(MissingSplitError, match="glue_data/QQP/dev.tsv or .*glue/QQP/dev.tsv"):
        load_split("qqp", "dev", tmp_path)
    with pytest.raises(DataError, match="not a directory"):
        load_split("qqp", "dev", tmp_path / "nowhere")


def _write(tmp_path: Path, folder: str, name: str, text: str) -> Path:
    path = tmp_path / "glue_data" / folder / name
    path.parent.mkdir(parents=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("task,folder,name,text,message", [
    ("sst2", "SST-2", "dev.tsv", "sentence\tlabel\ngood\t1\nbad\t0\textra\n",
     r"dev.tsv, line 3: expected 2 tab-separated columns, got 3"),
    ("sst2", "SST-2", "dev.tsv", "sentence\tlabel\ngood\tpositive\n",
     r"dev.tsv, line 2: expected a label in \{0, 1\}, got 'positive'"),
    ("rte", "RTE", "dev.tsv", "index\tsentence1\tsentence2\n0\ta\tb\n",
     r"dev.tsv, line 1: expected a header with column 'label'"),
    ("cola", "CoLA", "dev.tsv", "x\t1\t\tFine.\nx\t1\tNo tab here.\n",
     r"dev.tsv, line 2: expected 4 tab-separated columns, got 3"),
    ("stsb", "STS-B", "dev.tsv", "index\tsentence1\tsentence2\tscore\n0\ta\tb\t7.5\n",
     r"line 2: expected a similarity score between 0 and 5, got '7.5'"),
    ("mrpc", "MRPC", "dev.tsv", "", r"dev.tsv: empty file"),
    ("sst2", "SST-2", "dev.tsv", "sentence\tlabel\n", r"dev.tsv: no data rows"),
])
def test_malformed_tsv_errors_name_file_line_and_expectation(tmp_path, task, folder, name, text, message):
    _write(tmp_path, folder, name, text)
    with pytest.raises(DataError, match=message):
        load_split(task, "dev", tmp_path)


def test_blank_line_inside_a_file_is_an_error(tmp_path):
    path = _write(tmp_path, "SST-2", "dev.tsv", "sentence\tlabel\ngood\t1\n\nbad\t0\n")
    with pytest.raises(DataError, match="line 3: expected 2 tab-separated columns, got 1"):
        read_glue_tsv("sst2", "dev", path)


def test_hub_rows_map_to_the_same_examples_as_the_tsv():
    datasets = pytest.importorskip("datasets")
    features = datasets.Features({
        "premise": datasets.Value("string"), "hypothesis": datasets.Value("string"),
        "label": datasets.ClassLabel(names=["entailment", "neutral", "contradiction"]),
        "idx": datasets.Value("int32"),
    })
    local = load_split("mnli", "dev", FIX)
    rows = [{"premise": ex.text_a, "hypothesis": ex.text_b, "label": ex.label, "idx": ex.idx} for ex in local]
    ds = datasets.Dataset.from_list(rows, features=features)
    assert examples_from_hub_rows("mnli", "dev", ds) == local

    sst = load_split("sst2", "dev", FIX)
    ds = datasets.Dataset.from_list(
        [{"sentence": ex.text_a, "label": ex.label, "idx": ex.idx} for ex in sst]
        + [{"sentence": "unlabelled", "label": -1, "idx": 3}])
    hub = examples_from_hub_rows("sst2", "dev", ds)
    assert hub[:3] == sst and hub[3].label is None

    stsb = datasets.Dataset.from_list([{"sentence1": "a", "sentence2": "b", "label": 3.2, "idx": 0},
                                       {"sentence1": "c", "sentence2": "d", "label": -1.0, "idx": 1}])
    assert [ex.label for ex in examples_from_hub_rows("stsb", "test", stsb)] == [pytest.approx(3.2), None]


def test_hub_rows_with_wrong_columns_or_labels_are_errors():
    with pytest.raises(DataError, match="row 0: expected column 'sentence1' of nyu-mll/glue rte"):
        examples_from_hub_rows("rte", "dev", [{"premise": "a", "hypothesis": "b", "label": 0}])
    with pytest.raises(DataError, match=r"row 1: expected a label id in 0..1 \(or -1\), got 4"):
        examples_from_hub_rows("rte", "dev", [{"sentence1": "a", "sentence2": "b", "label": 0},
                                              {"sentence1": "a", "sentence2": "b", "label": 4}])


def test_hub_path_calls_load_dataset_with_the_tasks_ids(monkeypatch):
    datasets = pytest.importorskip("datasets")
    calls = []

    def fake_load_dataset(path, name=None, *, split, revision=None):
        calls.append((path, name, split, revision))
        return datasets.Dataset.from_list([{"premise": "p", "hypothesis": "h", "label": 1, "idx": 0}])

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    (ex,) = load_split("mnli", "dev-mismatched")
    assert ex == ClassificationExample("p", "h", 1, 0)
    assert calls == [("nyu-mll/glue", "mnli", "validation_mismatched", None)]


def test_hub_failure_is_a_data_error_pointing_to_data_dir(monkeypatch):
    datasets = pytest.importorskip("datasets")

    def offline(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(DataError, match=r"could not load tuetschek/e2e_nlg .*revision refs/convert/parquet.*"
                                        r"ConnectionError: no network.*--data-dir"):
        load_split("e2e", "dev")


def test_older_mrpc_build_can_be_pointed_at_directly(tmp_path):
    folder = tmp_path / "MRPC_2018_untokenized"
    shutil.copytree(FIX / "glue_data" / "MRPC", folder)
    assert load_split("mrpc", "dev", folder) == load_split("mrpc", "dev", FIX)
