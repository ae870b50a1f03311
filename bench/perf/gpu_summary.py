"""What `make gpu-check` prints and summarises: suite vs Trainer per shape and method, with MFU and memory."""
from __future__ import annotations

from pathlib import Path


def summarize(train: list[dict], peak: float | None) -> list[dict]:
    """Suite vs baseline per shape and method, with MFU and memory."""
    out = []
    ok = [r for r in train if r.get("status") == "ok"]
    for model, method in dict.fromkeys((r["model"], r["method"]) for r in ok):
        pair = {r["engine"]: r for r in ok if r["model"] == model and r["method"] == method}
        row = {"model": model, "method": method}
        for engine, r in pair.items():
            row[f"{engine}_examples_per_s"] = r["examples_per_s"]
            row[f"{engine}_tokens_per_s"] = r["tokens_per_s"]
            row[f"{engine}_mfu"] = r["flops_per_s"] / peak if peak else None
            row[f"{engine}_peak_mem_mb"] = r["peak_mem_mb"]
        if "suite" in pair and "baseline" in pair:
            row["speedup"] = pair["suite"]["examples_per_s"] / pair["baseline"]["examples_per_s"]
        out.append(row)
    return out



def print_summary(report: dict, out: Path) -> None:
    tests = report["tests"]
    if tests:
        print(f"tests: {tests['passed']} passed, {len(tests['failed'])} failed, {tests['skipped']} skipped "
              f"({tests['seconds']} s)")
    peak = report["matmul_peak_bf16_flops_per_s"]
    if peak:
        print(f"bf16 matmul peak: {peak / 1e12:.1f} TFLOP/s")
    for row in report["train_summary"]:
        parts = [f"{row['model']} {row['method']}:"]
        for engine in ("suite", "baseline"):
            if f"{engine}_examples_per_s" in row:
                mfu = row[f"{engine}_mfu"]
                parts.append(f"{engine} {row[engine + '_examples_per_s']:.1f} ex/s"
                             f" (MFU {100 * mfu:.1f}%, {row[engine + '_peak_mem_mb']:.0f} MB)" if mfu is not None
                             else f"{engine} {row[engine + '_examples_per_s']:.1f} ex/s")
        if "speedup" in row:
            parts.append(f"suite/Trainer {row['speedup']:.2f}x")
        print(" ".join(parts))
    for model in dict.fromkeys(r.get("model") for r in report["decode"]):
        records = {r["engine"]: r for r in report["decode"] if r.get("status") == "ok" and r.get("model") == model}
        if "suite" not in records or "baseline" not in records:
            continue
        s, b = records["suite"], records["baseline"]
        print(f"decoding {s['model']}: ours {s['inputs_per_s']:.2f} inputs/s vs batch-1 {b['inputs_per_s']:.2f} = "
              f"{s['inputs_per_s'] / b['inputs_per_s']:.2f}x; identical rows {s['identical_rows']}/{s['inputs']}, "
              f"largest beam-score gap {s['max_score_gap']:.2g}, {s['rows_unexplained']} not explained by a "
              f"near-tie (tolerance {s['score_tolerance']:g})")
    for r in report["train"] + report["decode"]:
        if r.get("status") != "ok":
            print(f"FAILED {r.get('kind')} {r.get('model')} {r.get('engine')}/{r.get('method')}: {r.get('error')}")
    for s in report["skipped"]:
        print(f"SKIPPED {s['stage']}: {s['reason']}")
    print(f"{report['status']}: wrote {out} ({report.get('wall_seconds')} s)")
