"""Held-out selection for generation tasks: per-input BLEU statistics that sum to the scorers' corpus BLEU, halves
of inputs (never of one input's references), selection by BLEU on each half, the combined outputs scored once."""
from __future__ import annotations

import json
import random

import numpy as np
import pytest

from bench.heldout import derive, epoch_file, gold_file, halves, heldout_predictions
from bench.results import write_atomic
from bench.scorers import mteval
from bench.scorers.bleu_stats import bleu_from_statistics, bleu_statistics, corpus_bleu
from bench.scorers.normalize import dart_reference, webnlg_hypothesis, webnlg_reference
from bench.tasks import TASKS

WORDS = ("the", "a", "restaurant", "serves", "cheap", "Indian", "food", "near", "river", "Caf\u00e9", "is", "rated",
         "five", "stars", "family", "friendly", "not", "in", "city", "centre", ".", ",")


def _corpus(n: int, seed: int = 0, refs: int = 3):
    """n inputs with 1..refs references each and hypotheses that partly copy, partly garble a reference."""
    rng = random.Random(seed)
    gold = [[" ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 14))) for _ in range(rng.randint(1, refs))]
            for _ in range(n)]
    hyps = []
    for g in gold:
        words = rng.choice(g).split()
        keep = [w if rng.random() < 0.7 else rng.choice(WORDS) for w in words[:rng.randint(1, len(words) + 2)]]
        hyps.append(" ".join(keep))
    return hyps, gold


def _scorer_bleu(task: str, hyps, gold) -> float:
    """The BLEU that bench.scorers computes (split.py's reference preparation, then generation.py's call)."""
    if task == "e2e":
        from bench.scorers.normalize import e2e_reference
        return 100 * mteval.mteval_bleu([h.strip() for h in hyps], [[e2e_reference(r) for r in g] for g in gold])
    if task == "webnlg":
        refs = [[webnlg_reference(r) for r in (g + ["", "", ""])[:3]] for g in gold]
        return mteval.multi_bleu([webnlg_hypothesis(h) for h in hyps], refs, lowercase=True)
    refs = [[dart_reference(r) for r in (g + ["", "", ""])[:3]] for g in gold]
    return mteval.multi_bleu([dart_reference(h) for h in hyps], refs, lowercase=False)


@pytest.mark.parametrize("task", ["e2e", "webnlg", "dart"])
def test_summed_statistics_give_the_scorers_corpus_bleu_on_the_whole_and_on_a_half(task):
    hyps, gold = _corpus(120, seed=3)
    stats = bleu_statistics(task, hyps, gold)
    assert stats.shape == (120, 10)
    assert corpus_bleu(task, stats) == pytest.approx(_scorer_bleu(task, hyps, gold), abs=1e-9)
    half = [i for i, h in enumerate(halves(task, 120)) if h == 0]
    want = _scorer_bleu(task, [hyps[i] for i in half], [gold[i] for i in half])
    assert corpus_bleu(task, stats, half) == pytest.approx(want, abs=1e-9)
    assert 5 < want < 95                                       # a case where both formulas matter


def test_bleu_formulas_on_known_statistics():
    perfect = np.array([[10, 10, 10, 9, 8, 7, 10, 9, 8, 7]])
    for task in ("e2e", "webnlg", "dart"):
        assert bleu_from_statistics(task, perfect)[0] == pytest.approx(100.0)
    no_4gram = np.array([10, 10, 10, 9, 8, 0, 10, 9, 8, 7])
    assert bleu_from_statistics("dart", no_4gram) == 0.0        # multi-bleu: no smoothing
    # mteval: the order without a match counts 1 / (2 * 7)
    assert bleu_from_statistics("e2e", no_4gram) == pytest.approx(100 * (1 / 14) ** 0.25)
    short = np.array([5, 10, 5, 4, 3, 2, 5, 4, 3, 2])
    assert bleu_from_statistics("webnlg", short) == pytest.approx(100 * np.exp(1 - 2))   # brevity penalty


def _epochs_by_half(task: str, gold):
    """Epoch 1 copies the first reference on half A and says nothing useful on half B; epoch 2 the reverse."""
    side = halves(task, len(gold))
    bad = "zzz qqq"
    e1 = [g[0] if h == 0 else bad for g, h in zip(gold, side)]
    e2 = [g[0] if h == 1 else bad for g, h in zip(gold, side)]
    return {1: e1, 2: e2}, side


def test_each_half_of_inputs_gets_the_epoch_selected_on_the_other_by_bleu():
    _, gold = _corpus(60, seed=5)
    epochs, side = _epochs_by_half("e2e", gold)
    preds, chosen = heldout_predictions(TASKS["e2e"], epochs, gold)
    assert chosen == {1: 1, 0: 2}
    assert preds == ["zzz qqq"] * 60                            # the honest answer: each half gets its bad epoch


def _nlg_run(tmp_path, task, epochs, gold, kept):
    folder = tmp_path / "run"
    rows = [{"run_id": "g1", "created_at": "t0", "task": task, "select": "best", "selection": "dev", "status": "ok",
             "split": "dev", "metric": m, "value": 1.0, "best_epoch": 1, "note": ""} for m in TASKS[task].metric_names]
    rows.append({**rows[0], "split": "test"})
    write_atomic(folder / "rows.json", json.dumps(rows))
    for e, p in epochs.items():
        write_atomic(epoch_file(folder, "dev", e), "".join(f"{x}\n" for x in p))
    write_atomic(gold_file(folder, "dev"), "".join(f"{json.dumps(g)}\n" for g in gold))
    write_atomic(folder / "predictions" / "dev.txt", "".join(f"{x}\n" for x in kept))
    return folder, rows


def test_derive_scores_the_combined_outputs_once_with_the_full_scorer(tmp_path):
    from types import SimpleNamespace

    from bench.scorers import score_split

    _, gold = _corpus(40, seed=7)
    epochs, side = _epochs_by_half("e2e", gold)
    epochs[2] = [g[-1] if h == 1 else "the food" for g, h in zip(gold, side)]
    folder, rows = _nlg_run(tmp_path, "e2e", epochs, gold, kept=epochs[1])
    added, records = derive(folder, rows)
    assert {r["metric"] for r in added} == {"bleu", "nist", "meteor", "rouge_l", "cider"}
    assert all(r["split"] == "dev" and r["selection"] == "heldout" for r in added)   # no test rows: no test epochs
    combined = records[1]["predictions"]
    assert combined == [epochs[2][i] if h == 0 else epochs[1][i] for i, h in enumerate(side)]
    want = score_split("e2e", "dev", combined, [SimpleNamespace(references=tuple(g)) for g in gold])["dev"]
    assert {r["metric"]: r["value"] for r in added} == {m: s.value for m, s in want.items()}
    assert records[0]["gold"] == gold and records[0]["predictions"] == epochs[1]


def test_dart_heldout_rows_leave_out_the_model_based_metrics(tmp_path):
    _, gold = _corpus(30, seed=9)
    epochs, _ = _epochs_by_half("dart", gold)
    folder, rows = _nlg_run(tmp_path, "dart", epochs, gold, kept=epochs[1])
    added, _ = derive(folder, rows)
    assert {r["metric"] for r in added} == {"bleu", "meteor", "ter"}


def test_without_java_bleu_comes_from_the_statistics_and_the_java_metrics_say_why(tmp_path, monkeypatch):
    from bench.scorers import ScorerError, java

    def no_java():
        raise ScorerError("no `java` on PATH")

    monkeypatch.setattr(java, "java_executable", no_java)
    _, gold = _corpus(30, seed=11)
    epochs, _ = _epochs_by_half("webnlg", gold)
    folder, rows = _nlg_run(tmp_path, "webnlg", epochs, gold, kept=epochs[1])
    added, records = derive(folder, rows)
    got = {r["metric"]: r for r in added}
    assert got["bleu"]["value"] == pytest.approx(corpus_bleu("webnlg", bleu_statistics("webnlg",
                                                                                         records[1]["predictions"],
                                                                                         gold)))
    assert got["meteor"]["value"] == "" and "no `java` on PATH" in got["meteor"]["note"]
    assert got["ter"]["value"] == ""


def test_tiny_gpt2_e2e_runs_collect_both_protocols_and_the_report_marks_dev_bleu(tmp_path):
    import csv
    from dataclasses import replace

    from bench.heldout import predictions_path, read_epochs
    from bench.presets import SMOKE_DATA
    from bench.presets.small import SMOKE_DECODING, SMOKE_E2E
    from bench.report import build_report
    from bench.results import collect
    from bench.runner import run_one
    from bench.spec import RunSpec, resolve

    train = replace(SMOKE_E2E, epochs=2, lr=1e-2)
    specs = [resolve(RunSpec(model="tiny-gpt2", task="e2e", method=m, train=train, preset="t", seed=0,
                             decoding=dict(SMOKE_DECODING), eval_splits=("dev",))) for m in ("lora", "bitfit")]
    for spec in specs:
        assert run_one(spec, results_dir=tmp_path, data_dir=SMOKE_DATA, progress=False)[0]["status"] == "ok"
    folder = tmp_path / "runs" / "t" / specs[0].run_id
    gold = [json.loads(line) for line in gold_file(folder, "dev").read_text().splitlines()]
    assert list(read_epochs(folder, "dev")) == [1, 2]
    assert len(gold) == 8 and all(len(refs) == 2 for refs in gold)    # one line per MR, its references together
    out = tmp_path / "t.csv"
    counts = collect(specs, tmp_path, out)
    assert counts["ok"] == 2 and counts["heldout"] == 2
    with open(out, newline="") as fh:
        table = list(csv.DictReader(fh))
    for selection in ("dev", "heldout"):
        assert sorted(r["metric"] for r in table if r["selection"] == selection and r["method"] == "lora") == \
            ["bleu", "cider", "meteor", "nist", "rouge_l"]
    assert all(r["value"] != "" for r in table)
    assert len(predictions_path(out).read_text().splitlines()) == 1 + 4     # one gold, 2 runs x 2 protocols
    summary = build_report("t", results_dir=tmp_path, out_root=tmp_path / "reports", plots=False)
    sel = tmp_path / "reports" / "t" / "selection.md"
    assert sel in summary.files
    text = sel.read_text()
    assert "## E2E (BLEU, %)" in text and "corpus BLEU recomputed on each draw" in text
    rows = [line for line in text.split("## E2E", 1)[1].splitlines() if line.startswith("| tiny")]
    assert len(rows) == 2 and all(line.count("[") == 2 for line in rows)        # dev and heldout intervals
    assert "8 dev inputs" in text
