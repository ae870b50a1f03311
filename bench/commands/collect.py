"""`peft-bench collect PRESET`: results/PRESET.csv from the preset's finished runs (one row per run x split x
metric). Runs not in the preset's current definition are not included."""
from __future__ import annotations

from pathlib import Path

from bench.commands.selection import add_selection, selection


def run(args) -> int:
    from bench.grid import plan, planned
    from bench.results import collect

    chosen = selection(args)
    # the runs the grids of this preset last ran per table cell; replanned only with --set or before any grid
    specs = None if chosen["overrides"] else planned(args.preset, args.results_dir, tasks=chosen["tasks"],
                                                       methods=chosen["methods"], seeds=chosen["seeds"])
    if specs is None:
        specs = plan(args.preset, **chosen)
    out = Path(args.out or Path(args.results_dir) / f"{args.preset}.csv")
    counts = collect(specs, args.results_dir, out, data_dir=args.data_dir)
    print(f"{out}: {counts['rows']} rows from {counts['ok']} ok and {counts['failed']} failed runs; "
          f"{counts['todo']} of {len(specs)} runs not finished; held-out selection rows for {counts['heldout']} runs")
    return 0


def register(parser) -> None:
    add_selection(parser)
    parser.add_argument("--out", default=None, help="CSV path (default results/PRESET.csv)")
    parser.add_argument("--data-dir", default=None,
                        help="release files to rebuild the gold (labels, references) of run folders that do not "
                             "keep it, as in a clone: gold is not committed")
    parser.set_defaults(func=run)
