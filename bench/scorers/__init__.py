"""Scorers that reproduce the official GLUE, E2E, WebNLG 2017 and DART numbers offline.

Public API (the runner calls these):
    Score                                          the frozen record each metric returns
    score_classification(task, predictions, labels) -> {metric: Score}          GLUE, percent
    score_generation(task, hypotheses, references, *, model_dir=None) -> {metric: Score}
    score_split(task, split, hypotheses, examples, *, model_dir=None) -> {split_name: {metric: Score}}
See docs/scorers.md for what each metric matches and how.
"""
from bench.scorers.base import Score, ScorerError
from bench.scorers.generation import generation_task, score_generation
from bench.scorers.glue import classification_task, score_classification
from bench.scorers.split import score_split

__all__ = ["Score", "ScorerError", "classification_task", "generation_task", "score_classification",
           "score_generation", "score_split"]
