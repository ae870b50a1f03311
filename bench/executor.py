"""The local executor: every run in its own process, pinned to its device, dependencies first, resumable.

`run_grid(specs, slots=...)` keeps one worker process per slot busy (`--jobs N` on CPU: N slots, each pinned to
its share of the cores; `--devices 0,1 --jobs-per-device K`: K slots per GPU, each process seeing only its GPU
through CUDA_VISIBLE_DEVICES). A run starts once the run it starts from (init_from) is complete; the runs of a
failed dependency are not started (they count as failed and run on the next invocation).

Every run trains under its lock (bench.locks): a run locked by another grid process is left to it and checked
again when the lock is free (done: counted; its owner died: run here). Ctrl-C stops the workers (their runs
leave no rows.json and rerun next time; finished runs are kept). A worker dies with the grid process (Linux
parent-death signal), so a SIGKILLed grid leaves nothing training; run folders are written atomically, so a
rerun finds each run either complete or not started.

Each worker is a process forked from a fork server that imported torch once (bench.workers; exit 0 ok, 1 failed,
3 locked elsewhere, 5 forked after CUDA was initialised: rerun spawned, 130 interrupted); on a GPU every run has
its own worker, so a sticky CUDA error fails that run alone. `python -m bench.executor RESULTS_DIR DATA_DIR
MODEL_DIR < spec.json` runs one by hand.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from collections.abc import Callable

from bench.locks import Busy, is_locked, lock_path, run_lock
from bench.workers import BAD_FORK, BUSY, DONE, Worker, die_with_parent, spawn_worker, use_spawn
from bench.results import read_rows, run_dir, run_status
from bench.spec import RunSpec

POLL_S = 0.2


@dataclass(frozen=True)
class Slot:
    name: str                       # "cpu0", "cuda:1#0"
    env: dict = field(default_factory=dict)
    cores: tuple[int, ...] = ()     # CPU affinity of the worker (empty: not pinned)


def cpu_slots(jobs: int) -> list[Slot]:
    """`jobs` CPU workers, each pinned to its share of this process's cores and given that many threads
    (an OMP_NUM_THREADS set by the user wins)."""
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    per = max(1, len(cores) // jobs) if cores else 1
    out = []
    for i in range(jobs):
        mine = tuple(cores[i * per:(i + 1) * per]) if len(cores) >= jobs else ()
        threads = os.environ.get("OMP_NUM_THREADS") or str(per)
        out.append(Slot(f"cpu{i}", {"OMP_NUM_THREADS": threads, "CUDA_VISIBLE_DEVICES": ""}, mine))
    return out


def gpu_slots(devices: list[str], per_device: int) -> list[Slot]:
    """`per_device` workers on each GPU: `devices` are CUDA_VISIBLE_DEVICES entries (bench.devices maps
    `--devices` through the inherited list), numbered in PCI bus order as nvidia-smi does; each worker sees only
    its GPU, is pinned to its share of this process's cores and runs that many threads (an OMP_NUM_THREADS set
    by the user wins)."""
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    n = len(devices) * per_device
    per = max(1, len(cores) // n) if cores else 1
    out = []
    for i, (d, k) in enumerate((d, k) for d in devices for k in range(per_device)):
        mine = tuple(cores[i * per:(i + 1) * per]) if len(cores) >= n else ()
        env = {"CUDA_VISIBLE_DEVICES": str(d), "CUDA_DEVICE_ORDER": "PCI_BUS_ID", "PYTORCH_NVML_BASED_CUDA_CHECK": "1",
               "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS") or str(per)}
        out.append(Slot(f"cuda:{d}#{k}", env, mine))
    return out


@dataclass
class Running:
    spec: RunSpec
    slot: Slot
    proc: Worker
    start: float


def _dependency_state(spec: RunSpec, results_dir) -> str:
    if not spec.init_from:
        return "ok"
    return run_status(run_dir(results_dir, spec.preset, spec.init_from))


def run_grid(specs: list[RunSpec], *, slots: list[Slot], results_dir="results", data_dir=None, model_dir=None,
             predicted: dict[str, float] | None = None, on_event: Callable[[str, RunSpec, dict], None] | None = None,
             progress: bool = True) -> dict:
    """Run every spec not yet done across `slots`. Returns counts {ok, failed, skipped, blocked, elsewhere}."""
    from tqdm.auto import tqdm

    predicted = predicted or {}
    if threading.current_thread() is threading.main_thread():
        # Ctrl-C (SIGINT) stops the grid and its workers alike, also when the grid was started with SIGINT ignored
        # (a shell starts background jobs so, and Python then installs no KeyboardInterrupt handler): otherwise
        # a SIGINT to the process group stopped the workers' runs and the grid went on with the next ones.
        signal.signal(signal.SIGINT, signal.default_int_handler)
    todo = [s for s in specs if run_status(run_dir(results_dir, s.preset, s.run_id)) != "ok"]
    counts = {"ok": 0, "failed": 0, "skipped": len(specs) - len(todo), "blocked": 0, "elsewhere": 0}
    in_grid = {s.run_id for s in todo}
    waiting = list(todo)
    running: list[Running] = []
    free = list(slots)
    finished: set[str] = set()
    weight = {s.run_id: max(predicted.get(s.run_id, 1.0), 1e-3) for s in todo}
    bar = tqdm(total=round(sum(weight.values()), 1), desc="grid", unit="s", disable=not progress,
               bar_format="{l_bar}{bar}| {postfix} [{elapsed}<{remaining}]")

    def report(event: str, spec: RunSpec, info: dict) -> None:
        if on_event:
            on_event(event, spec, info)

    def show() -> None:
        bar.set_postfix_str(f"done {counts['ok']}, failed {counts['failed'] + counts['blocked']}, "
                            f"running {len(running)}, to do {len(waiting)}", refresh=True)

    def settle(spec: RunSpec, status: str, info: dict) -> None:
        finished.add(spec.run_id)
        counts[status] += 1
        bar.update(weight[spec.run_id])
        report(status, spec, info)

    try:
        while waiting or running:
            progressed = False
            for r in list(running):
                code = r.proc.poll()
                if code is None:
                    continue
                running.remove(r)
                free.append(r.slot)
                progressed = True
                seconds = time.perf_counter() - r.start
                if code == BAD_FORK:      # the fork server holds CUDA: this and later workers are spawned
                    use_spawn()
                    waiting.insert(0, r.spec)
                    report("respawn", r.spec, {"slot": r.slot.name})
                    continue
                if code == BUSY:          # another grid process holds it: check again later
                    waiting.append(r.spec)
                    report("elsewhere", r.spec, {"seconds": seconds})
                    continue
                if code == DONE:          # another grid process finished it first
                    finished.add(r.spec.run_id)
                    counts["elsewhere"] += 1
                    bar.update(weight[r.spec.run_id])
                    report("elsewhere-done", r.spec, {})
                    continue
                rows = read_rows(run_dir(results_dir, r.spec.preset, r.spec.run_id)) or []
                ok = rows and all(row.get("status") == "ok" for row in rows)
                settle(r.spec, "ok" if ok else "failed", {"seconds": seconds, "rows": rows, "slot": r.slot.name,
                                                          "exit": code})
            for spec in list(waiting):
                if not free:
                    break
                folder = run_dir(results_dir, spec.preset, spec.run_id)
                if run_status(folder) == "ok":            # finished by another process meanwhile
                    waiting.remove(spec)
                    counts["elsewhere"] += 1
                    finished.add(spec.run_id)
                    bar.update(weight[spec.run_id])
                    report("elsewhere-done", spec, {})
                    progressed = True
                    continue
                dep = _dependency_state(spec, results_dir)
                if dep != "ok":
                    if spec.init_from in in_grid and spec.init_from not in finished:
                        continue                           # its dependency has not finished yet
                    if dep == "todo" and is_locked(lock_path(results_dir, spec.preset, spec.init_from)):
                        continue                           # trained by another process right now
                    waiting.remove(spec)
                    settle(spec, "blocked", {"error": f"the run it starts from ({spec.init_from}) is {dep}"})
                    progressed = True
                    continue
                if is_locked(lock_path(results_dir, spec.preset, spec.run_id)):
                    continue
                waiting.remove(spec)
                slot = free.pop(0)
                running.append(Running(spec, slot, spawn_worker(spec, slot, results_dir, data_dir, model_dir),
                                       time.perf_counter()))
                report("start", spec, {"slot": slot.name})
                progressed = True
            show()
            if not progressed:
                time.sleep(POLL_S)
    except KeyboardInterrupt:
        for r in running:
            if r.proc.poll() is None:
                r.proc.send_signal(signal.SIGINT)
        deadline = time.time() + 30
        for r in running:
            try:
                r.proc.wait(timeout=max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                r.proc.kill()
                r.proc.wait()
        bar.close()
        counts["interrupted"] = len(running)
        raise GridInterrupted(counts) from None
    bar.close()
    return counts


class GridInterrupted(KeyboardInterrupt):
    def __init__(self, counts: dict):
        super().__init__("interrupted")
        self.counts = counts


def train_locked(spec: RunSpec, *, results_dir, data_dir=None, model_dir=None, progress=False):
    """("busy", None) when another live process holds the run's lock; ("done", rows) when the run was complete
    once the lock was ours; ("trained", rows) after run_one trained it here."""
    from bench.runner import run_one

    try:
        with run_lock(lock_path(results_dir, spec.preset, spec.run_id)):
            folder = run_dir(results_dir, spec.preset, spec.run_id)
            if run_status(folder) == "ok":
                return "done", read_rows(folder)
            return "trained", run_one(spec, results_dir=results_dir, data_dir=data_dir, model_dir=model_dir,
                                      progress=progress)
    except Busy:
        return "busy", None


def run_locked(spec: RunSpec, *, results_dir, data_dir=None, model_dir=None, progress=False) -> list[dict] | None:
    """run_one under the run's lock; None when another live process holds it."""
    state, rows = train_locked(spec, results_dir=results_dir, data_dir=data_dir, model_dir=model_dir,
                               progress=progress)
    return rows


def main(argv: list[str]) -> int:
    die_with_parent()
    signal.signal(signal.SIGTERM, signal.default_int_handler)   # a SIGTERM unwinds like Ctrl-C (no rows)
    results_dir, data_dir, model_dir = argv[0], argv[1] or None, argv[2] or None
    spec = RunSpec.from_dict(json.loads(sys.stdin.read()))
    try:
        state, rows = train_locked(spec, results_dir=results_dir, data_dir=data_dir, model_dir=model_dir)
    except KeyboardInterrupt:
        return 130
    if state != "trained":
        return BUSY if state == "busy" else DONE
    return 0 if all(r.get("status") == "ok" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
