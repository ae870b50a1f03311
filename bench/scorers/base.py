"""The `Score` record every scorer returns, and the errors scorers raise.

A score carries its own unit (`scale`) and direction, so tables never guess: BLEU on E2E is a percent, NIST and
CIDEr are raw numbers, METEOR and TER on WebNLG/DART are fractions, exactly as the papers print them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from bench.config import ConfigError

Scale = Literal["percent", "fraction", "raw"]


class ScorerError(RuntimeError):
    """The scoring environment failed (no Java, a scorer subprocess died): not the user's input."""


@dataclass(frozen=True)
class Score:
    name: str                  # metric name, e.g. "bleu", "matthews", "ter"
    value: float | None        # in `scale` units; None when the metric could not be computed
    scale: Scale               # "percent" (x100), "fraction" (0..1 for bounded metrics) or "raw"
    higher_is_better: bool
    note: str = ""             # the reason when value is None (empty otherwise)

    def __post_init__(self) -> None:
        if self.value is None and not self.note:
            raise ValueError(f"Score {self.name!r}: a missing value needs a note saying why")
        if self.value is not None and not math.isfinite(self.value):
            raise ValueError(f"Score {self.name!r}: {self.value!r} is not a finite number; use None with a note")

    @property
    def arrow(self) -> str:
        return "↑" if self.higher_is_better else "↓"


def percent(name: str, fraction: float, higher_is_better: bool = True) -> Score:
    """A score computed as a fraction, reported x100."""
    return Score(name, 100.0 * fraction, "percent", higher_is_better)


def check_lengths(what: str, hypotheses, references) -> None:
    if len(hypotheses) != len(references):
        raise ConfigError(f"{what}: {len(hypotheses)} hypotheses but {len(references)} reference sets; "
                          "they must be aligned one to one")
    if len(hypotheses) == 0:
        raise ConfigError(f"{what}: nothing to score (0 hypotheses)")
