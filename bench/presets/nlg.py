"""NLG presets of Prefix-Tuning Table 1 (arXiv v1): GPT-2 Medium and Large on E2E, WebNLG, DART.

Source: shared/reference/recipes.md section 3 (AdamW, linear schedule, no warmup, weight decay 0; the
hyperparameter table, which the released README commands agree with). Two variants, each row labelled:

* recipe "script" (`nlg-gpt2-medium`, `nlg-gpt2-large`): as XiangLi1999/PrefixTuning's gpt2/train_e2e.py and
  gen.py ran it. Prefix rows train on the script's default objective (`--objective_mode 1`: each sentence's
  summed token losses, averaged over the batch); the fine-tuning, top-2 and adapter rows on the plain token mean
  (the fork's `finetune_mode` branch). Every row keeps its final state (the script saves the last checkpoint;
  its dev pass every 5,000 steps only logged the dev loss), so dev is decoded once, at the end. Decoding as
  run_generation.py called `generate` (`PREFIX_TUNING_SCRIPT`): beam 5, at most 100 new tokens, min_length 5
  counting the source (it never binds), exactly GPT-2's tokens 628 and 198 ("\\n\\n", "\\n") banned, hypotheses
  scored by their whole length. Prefix rows run with every GPT-2 dropout off (`--use_dropout no`, prefix dropout
  0) and the real tokens at positions L.. after the prefix (Prefix.shift_positions, the default).
* recipe "own" (`nlg-gpt2-medium-own`, `nlg-gpt2-large-own`): the same table with our choices: the token-mean
  loss for every method, the best epoch on dev BLEU, at least 5 new tokens, every newline-bearing token banned,
  hypotheses scored by their generated length (today's transformers).

Mean of 3 seeds.
"""
from __future__ import annotations

from dataclasses import fields, replace

from bench.decode.protocol import PREFIX_TUNING, PREFIX_TUNING_SCRIPT, Decoding
from bench.spec import RunSpec, TrainConfig

TASKS = ("e2e", "webnlg", "dart")
SEEDS = (0, 1, 2)
TABLE = dict(paper_table="prefix-tuning/Table 1", paper_version="arxiv-v1")
MAX_LENGTH = 512                      # tokens of source + separator + target (no E2E/WebNLG/DART pair is longer)

# method row -> (label, paper_method, paper_params, method, config, {task: (lr, epochs, batch)})
# Adapters: Lin et al.'s after each block, initialised as the released code's GPT2LMHeadModelAdapter was (its
# fork's _init_weights: every adapter Linear N(0, 0.02^2), biases 0, the LayerNorm at 1 / 0).
ROWS = {
    "ft": ("FT", "FINE-TUNE", "100%", "full", {},
           {"e2e": (5e-5, 5, 10), "webnlg": (1e-5, 10, 6), "dart": (1e-5, 10, 6)}),
    "ft-top2": ("FT-top2", "FT-TOP2", "", "topk", {"k": 2},
                {"e2e": (5e-5, 5, 10), "webnlg": (5e-5, 10, 9), "dart": (5e-5, 5, 5)}),
    "adapter-3": ("Adapter 3% (b=224)", "ADAPTER(3%)", "3%", "adapter",
                  {"kind": "lin", "bottleneck": 224, "init": "bert"},
                  {"e2e": (5e-5, 5, 5), "webnlg": (5e-5, 5, 5), "dart": (5e-5, 5, 5)}),
    "adapter-0.1": ("Adapter 0.1% (b=6)", "ADAPTER(0.1%)", "0.1%", "adapter",
                    {"kind": "lin", "bottleneck": 6, "init": "bert"},
                    {"e2e": (8e-5, 10, 5), "webnlg": (5e-5, 10, 5), "dart": (8e-5, 5, 5)}),
    # shift_positions: the released code's GPT-2 numbers the real tokens L..L+T-1 after the prefix
    "prefix": ("Prefix (0.1%)", "PREFIX(0.1%)", "0.1%", "prefix", {"mlp_hidden": 512, "shift_positions": True},
               {"e2e": (8e-5, 5, 10), "webnlg": (5e-5, 5, 5), "dart": (5e-5, 10, 5)}),
}
PREFIX_LENGTH = {"e2e": 5, "webnlg": 5, "dart": 10}

# run_generation.py's beam call (gen.py passes --length 100): max_length = 100 + source length, min_length=5
# counting the source, bad_words_ids=[[628], [198]] (GPT-2's "\n\n" and "\n"), num_beams=5, length penalty and
# early stopping from the config (1.0, False), hypotheses scored over their whole length (the transformers 3 fork):
# bench.decode.protocol.PREFIX_TUNING_SCRIPT. The runs keep the task's Decoding and override what differs.
SCRIPT_DECODING = {f.name: getattr(PREFIX_TUNING_SCRIPT, f.name) for f in fields(Decoding)
                   if getattr(PREFIX_TUNING_SCRIPT, f.name) != getattr(PREFIX_TUNING, f.name)}
# The loss each row's tuning mode gets in the released code (modeling_gpt2.py: prefix tuning reads
# config._objective_mode, fine-tuning / top-k / adapters take CrossEntropyLoss()'s token mean).
SCRIPT_LOSS = {"prefix": "sentence_sum"}

VARIANTS = ("script", "own")


def _train(method: str, lr: float, epochs: int, batch: int, recipe: str) -> TrainConfig:
    cfg = TrainConfig(lr=lr, epochs=epochs, batch_size=batch, max_length=MAX_LENGTH, eval_batch_size=32,
                      dropout=0.0 if method == "prefix" else None)
    if recipe == "script":
        cfg = replace(cfg, loss=SCRIPT_LOSS.get(method, "token_mean"), select="final", eval_every_epoch=False)
    return cfg


def _rows(model: str, names: tuple[str, ...], *, large: bool, recipe: str) -> list[RunSpec]:
    if recipe not in VARIANTS:
        raise ValueError(f"NLG recipe {recipe!r}: expected one of {', '.join(VARIANTS)}")
    out: list[RunSpec] = []
    for name in names:
        label, paper_method, params, method, config, table = ROWS[name]
        if large and name == "prefix":
            paper_method = "PREFIX"
        for task in TASKS:
            lr, epochs, batch = table[task]
            method_config = dict(config)
            if method == "prefix":
                method_config["length"] = PREFIX_LENGTH[task]
            spec = RunSpec(model=model, task=task, method=method, method_config=method_config,
                           train=_train(method, lr, epochs, batch, recipe),
                           decoding=dict(SCRIPT_DECODING) if recipe == "script" else {},
                           label=label, paper_method=paper_method, paper_params=params, recipe=recipe, **TABLE)
            out += [replace(spec, seed=s) for s in SEEDS]
    return out


def nlg_gpt2_medium(recipe: str = "script") -> list[RunSpec]:
    """GPT-2 Medium: FT, FT-top2, Adapter 3% / 0.1%, Prefix on E2E, WebNLG, DART; 3 seeds."""
    return _rows("gpt2-medium", ("ft", "ft-top2", "adapter-3", "adapter-0.1", "prefix"), large=False,
                 recipe=recipe)


def nlg_gpt2_large(recipe: str = "script") -> list[RunSpec]:
    """GPT-2 Large: FT and Prefix only (as in the table); 3 seeds."""
    return _rows("gpt2-large", ("ft", "prefix"), large=True, recipe=recipe)
