"""Reports: tables laid out like the papers and plots, from results/PRESET.csv and results/paper.csv.

Never imports torch or transformers (tested). Public API:

    from bench.report import build_report
    summary = build_report("minilm-glue", results_dir=Path("results"), out_root=Path("reports"))
"""
from bench.report.build import ReportSummary, build_report

__all__ = ["ReportSummary", "build_report"]
