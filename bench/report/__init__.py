"""Reports: tables laid out like the papers and plots, from results/PRESET.csv and results/paper.csv.

Never imports torch or transformers (tested). Public API:

    from bench.report import build_report
    summary = build_report("minilm-glue", results_dir=Path("results"), out_root=Path("reports"))

The package imports its modules lazily so that `python -m bench.report.paper` runs cleanly.
"""
from __future__ import annotations

__all__ = ["ReportSummary", "build_report"]


def __getattr__(name: str):
    if name in __all__:
        from bench.report import build

        return getattr(build, name)
    raise AttributeError(f"module 'bench.report' has no attribute {name!r}")
