"""`peft-bench show PRESET`: the expanded grid (one line per table row x task, seeds folded), its recipe,
and how many runs are done, failed or still to run."""
from __future__ import annotations

from bench.commands.selection import add_selection, selection


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
    if c.train_split != "train":
        parts.append(f"trains on {c.train_split}")
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

    from bench.locks import is_locked, lock_path

    specs = plan(args.preset, **selection(args))
    status = {s.run_id: run_status(run_dir(args.results_dir, s.preset, s.run_id)) for s in specs}
    for s in specs:   # a run whose lock a live process holds is being trained now
        if status[s.run_id] != "ok" and is_locked(lock_path(args.results_dir, s.preset, s.run_id)):
            status[s.run_id] = "running"
    labels = {s.run_id: f"{s.task} {s.display}" for s in specs}
    groups: dict[tuple, list] = {}
    for s in specs:
        groups.setdefault((s.model, s.display, s.task, s.method, str(sorted(s.method_config.items()))), []).append(s)
    totals = {k: sum(v == k for v in status.values()) for k in ("ok", "failed", "running", "todo")}
    print(f"{args.preset}: {len(specs)} runs = {len(groups)} rows x seeds; done {totals['ok']}, "
          f"failed {totals['failed']}, running {totals['running']}, to do {totals['todo']}")
    print(_estimate(specs, status, args.device))
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


def _estimate(specs, status, device_name) -> str:
    """The plan's device time (bench.cost) and the ETA of what is not done yet."""
    try:
        from bench.commands.plan import estimate, summary_line

        dev, runs, _, total = estimate(specs, device_name)
    except Exception as exc:  # noqa: BLE001 - the table is shown without an estimate
        return f"(no estimate: {type(exc).__name__}: {exc})"
    left = sum(runs[s.run_id].seconds for s in specs if status[s.run_id] != "ok")
    return summary_line(dev, total, todo_seconds=left)


def register(parser) -> None:
    add_selection(parser)
    parser.add_argument("--device", default=None, help="device the estimate prices (default: this machine's)")
    parser.set_defaults(func=run)
