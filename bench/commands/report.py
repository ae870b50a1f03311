"""`peft-bench report PRESET [--results results/] [--out reports/]`: tables and plots beside the papers'."""
from __future__ import annotations

from pathlib import Path


def run(args) -> int:
    from bench.report import build_report  # no torch: the report reads CSVs only

    summary = build_report(args.preset, results_dir=args.results, out_root=args.out, paper_csv=args.paper,
                           plots=not args.no_plots)
    if summary.empty:
        print(f"{args.preset}: no runs in {args.results / (args.preset + '.csv')}; wrote {summary.out_dir}/index.md")
        return 0
    print(f"{args.preset}: {summary.runs_complete} complete, {summary.runs_failed} failed, "
          f"{summary.runs_missing} missing, {summary.runs_superseded} superseded")
    for row in summary.unmatched:
        print(f"warning: no paper row in paper.csv for {row}: its cells show no paper value")
    print(f"wrote {len(summary.files)} files to {summary.out_dir}/ (start at index.md)")
    return 0


def register(parser) -> None:
    parser.add_argument("preset", help="preset name: reads RESULTS/PRESET.csv")
    parser.add_argument("--results", type=Path, default=Path("results"), help="results folder (default results/)")
    parser.add_argument("--out", type=Path, default=Path("reports"), help="reports folder (default reports/)")
    parser.add_argument("--paper", type=Path, default=None,
                        help="published numbers (default RESULTS/paper.csv, else the repository's results/paper.csv)")
    parser.add_argument("--no-plots", action="store_true", help="tables and index only")
    parser.set_defaults(func=run)
