"""Benchmark cases in fresh processes: each case's process sees only its device, and a time guard stops a
process that runs too long while keeping the records it finished."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def _load() -> float | None:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def _precision_name(setting) -> str | None:
    from bench.precision import precision_name

    return None if setting is None else precision_name(setting)


def case_env(device: str, threads: int, environ=None) -> tuple[dict, str]:
    """The environment of a case's process and the device name it uses there. A CUDA case sees only its GPU
    (`cuda:1` -> CUDA_VISIBLE_DEVICES = the second entry of the inherited list, else nvidia-smi's GPU 1, in PCI
    bus order) and addresses it as cuda:0: Trainer wraps no DataParallel over GPUs it was not given, and the
    memory counters read are that GPU's."""
    from bench.devices import visible_entries

    environ = dict(os.environ if environ is None else environ)
    environ["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if threads:
        environ["OMP_NUM_THREADS"] = str(threads)
    if not device.startswith("cuda"):
        return environ, device
    index = int(device.split(":", 1)[1]) if ":" in device else 0
    inherited = visible_entries(environ)
    if inherited is not None and index >= len(inherited):
        raise ValueError(f"--device {device}: CUDA_VISIBLE_DEVICES={','.join(inherited)!r} has {len(inherited)} GPU(s)")
    environ["CUDA_VISIBLE_DEVICES"] = inherited[index] if inherited is not None else str(index)
    environ["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
    return environ, "cuda:0"


def run_cases(jobs: list[tuple[str, object]], threads: int, *, timeout: float | None = None,
              _single: bool = False) -> list[list[dict]]:
    """Run cases of one device one after another in one fresh process (on CUDA, where each case's peak memory is
    the device's own counter); per job its records, or one failed record (the process's error, or the time
    guard's when `timeout` seconds passed first: the jobs finished by then keep their records)."""
    device = str(getattr(jobs[0][1], "device", "cpu"))
    env, inner = case_env(device, threads)
    payload = [{"kind": kind, "case": dict(asdict(case), device=inner)} for kind, case in jobs]
    with tempfile.TemporaryDirectory() as tmp:
        job, out = Path(tmp) / "case.json", Path(tmp) / "out.json"
        body = {"threads": threads, **(payload[0] if _single else {"jobs": payload})}
        job.write_text(json.dumps(body))
        load_before = _load()
        try:
            proc = subprocess.run([sys.executable, "-m", "bench.perf.worker", str(job), str(out)], env=env,
                                  capture_output=True, text=True, timeout=timeout)
            error = "" if proc.returncode == 0 else \
                " | ".join((proc.stderr or proc.stdout or "").strip().splitlines()[-3:]) or f"exit {proc.returncode}"
        except subprocess.TimeoutExpired:
            error = f"time guard: still running after {timeout:.0f} s, stopped"
        load_after = _load()
        done = json.loads(out.read_text()) if out.exists() else []
    if _single:
        done = [done] if done else []
    results = []
    for k, (kind, case) in enumerate(jobs):
        if k < len(done):
            records = done[k]
            for record in records:
                record.update(status="ok", load_avg_1m_before_after=[load_before, load_after], isolated_process=True)
                if inner != device:        # the GPU asked for, seen as cuda:0 inside
                    record.update(device=device, cuda_visible_devices=env["CUDA_VISIBLE_DEVICES"])
                    record.get("case", {})["device"] = device
            results.append(records)
        else:
            results.append([_failed(kind, case, error or "the process ended before this case")])
    return results


def _failed(kind: str, case, error: str) -> dict:
    fields = asdict(case)
    return {"kind": kind, "engine": fields.get("engine", "suite"), "method": fields.get("method", "none"),
            "padding": fields.get("padding"), "model": fields.get("model"), "task": fields.get("task"),
            "precision": _precision_name(fields.get("precision")), "status": "failed", "error": error,
            "case": fields}
