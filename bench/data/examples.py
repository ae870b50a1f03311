"""Example records, data errors and the papers' input formatting (linearisation of MRs and triples).

No torch, no datasets: the CLI's `data` command and the scorers import this cheaply.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Iterable, Sequence

from bench.config import ConfigError


class DataError(ConfigError):
    """A data file is absent or not in the expected format. The message names the file, the line or entry,
    and what was expected. Subclass of ConfigError, so the CLI exits 2 with the message."""


class MissingSplitError(DataError):
    """A split's file(s) are absent from a local copy. `looked_for` lists every path that was tried."""

    def __init__(self, task: str, split: str, looked_for: Sequence[Path | str]):
        self.task = task
        self.split = split
        self.looked_for = tuple(str(p) for p in looked_for)
        super().__init__(
            f"task {task}, split {split}: no local file; looked for " + " or ".join(self.looked_for)
        )


@dataclass(frozen=True)
class ClassificationExample:
    text_a: str
    text_b: str | None               # None for single-sentence tasks (SST-2, CoLA)
    label: int | float | None        # class id (classify), score (regress), None on unlabelled test sets
    idx: int                         # position in the split (0-based data row of the release file)


@dataclass(frozen=True)
class GenerationExample:
    source: str                      # linearised input (recipes.md §3), without the source/target separator
    references: tuple[str, ...]      # every reference text of this input, in file order
    category: str | None             # WebNLG / DART category (None for E2E)
    seen: bool | None                # WebNLG: category among the 10 training categories; None elsewhere
    idx: int                         # position of this input in the split


Example = ClassificationExample | GenerationExample


def training_pairs(examples: Iterable[GenerationExample]) -> list[tuple[str, str]]:
    """One (source, target) pair per reference, in example then reference order (one training example per
    reference, as Prefix-Tuning and LoRA train)."""
    pairs = []
    for ex in examples:
        if not isinstance(ex, GenerationExample):
            raise TypeError(f"training_pairs needs GenerationExample records, got {type(ex).__name__}")
        pairs.extend((ex.source, ref) for ref in ex.references)
    return pairs


# ---------------------------------------------------------------------------------------------- E2E
# Attribute names as they appear in the Prefix-Tuning / LoRA E2E source lines ("name : X | Type : Y | ...").
E2E_ATTRIBUTES = {
    "name": "name",
    "eatType": "Type",
    "food": "food",
    "priceRange": "price",
    "customer rating": "customer rating",
    "area": "area",
    "familyFriendly": "family friendly",
    "near": "near",
}
_MR_ITEM = re.compile(r"\s*([^\[\],]+?)\s*\[([^\]]*)\]\s*(?:,|$)")


def parse_mr(mr: str) -> list[tuple[str, str]]:
    """`name[The Vaults], eatType[pub]` -> [("name", "The Vaults"), ("eatType", "pub")]; ValueError if the
    string is not a comma-separated list of `key[value]` items with known keys."""
    items, pos = [], 0
    text = mr.strip()
    if not text:
        raise ValueError("empty meaning representation")
    while pos < len(text):
        m = _MR_ITEM.match(text, pos)
        if m is None:
            raise ValueError(f"expected 'attribute[value]' at character {pos} of {mr!r}")
        key, value = m.group(1), m.group(2)
        if key not in E2E_ATTRIBUTES:
            raise ValueError(f"unknown E2E attribute {key!r} in {mr!r}; known: {', '.join(E2E_ATTRIBUTES)}")
        items.append((key, value.strip()))
        pos = m.end()
    return items


def linearise_mr(mr: str) -> str:
    """E2E meaning representation -> `name : The Vaults | Type : pub | price : more than £30 | ...`
    (attribute order as in the MR; values verbatim)."""
    return " | ".join(f"{E2E_ATTRIBUTES[k]} : {v}" for k, v in parse_mr(mr))


# ------------------------------------------------------------------------------------------ triples
WEBNLG_TRIPLE_LEAD = " | "   # Prefix-Tuning's WebNLG loader writes this before every triple, the first one too


def linearise_triples(triples: Sequence[Sequence[str]], *, lowercase_property: bool = False,
                      lead_separator: bool = False) -> str:
    """[(s, p, o), ...] -> `s : p : o | s2 : p2 : o2`; with `lead_separator`, ` | s : p : o | s2 : p2 : o2`
    (` | ` before every triple, the first one too, leading space included), as Prefix-Tuning's WebNLG loader
    builds it (`temp_triples += ' | '` then the triple, for each triple). Entities are kept verbatim (WebNLG
    keeps its underscores, as the Prefix-Tuning and LoRA preprocessing do); DART lower-cases the property
    (`lowercase_property=True`) and has no leading separator, as both codebases do."""
    parts = []
    for triple in triples:
        s, p, o = triple
        parts.append(f"{s} : {p.lower() if lowercase_property else p} : {o}")
    if lead_separator:
        return "".join(WEBNLG_TRIPLE_LEAD + part for part in parts)
    return " | ".join(parts)


def split_triple(text: str) -> tuple[str, str, str] | None:
    """`Aarhus_Airport | cityServed | "Aarhus, Denmark"` -> (s, p, o); None if not exactly three parts."""
    parts = text.split(" | ")
    if len(parts) != 3:
        return None
    return parts[0].strip(), parts[1].strip(), parts[2].strip()
