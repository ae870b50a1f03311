"""Worker processes of the local executor: forked from a fork server that imported torch, transformers and the
runner once, so that a run's own process starts in milliseconds instead of the seconds those imports take (on a
loaded 2-core machine about 7 s, more than a smoke run trains). CUDA is initialised lazily, in the worker, after
its CUDA_VISIBLE_DEVICES is set. A GPU worker first checks that the server had not initialised CUDA before it
forked (torch marks such a child a "bad fork"); if it had, the worker exits BAD_FORK without running anything
and the executor spawns that run and every later one in a fresh interpreter instead.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys

from bench.spec import RunSpec

BUSY = 3            # worker exit: another process holds the run's lock
DONE = 4            # worker exit: the run was complete when the lock was ours (trained elsewhere)
BAD_FORK = 5        # worker exit: forked from a server whose imports initialised CUDA; nothing was run

PRELOAD = ["torch", "transformers", "transformers.activations", "accelerate", "methods", "bench.runner", "bench.train",
           "bench.evaluate", "bench.models", "bench.data.batching", "bench.scorers", "bench.method_config",
           "bench.trackers", "scipy.stats", "transformers.tokenization_utils_tokenizers",
           "transformers.convert_slow_tokenizer"]


def _preload() -> list[str]:
    """PRELOAD plus the transformers modelling module of every model type in the registry (imported lazily by
    transformers on first use: seconds per process)."""
    from bench.models import MODELS

    types = sorted({info.config["model_type"].replace("-", "_") for info in MODELS.values()})
    return PRELOAD + [f"transformers.models.{t}.modeling_{t}" for t in types]


_CONTEXT = None


def _context():
    global _CONTEXT
    if _CONTEXT is None:
        import multiprocessing

        # torch.cuda.is_available() in the server's imports asks NVML, not the CUDA driver, so that it creates no
        # CUDA context that every forked worker would inherit broken
        os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")
        _CONTEXT = multiprocessing.get_context("forkserver")
        _CONTEXT.set_forkserver_preload(_preload())
    return _CONTEXT


def use_spawn() -> None:
    """Start later workers with `spawn` (a fresh interpreter each: seconds of imports per run instead of a
    fork), after a forked worker found CUDA initialised in the fork server (an import that probes the GPU, as
    transformers does at import time when flash_attn, bitsandbytes or deepspeed are installed)."""
    global _CONTEXT
    import multiprocessing

    _CONTEXT = multiprocessing.get_context("spawn")


def _forked_after_cuda(env: dict) -> bool:
    """In a GPU worker: whether it was forked from a process that had initialised CUDA (then every CUDA call
    here fails with "initialization error"). Asked of torch without touching the device."""
    if not env.get("CUDA_VISIBLE_DEVICES"):
        return False
    import torch

    return bool(torch.cuda._is_in_bad_fork())


class Worker:
    """One run's process (a multiprocessing.Process with Popen's poll / send_signal / wait / kill)."""

    def __init__(self, process):
        self.process = process

    def poll(self):
        return self.process.exitcode

    def send_signal(self, sig) -> None:
        if self.process.pid:
            os.kill(self.process.pid, sig)

    def wait(self, timeout=None):
        self.process.join(timeout)
        if self.process.exitcode is None:
            raise subprocess.TimeoutExpired("worker", timeout)
        return self.process.exitcode

    def kill(self) -> None:
        self.process.kill()


def spawn_worker(spec: RunSpec, slot, results_dir, data_dir, model_dir) -> Worker:
    process = _context().Process(target=_worker, args=(spec.to_dict(), slot.env, slot.cores, str(results_dir),
                                                       data_dir and str(data_dir), model_dir and str(model_dir)),
                                 daemon=False)
    process.start()
    return Worker(process)


def _worker(spec_dict: dict, env: dict, cores: tuple, results_dir: str, data_dir, model_dir) -> None:
    die_with_parent()
    os.environ.update(env)
    if _forked_after_cuda(env):
        sys.exit(BAD_FORK)
    if cores and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, cores)
    import torch

    threads = os.environ.get("OMP_NUM_THREADS", "")
    if threads.isdigit() and int(threads) > 0:
        torch.set_num_threads(int(threads))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)   # a SIGTERM unwinds like Ctrl-C (no rows)
    spec = RunSpec.from_dict(spec_dict)
    try:
        from bench.executor import train_locked

        state, rows = train_locked(spec, results_dir=results_dir, data_dir=data_dir, model_dir=model_dir)
    except KeyboardInterrupt:
        sys.exit(130)
    if state != "trained":
        sys.exit(BUSY if state == "busy" else DONE)
    sys.exit(0 if all(r.get("status") == "ok" for r in rows) else 1)


def die_with_parent() -> None:
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)   # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
