"""`peft-bench plan PRESET [--device D] [--calibrate] [--json]`: what a grid costs before it starts.

Per table row (model x row label x task, seeds folded) and in total: runs, optimizer steps, training tokens,
evaluation passes, generated tokens, peak memory and predicted device-hours (bench/cost). No torch unless
--calibrate (or real data at hand with --data-dir, tokenised with the model's tokenizer).
"""
from __future__ import annotations

import json
import sys

from bench.commands.selection import add_selection, selection


def estimate(specs, device_name=None, *, data_dir=None, model_dir=None, calibrate=False, progress=None):
    """(device, per-run costs, row costs, total) for planned specs."""
    from bench.cost.calibrate import cached_shapes
    from bench.cost.calibrate import calibrate as run_calibration
    from bench.cost.device import device
    from bench.cost.estimate import grid_cost

    dev = device(device_name)
    shapes = run_calibration(specs, dev.name, progress=progress) if calibrate else cached_shapes(dev.name)
    measured = measured_lengths(specs, data_dir, model_dir) if data_dir else {}
    runs, rows, total = grid_cost(specs, dev, shapes, measured)
    return dev, runs, rows, total


def measured_lengths(specs, data_dir, model_dir=None) -> dict:
    """{(task, split, kind): Lengths} tokenised from the real data; {} where that cannot be done here."""
    from bench.cost.lengths import Lengths, measure, tokenizer_kind
    from bench.runner import eval_splits_of
    from bench.tasks import get_task

    out: dict = {}
    try:
        from bench.data import load_split
        from bench.models import load_tokenizer

        for spec in specs:
            kind = tokenizer_kind(spec.model)
            task = get_task(spec.task)
            for split in ("train", *eval_splits_of(spec, task)):
                if (spec.task, split, kind) in out:
                    continue
                tokenizer = load_tokenizer(spec.model, model_dir)
                entry = measure(load_split(task, split, data_dir), task, split, tokenizer)
                out[(spec.task, split, kind)] = Lengths(entry["n"], tuple(entry["q"]), tuple(entry.get("target", ())),
                                                        f"tokenised from {data_dir}")
    except Exception as exc:  # noqa: BLE001 - no tokenizer, no torch, no file here: the shipped statistics
        print(f"plan: lengths from the shipped statistics ({type(exc).__name__}: {exc})"[:300], file=sys.stderr)
        return {}
    return out


def _num(x: float) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= size:
            return f"{x / size:.1f}{unit}"
    return f"{x:.0f}"


def summary_line(dev, total, *, todo_seconds=None, jobs: int = 1) -> str:
    from bench.cost.estimate import hours

    text = (f"estimate on {dev.name}: {total.runs} runs, {hours(total.seconds)} device time "
            f"({total.seconds / 3600:.2f} device-hours), peak memory {total.peak_mem_gb:.1f} GB")
    if todo_seconds is not None:
        text += f"; still to run: {hours(todo_seconds / max(1, jobs))}" + (f" on {jobs} workers" if jobs > 1 else "")
    return text


def run(args) -> int:
    from bench.cost.estimate import hours
    from bench.grid import plan

    specs = plan(args.preset, **selection(args))

    def progress(i, n, shape):
        print(f"calibrating [{i + 1}/{n}] {shape}", file=sys.stderr, flush=True)

    dev, runs, rows, total = estimate(specs, args.device, data_dir=args.data_dir, model_dir=args.model_dir,
                                      calibrate=args.calibrate, progress=progress)
    if args.json:
        print(json.dumps({"preset": args.preset, "device": dev.name, "device_source": dev.source,
                          "rows": [vars(r) for r in rows], "total": vars(total),
                          "runs": {k: vars(v) for k, v in runs.items()}}, indent=1))
        return 0
    header = ("model", "row", "task", "runs", "steps", "train tokens", "eval passes", "gen tokens", "peak GB",
              "device time")
    lines = [(r.model, r.label, r.task, str(r.runs), _num(r.steps), _num(r.train_tokens), str(r.eval_passes),
              _num(r.generated_tokens), f"{r.peak_mem_gb:.1f}", hours(r.seconds)) for r in rows]
    lines.append(("total", "", "", str(total.runs), _num(total.steps), _num(total.train_tokens),
                  str(total.eval_passes), _num(total.generated_tokens), f"{total.peak_mem_gb:.1f}",
                  hours(total.seconds)))
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    for line in [header, *lines]:
        print("  ".join(c.ljust(widths[i]) if i < 3 else c.rjust(widths[i]) for i, c in enumerate(line)))
    print(summary_line(dev, total))
    print(f"device: {dev.source}")
    notes = sorted({n for c in runs.values() for n in c.notes if n != "calibrated"})
    calibrated = sum("calibrated" in c.notes for c in runs.values())
    if calibrated:
        print(f"{calibrated} of {len(runs)} runs priced from calibrated shapes")
    for note in notes:
        print(f"note: {note}")
    return 0


def register(parser) -> None:
    add_selection(parser)
    parser.add_argument("--device", default=None, help="cpu, a100, h100, h200, v100, l4, t4, rtx3090, rtx4090, a4000, "
                        "a10 (default: this machine's)")
    parser.add_argument("--calibrate", action="store_true",
                        help="time a few steps of each distinct shape here (random weights) and cache them")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--data-dir", default=None, help="tokenise the real data here for the lengths")
    parser.add_argument("--model-dir", default=None, help="local model copies (their tokenizers)")
    parser.set_defaults(func=run)
