"""The real Hub datasets' layouts (file paths, config and split names, features) and the conversion of release
files into their rows. The source of each layout is written in docs/data.md ("The Hub mirror used by the tests").

Rows come from the first folder of `sources` that holds the split's release file: the real copies in
../shared/data when present, then the test fixtures. `SplitSource` records which folder a split was built from,
so a test can compare the mirror's examples with the local loader's on the same files.
"""
from __future__ import annotations

import csv
import json
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from bench.data import MissingSplitError, locate_split
from bench.tasks import TASKS

GLUE_CONFIGS = ("cola", "sst2", "mrpc", "qqp", "stsb", "mnli", "qnli", "rte")


# Features as the Hub's parquet files declare them (written by datasets 2.x: `Sequence` of a dict is a struct of
# lists). A spec is "string" | "int32" | "bool" | "float32" | ("class", names) | ("seq", spec) | {name: spec}.
def arrow_type(spec):
    import pyarrow as pa

    if isinstance(spec, dict):
        return pa.struct([(k, arrow_type(v)) for k, v in spec.items()])
    if isinstance(spec, tuple) and spec[0] == "class":
        return pa.int64()
    if isinstance(spec, tuple) and spec[0] == "seq":
        inner = spec[1]
        if isinstance(inner, dict):  # Sequence({...}): a struct whose fields are lists
            return pa.struct([(k, pa.list_(arrow_type(v))) for k, v in inner.items()])
        return pa.list_(arrow_type(inner))
    return {"string": pa.string(), "int32": pa.int32(), "bool": pa.bool_(), "float32": pa.float32()}[spec]


def feature_json(spec):
    """The `huggingface` schema metadata's description of a feature, in datasets 2.x's words."""
    if isinstance(spec, dict):
        return {k: feature_json(v) for k, v in spec.items()}
    if isinstance(spec, tuple) and spec[0] == "class":
        return {"names": list(spec[1]), "_type": "ClassLabel"}
    if isinstance(spec, tuple) and spec[0] == "seq":
        return {"feature": feature_json(spec[1]), "_type": "Sequence"}
    return {"dtype": spec, "_type": "Value"}


@dataclass(frozen=True)
class SplitSource:
    task: str
    split: str          # our split name
    data_dir: Path      # the --data-dir that gives the same split locally
    files: tuple[Path, ...]


def _first_source(task: str, split: str, sources: list[Path]) -> SplitSource | None:
    for root in sources:
        if not root.is_dir():
            continue
        try:
            files = locate_split(task, split, root)
        except MissingSplitError:
            continue
        return SplitSource(task, split, root, tuple(files))
    return None


# ------------------------------------------------------------------------------------------------ GLUE
def glue_features(config: str) -> dict:
    """nyu-mll/glue features per config, as in its dataset card's `dataset_info`."""
    col_a, col_b = TASKS[config].hub_columns.text_a, TASKS[config].hub_columns.text_b
    fields = {col_a: "string"}
    if col_b:
        fields[col_b] = "string"
    task = TASKS[config]
    fields["label"] = "float32" if task.kind == "regress" else ("class", task.label_names)
    fields["idx"] = "int32"
    return fields


def glue_rows(config: str, source: SplitSource) -> dict[str, list]:
    from bench.data import load_split

    examples = load_split(config, source.split, source.data_dir)
    col_a, col_b = TASKS[config].hub_columns.text_a, TASKS[config].hub_columns.text_b
    cols: dict[str, list] = {col_a: [ex.text_a for ex in examples]}
    if col_b:
        cols[col_b] = [ex.text_b for ex in examples]
    cols["label"] = [(-1 if ex.label is None else ex.label) for ex in examples]
    cols["idx"] = [ex.idx for ex in examples]
    return cols


# ------------------------------------------------------------------------------------------------- E2E
def e2e_features() -> dict:
    return {"meaning_representation": "string", "human_reference": "string"}


def e2e_rows(source: SplitSource) -> dict[str, list]:
    """One row per reference, as the e2e_nlg loading script read `mr,ref` with csv.DictReader."""
    with source.files[0].open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return {"meaning_representation": [r["mr"] for r in rows], "human_reference": [r["ref"] for r in rows]}


# ---------------------------------------------------------------------------------------------- WebNLG
def webnlg_features() -> dict:
    return {
        "category": "string", "size": "int32", "eid": "string",
        "original_triple_sets": ("seq", {"otriple_set": ("seq", "string")}),
        "modified_triple_sets": ("seq", {"mtriple_set": ("seq", "string")}),
        "shape": "string", "shape_type": "string",
        "lex": ("seq", {"comment": "string", "lid": "string", "text": "string", "lang": "string"}),
        "test_category": "string",
        "dbpedia_links": ("seq", "string"), "links": ("seq", "string"),
    }


def _webnlg_entry(entry: ET.Element, test_category: str, *, drop_lex: bool = False) -> dict:
    def triple_sets(tag: str, item: str, key: str) -> dict[str, list]:
        # a sequence of structs is stored as a struct of lists (datasets' Sequence of a dict)
        return {key: [[(t.text or "") for t in ts.findall(item)] for ts in entry.findall(tag)]}

    lexes = [] if drop_lex else entry.findall("lex")
    return {
        "category": entry.get("category", ""), "size": int(entry.get("size", "0")), "eid": entry.get("eid", ""),
        "original_triple_sets": triple_sets("originaltripleset", "otriple", "otriple_set"),
        "modified_triple_sets": triple_sets("modifiedtripleset", "mtriple", "mtriple_set"),
        "shape": entry.get("shape", ""), "shape_type": entry.get("shape_type", ""),
        "lex": {"comment": [x.get("comment", "") for x in lexes], "lid": [x.get("lid", "") for x in lexes],
                "text": [(x.text or "") for x in lexes], "lang": [x.get("lang", "") for x in lexes]},
        "test_category": test_category,
        "dbpedia_links": [(x.text or "") for x in entry.iter("dbpedialink")],
        "links": [(x.text or "") for x in entry.iter("link")],
    }


def webnlg_rows(source: SplitSource) -> list[dict]:
    """Rows in the loading script's order: train/dev files by triple count then name; the test split is every
    XML of test/ in name order (testdata_no_lex, testdata_unseen_with_lex, testdata_with_lex), each row tagged
    with its file name in `test_category`. A fixture holding only testdata_with_lex gets the other two derived
    from it (no_lex: the same entries without lexicalisations; unseen_with_lex: the unseen categories)."""
    from bench.data.nlg import WEBNLG_SEEN

    if source.split != "test":
        return [_webnlg_entry(e, "") for path in source.files for e in ET.parse(path).getroot().iter("entry")]
    with_lex = source.files[0]
    entries = list(ET.parse(with_lex).getroot().iter("entry"))
    out = []
    no_lex, unseen = with_lex.parent / "testdata_no_lex.xml", with_lex.parent / "testdata_unseen_with_lex.xml"
    if no_lex.is_file():
        out += [_webnlg_entry(e, "testdata_no_lex") for e in ET.parse(no_lex).getroot().iter("entry")]
    else:
        out += [_webnlg_entry(e, "testdata_no_lex", drop_lex=True) for e in entries]
    if unseen.is_file():
        out += [_webnlg_entry(e, "testdata_unseen_with_lex") for e in ET.parse(unseen).getroot().iter("entry")]
    else:
        out += [_webnlg_entry(e, "testdata_unseen_with_lex") for e in entries
                if e.get("category") not in WEBNLG_SEEN]
    out += [_webnlg_entry(e, "testdata_with_lex") for e in entries]
    return out


# ------------------------------------------------------------------------------------------------ DART
def dart_features() -> dict:
    return {"tripleset": ("seq", ("seq", "string")), "subtree_was_extended": "bool",
            "annotations": ("seq", {"source": "string", "text": "string"})}


def dart_rows(source: SplitSource) -> list[dict]:
    """Rows as the dart loading script built them from the v1.1.1 JSON; the XML release (the only test file
    here) gives the same fields: triples from <mtriple>, annotation source from the <lex> comment."""
    path = source.files[0]
    if path.suffix == ".json":
        data = json.loads(path.read_text(encoding="utf-8"))
        return [{"tripleset": e["tripleset"], "subtree_was_extended": e.get("subtree_was_extended"),
                 "annotations": {"source": [a["source"] for a in e["annotations"]],
                                 "text": [a["text"] for a in e["annotations"]]}} for e in data]
    out = []
    for entry in ET.parse(path).getroot().iter("entry"):
        triples = [[part.strip() for part in re.split(r" \| ", m.text or "", maxsplit=2)]
                   for m in entry.iter("mtriple")]
        lexes = entry.findall("lex")
        out.append({"tripleset": triples, "subtree_was_extended": None,
                    "annotations": {"source": [x.get("comment", "") for x in lexes],
                                    "text": [(x.text or "") for x in lexes]}})
    return out


# ------------------------------------------------------------------------------------------ the repos
@dataclass(frozen=True)
class DatasetRepo:
    repo_id: str
    main_files: dict[str, bytes]                     # files of `main` besides the data files
    data: dict[str, tuple[object, object]]           # path -> (features, rows) on the data branch
    data_ref: str                                    # "main" or "refs/convert/parquet"
    sources: tuple[SplitSource, ...]


def _glue_card(configs: dict[str, list[tuple[str, int, int]]]) -> bytes:
    """nyu-mll/glue's README front matter: `configs` (data_files per split) and `dataset_info` (features)."""
    import yaml

    infos, cfgs = [], []
    for config, splits in configs.items():
        feats = []
        for name, spec in glue_features(config).items():
            if isinstance(spec, tuple):
                feats.append({"name": name, "dtype": {"class_label": {"names": {
                    str(i): n for i, n in enumerate(spec[1])}}}})
            else:
                feats.append({"name": name, "dtype": spec})
        infos.append({"config_name": config, "features": feats,
                      "splits": [{"name": s, "num_bytes": b, "num_examples": n} for s, n, b in splits]})
        cfgs.append({"config_name": config,
                     "data_files": [{"split": s, "path": f"{config}/{s}-*"} for s, _, _ in splits]})
    front = yaml.safe_dump({"pretty_name": "GLUE (General Language Understanding Evaluation benchmark)",
                            "dataset_info": infos, "configs": cfgs}, sort_keys=False)
    return f"---\n{front}---\n\n# GLUE (mirror for tests)\n".encode()


def glue_repo(sources: list[Path]) -> DatasetRepo:
    data, used, card = {}, [], {}
    for config in GLUE_CONFIGS:
        task = TASKS[config]
        card[config] = []
        for ours, hub in task.hub_splits:
            src = _first_source(config, ours, sources)
            if src is None:
                raise FileNotFoundError(f"no release file or fixture for glue {config} {ours}")
            rows = glue_rows(config, src)
            data[f"{config}/{hub}-00000-of-00001.parquet"] = (glue_features(config), rows)
            nbytes = sum(len(str(v)) for col in rows.values() for v in col)
            card[config].append((hub, len(rows["idx"]), nbytes))
            used.append(src)
    return DatasetRepo("nyu-mll/glue", {"README.md": _glue_card(card)}, data, "main", tuple(used))


def _parquet_repo(task_name: str, features, rows_of, script: str, sources: list[Path]) -> DatasetRepo:
    task = TASKS[task_name]
    folder = task.hub_config or "default"
    data, used = {}, []
    for ours, hub in task.hub_splits:
        src = _first_source(task_name, ours, sources)
        if src is None:
            raise FileNotFoundError(f"no release file or fixture for {task_name} {ours}")
        data[f"{folder}/{hub}/0000.parquet"] = (features, rows_of(src))
        used.append(src)
    name = task.hub_id.split("/")[1]
    main = {"README.md": f"---\npretty_name: {name}\n---\n\n# {task.hub_id} (mirror for tests)\n".encode(),
            script: b"# The dataset's loading script; datasets >= 4 does not run scripts (load the parquet export).\n"}
    return DatasetRepo(task.hub_id, main, data, "refs/convert/parquet", tuple(used))


def dataset_repos(sources: list[Path]) -> list[DatasetRepo]:
    """The four dataset repositories, built from the first of `sources` holding each split."""
    return [
        glue_repo(sources),
        _parquet_repo("e2e", e2e_features(), e2e_rows, "e2e_nlg.py", sources),
        _parquet_repo("webnlg", webnlg_features(), webnlg_rows, "web_nlg.py", sources),
        _parquet_repo("dart", dart_features(), dart_rows, "dart.py", sources),
    ]


def split_sources(sources: list[Path]) -> dict[tuple[str, str], SplitSource]:
    """(task, split) -> the release files the mirror builds that split from (what dataset_repos reads)."""
    out = {}
    for name, task in TASKS.items():
        for split in task.splits:
            src = _first_source(name, split, sources)
            if src is not None:
                out[(name, split)] = src
    return out
