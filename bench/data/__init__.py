"""Datasets of the suite: loading (Hub or local release files), formatting, tokenisation and batching.

Loading and formatting need neither torch nor datasets (datasets is imported only for the Hub path);
the tokenisation and batching functions live in `bench.data.batching` (torch) and are re-exported here lazily.
"""
from __future__ import annotations

from bench.data.examples import (
    ClassificationExample,
    DataError,
    Example,
    GenerationExample,
    MissingSplitError,
    linearise_mr,
    linearise_triples,
    training_pairs,
)
from bench.data.hub import examples_from_hub_rows
from bench.data.loading import load_split, locate_split

_BATCHING = ("Encoded", "encode_classification", "encode_generation_train", "encode_generation_sources",
             "make_loader", "separator_id")

__all__ = [
    "ClassificationExample", "DataError", "Example", "GenerationExample", "MissingSplitError",
    "examples_from_hub_rows", "linearise_mr", "linearise_triples", "load_split", "locate_split",
    "training_pairs", *_BATCHING,
]


def __getattr__(name: str):
    if name in _BATCHING:
        from bench.data import batching

        return getattr(batching, name)
    raise AttributeError(f"module 'bench.data' has no attribute {name!r}")
