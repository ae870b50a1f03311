"""SIGKILL in the middle of `peft-bench grid smoke`, then a rerun: every run exactly once, nothing half-written."""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _grid(results: Path) -> list[str]:
    return [sys.executable, "-m", "bench.cli", "grid", "smoke", "--tasks", "sst2,stsb", "--methods",
            "full,bitfit,lora,adapter", "--no-progress", "--results-dir", str(results)]


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


def test_sigkill_then_rerun_completes_every_run_exactly_once(tmp_path):
    runs = tmp_path / "runs" / "smoke"
    proc = subprocess.Popen(_grid(tmp_path), cwd=REPO, env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    killed_during_a_run = False
    try:
        while time.time() < deadline and proc.poll() is None:
            folders = list(runs.glob("*")) if runs.is_dir() else []
            done = [f for f in folders if (f / "rows.json").exists()]
            started = [f for f in folders if (f / "spec.json").exists() and not (f / "rows.json").exists()]
            if len(done) >= 2 and started:
                killed_during_a_run = True
                break
            time.sleep(0.05)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert killed_during_a_run, "the grid finished or stalled before it could be killed mid-run"
    before = {f.name: (f / "rows.json").read_bytes() for f in runs.iterdir() if (f / "rows.json").exists()}
    interrupted = [f.name for f in runs.iterdir() if (f / "spec.json").exists() and not (f / "rows.json").exists()]
    assert before and interrupted
    for blob in before.values():                  # complete rows files only
        assert all(r["status"] == "ok" for r in json.loads(blob))

    out = subprocess.run(_grid(tmp_path), cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"{len(before)} already done" in out.stdout
    collected = subprocess.run([sys.executable, "-m", "bench.cli", "collect", "smoke", "--tasks", "sst2,stsb",
                                "--methods", "full,bitfit,lora,adapter", "--results-dir", str(tmp_path)],
                               cwd=REPO, env=_env(), capture_output=True, text=True, timeout=120)
    assert collected.returncode == 0, collected.stderr

    # finished runs were not redone; the interrupted one ran again, to the end
    for name, blob in before.items():
        assert (runs / name / "rows.json").read_bytes() == blob
    assert all((runs / name / "rows.json").exists() for name in interrupted)
    assert not list(tmp_path.rglob("*.tmp"))
    with open(tmp_path / "smoke.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    per_run = Counter(r["run_id"] for r in rows)
    assert len(per_run) == 2 * 5                   # sst2, stsb x full, bitfit, lora, adapter H and P
    keys = Counter((r["run_id"], r["split"], r["metric"], r["selection"]) for r in rows)
    assert set(keys.values()) == {1}
    assert all(r["status"] == "ok" and r["value"] for r in rows)
