"""The training loop: optimizer groups, schedule, losses, exact step counts, best-epoch selection."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from bench.spec import TrainConfig
from bench.train import (compute_loss, fit, make_optimizer, make_scheduler, steps_per_epoch, train_steps,
                         trainable_state)

torch.set_num_threads(1)


class Toy(nn.Module):
    """A tiny classifier with a frozen part, a LayerNorm and biases (stands in for a model after a method)."""

    def __init__(self, vocab: int = 20, d: int = 8, labels: int = 2):
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.norm = nn.LayerNorm(d)
        self.frozen = nn.Linear(d, d)
        self.head = nn.Linear(d, labels)
        for p in self.frozen.parameters():
            p.requires_grad_(False)

    def forward(self, input_ids, attention_mask=None):
        h = self.norm(self.emb(input_ids)).mean(1)
        return type("Out", (), {"logits": self.head(torch.tanh(self.frozen(h)))})()


def _loader(n: int = 40, batch: int = 4, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, 20, (n, 6), generator=g)
    labels = (ids[:, 0] % 2).long()
    data = [{"input_ids": ids[i], "attention_mask": torch.ones(6, dtype=torch.long), "labels": labels[i]}
            for i in range(n)]
    return torch.utils.data.DataLoader(data, batch_size=batch, shuffle=False)


def test_optimizer_covers_trainable_parameters_only_and_skips_decay_on_biases_and_norms():
    model = Toy()
    opt = make_optimizer(model, TrainConfig(weight_decay=0.1))
    decayed = {id(p) for g in opt.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    plain = {id(p) for g in opt.param_groups if g["weight_decay"] == 0 for p in g["params"]}
    assert decayed == {id(model.head.weight)}
    assert plain == {id(model.head.bias), id(model.norm.weight), id(model.norm.bias), id(model.emb.weight)}
    assert not ({id(p) for p in model.frozen.parameters()} & (decayed | plain))


def test_schedule_warmup_then_linear_decay_or_constant():
    p = nn.Parameter(torch.zeros(1))

    def lrs(cfg, total):
        opt = torch.optim.SGD([p], lr=cfg.lr)
        sched = make_scheduler(opt, cfg, total)
        out = []
        for _ in range(total):
            out.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        return out

    linear = lrs(TrainConfig(lr=1.0, warmup_ratio=0.2), 10)
    assert linear[:2] == pytest.approx([0.5, 1.0])
    assert linear[2:] == pytest.approx([1.0, 7 / 8, 6 / 8, 5 / 8, 4 / 8, 3 / 8, 2 / 8, 1 / 8])
    const = lrs(TrainConfig(lr=1.0, warmup_steps=2, schedule="constant"), 6)
    assert const == pytest.approx([0.5, 1, 1, 1, 1, 1])


def test_losses_per_task_kind():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    labels = torch.tensor([0, 1])
    plain = compute_loss("classify", logits, labels, 0.0)
    assert plain == pytest.approx(nn.functional.cross_entropy(logits, labels).item())
    assert compute_loss("classify", logits, labels, 0.1) > plain
    assert compute_loss("regress", torch.tensor([[1.0], [3.0]]), torch.tensor([1.0, 1.0]), 0.0) == pytest.approx(2.0)
    # generation: position t predicts token t+1; -100 (source) positions are not scored
    vocab = 5
    gen_logits = torch.zeros(1, 4, vocab)
    gen_logits[0, 1, 3] = 10.0           # predicts token 2's label (3) confidently
    gen_labels = torch.tensor([[-100, -100, 3, 4]])
    loss = compute_loss("generate", gen_logits, gen_labels, 0.0)
    expected = (nn.functional.cross_entropy(gen_logits[0, 1:2], torch.tensor([3]))
                + nn.functional.cross_entropy(gen_logits[0, 2:3], torch.tensor([4]))) / 2
    assert loss == pytest.approx(expected.item())
    with pytest.raises(ValueError, match="no target tokens"):
        compute_loss("generate", gen_logits, torch.full((1, 4), -100), 0.0)


def test_train_steps_runs_exactly_n_optimizer_steps_with_accumulation():
    torch.manual_seed(0)
    model = Toy()
    frozen = model.frozen.weight.detach().clone()
    before = trainable_state(model)
    stats = train_steps(model, _loader(n=16, batch=4), kind="classify", cfg=TrainConfig(lr=1e-2, grad_accum=2),
                        max_steps=5)
    assert stats.steps == 5
    assert stats.micro_batches == 10           # the 4-batch loader (2 steps) is cycled
    assert stats.examples == 40 and stats.tokens == 240
    after = trainable_state(model)
    assert any(not torch.equal(before[k], after[k]) for k in before)
    # not trained: as it was, in the dtype the frozen base is stored in (bf16 where auto picks bf16)
    assert "frozen.weight" not in after and torch.equal(model.frozen.weight, frozen.to(model.frozen.weight.dtype))
    # a last partial accumulation still steps at the end of the epoch (3 batches, accum 2: 2 steps)
    assert steps_per_epoch(_loader(n=12, batch=4), TrainConfig(grad_accum=2)) == 2
    odd = train_steps(Toy(), _loader(n=12, batch=4), kind="classify", cfg=TrainConfig(grad_accum=2), max_steps=2)
    assert (odd.steps, odd.micro_batches) == (2, 3)


def test_fit_keeps_and_restores_the_best_epoch():
    torch.manual_seed(0)
    model = Toy()
    scores = iter([0.5, 0.9, 0.7])
    snapshots = {}

    def evaluate(m, epoch):
        snapshots[epoch] = trainable_state(m)
        return next(scores), True, {"dev_accuracy": 0.0}

    result = fit(model, _loader(), kind="classify", cfg=TrainConfig(lr=1e-2, epochs=3), evaluate=evaluate,
                 progress=False)
    assert result.best_epoch == 2 and result.best_score == 0.9
    assert [e["epoch"] for e in result.log] == [1, 2, 3]
    assert all("train_loss" in e and "dev_accuracy" in e for e in result.log)
    restored = trainable_state(model)
    assert all(torch.equal(restored[k], snapshots[2][k]) for k in restored)
    assert not all(torch.equal(restored[k], snapshots[3][k]) for k in restored)


def test_fit_lower_is_better_and_nan_loss_stops_the_run():
    torch.manual_seed(0)
    model = Toy()
    scores = iter([3.0, 1.0, 2.0])
    result = fit(model, _loader(), kind="classify", cfg=TrainConfig(lr=1e-2, epochs=3),
                 evaluate=lambda m, e: (next(scores), False, {}), progress=False)
    assert result.best_epoch == 2
    with torch.no_grad():
        model.head.weight.fill_(float("nan"))
    with pytest.raises(FloatingPointError, match="training loss is not finite"):
        fit(model, _loader(), kind="classify", cfg=TrainConfig(epochs=1), evaluate=lambda m, e: (0.0, True, {}),
            progress=False)


@pytest.mark.parametrize("method", ["lora", "prefix", "adapter"])
def test_set_dropout_leaves_the_methods_own_dropout(method):
    """train.dropout sets the model's dropout modules only: LoRA's and the prefix's own dropout keep their rate."""
    from bench.models import apply_method, load_model
    from bench.train import set_dropout
    from methods import LoRA, Adapter, Prefix
    from methods.base import MethodModule

    name, kind = ("tiny-gpt2", "generate") if method == "prefix" else ("tiny-roberta", "classify")
    model, _ = load_model(name, kind=kind, num_labels=2)
    method_obj = {"lora": LoRA(r=2, dropout=0.1), "prefix": Prefix(length=2, mlp_hidden=8, dropout=0.3),
                  "adapter": Adapter(kind="houlsby", bottleneck=2)}[method]
    apply_method(model, method_obj)
    set_dropout(model, 0.0)
    owned = {id(c) for m in model.modules() if isinstance(m, MethodModule) for c in m.children()
             if isinstance(c, nn.Dropout)}
    own = [m for m in model.modules() if isinstance(m, nn.Dropout) and id(m) not in owned]
    assert own and all(m.p == 0.0 for m in own)
    rates = sorted(m.p for m in model.modules() if id(m) in owned)
    assert rates == {"lora": [0.1] * 4, "prefix": [0.3], "adapter": []}[method]
