"""`Decoding(score_length="total")`: our batched beam search gives, token for token, the tokens of a plain batch-1
implementation of the Prefix-Tuning authors' transformers 3 beam search (tests/fork_beam.py), on random protocols
and with the methods applied; and the position offset of a method module reaches the positions we build."""
from __future__ import annotations

import dataclasses
import random
import warnings

import pytest
import torch
from torch import nn

from bench.decode.generate import generate_ids, one_at_a_time, pick_engine
from bench.decode.protocol import PREFIX_TUNING, PREFIX_TUNING_SCRIPT, Decoding
from methods.base import MethodModule, position_offset
from tests.fork_beam import fork_beam_search
from tests.gen_helpers import sources, tiny_gpt2, tiny_tokenizer


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()


def _fork(model, tok, src, protocol: Decoding, banned=()) -> list[list[int]]:
    return [fork_beam_search(model, s, num_beams=protocol.num_beams, max_new_tokens=protocol.max_new_tokens,
                             eos_id=tok.eos_token_id, min_length=protocol.min_length,
                             min_new_tokens=protocol.min_new_tokens, length_penalty=protocol.length_penalty,
                             no_repeat_ngram_size=protocol.no_repeat_ngram_size,
                             banned=tuple(protocol.banned_token_ids) + tuple(banned)) for s in src]


def _trial(tok, trial: int):
    """A random tiny GPT-2 and protocol: beams, lengths, min_length (counting the source), length penalties,
    no-repeat n-grams, banned ids, sources of different lengths (one of one token), eager or sdpa attention,
    pad != EOS, batch sizes."""
    rng = random.Random(100 + trial)
    model = tiny_gpt2(len(tok), seed=trial, std=rng.choice([0.3, 0.5]))
    model.config.eos_token_id = tok.eos_token_id
    if trial % 3 == 0:
        model.config._attn_implementation = "eager"
    with torch.no_grad():
        model.transformer.wte.weight[tok.eos_token_id] *= rng.choice([1.0, 2.0, 3.0, 4.0])
    src = sources(tok, n=rng.randint(2, 9), seed=trial)
    src[0] = src[0][:1]
    most = rng.randint(1, 18)
    banned = tuple(rng.sample(range(3, len(tok) - 1), rng.randint(0, 3)))
    protocol = Decoding(num_beams=rng.randint(2, 6), max_new_tokens=most,
                        min_new_tokens=rng.choice([0, 0, 0, 2]), min_length=rng.choice([0, 5, 9, 14]),
                        length_penalty=rng.choice([1.0, 0.8, 1.5, 0.5, 2.0]),
                        no_repeat_ngram_size=rng.choice([0, 0, 2, 3]), ban_newlines=False,
                        banned_token_ids=banned, batch_size=rng.randint(1, 9), score_length="total")
    padded_tok = tok
    if trial % 4 == 1:
        padded_tok = tiny_tokenizer()
        padded_tok.pad_token = "<unk>"
    return model, padded_tok, src, protocol


@pytest.mark.parametrize("trial", range(14))
def test_random_protocols_match_the_fork(tok, trial):
    torch.set_num_threads(1)
    model, padded_tok, src, protocol = _trial(tok, trial)
    ours = generate_ids(model, padded_tok, src, protocol, progress=False)
    assert ours == _fork(model, tok, src, protocol), protocol


def test_method_cases_finish_at_different_lengths():
    """Across the method cases, hypotheses end on EOS at several lengths and also run to the maximum, so the
    finished-hypothesis bookkeeping is exercised."""
    lengths = set()
    for method in (None, "prompt", "adapter"):
        *_, ours, _, _ = _methods_case(method)
        lengths |= {len(r) for r in ours}
    assert len(lengths) >= 3 and 15 in lengths and min(lengths) < 15


def test_total_and_generated_scores_choose_differently(tok):
    """The two ways of counting the length pick different hypotheses on some inputs of the random protocols
    (same protocol otherwise), so the test above tells them apart."""
    torch.set_num_threads(1)
    differ = 0
    for trial in range(6):
        model, padded_tok, src, protocol = _trial(tok, trial)
        total = dataclasses.replace(protocol, min_length=0)
        differ += sum(a != b for a, b in zip(
            generate_ids(model, padded_tok, src, total, progress=False),
            generate_ids(model, padded_tok, src, dataclasses.replace(total, score_length="generated"),
                         progress=False)))
    assert differ >= 3


def _peaked_tiny_gpt2(method: str | None, seed: int = 0, extra: tuple[str, ...] = ()):
    from bench.models import apply_method, load_model, make_method

    torch.manual_seed(seed)
    model, tok = load_model("tiny-gpt2", kind="generate")
    if method:
        apply_method(model, make_method(method, (["length=3"] if method in ("prefix", "prompt") else []) + list(extra)))
    with torch.no_grad():  # peaked distributions and a likely EOS, so that beams finish at different lengths
        nn.init.normal_(model.transformer.wte.weight, std=0.3)
        model.transformer.ln_f.bias.normal_(std=0.5)
        model.transformer.wte.weight[tok.eos_token_id] = model.transformer.ln_f.bias
        for p in model.parameters():
            if p.requires_grad:  # the method's own parameters away from their neutral init
                p.add_(torch.randn_like(p) * 0.3)
    return model, tok


def _e2e_like_sources(tok, n=9):
    texts = [" name : Alimentum | area : city centre | near : Yippee Noodle Bar"[:6 + 6 * i] for i in range(n)]
    return [tok(t, add_special_tokens=False)["input_ids"] + [tok.eos_token_id] for t in texts]


def _methods_case(method):
    model, tok = _peaked_tiny_gpt2(method)
    src = _e2e_like_sources(tok)
    protocol = dataclasses.replace(PREFIX_TUNING_SCRIPT, max_new_tokens=15, min_new_tokens=3, batch_size=4,
                                   banned_token_ids=(10, 44))   # "\n" and "," of the byte-level tokenizer
    ours = generate_ids(model, tok, src, protocol, progress=False)
    generated_protocol = dataclasses.replace(protocol, score_length="generated")
    generated = generate_ids(model, tok, src, generated_protocol, progress=False)
    return model, tok, src, protocol, ours, generated, generated_protocol


@pytest.mark.parametrize("method", [None, "prefix", "prompt", "lora", "adapter"])
def test_methods_match_the_fork(method):
    """The Prefix-Tuning script's protocol (min_length 5 over the whole length, two banned ids, whole-length
    scores) with the methods that hook attention (prefix), the inputs (soft prompt), LoRA and adapters; the
    same protocol with generated-length scores still equals batch-1 `model.generate`."""
    torch.set_num_threads(1)
    model, tok, src, protocol, ours, generated, generated_protocol = _methods_case(method)
    assert ours == _fork(model, tok, src, protocol)
    assert all(len(r) >= 3 for r in ours) and not any({10, 44} & set(r) for r in ours)
    assert generated == generate_ids(model, tok, src, one_at_a_time(generated_protocol), progress=False,
                                     engine="hf")


def test_min_length_counts_the_source(tok):
    """min_length counts source + generated tokens: with a long source it never binds, with a short one it
    blocks EOS until the total reaches it; both engines, batched with padding, as batch-1."""
    model = tiny_gpt2(len(tok), seed=0)
    with torch.no_grad():  # EOS is the most likely token everywhere
        model.transformer.ln_f.weight.zero_()
        model.transformer.ln_f.bias.normal_()
        model.transformer.wte.weight[tok.eos_token_id] = 10 * model.transformer.ln_f.bias
    src = [s[:k] for s, k in zip(sources(tok, n=4, seed=1) * 2, (1, 2, 3, 4, 6, 8, 9, 12))]
    src = [s for s in src if s]
    for engine, beams in (("own", 3), ("hf", 3), ("hf", 1)):
        protocol = Decoding(num_beams=beams, max_new_tokens=10, min_new_tokens=0, min_length=6, batch_size=8)
        rows = generate_ids(model, tok, src, protocol, progress=False, engine=engine)
        assert [len(r) for r in rows] == [max(0, 6 - len(s)) for s in src], engine
        assert rows == generate_ids(model, tok, src, one_at_a_time(protocol), progress=False, engine="hf")


def test_total_needs_our_search(tok):
    model = tiny_gpt2(len(tok), seed=0)
    total = dataclasses.replace(PREFIX_TUNING, score_length="total")
    assert pick_engine(model, total) == "own"
    with pytest.raises(ValueError, match="score_length='total' needs our beam search"):
        pick_engine(model, total, "hf")
    with pytest.raises(ValueError, match="score_length='total' needs our beam search"):
        pick_engine(model, total, use_cache=False)
    assert pick_engine(model, dataclasses.replace(total, num_beams=1)) == "hf"    # greedy: no scores
    with pytest.raises(ValueError, match="score_length"):
        Decoding(score_length="source")
    with pytest.raises(ValueError, match="banned_token_ids"):
        Decoding(banned_token_ids=(-1,))
    assert Decoding(banned_token_ids=[3, 4]).banned_token_ids == (3, 4)


class _Shift(MethodModule):
    """A method module that moves the real tokens' positions by `offset` (as prefix tuning in the released code):
    position ids the model builds itself (none given) start at `offset`; given ones are taken as they are."""

    def __init__(self, offset: int):
        super().__init__()
        self.position_offset = offset

    def pre_hook(self, module, args, kwargs):
        if kwargs.get("position_ids") is None:
            ids = kwargs.get("input_ids")
            kwargs = dict(kwargs, position_ids=torch.arange(ids.shape[1])[None, :] + self.position_offset)
        return args, kwargs


@pytest.mark.parametrize("score_length", ["generated", "total"])
def test_position_offset_reaches_the_positions_we_build(tok, score_length):
    model = tiny_gpt2(len(tok), seed=3)
    model.config.eos_token_id = tok.eos_token_id
    with torch.no_grad():
        model.transformer.wte.weight[tok.eos_token_id] *= 3
        model.transformer.wpe.weight.normal_(std=1.0)   # positions matter a lot
    src = sources(tok, n=7, seed=4)
    protocol = Decoding(num_beams=4, max_new_tokens=12, min_new_tokens=0, ban_newlines=False, batch_size=4,
                        score_length=score_length)
    plain = generate_ids(model, tok, src, protocol, progress=False)
    shift = _Shift(7)
    model.add_module("shift", shift)
    model.register_forward_pre_hook(shift.pre_hook, with_kwargs=True)
    assert position_offset(model) == 7
    ours = generate_ids(model, tok, src, protocol, progress=False)
    if score_length == "total":
        assert ours == _fork(model, tok, src, protocol)              # the fork's positions: the model's own
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert ours == generate_ids(model, tok, src, one_at_a_time(protocol), progress=False, engine="hf")
            assert ours == generate_ids(model, tok, src, protocol, progress=False, use_cache=False)
    assert ours != plain                                             # the shift changes what is decoded


@pytest.mark.parametrize("seed", range(6))
def test_finished_hypotheses_break_ties_as_the_fork(seed):
    """`bench.decode.finished.Total` against the fork's `BeamHypotheses` on many adds with tied scores (the
    newcomer equal to the worst is refused, the oldest of equal worst ones leaves, the latest of equal best
    ones is the answer), for several inputs at once."""
    from bench.decode.finished import Total
    from tests.fork_beam import Hypotheses

    rng = random.Random(seed)
    beams, inputs, lp = rng.randint(1, 4), 5, rng.choice([1.0, 0.5])
    fin = Total(inputs, beams, 1, lp, eos_id=0, device="cpu", source_lengths=torch.full((inputs,), 3))
    refs = [Hypotheses(beams, lp) for _ in range(inputs)]
    for k in range(1, 40):
        mask = torch.tensor([rng.random() < 0.7 for _ in range(inputs)])
        logprobs = [float(rng.choice([-1, -2, -3, -4])) for _ in range(inputs)]
        score = torch.tensor(logprobs, dtype=torch.float64) / 3 ** lp
        fin._add(mask, score, torch.full((inputs, 1), k), 1)          # token k identifies the hypothesis
        for i in range(inputs):
            if mask[i]:
                refs[i].add([7, 7, k], logprobs[i])
    for i, ref in enumerate(refs):
        filled = range(int(fin.count[i]))
        assert sorted((s, h[-1]) for s, h in ref.kept) == sorted(
            (float(fin.scores[i, j]), int(fin.tokens[i, j, 0])) for j in filled)
        assert fin.best(i) == [sorted(ref.kept, key=lambda x: x[0]).pop()[1][-1]]


@pytest.mark.parametrize("score_length", ["generated", "total"])
def test_prefix_with_the_released_codes_positions(score_length):
    """Prefix tuning with shift_positions (real tokens at L..L+T-1, as the released code): the positions our
    search builds add the prefix's offset, so batched decoding equals the fork's batch-1 search (which lets the
    model number positions itself) or batch-1 `model.generate` and decoding without a cache."""
    torch.set_num_threads(1)
    model, tok = _peaked_tiny_gpt2("prefix", seed=1, extra=("shift_positions=true",))
    assert position_offset(model) == 3
    with torch.no_grad():
        model.transformer.wpe.weight.normal_(std=0.6)   # positions matter
    src = _e2e_like_sources(tok)
    protocol = dataclasses.replace(PREFIX_TUNING_SCRIPT, max_new_tokens=12, min_new_tokens=3, batch_size=4,
                                   banned_token_ids=(10,), score_length=score_length)
    ours = generate_ids(model, tok, src, protocol, progress=False)
    if score_length == "total":
        assert ours == _fork(model, tok, src, protocol)
    else:
        assert ours == generate_ids(model, tok, src, one_at_a_time(protocol), progress=False, engine="hf")
        assert ours == generate_ids(model, tok, src, protocol, progress=False, use_cache=False)
    assert len({len(r) for r in ours}) > 2                  # hypotheses end at several lengths
    model.prefix_encoder.position_offset = 0                # the same weights numbered from 0 decode otherwise
    assert sum(a != b for a, b in zip(generate_ids(model, tok, src, protocol, progress=False), ours)) >= 3
