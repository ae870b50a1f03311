"""The local multi-process executor and the per-run locks, through `peft-bench grid smoke` subprocesses."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.locks import Busy, is_locked, run_lock

REPO = Path(__file__).resolve().parents[1]
SUBSET = ["--tasks", "sst2", "--methods", "full,bitfit,lora,prompt"]     # 4 runs of a few seconds each


def _grid(results: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "bench.cli", "grid", "smoke", *SUBSET, "--no-progress", "--results-dir",
            str(results), *extra]


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


def _values(results: Path) -> dict:
    out = {}
    for folder in (results / "runs" / "smoke").iterdir():
        if (folder / "rows.json").is_file():
            for r in json.loads((folder / "rows.json").read_text()):
                out[(r["run_id"], r["split"], r["metric"])] = r["value"]
    return out


def test_a_lock_is_exclusive_and_dies_with_its_owner(tmp_path):
    path = tmp_path / "r.lock"
    with run_lock(path):
        assert is_locked(path)
        try:
            with run_lock(path):
                raise AssertionError("a second holder got the lock")
        except Busy:
            pass
    assert not is_locked(path)
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from pathlib import Path; "
                               "from bench.locks import run_lock\nwith run_lock(Path(sys.argv[1])):\n"
                               " print('held', flush=True); time.sleep(60)", str(path)],
                              env=_env(), stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    assert is_locked(path)
    holder.kill()
    holder.wait()
    assert not is_locked(path)          # a dead owner's lock is free: the next process takes it over
    with run_lock(path):
        pass


@pytest.mark.multiprocess
def test_jobs_2_gives_the_rows_of_jobs_1(tmp_path):
    one = subprocess.run(_grid(tmp_path / "one"), cwd=REPO, env=_env(), capture_output=True, text=True, timeout=600)
    assert one.returncode == 0, one.stdout + one.stderr
    two = subprocess.run(_grid(tmp_path / "two", "--jobs", "2"), cwd=REPO, env=_env(), capture_output=True,
                         text=True, timeout=600)
    assert two.returncode == 0, two.stdout + two.stderr
    assert "4 ok, 0 failed" in two.stdout and "estimate on cpu" in two.stdout
    a, b = _values(tmp_path / "one"), _values(tmp_path / "two")
    assert len(a) == 4 and a.keys() == b.keys()
    for key in a:
        assert abs(float(a[key]) - float(b[key])) < 1e-9, key


@pytest.mark.multiprocess
def test_two_grid_processes_train_each_run_once(tmp_path):
    procs = [subprocess.Popen(_grid(tmp_path, *extra), cwd=REPO, env=_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for extra in ((), ("--jobs", "2"))]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    trained = [set(re.findall(r"ok in [\d.]+s: (\S+)", out)) for out in outs]
    assert not trained[0] & trained[1], outs          # no run trained by both
    assert len(trained[0] | trained[1]) == 4, outs    # every run trained once
    assert len(_values(tmp_path)) == 4


def _wait_for(cond, timeout=300):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return False


def _state(results: Path):
    runs = results / "runs" / "smoke"
    folders = [f for f in runs.iterdir() if f.is_dir()] if runs.is_dir() else []
    done = [f for f in folders if (f / "rows.json").exists()]
    started = [f for f in folders if (f / "spec.json").exists() and not (f / "rows.json").exists()]
    return done, started


def _interrupt_then_resume(tmp_path, sig):
    proc = subprocess.Popen(_grid(tmp_path, "--jobs", "2"), cwd=REPO, env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    assert _wait_for(lambda: len(_state(tmp_path)[0]) >= 1 and _state(tmp_path)[1]), "never mid-run"
    if sig == signal.SIGINT:
        os.killpg(proc.pid, signal.SIGINT)        # what Ctrl-C does: the whole foreground group
    else:
        os.kill(proc.pid, signal.SIGKILL)         # the grid process only; its workers die with it
    out = proc.communicate(timeout=120)[0]
    done, started = _state(tmp_path)
    before = {f.name: (f / "rows.json").read_bytes() for f in done}
    locks = list((tmp_path / "runs" / "smoke").glob("*.lock"))
    assert _wait_for(lambda: not any(is_locked(p) for p in locks), 60), "a worker outlived the grid"
    again = subprocess.run(_grid(tmp_path, "--jobs", "2"), cwd=REPO, env=_env(), capture_output=True, text=True,
                           timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"{len(before)} already done" in again.stdout
    for name, blob in before.items():               # finished runs kept, not redone
        assert (tmp_path / "runs" / "smoke" / name / "rows.json").read_bytes() == blob
    assert len(_values(tmp_path)) == 4 and not list(tmp_path.rglob("*.tmp"))
    return proc.returncode, out, started


@pytest.mark.multiprocess
def test_ctrl_c_stops_cleanly_and_the_rerun_finishes(tmp_path):
    code, out, interrupted = _interrupt_then_resume(tmp_path, signal.SIGINT)
    assert code == 130, out
    assert "finished runs kept" in out and interrupted


@pytest.mark.multiprocess
def test_sigkill_of_a_parallel_grid_loses_and_duplicates_nothing(tmp_path):
    code, _, _ = _interrupt_then_resume(tmp_path, signal.SIGKILL)
    assert code == -signal.SIGKILL      # a run being trained may still finish (atomically) or rerun: both are fine
