"""`peft-bench data TASK [--data-dir DIR] [--split S] [--json]`: load a task's splits and print their sizes.

Classification: examples per split and per label. Generation: inputs and references per split (WebNLG test
also per seen / unseen). A split absent from a local copy is shown as missing with the paths looked for.
"""
from __future__ import annotations

import json
from collections import Counter

from bench.data import MissingSplitError, load_split, locate_split
from bench.data.formats import format_of
from bench.tasks import TASKS, get_task


def _files_text(files) -> str:
    if len(files) == 1:
        return str(files[0])
    parents = sorted({str(p.parent.parent) for p in files})
    return f"{len(files)} files under {', '.join(parents)}"


def split_summary(task, split: str, data_dir) -> dict:
    """Counts of one split as a plain dict (what --json prints for it)."""
    try:
        files = locate_split(task, split, data_dir) if data_dir is not None else None
        examples = load_split(task, split, data_dir)
    except MissingSplitError as exc:
        return {"status": "missing", "looked_for": list(exc.looked_for)}
    out: dict = {"status": "ok"}
    out["source"] = _files_text(files) if files else (
        f"hub {task.hub_id} ({task.hub_config or 'default'}) split {task.hub_split(split)}")
    if task.kind == "generate":
        out["inputs"] = len(examples)
        out["references"] = sum(len(ex.references) for ex in examples)
        note = format_of(task).note(split)
        if note:
            out["note"] = note
        if split == "test" and task.subsets and any(ex.seen is not None for ex in examples):
            for name, flag in (("seen", True), ("unseen", False)):
                part = [ex for ex in examples if ex.seen is flag]
                out[name] = {"inputs": len(part), "references": sum(len(ex.references) for ex in part)}
    else:
        out["examples"] = len(examples)
        labels = [ex.label for ex in examples]
        if all(label is None for label in labels):
            out["labels"] = None  # unlabelled (test)
        elif task.kind == "classify":
            counts = Counter(labels)
            out["labels"] = {task.label_names[i]: counts[i] for i in range(task.num_labels)}
        else:
            values = [float(v) for v in labels]
            out["labels"] = {"min": min(values), "max": max(values), "mean": sum(values) / len(values)}
    return out


def _line(split: str, info: dict, width: int) -> str:
    head = f"  {split:<{width}}  "
    if info["status"] == "missing":
        return head + "missing: looked for " + " or ".join(info["looked_for"])
    if "inputs" in info:
        text = f"{info['inputs']:,} inputs, {info['references']:,} references"
        for name in ("seen", "unseen"):
            if name in info:
                text += f"; {name} {info[name]['inputs']:,} inputs / {info[name]['references']:,} refs"
    else:
        text = f"{info['examples']:,} examples"
        labels = info["labels"]
        if labels is None:
            text += " (unlabelled)"
        elif "mean" in labels:
            text += f" (score {labels['min']:g}..{labels['max']:g}, mean {labels['mean']:.3f})"
        else:
            text += " (" + ", ".join(f"{k} {v:,}" for k, v in labels.items()) + ")"
    if "note" in info:
        text += f" ({info['note']})"
    return head + text + f"  [{info['source']}]"


def run(args) -> int:
    task = get_task(args.task)
    splits = [task.check_split(args.split)] if args.split else list(task.splits)
    report = {
        "task": task.name,
        "kind": task.kind,
        "data_dir": str(args.data_dir) if args.data_dir else None,
        "splits": {s: split_summary(task, s, args.data_dir) for s in splits},
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        where = f"local copy {args.data_dir}" if args.data_dir else f"the Hub ({task.hub_id})"
        print(f"{task.name} ({task.kind}) from {where}")
        width = max(len(s) for s in splits)
        for split, info in report["splits"].items():
            print(_line(split, info, width))
    loaded = sum(info["status"] == "ok" for info in report["splits"].values())
    return 0 if loaded else 1


def register(parser) -> None:
    parser.add_argument("task", choices=list(TASKS), metavar="TASK", help=f"one of: {', '.join(TASKS)}")
    parser.add_argument("--data-dir", default=None,
                        help="folder with a local copy of the release files (default: load from the Hub)")
    parser.add_argument("--split", default=None, help="only this split (default: every split of the task)")
    parser.add_argument("--json", action="store_true", help="print the counts as JSON")
    parser.set_defaults(func=run)
