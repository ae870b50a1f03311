"""`peft-bench show PRESET`: the expanded grid (one line per table row x task, seeds folded), its recipe,
and how many runs are done, failed or still to run."""
from __future__ import annotations

from bench.commands.grid import add_selection, selection


def recipe_text(spec, labels: dict[str, str]) -> str:
    c = spec.train
    batch = f"{c.batch_size}x{c.grad_accum}" if c.grad_accum > 1 else str(c.batch_size)
    warm = f"warmup {c.warmup_steps} steps" if c.warmup_steps else f"warmup {c.warmup_ratio:g}"
    parts = [f"lr {c.lr:g}", f"bs {batch}", f"ep {c.epochs}", f"len {c.max_length}", warm,
             f"wd {c.weight_decay:g}", c.schedule]
    if c.label_smoothing:
        parts.append(f"ls {c.label_smoothing:g}")
    if c.max_train_examples:
        parts.append(f"train {c.max_train_examples} ex")
    if c.dropout is not None:
        parts.append(f"dropout {c.dropout:g}")
    if c.loss != "token_mean":
        parts.append(f"loss {c.loss}")
    parts.append("keep final epoch" if c.select == "final" else "keep best dev epoch")
    if spec.decoding:
        parts.append("decoding " + ",".join(f"{k}={v}" for k, v in sorted(spec.decoding.items())))
    if spec.init_from:
        parts.append(f"init from {labels.get(spec.init_from, spec.init_from)}")
    return ", ".join(parts)


def _non_default(spec) -> dict:
    """The method fields that differ from the method's defaults (the full config is in spec.json)."""
    from bench.method_config import resolve_config

    defaults = resolve_config(spec.method, {})
    return {k: v for k, v in spec.method_config.items() if defaults.get(k) != v}


def run(args) -> int:
    from bench.grid import plan
    from bench.results import run_dir, run_status

    specs = plan(args.preset, **selection(args))
    status = {s.run_id: run_status(run_dir(args.results_dir, s.preset, s.run_id)) for s in specs}
    labels = {s.run_id: f"{s.task} {s.display}" for s in specs}
    groups: dict[tuple, list] = {}
    for s in specs:
        groups.setdefault((s.model, s.display, s.task, s.method, str(sorted(s.method_config.items()))), []).append(s)
    totals = {k: sum(v == k for v in status.values()) for k in ("ok", "failed", "todo")}
    print(f"{args.preset}: {len(specs)} runs = {len(groups)} rows x seeds; done {totals['ok']}, "
          f"failed {totals['failed']}, to do {totals['todo']}")
    n_tasks = len({s.task for s in specs})
    n_rows = len({(s.model, s.display) for s in specs})
    print(f"{n_tasks} tasks x {n_rows} method rows; seeds per row: "
          f"{', '.join(sorted({str(len(v)) for v in groups.values()}))}")
    header = ("model", "row", "task", "method config", "seeds", "done", "recipe", "settings")
    lines = []
    for (model, label, task, method, _), group in groups.items():
        first = group[0]
        config = ",".join(f"{k}={v}" for k, v in sorted(_non_default(first).items())) or "defaults"
        seeds = ",".join(str(s.seed) for s in group)
        done = sum(status[s.run_id] == "ok" for s in group)
        failed = sum(status[s.run_id] == "failed" for s in group)
        done_text = f"{done}/{len(group)}" + (f" ({failed} failed)" if failed else "")
        lines.append((model, label, task, f"{method}({config})", seeds, done_text, first.recipe,
                      recipe_text(first, labels)))
    widths = [max(len(h), *(len(line[i]) for line in lines)) if lines else len(h) for i, h in enumerate(header)]
    for line in [header, *lines]:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(line[:-1])) + "  " + line[-1])
    return 0


def register(parser) -> None:
    add_selection(parser)
    parser.set_defaults(func=run)
