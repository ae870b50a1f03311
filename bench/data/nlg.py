"""E2E, WebNLG 2017 and DART: the original release files and the Hub's parquet exports, both mapped to
GenerationExample (one input with all its references)."""
from __future__ import annotations

import csv
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any
from collections.abc import Iterable, Mapping

from bench.data.examples import (
    DataError,
    GenerationExample,
    linearise_mr,
    linearise_triples,
    split_triple,
)

# WebNLG 2017: the 10 categories of the training data ("seen"); the test set adds Artist, Athlete,
# CelestialBody, MeanOfTransportation and Politician ("unseen").
WEBNLG_SEEN = frozenset({
    "Airport", "Astronaut", "Building", "City", "ComicsCharacter",
    "Food", "Monument", "SportsTeam", "University", "WrittenWork",
})


def _group(pairs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """source -> references, in order of first appearance (dicts keep insertion order)."""
    grouped: dict[str, list[str]] = {}
    for source, ref in pairs:
        grouped.setdefault(source, []).append(ref)
    return grouped


# ---------------------------------------------------------------------------------------------- E2E
def e2e_candidates(data_dir: Path) -> list[Path]:
    return [data_dir / "e2e", data_dir / "e2e-dataset", data_dir / "e2e_data", data_dir]


def read_e2e_csv(path: Path) -> list[GenerationExample]:
    """`mr,ref` CSV of the E2E release; rows grouped by MR into one input per MR (first-appearance order,
    which for testset_w_refs.csv is the order of the official testset.csv)."""
    pairs = []
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        try:
            header = next(reader)
        except StopIteration:
            raise DataError(f"{path}: empty file; expected an 'mr,ref' header") from None
        except csv.Error as exc:
            raise DataError(f"{path}, line 1: malformed CSV ({exc})") from None
        if [h.strip().lower() for h in header] != ["mr", "ref"]:
            raise DataError(f"{path}, line 1: expected the header 'mr,ref', got {header}")
        try:
            for row in reader:
                where = f"{path}, line {reader.line_num}"
                if len(row) != 2:
                    raise DataError(f"{where}: expected 2 columns (mr, ref), got {len(row)}")
                mr, ref = row
                if not ref.strip():
                    raise DataError(f"{where}: empty reference text")
                pairs.append((mr, ref))
        except csv.Error as exc:
            raise DataError(f"{path}, line {reader.line_num}: malformed CSV ({exc})") from None
    if not pairs:
        raise DataError(f"{path}: no data rows; expected 'mr,ref' rows")
    grouped = _group(pairs)
    out = []
    for mr, refs in grouped.items():
        try:
            source = linearise_mr(mr)
        except ValueError as exc:
            raise DataError(f"{path}: meaning representation of input {len(out)}: {exc}") from None
        out.append(GenerationExample(source=source, references=tuple(refs), category=None, seen=None,
                                     idx=len(out)))
    return out


def e2e_from_rows(rows: Iterable[Mapping[str, Any]], *, source: str = "hub") -> list[GenerationExample]:
    """Rows of tuetschek/e2e_nlg (`meaning_representation`, `human_reference`, one row per reference)."""
    pairs = []
    for i, row in enumerate(rows):
        try:
            pairs.append((row["meaning_representation"], row["human_reference"]))
        except KeyError as exc:
            raise DataError(f"{source}, row {i}: expected column {exc.args[0]!r} of e2e_nlg") from None
    out = []
    for mr, refs in _group(pairs).items():
        try:
            src = linearise_mr(mr)
        except ValueError as exc:
            raise DataError(f"{source}: meaning representation of input {len(out)}: {exc}") from None
        out.append(GenerationExample(source=src, references=tuple(refs), category=None, seen=None, idx=len(out)))
    return out


# ------------------------------------------------------------------------------------------- WebNLG
def webnlg_candidates(data_dir: Path) -> list[Path]:
    return [data_dir / "webnlg_challenge_2017", data_dir / "webnlg", data_dir]


def webnlg_files(root: Path, split: str) -> list[Path]:
    """The XML files of a split: train/dev in `<split>/<n>triples/*.xml` ordered by n then file name (the
    order of the Prefix-Tuning dev.json), test in `test/testdata_with_lex.xml`."""
    if split == "test":
        path = root / "test" / "testdata_with_lex.xml"
        return [path] if path.is_file() else []

    def key(p: Path) -> tuple[int, str]:
        m = re.match(r"(\d+)triples?$", p.parent.name)
        return (int(m.group(1)) if m else 0, p.name)

    return sorted((root / split).glob("*triple*/*.xml"), key=key)


def _parse_xml(path: Path) -> ET.Element:
    try:
        return ET.parse(path).getroot()
    except ET.ParseError as exc:
        line, col = exc.position
        raise DataError(f"{path}, line {line}, column {col}: malformed XML ({exc})") from None


def read_benchmark_xml(path: Path, *, split: str, webnlg: bool) -> list[GenerationExample]:
    """Entries of a WebNLG-format `<benchmark>` file (WebNLG 2017 or the DART XML release).

    WebNLG train keeps only lexicalisations marked comment="good" (as the Prefix-Tuning and LoRA training
    data do); dev and test keep every lexicalisation. WebNLG sources carry ` | ` before every triple, the first
    one too (Prefix-Tuning's LineByLineWebNLGTextDataset); DART sources do not (its loaders join with ` | `). An
    entry without triples, a triple that is not
    `subject | property | object`, or a dev/test entry without lexicalisation is an error naming the entry.
    """
    root = _parse_xml(path)
    out = []
    for n, entry in enumerate(root.iter("entry"), start=1):
        where = f"{path}, entry {n} (eid={entry.get('eid')!r})"
        category = entry.get("category")
        if webnlg and not category:
            raise DataError(f"{where}: expected a category attribute")
        mset = entry.find("modifiedtripleset")
        mtriples = mset.findall("mtriple") if mset is not None else []
        if not mtriples:
            raise DataError(f"{where}: expected a <modifiedtripleset> with at least one <mtriple>")
        triples = []
        for m in mtriples:
            triple = split_triple(m.text or "")
            if triple is None:
                raise DataError(f"{where}: expected '<subject> | <property> | <object>' in <mtriple>, got {m.text!r}")
            triples.append(triple)
        lexes = entry.findall("lex")
        if webnlg and split == "train":
            lexes = [lex for lex in lexes if lex.get("comment") == "good"]
        refs = tuple(lex.text or "" for lex in lexes)
        if split != "train" and not refs:
            raise DataError(f"{where}: expected at least one <lex> reference in a {split} file")
        out.append(GenerationExample(
            source=linearise_triples(triples, lowercase_property=not webnlg, lead_separator=webnlg),
            references=refs,
            category=category if webnlg else None,
            seen=(category in WEBNLG_SEEN) if webnlg else None,
            idx=0,
        ))
    if not out:
        raise DataError(f"{path}: no <entry> elements; expected a WebNLG-format <benchmark> file")
    return out


def read_webnlg(root: Path, split: str, files: list[Path]) -> list[GenerationExample]:
    examples = []
    for path in files:
        examples.extend(read_benchmark_xml(path, split=split, webnlg=True))
    return [_reindex(ex, i) for i, ex in enumerate(examples)]


def webnlg_from_rows(rows: Iterable[Mapping[str, Any]], split: str, *, source: str = "hub") -> list[GenerationExample]:
    """Rows of webnlg-challenge/web_nlg (config webnlg_challenge_2017).

    Its test split concatenates testdata_with_lex, testdata_unseen_with_lex and testdata_no_lex (4,615 rows):
    rows without lexicalisation are dropped and repeated (category, triples, references) rows kept once,
    which leaves the 1,862 inputs of testdata_with_lex (in first-appearance order, which may differ from the
    official file order; the local XML gives the official order)."""
    out, seen_keys = [], set()
    for i, row in enumerate(rows):
        where = f"{source}, row {i}"
        try:
            category = row["category"]
            triple_sets = row["modified_triple_sets"]["mtriple_set"]
            lex = row["lex"]
            texts, comments = list(lex["text"]), list(lex["comment"])
        except (KeyError, TypeError) as exc:
            raise DataError(f"{where}: expected web_nlg columns category, modified_triple_sets.mtriple_set, "
                            f"lex.text, lex.comment ({exc})") from None
        if not triple_sets or not triple_sets[0]:
            raise DataError(f"{where}: expected at least one modified triple")
        triples = []
        for text in triple_sets[0]:
            triple = split_triple(text)
            if triple is None:
                raise DataError(f"{where}: expected '<subject> | <property> | <object>', got {text!r}")
            triples.append(triple)
        if split == "train":
            texts = [t for t, c in zip(texts, comments) if c == "good"]
        elif not texts:
            continue  # testdata_no_lex rows of the Hub's concatenated test split (see docstring)
        refs = tuple(texts)
        key = (category, tuple(triples), refs)
        if split == "test":
            if key in seen_keys:
                continue  # the same entry again, from testdata_unseen_with_lex
            seen_keys.add(key)
        out.append(GenerationExample(source=linearise_triples(triples, lead_separator=True), references=refs,
                                     category=category, seen=category in WEBNLG_SEEN, idx=len(out)))
    return out


# --------------------------------------------------------------------------------------------- DART
def dart_candidates(data_dir: Path) -> list[Path]:
    return [data_dir / "dart", data_dir]


def dart_files(root: Path, split: str) -> list[Path]:
    """Files that may hold a DART split, in order of preference (JSON before the XML release; the original
    v1.1.1 files before the 2021-04-20 re-release)."""
    name = f"dart-v1.1.1-full-{split}"
    out = []
    for folder in (root, root / "data" / "v1.1.1", root / "2021-04-20_update"):
        out += [folder / f"{name}.json", folder / f"{name}.xml"]
    return out


def read_dart_json(path: Path) -> list[GenerationExample]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}, line {exc.lineno}, column {exc.colno}: malformed JSON ({exc.msg})") from None
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list of DART entries, got {type(data).__name__}")
    return dart_from_rows(data, source=str(path), json_layout=True)


def dart_from_rows(rows: Iterable[Mapping[str, Any]], *, source: str = "hub",
                   json_layout: bool = False) -> list[GenerationExample]:
    """DART entries: `tripleset` [[s, p, o], ...] and `annotations` (JSON: a list of {source, text};
    Yale-LILY/dart on the Hub: {source: [...], text: [...]})."""
    out = []
    for i, row in enumerate(rows):
        where = f"{source}, entry {i}"
        if not isinstance(row, Mapping) or "tripleset" not in row or "annotations" not in row:
            raise DataError(f"{where}: expected an object with 'tripleset' and 'annotations'")
        triples = row["tripleset"]
        if not isinstance(triples, list) or not triples:
            raise DataError(f"{where}: expected a non-empty list of [subject, property, object] triples")
        for t in triples:
            if not isinstance(t, (list, tuple)) or len(t) != 3 or not all(isinstance(x, str) for x in t):
                raise DataError(f"{where}: expected a triple [subject, property, object] of strings, got {t!r}")
        ann = row["annotations"]
        if json_layout:
            if not isinstance(ann, list) or not all(isinstance(a, Mapping) and isinstance(a.get("text"), str)
                                                    for a in ann):
                raise DataError(f"{where}: expected 'annotations' as a list of {{source, text}} objects")
            texts = [a["text"] for a in ann]
        else:
            if not isinstance(ann, Mapping) or "text" not in ann:
                raise DataError(f"{where}: expected 'annotations' with a 'text' list")
            texts = list(ann["text"])
        out.append(GenerationExample(
            source=linearise_triples(triples, lowercase_property=True),
            references=tuple(texts), category=None, seen=None, idx=len(out),
        ))
    if not out:
        raise DataError(f"{source}: no DART entries")
    return out


def read_dart_xml(path: Path, split: str) -> list[GenerationExample]:
    examples = read_benchmark_xml(path, split=split, webnlg=False)
    return [_reindex(ex, i) for i, ex in enumerate(examples)]


def _reindex(ex: GenerationExample, idx: int) -> GenerationExample:
    return GenerationExample(source=ex.source, references=ex.references, category=ex.category, seen=ex.seen,
                             idx=idx)
