"""train.head_lr: the task head in its own AdamW groups at its own peak learning rate (VeRA's recipes), the
scheduler scaling both; at its default (0: the same as lr) runs keep their run_ids."""
from __future__ import annotations

import torch

from bench.models import apply_method, load_model
from bench.spec import RunSpec, TrainConfig
from bench.train import make_optimizer, make_scheduler
from methods import VeRA
from methods.base import head_parameters

torch.set_num_threads(1)


def _model():
    torch.manual_seed(0)
    model, _ = load_model("tiny-roberta", kind="classify", num_labels=2)
    arch = apply_method(model, VeRA(r=4))
    return model, arch


def test_head_gets_its_own_lr():
    model, arch = _model()
    cfg = TrainConfig(lr=1e-3, head_lr=5e-3, warmup_ratio=0.5, weight_decay=0.1)
    opt = make_optimizer(model, cfg)
    head = {id(p) for p in head_parameters(model, arch)}
    lrs = {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}
    assert head and all(lrs[i] == 5e-3 for i in head)
    others = [i for i in lrs if i not in head]
    assert others and all(lrs[i] == 1e-3 for i in others)
    assert {id(p) for p in model.parameters() if p.requires_grad} == set(lrs)     # every trained tensor, once
    decayed = {id(p) for g in opt.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    assert decayed and decayed <= head            # VeRA's vectors are 1-D: no decay; the head's matrices decay
    scheduler = make_scheduler(opt, cfg, total_steps=4)   # 2 warmup steps: both at half their peak, then peak
    assert sorted({g["lr"] for g in opt.param_groups}) == [5e-4, 2.5e-3]
    opt.step()
    scheduler.step()
    assert sorted({g["lr"] for g in opt.param_groups}) == [1e-3, 5e-3]


def test_default_is_one_lr_and_keeps_run_ids():
    model, _ = _model()
    opt = make_optimizer(model, TrainConfig(lr=1e-3))
    assert {g["lr"] for g in opt.param_groups} == {1e-3}
    spec = RunSpec(model="tiny-roberta", task="sst2", method="vera")
    assert "head_lr" not in spec._identity()["train"]       # what runs before the field computed
    other = RunSpec(model="tiny-roberta", task="sst2", method="vera", train=TrainConfig(head_lr=1e-2))
    assert other.run_id != spec.run_id
