"""NLG presets of Prefix-Tuning Table 1 (arXiv v1): GPT-2 Medium and Large on E2E, WebNLG, DART.

Source: shared/reference/recipes.md section 3. AdamW, linear schedule, no warmup, weight decay 0; selection on
dev; decoding from the task (beam 5, <= 100 new tokens, min 5, newlines banned). Mean of 3 seeds.
"""
from __future__ import annotations

from dataclasses import replace

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


def _rows(model: str, names: tuple[str, ...], *, large: bool) -> list[RunSpec]:
    out: list[RunSpec] = []
    for name in names:
        label, paper_method, params, method, config, table = ROWS[name]
        if large and name == "prefix":
            paper_method = "PREFIX"
        for task in TASKS:
            lr, epochs, batch = table[task]
            cfg = TrainConfig(lr=lr, epochs=epochs, batch_size=batch, max_length=MAX_LENGTH, eval_batch_size=32,
                              dropout=0.0 if method == "prefix" else None)
            method_config = dict(config)
            if method == "prefix":
                method_config["length"] = PREFIX_LENGTH[task]
            spec = RunSpec(model=model, task=task, method=method, method_config=method_config, train=cfg,
                           label=label, paper_method=paper_method, paper_params=params, recipe="paper", **TABLE)
            out += [replace(spec, seed=s) for s in SEEDS]
    return out


def nlg_gpt2_medium() -> list[RunSpec]:
    """GPT-2 Medium: FT, FT-top2, Adapter 3% / 0.1%, Prefix on E2E, WebNLG, DART; 3 seeds."""
    return _rows("gpt2-medium", ("ft", "ft-top2", "adapter-3", "adapter-0.1", "prefix"), large=False)


def nlg_gpt2_large() -> list[RunSpec]:
    """GPT-2 Large: FT and Prefix only (as in the table); 3 seeds."""
    return _rows("gpt2-large", ("ft", "prefix"), large=True)
