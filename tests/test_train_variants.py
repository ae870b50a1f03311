"""Training variants of the released Prefix-Tuning script: its sentence-level loss and its final-checkpoint
selection, each against a reference written from the script (not from our code)."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from bench.spec import RunSpec, TrainConfig
from bench.train import compute_loss, fit, train_steps, trainable_state

torch.set_num_threads(1)


def released_objective_mode_1(logits: list, labels: list) -> float:
    """The released loss, by hand in plain Python. modeling_gpt2.py (the authors' transformers-3 fork),
    objective_mode 1: CrossEntropyLoss(reduction='none') on the shifted logits/labels (ignore_index -100 gives
    0), `.view(bsz, seqlen).sum(dim=-1)`; trainer_prefix.py `compute_loss`: `outputs[0].mean()`."""
    per_sentence = []
    for row_logits, row_labels in zip(logits, labels):
        total = 0.0
        for t in range(len(row_labels) - 1):
            target = row_labels[t + 1]
            if target == -100:
                continue
            scores = row_logits[t]
            top = max(scores)
            log_z = top + math.log(sum(math.exp(s - top) for s in scores))
            total += log_z - scores[target]
        per_sentence.append(total)
    return sum(per_sentence) / len(per_sentence)


def token_mean_by_hand(logits: list, labels: list) -> float:
    """The fine-tuning objective (CrossEntropyLoss() with its default mean over the non-ignored tokens)."""
    total, n = 0.0, 0
    for row_logits, row_labels in zip(logits, labels):
        for t in range(len(row_labels) - 1):
            target = row_labels[t + 1]
            if target == -100:
                continue
            scores = row_logits[t]
            top = max(scores)
            total += top + math.log(sum(math.exp(s - top) for s in scores)) - scores[target]
            n += 1
    return total / n


def _batch(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(3, 7, 11, generator=g) * 3
    # source positions and right padding are -100; the targets have 4, 1 and 3 tokens
    labels = torch.tensor([[-100, -100, 5, 2, 7, 1, -100],
                           [-100, -100, -100, -100, -100, 3, -100],
                           [-100, -100, -100, 9, 9, 0, -100]])
    return logits, labels


def test_sentence_sum_equals_the_released_objective_by_hand():
    logits, labels = _batch()
    ours = compute_loss("generate", logits, labels, 0.0, "sentence_sum")
    reference = released_objective_mode_1(logits.tolist(), labels.tolist())
    assert float(ours) == pytest.approx(reference, rel=1e-6)
    mean = compute_loss("generate", logits, labels, 0.0, "token_mean")
    assert float(mean) == pytest.approx(token_mean_by_hand(logits.tolist(), labels.tolist()), rel=1e-6)
    # uneven target lengths: the two objectives weigh the sentences differently (sum = 8 tokens / 3 sentences)
    assert abs(float(ours) - float(mean)) > 0.1


def test_sentence_sum_on_a_real_encoded_batch_of_tiny_gpt2():
    """Our encoding and padding (labels -100 on source, separator and padding) with tiny GPT-2's logits."""
    from bench.data import encode_generation_train, make_loader
    from bench.data.examples import GenerationExample
    from bench.models import load_model

    model, tokenizer = load_model("tiny-gpt2", kind="generate")
    examples = [GenerationExample("a : b : c", ("short one", "a much longer reference sentence here"), None, None, 0),
                GenerationExample("x : y : z", ("mid length text",), None, None, 1)]
    encoded = encode_generation_train(tokenizer, "dart", examples, 128)
    batch = next(iter(make_loader(encoded, batch_size=3, pad_id=tokenizer.eos_token_id, shuffle=False, seed=0)))
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    ours = compute_loss("generate", logits, batch["labels"], 0.0, "sentence_sum")
    assert float(ours) == pytest.approx(released_objective_mode_1(logits.tolist(), batch["labels"].tolist()),
                                        rel=1e-5)


def test_sentence_sum_is_a_generation_loss_only_and_unknown_names_fail():
    with pytest.raises(ValueError, match="generation loss"):
        compute_loss("classify", torch.zeros(2, 2), torch.tensor([0, 1]), 0.0, "sentence_sum")
    with pytest.raises(ValueError, match="expected one of token_mean, sentence_sum"):
        compute_loss("generate", *_batch(), 0.0, "sum")


class TinyLM(nn.Module):
    def __init__(self, vocab: int = 11, d: int = 8):
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.out = nn.Linear(d, vocab)

    def forward(self, input_ids, attention_mask=None):
        return type("Out", (), {"logits": self.out(torch.tanh(self.emb(input_ids)))})()


def test_the_training_step_uses_the_configured_loss():
    torch.manual_seed(0)
    _, labels = _batch()
    ids = labels.clamp_min(0)
    data = [{"input_ids": ids[i], "attention_mask": torch.ones(7, dtype=torch.long), "labels": labels[i]}
            for i in range(3)]
    for loss in ("sentence_sum", "token_mean"):
        model = TinyLM()
        with torch.no_grad():
            expected = float(compute_loss("generate", model(ids).logits, labels, 0.0, loss))
        loader = torch.utils.data.DataLoader(data, batch_size=3, shuffle=False)
        cfg = TrainConfig(lr=1e-3, loss=loss, mixed_precision="no")   # fp32, as the expected value
        stats = train_steps(model, loader, kind="generate", cfg=cfg, max_steps=1)
        assert stats.loss == pytest.approx(expected, rel=1e-5)


def _loader():
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 11, (12, 5), generator=g)
    labels = ids.clone()
    labels[:, :2] = -100
    data = [{"input_ids": ids[i], "attention_mask": torch.ones(5, dtype=torch.long), "labels": labels[i]}
            for i in range(12)]
    return torch.utils.data.DataLoader(data, batch_size=4, shuffle=False)


def test_select_final_keeps_the_last_epoch_even_when_an_earlier_one_scored_better():
    torch.manual_seed(0)
    model = TinyLM()
    scores = iter([0.5, 0.9, 0.7])
    snapshots = {}

    def evaluate(m, epoch):
        snapshots[epoch] = trainable_state(m)
        return next(scores), True, {"dev_bleu": 0.0}

    result = fit(model, _loader(), kind="generate", cfg=TrainConfig(lr=1e-2, epochs=3, select="final"),
                 evaluate=evaluate, progress=False)
    assert (result.best_epoch, result.best_score) == (3, 0.7)
    assert [e["epoch"] for e in result.log] == [1, 2, 3] and all("dev_bleu" in e for e in result.log)
    kept = trainable_state(model)
    assert all(torch.equal(kept[k], snapshots[3][k]) for k in kept)
    assert not all(torch.equal(kept[k], snapshots[2][k]) for k in kept)
    # select="best" on the same scores restores epoch 2
    torch.manual_seed(0)
    best_model = TinyLM()
    scores = iter([0.5, 0.9, 0.7])
    best = fit(best_model, _loader(), kind="generate", cfg=TrainConfig(lr=1e-2, epochs=3),
               evaluate=lambda m, e: (next(scores), True, {}), progress=False)
    assert best.best_epoch == 2


def test_select_final_without_per_epoch_evaluation_evaluates_once():
    calls = []
    result = fit(TinyLM(), _loader(), kind="generate",
                 cfg=TrainConfig(lr=1e-2, epochs=2, select="final", eval_every_epoch=False),
                 evaluate=lambda m, e: (calls.append(e) or 1.0, True, {}), progress=False)
    assert calls == [2] and result.best_epoch == 2




def test_the_new_fields_at_their_defaults_keep_the_committed_run_ids():
    """results/minilm-glue.csv names exactly the preset's 66 runs (11 methods x SST-2, RTE x 3 seeds, fp32): fields
    added since then at their defaults (`train.tf32`, `train.head_lr`, ...) keep the run_ids, as `loss`, `select`
    and the prefix's `shift_positions` at their defaults kept the ids of the runs before them."""
    import csv
    from pathlib import Path

    from bench.grid import plan

    committed = Path(__file__).resolve().parents[1] / "results" / "minilm-glue.csv"
    with committed.open(newline="") as handle:
        ids = {row["run_id"] for row in csv.DictReader(handle)}
    planned = {s.run_id for s in plan("minilm-glue")}
    assert len(planned) == 66 and ids == planned
    torch_kernels = RunSpec(model="minilm-l6", task="sst2", method="full", train=TrainConfig(cpu_fast_path=False))
    assert torch_kernels.run_id != RunSpec(model="minilm-l6", task="sst2", method="full").run_id
    spec = RunSpec(model="minilm-l6", task="sst2", method="full")
    final = RunSpec(model="minilm-l6", task="sst2", method="full", train=TrainConfig(select="final"))
    summed = RunSpec(model="minilm-l6", task="sst2", method="full", train=TrainConfig(loss="sentence_sum"))
    assert len({spec.run_id, final.run_id, summed.run_id}) == 3
