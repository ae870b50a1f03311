"""Synthetic result CSVs with per-example predictions whose answer is known, for the report's significance tests.

`write_preset(results, preset, task, methods)` writes results/<preset>.csv (rows as collect writes them, a `dev` and
a `heldout` row per run) and results/<preset>.predictions.jsonl; `methods` maps a label to one prediction vector
per seed for each protocol.
"""
from __future__ import annotations

import numpy as np

from bench.heldout import write_predictions
from bench.results import to_csv, write_atomic


def noisy(gold: np.ndarray, accuracy: float, rng: np.random.Generator) -> np.ndarray:
    """Binary predictions right on exactly round(accuracy * n) examples drawn at random."""
    n = len(gold)
    wrong = rng.choice(n, size=n - int(round(accuracy * n)), replace=False)
    pred = gold.copy()
    pred[wrong] = 1 - pred[wrong]
    return pred


def write_preset(results, preset: str, task: str, gold: np.ndarray, methods: dict[str, dict[str, list]]) -> None:
    """methods: {label: {"dev": [vector per seed], "heldout": [vector per seed]}} (heldout optional)."""
    from bench.scorers import score_classification

    rows, records = [], []
    for m, (label, protocols) in enumerate(methods.items()):
        for seed, _ in enumerate(protocols["dev"]):
            run_id = f"{task}-m{m}-s{seed}"
            for selection, vectors in protocols.items():
                pred = [int(p) for p in vectors[seed]]
                score = score_classification(task, pred, gold.tolist())
                for metric, s in score.items():
                    rows.append({"preset": preset, "run_id": run_id, "model": "tiny-roberta", "task": task,
                                 "method": "lora", "method_config": f'{{"r": {m + 1}}}', "seed": seed, "lr": 1e-3,
                                 "epochs": 3, "batch_size": 8, "grad_accum": 1, "recipe": "own", "select": "best",
                                 "label": label, "split": "dev", "metric": metric, "selection": selection,
                                 "value": s.value, "scale": "percent", "higher_is_better": "true",
                                 "best_epoch": 2 if selection == "dev" else "", "params_stored": 1000 * (m + 1),
                                 "params_total": 10**6, "status": "ok", "created_at": "2026-01-01T00:00:00"})
                records.append({"run_id": run_id, "created_at": "2026-01-01T00:00:00", "task": task,
                                "split": "dev", "selection": selection, "predictions": pred,
                                "gold": gold.tolist()})
    write_atomic(results / f"{preset}.csv", to_csv(rows))
    write_predictions(results / f"{preset}.predictions.jsonl", records)
