"""(IA)^3, DoRA and VeRA against PEFT's own implementations on the same tiny models: the same logits at init,
the same gradients of every trained tensor, and the same logits after a few AdamW steps.

Separate projections (RoBERTa, BERT) map one to one onto PEFT's layers. GPT-2's fused c_attn: PEFT adapts all of
it with one set of vectors (IA3: one vector over q, k, v; DoRA: one A; VeRA: one d), ours per chosen slice. There
(IA)^3 is compared on the k, v slices with PEFT's q part held at ones (its gradient zeroed); DoRA and VeRA with
all three slices tied to PEFT's shared tensor, whose gradient is then the sum of our per-slice gradients."""
from __future__ import annotations

import pytest
import torch

from bench.models import apply_method, load_model
from methods import DoRA, IA3, VeRA
from methods.base import head_parameters

peft = pytest.importorskip("peft")
pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::UserWarning")

torch.set_num_threads(1)
STEPS = 3


def build(name: str, kind: str):
    torch.manual_seed(0)
    model, tokenizer = load_model(name, kind=kind, num_labels=2)
    inputs = dict(tokenizer(["scaling vectors and random matrices", "a second, longer input sentence!"],
                            padding=True, return_tensors="pt"))
    return model.eval(), inputs


def pair(name: str, kind: str, method, config):
    """(ours, theirs, inputs): the same base model, our method applied to one copy, PEFT's to the other; heads
    frozen in both, so that exactly the methods' tensors train."""
    ours, inputs = build(name, kind)
    theirs, _ = build(name, kind)
    arch = apply_method(ours, method)
    for p in head_parameters(ours, arch):
        p.requires_grad_(False)
    theirs = peft.get_peft_model(theirs, config).eval()
    return ours, theirs, inputs


def loss_of(model, inputs) -> tuple[torch.Tensor, torch.Tensor]:
    logits = model(**inputs).logits
    target = torch.randn(logits.shape, generator=torch.Generator().manual_seed(11))
    return logits, (logits * target).sum()


def inner(theirs, name: str):
    return theirs.base_model.model.get_submodule(name)


def trained(model) -> list[torch.Tensor]:
    return [p for p in model.parameters() if p.requires_grad]


def steps_agree(ours, theirs, inputs, pairs, *, steps: int = STEPS, hooks=()) -> None:
    """`pairs`: (our tensor, view of theirs -> tensor in our layout). Equal logits now, equal gradients and
    logits after each of `steps` AdamW steps, and the logits moved."""
    opt_ours = torch.optim.AdamW(trained(ours), lr=2e-2, weight_decay=0.0)
    opt_theirs = torch.optim.AdamW(trained(theirs), lr=2e-2, weight_decay=0.0)
    with torch.no_grad():
        start = ours(**inputs).logits
    for _ in range(steps):
        for opt in (opt_ours, opt_theirs):
            opt.zero_grad()
        ours_logits, ours_loss = loss_of(ours, inputs)
        theirs_logits, theirs_loss = loss_of(theirs, inputs)
        torch.testing.assert_close(ours_logits, theirs_logits, rtol=1e-5, atol=1e-5)
        ours_loss.backward()
        theirs_loss.backward()
        for hook in hooks:
            hook()
        for mine, view in pairs:
            torch.testing.assert_close(mine.grad, view(lambda p: p.grad), rtol=1e-4, atol=1e-6)
        opt_ours.step()
        opt_theirs.step()
    with torch.no_grad():
        end_ours, end_theirs = ours(**inputs).logits, theirs(**inputs).logits
    torch.testing.assert_close(end_ours, end_theirs, rtol=1e-5, atol=1e-5)
    moved = float((end_ours - start).abs().max() / start.abs().max())
    assert moved > 1e-3, f"the steps moved the logits by {moved:.1e} of their size"
    for mine, view in pairs:
        torch.testing.assert_close(mine.detach(), view(lambda p: p.detach()), rtol=1e-4, atol=1e-6)


def _named(model, cls_names: tuple[str, ...]):
    return [(n, m) for n, m in model.named_modules() if type(m).__name__ in cls_names]


# ------------------------------------------------------------------------------------------------ (IA)^3

@pytest.mark.parametrize("name", ["tiny-roberta", "tiny-bert"])
def test_ia3_matches_peft_on_encoders(name):
    ours, _ = build(name, "classify")
    arch = apply_method(ours, IA3())
    layers = _named(ours, ("IA3Linear",))
    ffn = [n for n, m in layers if m.feedforward]
    assert len(layers) == 3 * ours.config.num_hidden_layers and len(ffn) == ours.config.num_hidden_layers
    assert all(n.endswith("." + arch.ffn_out) and ".attention." not in n for n in ffn)
    config = peft.IA3Config(target_modules=[n for n, _ in layers], feedforward_modules=ffn)
    ours, theirs, inputs = pair(name, "classify", IA3(), config)
    pairs = [(m.ia3_l, lambda get, n=n: get(inner(theirs, n).ia3_l["default"]).flatten())
             for n, m in _named(ours, ("IA3Linear",))]
    steps_agree(ours, theirs, inputs, pairs)


def test_ia3_matches_peft_on_gpt2_k_v_slices():
    ours, theirs, inputs = pair("tiny-gpt2", "generate", IA3(), peft.IA3Config(
        target_modules=["c_attn", "mlp.c_proj"], feedforward_modules=["mlp.c_proj"], fan_in_fan_out=True))
    d = ours.config.n_embd
    pairs, q_parts = [], []
    for n, m in _named(ours, ("IA3Conv1D",)):
        vector = inner(theirs, n).ia3_l["default"]
        if m.feedforward:
            pairs.append((m.ia3_l, lambda get, v=vector: get(v).flatten()))
        else:
            assert m.slices == (1, 2)
            pairs.append((m.ia3_l, lambda get, v=vector: get(v).flatten()[d:].reshape(2, d)))
            q_parts.append(vector)

    def hold_q_at_one():            # PEFT's default scales all of c_attn; the paper's l_k, l_v leave q alone
        for v in q_parts:
            v.grad[:d] = 0
    steps_agree(ours, theirs, inputs, pairs, hooks=(hold_q_at_one,))
    assert all(torch.equal(v.detach()[:d], torch.ones_like(v[:d])) for v in q_parts)


# ------------------------------------------------------------------------------------------------ DoRA

def test_dora_matches_peft_on_roberta():
    method = DoRA(r=4, alpha=8.0, targets=("q", "v", "ffn_out"))
    config = peft.LoraConfig(r=4, lora_alpha=8, target_modules=["query", "value", "output.dense"],
                             exclude_modules=r".*attention\.output\.dense", use_dora=True)
    ours, theirs, inputs = pair("tiny-roberta", "classify", method, config)
    pairs = []
    gen = torch.Generator().manual_seed(4)
    for n, m in _named(ours, ("DoRALinear",)):
        ref = inner(theirs, n)
        with torch.no_grad():        # the same A; B away from zero, so that the norm is W + sBA's, not W's
            ref.lora_A["default"].weight.copy_(m.lora_A)
            m.lora_B.copy_(torch.randn(m.lora_B.shape, generator=gen) * 0.1)
            ref.lora_B["default"].weight.copy_(m.lora_B)
        torch.testing.assert_close(m.lora_magnitude, ref.lora_magnitude_vector["default"].weight)
        pairs += [(m.lora_A, lambda get, r=ref: get(r.lora_A["default"].weight)),
                  (m.lora_B, lambda get, r=ref: get(r.lora_B["default"].weight)),
                  (m.lora_magnitude, lambda get, r=ref: get(r.lora_magnitude_vector["default"].weight))]
    assert len(pairs) == 3 * 3 * ours.config.num_hidden_layers
    steps_agree(ours, theirs, inputs, pairs)


def test_dora_matches_peft_on_gpt2_c_attn():
    ours, theirs, inputs = pair("tiny-gpt2", "generate", DoRA(r=2, alpha=4.0, targets=("q", "k", "v")),
                                peft.LoraConfig(r=2, lora_alpha=4, target_modules=["c_attn"], fan_in_fan_out=True,
                                                use_dora=True))
    gen = torch.Generator().manual_seed(5)
    layers = _named(ours, ("DoRAConv1D",))
    for n, m in layers:
        ref = inner(theirs, n)
        with torch.no_grad():
            ref.lora_B["default"].weight.copy_(torch.randn(ref.lora_B["default"].weight.shape, generator=gen) * 0.1)
            for s in range(3):
                m.lora_A[s].copy_(ref.lora_A["default"].weight)
                m.lora_B[s].copy_(ref.lora_B["default"].weight[s * m.chunk:(s + 1) * m.chunk])
        torch.testing.assert_close(m.lora_magnitude.reshape(-1), ref.lora_magnitude_vector["default"].weight)
    ours_logits, ours_loss = loss_of(ours, inputs)
    theirs_logits, theirs_loss = loss_of(theirs, inputs)
    torch.testing.assert_close(ours_logits, theirs_logits, rtol=1e-5, atol=1e-5)
    ours_loss.backward()
    theirs_loss.backward()
    for n, m in layers:
        ref = inner(theirs, n)
        torch.testing.assert_close(m.lora_A.grad.sum(0), ref.lora_A["default"].weight.grad, rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(m.lora_B.grad.reshape(-1, 2), ref.lora_B["default"].weight.grad,
                                   rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(m.lora_magnitude.grad.reshape(-1), ref.lora_magnitude_vector["default"].weight.grad,
                                   rtol=1e-4, atol=1e-6)


def test_dora_norm_is_detached_and_per_output_feature():
    """The magnitude's gradient is what a constant norm gives: d out / d m = (W x + s B A x) / ||W + s B A||."""
    from methods.dora import DoRALinear

    torch.manual_seed(0)
    base = torch.nn.Linear(6, 4)
    layer = DoRALinear(base, r=2, alpha=2.0, dropout=0.0)
    with torch.no_grad():
        layer.lora_B.normal_()
    x = torch.randn(3, 6)
    layer(x).sum().backward()
    full = base.weight + layer.lora_B @ layer.lora_A
    norm = full.detach().norm(dim=1)
    torch.testing.assert_close(layer.lora_magnitude, base.weight.detach().norm(dim=1))
    torch.testing.assert_close(layer.lora_magnitude.grad, (x @ full.detach().T).sum(0) / norm)


# ------------------------------------------------------------------------------------------------ VeRA

def test_vera_matches_peft_on_roberta():
    method = VeRA(r=16, targets=("q", "v", "ffn_in"), projection_seed=3)
    config = peft.VeraConfig(r=16, target_modules=["query", "value", "intermediate.dense"], projection_prng_key=3)
    ours, theirs, inputs = pair("tiny-roberta", "classify", method, config)
    shared = ours.vera_projections
    assert torch.equal(shared.vera_A, theirs.base_model.vera_A["default"])      # the same draws from the seed
    assert torch.equal(shared.vera_B, theirs.base_model.vera_B["default"])
    pairs = []
    gen = torch.Generator().manual_seed(6)
    for n, m in _named(ours, ("VeRALinear",)):
        ref = inner(theirs, n)
        with torch.no_grad():       # b away from zero, so that d gets a gradient in the first step
            m.vera_b.copy_(torch.randn(m.vera_b.shape, generator=gen) * 0.1)
            ref.vera_lambda_b["default"].copy_(m.vera_b)
        pairs += [(m.vera_d, lambda get, r=ref: get(r.vera_lambda_d["default"])),
                  (m.vera_b, lambda get, r=ref: get(r.vera_lambda_b["default"]))]
    assert len(pairs) == 2 * 3 * ours.config.num_hidden_layers
    steps_agree(ours, theirs, inputs, pairs)


def test_vera_matches_peft_on_gpt2_c_attn():
    ours, theirs, inputs = pair("tiny-gpt2", "generate", VeRA(r=8, targets=("q", "k", "v")),
                                peft.VeraConfig(r=8, target_modules=["c_attn"], fan_in_fan_out=True))
    assert torch.equal(ours.vera_projections.vera_B, theirs.base_model.vera_B["default"])
    gen = torch.Generator().manual_seed(7)
    layers = _named(ours, ("VeRAConv1D",))
    for n, m in layers:
        ref = inner(theirs, n)
        with torch.no_grad():
            ref.vera_lambda_b["default"].copy_(torch.randn(3 * m.chunk, generator=gen) * 0.1)
            m.vera_b.copy_(ref.vera_lambda_b["default"].reshape(3, m.chunk))
    ours_logits, ours_loss = loss_of(ours, inputs)
    theirs_logits, theirs_loss = loss_of(theirs, inputs)
    torch.testing.assert_close(ours_logits, theirs_logits, rtol=1e-5, atol=1e-5)
    ours_loss.backward()
    theirs_loss.backward()
    for n, m in layers:
        ref = inner(theirs, n)
        torch.testing.assert_close(m.vera_b.grad.reshape(-1), ref.vera_lambda_b["default"].grad, rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(m.vera_d.grad.sum(0), ref.vera_lambda_d["default"].grad, rtol=1e-4, atol=1e-6)


def test_vera_projections_follow_the_seed_not_the_global_rng():
    a, _ = build("tiny-roberta", "classify")
    b, _ = build("tiny-roberta", "classify")
    apply_method(a, VeRA(r=4))
    torch.manual_seed(99)
    apply_method(b, VeRA(r=4))
    assert torch.equal(a.vera_projections.vera_A, b.vera_projections.vera_A)
    c, _ = build("tiny-roberta", "classify")
    apply_method(c, VeRA(r=4, projection_seed=1))
    assert not torch.equal(a.vera_projections.vera_A, c.vera_projections.vera_A)
    d = a.config.hidden_size
    assert a.vera_projections.vera_A.shape == (4, d) and a.vera_projections.vera_B.shape == (d, 4)
    bound = (6.0 / d) ** 0.5                           # kaiming-uniform over fan_in = d_in
    assert a.vera_projections.vera_A.abs().max() <= bound and a.vera_projections.vera_A.abs().max() > 0.9 * bound
    assert "vera_A" not in a.state_dict() and not any("vera_A" in k for k in a.state_dict())


# ------------------------------------------------------------------------------------------------ Llama layout

def _llama_pairs(ours, theirs, cls: str, ours_attr: str, theirs_attr: str):
    return [(getattr(m, ours_attr), lambda get, n=n: get(getattr(inner(theirs, n), theirs_attr)["default"]).flatten())
            for n, m in _named(ours, (cls,))]


@pytest.mark.parametrize("name", ["tiny-llama", "tiny-qwen2"])
def test_all_three_match_peft_on_the_llama_layout(name):
    """Grouped-query attention (k, v narrower than q), a gated MLP (l_ff scales act(gate) * up), Qwen2's biases."""
    probe, _ = build(name, "generate")
    apply_method(probe, IA3())
    layers = _named(probe, ("IA3Linear",))
    ffn = [n for n, m in layers if m.feedforward]
    assert len(ffn) == probe.config.num_hidden_layers and all(n.endswith("down_proj") for n in ffn)
    ours, theirs, inputs = pair(name, "generate", IA3(), peft.IA3Config(target_modules=[n for n, _ in layers],
                                                                         feedforward_modules=ffn))
    steps_agree(ours, theirs, inputs, _llama_pairs(ours, theirs, "IA3Linear", "ia3_l", "ia3_l"))

    method = DoRA(r=2, alpha=4.0, targets=("q", "k", "gate", "down"))
    ours, theirs, inputs = pair(name, "generate", method, peft.LoraConfig(
        r=2, lora_alpha=4, target_modules=["q_proj", "k_proj", "gate_proj", "down_proj"], use_dora=True))
    gen = torch.Generator().manual_seed(8)
    for n, m in _named(ours, ("DoRALinear",)):
        ref = inner(theirs, n)
        with torch.no_grad():
            ref.lora_A["default"].weight.copy_(m.lora_A)
            m.lora_B.copy_(torch.randn(m.lora_B.shape, generator=gen) * 0.1)
            ref.lora_B["default"].weight.copy_(m.lora_B)
    pairs = []
    for ours_attr, theirs_attr in (("lora_A", "lora_A"), ("lora_B", "lora_B")):
        pairs += [(getattr(m, ours_attr), lambda get, n=n, a=theirs_attr: get(getattr(inner(theirs, n), a)
                                                                              ["default"].weight))
                  for n, m in _named(ours, ("DoRALinear",))]
    pairs += [(m.lora_magnitude, lambda get, n=n: get(inner(theirs, n).lora_magnitude_vector["default"].weight))
              for n, m in _named(ours, ("DoRALinear",))]
    steps_agree(ours, theirs, inputs, pairs)

    ours, theirs, inputs = pair(name, "generate", VeRA(r=8, targets=("q", "v", "up")), peft.VeraConfig(
        r=8, target_modules=["q_proj", "v_proj", "up_proj"]))
    assert torch.equal(ours.vera_projections.vera_A, theirs.base_model.vera_A["default"])
    assert torch.equal(ours.vera_projections.vera_B, theirs.base_model.vera_B["default"])
    for n, m in _named(ours, ("VeRALinear",)):
        with torch.no_grad():
            m.vera_b.normal_(0, 0.1, generator=gen)
            inner(theirs, n).vera_lambda_b["default"].copy_(m.vera_b)
    pairs = (_llama_pairs(ours, theirs, "VeRALinear", "vera_d", "vera_lambda_d")
             + _llama_pairs(ours, theirs, "VeRALinear", "vera_b", "vera_lambda_b"))
    steps_agree(ours, theirs, inputs, pairs)
