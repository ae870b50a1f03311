"""The paired bootstrap on corpus BLEU for generation tasks: known answers on synthetic outputs."""
from __future__ import annotations

import random

import numpy as np
import pytest

from bench.report.significance import CellData, compare, draw_weights
from bench.scorers import mteval
from bench.scorers.bleu_stats import bleu_from_statistics, bleu_statistics

VOCAB = [f"w{i}" for i in range(40)]


def _gold(n: int, seed: int = 0):
    rng = random.Random(seed)
    return [[" ".join(rng.choice(VOCAB) for _ in range(rng.randint(6, 12))) for _ in range(2)] for _ in range(n)]


def _system(gold, noise: float, seed: int):
    """Each output copies a reference and replaces a share `noise` of its words."""
    rng = random.Random(seed)
    return [" ".join(w if rng.random() >= noise else rng.choice(VOCAB) for w in refs[0].split()) for refs in gold]


def _verdict(gold, systems: dict, task: str = "dart", replicates: int = 1000):
    cells = {k: CellData([bleu_statistics(task, out, gold) for out in seeds]) for k, seeds in systems.items()}
    return compare(cells, gold, "bleu", replicates=replicates, corpus=lambda s: bleu_from_statistics(task, s))


def test_a_clearly_better_system_is_flagged_and_identical_ones_are_tied():
    gold = _gold(200)
    good = [_system(gold, 0.1, s) for s in range(3)]
    v = _verdict(gold, {"good": good, "same": [list(o) for o in good], "bad": [_system(gold, 0.5, s)
                                                                               for s in range(10, 13)]})
    assert v.best in ("good", "same") and v.tied == {"good", "same"} - {v.best}
    assert "bad" not in v.tied
    assert v.intervals["good"] == v.intervals["same"]
    assert v.intervals["bad"].high < v.intervals["good"].low
    assert v.majority is None and not v.beats_majority       # no majority-class baseline for generation


def test_the_cell_center_is_the_median_of_the_scorers_corpus_bleu_per_seed():
    gold = _gold(80, seed=1)
    seeds = [_system(gold, noise, s) for s, noise in enumerate((0.2, 0.3, 0.4))]
    refs = [[r for r in g] + [""] for g in gold]               # the scorer pads DART to 3 reference slots
    per_seed = [mteval.multi_bleu(out, refs, lowercase=False) for out in seeds]
    v = _verdict(gold, {"m": seeds})
    iv = v.intervals["m"]
    assert iv.low < float(np.median(per_seed)) < iv.high
    stats = bleu_statistics("dart", seeds[1], gold)
    assert float(bleu_from_statistics("dart", stats.sum(axis=0))) == pytest.approx(per_seed[1], abs=1e-9)


def test_draw_weights_count_each_drawn_input():
    draw = np.array([[0, 0, 2], [1, 2, 2]])
    assert draw_weights(draw, 3).tolist() == [[2, 0, 1], [0, 1, 2]]


def test_a_tiny_dev_set_gives_wider_intervals_than_a_large_one():
    widths = {}
    for n in (10, 400):
        gold = _gold(n, seed=2)
        v = _verdict(gold, {"m": [_system(gold, 0.3, s) for s in range(3)]}, task="e2e", replicates=500)
        widths[n] = v.intervals["m"].high - v.intervals["m"].low
    assert widths[10] > 3 * widths[400]


def _write_nlg_preset(results, preset: str, systems: dict, dev_gold, test_gold, final: bool = False) -> None:
    """results/<preset>.csv and .predictions.jsonl as collect writes them for E2E runs: dev BLEU under dev and
    heldout selection, test BLEU under dev selection, and the outputs behind each; `final`: runs that kept their
    final state and scored only test (smollm2-nlg's protocol)."""
    from bench.heldout import write_predictions
    from bench.results import to_csv, write_atomic
    from bench.scorers.bleu_stats import corpus_bleu

    rows, records = [], []
    for m, (label, seeds) in enumerate(systems.items()):
        for seed, outputs in enumerate(seeds):
            run_id = f"e2e-m{m}-s{seed}"
            scored = ((("test", "final", test_gold),) if final else
                      (("dev", "dev", dev_gold), ("dev", "heldout", dev_gold), ("test", "dev", test_gold)))
            for split, selection, gold in scored:
                hyps = outputs[split]
                rows.append({"preset": preset, "run_id": run_id, "model": "tiny-gpt2", "task": "e2e",
                             "method": "lora", "method_config": f'{{"r": {m + 1}}}', "seed": seed, "lr": 1e-3,
                             "epochs": 3, "batch_size": 8, "grad_accum": 1, "recipe": "own",
                             "select": "final" if final else "best",
                             "label": label, "split": split, "metric": "bleu", "selection": selection,
                             "value": corpus_bleu("e2e", bleu_statistics("e2e", hyps, gold)), "scale": "percent",
                             "higher_is_better": "true", "best_epoch": 2 if selection == "dev" else "",
                             "params_stored": 1000 * (m + 1), "params_total": 10**6, "status": "ok",
                             "created_at": "2026-01-01T00:00:00"})
                records.append({"run_id": run_id, "created_at": "2026-01-01T00:00:00", "task": "e2e", "split": split,
                                "selection": selection, "predictions": hyps, "gold": gold})
    write_atomic(results / f"{preset}.csv", to_csv(rows))
    write_predictions(results / f"{preset}.predictions.jsonl", records)


def test_the_nlg_table_marks_test_bleu_and_selection_md_shows_both_protocols(tmp_path):
    from bench.report import build_report

    dev, test = _gold(120, seed=4), _gold(150, seed=5)
    good = [{"dev": _system(dev, 0.1, s), "test": _system(test, 0.1, 50 + s)} for s in range(2)]
    bad = [{"dev": _system(dev, 0.6, 10 + s), "test": _system(test, 0.6, 60 + s)} for s in range(2)]
    results = tmp_path / "results"
    _write_nlg_preset(results, "nlgsyn", {"Good": good, "Same": [dict(o) for o in good], "Bad": bad}, dev, test)
    build_report("nlgsyn", results_dir=results, out_root=tmp_path / "reports", plots=False)
    nlg = (tmp_path / "reports" / "nlgsyn" / "nlg.md").read_text()
    rows = {line.split("|")[2].strip(): line.split("|")[5] for line in nlg.splitlines() if line.startswith("| tiny")}
    assert set(rows) == {"Good", "Same", "Bad"}
    marked = {k for k, cell in rows.items() if "**" in cell or "\u2248" in cell}
    assert marked == {"Good", "Same"} and sum("**" in rows[k] for k in marked) == 1
    assert "corpus BLEU recomputed on each draw" in nlg and "150 test inputs" in nlg
    sel = (tmp_path / "reports" / "nlgsyn" / "selection.md").read_text()
    e2e = [line for line in sel.split("## E2E", 1)[1].splitlines() if line.startswith("| tiny")]
    assert len(e2e) == 3 and all(line.count("[") == 2 for line in e2e)
    assert "120 dev inputs" in sel


def test_runs_that_kept_their_final_state_get_test_bleu_intervals_and_no_selection_talk(tmp_path):
    from bench.report import build_report

    test = _gold(150, seed=5)
    good = [{"test": _system(test, 0.1, 50 + s)} for s in range(2)]
    bad = [{"test": _system(test, 0.6, 60 + s)} for s in range(2)]
    results = tmp_path / "results"
    _write_nlg_preset(results, "nlgfinal", {"Good": good, "Bad": bad}, None, test, final=True)
    build_report("nlgfinal", results_dir=results, out_root=tmp_path / "reports", plots=False)
    report = tmp_path / "reports" / "nlgfinal"
    nlg = (report / "nlg.md").read_text()
    assert "The intervals of these BLEU columns: selection.md." in nlg and "held-out selection" not in nlg
    sel = (report / "selection.md").read_text()
    assert "every run kept its final state" in sel and "per-epoch dev predictions" not in sel
    rows = [line for line in sel.split("## E2E (test BLEU", 1)[1].splitlines() if line.startswith("| tiny")]
    assert len(rows) == 2 and all(line.count("[") == 1 for line in rows)
    good_row = next(line for line in rows if "Good" in line)
    assert "**" in good_row and "150 inputs" in sel


def test_without_the_gold_a_final_state_preset_says_why_it_has_no_intervals(tmp_path):
    """A clone: predictions committed, gold (dataset content) not; selection.md names the cause and the fix."""
    from bench.heldout import gold_path
    from bench.report import build_report

    test = _gold(60, seed=6)
    results = tmp_path / "results"
    _write_nlg_preset(results, "nlgclone", {"A": [{"test": _system(test, 0.2, s)} for s in range(2)]}, None, test,
                      final=True)
    gold_path(results / "nlgclone.predictions.jsonl").unlink()
    build_report("nlgclone", results_dir=results, out_root=tmp_path / "reports", plots=False)
    sel = (tmp_path / "reports" / "nlgclone" / "selection.md").read_text()
    assert "not at hand" in sel and "--data-dir" in sel and "| dev | heldout |" not in sel
    assert "\u2248" not in (tmp_path / "reports" / "nlgclone" / "nlg.md").read_text()
