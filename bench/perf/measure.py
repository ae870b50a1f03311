"""Measurement primitives of the performance benchmark (`peft-bench perf`): the machine, a matmul peak, the
training-FLOP estimate, per-step timing through the collate function, and peak memory.

How a training step is timed, the same way for both engines: the batch collate function is wrapped by a
`StepRecorder` that stamps the time and counts the examples, real (non-padding) tokens and padded tokens of
every batch. A loop asks for batch k+1 right after finishing step k (or one batch ahead, when a loader
prefetches; the spacing is then the same), so the interval between consecutive collate calls is one full step:
data, forward, backward, optimizer. The first `warmup` steps are dropped. On CUDA the recorder first waits for
the device (`sync_cuda`): the host queues kernels ahead of the GPU, and a loop that never waits (the suite's)
would otherwise be stamped before its steps ran, one that waits every step (Trainer's NaN check) after.

Wall-clock throughput is what the records call examples_per_s. On a machine shared with other jobs the
process CPU time of the same window is recorded too (`*_per_cpu_s`): it leaves out the time the process
waited for a core, so ratios measured on a busy machine are read from it (with one torch thread, and on an
idle machine, the two agree).

Peak memory: on CUDA `torch.cuda.max_memory_allocated`; on CPU the peak resident set size of the process,
sampled every 5 ms by a thread while the steps run (each case runs in its own process, so no other
case's memory is counted).
"""
from __future__ import annotations

import json
import os
import platform
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

# --------------------------------------------------------------------------------------------- the machine


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> tuple[float, float, float] | None:
    try:
        return tuple(round(x, 2) for x in os.getloadavg())  # type: ignore[return-value]
    except OSError:
        return None


def command_line(module: str, argv: list[str] | None) -> str:
    """How a benchmark was invoked, for its report: `python -m module` and its arguments (`argv`, or the
    process's own when it is None)."""
    return " ".join([f"python -m {module}", *(sys.argv[1:] if argv is None else argv)])


def add_training_options(parser, *, methods: str) -> None:
    """The options the training scripts of bench.perf share: what is trained, on how many threads, and where the
    report goes."""
    parser.add_argument("--methods", default=methods, help=f"comma-separated methods (default {methods})")
    parser.add_argument("--model", default="minilm-l6")
    parser.add_argument("--task", default="sst2")
    parser.add_argument("--data-dir", default=None, help="local release files (default: the Hub)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--examples", type=int, default=1280, help="seeded subsample of the train split")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--out", type=Path, default=None, help="JSON file for the report (default: not written)")


def write_report(path, report) -> None:
    """A benchmark's JSON report, written atomically (`bench.results.write_atomic`)."""
    from bench.results import write_atomic

    write_atomic(path, json.dumps(report, indent=1) + "\n")


def finish_report(report: dict, start: float, path) -> None:
    """The end of a benchmark's run: its wall time since `start` (`time.perf_counter()`) into the report, and the
    report written to `path` unless that is None."""
    report["wall_seconds"] = round(time.perf_counter() - start, 1)
    if path is not None:
        write_report(path, report)


def machine(device: str, threads: int) -> dict:
    """What the numbers were measured on."""
    import transformers

    info = {
        "device": device,
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": threads,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    try:
        import peft

        info["peft"] = peft.__version__
    except ImportError:
        info["peft"] = None
    return info


def matmul_peak_flops(device: str, n: int = 1024, repeats: int = 10, dtype=torch.float32) -> float:
    """Best achieved FLOP/s of an n x n x n matmul (2 n^3 FLOPs), best of `repeats` after one warm-up."""
    dev = torch.device(device)
    a = torch.randn(n, n, device=dev, dtype=dtype)
    b = torch.randn(n, n, device=dev, dtype=dtype)
    out = torch.empty(n, n, device=dev, dtype=dtype)
    torch.mm(a, b, out=out)
    best = float("inf")
    for _ in range(repeats):
        _sync(dev)
        start = time.perf_counter()
        torch.mm(a, b, out=out)
        _sync(dev)
        best = min(best, time.perf_counter() - start)
    return 2.0 * n ** 3 / best


PEAK_SIZES = {"cpu": (512, 1024, 2048), "cuda": (8192,)}   # a GPU needs a large product to reach its peak
PRECISION_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def matmul_peaks(device: str, precisions) -> dict[str, dict]:
    """{precision name: {"flops_per_s", "n"}}: the best n^3 matmul rate over PEAK_SIZES, per precision."""
    sizes = PEAK_SIZES.get(torch.device(device).type, (1024,))
    out = {}
    for name in precisions:
        rates = {n: matmul_peak_flops(device, n=n, dtype=PRECISION_DTYPES[name]) for n in sizes}
        n = max(rates, key=rates.get)
        out[name] = {"flops_per_s": rates[n], "n": n}
    return out


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


# ---------------------------------------------------------------------------------------------- FLOPs

FLOPS_FORMULA = ("FLOPs/step = (4 P + 2 P_train) x T: P = weights of every Linear/Conv1D a token passes through "
                 "(tied LM head included), P_train = the trainable ones among them, T = tokens processed "
                 "(padding included); 2 P T forward, 2 P T backward to the activations, 2 P_train T to the "
                 "weights (= 6 P T for full fine-tuning); attention scores, embeddings and the optimizer ignored")


def matmul_params(model: torch.nn.Module) -> tuple[int, int]:
    """(P, P_train): weights of Linear / Conv1D layers (and a tied LM head), all and trainable."""
    from transformers.pytorch_utils import Conv1D

    total = trainable = 0
    seen: set[int] = set()
    for module in model.modules():
        if isinstance(module, (torch.nn.Linear, Conv1D)):
            w = module.weight
            n = int(w.numel())
            total += n  # a tied LM head is a Linear over the embedding matrix: counted as a matmul
            if w.requires_grad and id(w) not in seen:
                trainable += n
            seen.add(id(w))
    return total, trainable


def step_flops(p_all: int, p_train: int, tokens: int) -> float:
    return float(4 * p_all + 2 * p_train) * tokens


# -------------------------------------------------------------------------------------- timing a loop


@dataclass
class StepRecorder:
    """Wraps a collate function; records (wall time, examples, real tokens, padded tokens, process CPU time)
    of every batch."""

    collate: object
    stamps: list = field(default_factory=list)
    sync_cuda: bool = False   # wait for the GPU before each stamp, so that a stamp closes the steps before it

    def __call__(self, *args, **kwargs):
        if self.sync_cuda:
            torch.cuda.synchronize()
        batch = self.collate(*args, **kwargs)
        mask = batch.get("attention_mask") if hasattr(batch, "get") else None
        ids = batch["input_ids"]
        real = int(mask.sum()) if mask is not None else int(ids.numel())
        self.stamps.append((time.perf_counter(), int(ids.shape[0]), real, int(ids.numel()), time.process_time()))
        return batch

    def window(self, warmup: int, steps: int) -> dict:
        """Throughput over steps warmup .. warmup+steps-1 (needs warmup+steps+1 stamps)."""
        need = warmup + steps + 1
        if len(self.stamps) < need:
            raise RuntimeError(f"the loop fetched {len(self.stamps)} batches; timing {steps} steps after "
                               f"{warmup} warm-up steps needs {need}")
        rows = self.stamps[warmup:warmup + steps + 1]
        seconds = rows[-1][0] - rows[0][0]
        batches = rows[:-1]
        examples = sum(r[1] for r in batches)
        real = sum(r[2] for r in batches)
        padded = sum(r[3] for r in batches)
        return {"seconds": seconds, "cpu_seconds": rows[-1][4] - rows[0][4], "examples": examples, "tokens": real,
                "padded_tokens": padded,
                "step_seconds": [round(b[0] - a[0], 4) for a, b in zip(rows, rows[1:])]}


# ---------------------------------------------------------------------------------------------- memory


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


class PeakMemory:
    """Context manager: peak memory (MiB) while the block runs. CUDA: max allocated; CPU: sampled peak RSS."""

    def __init__(self, device: str, interval_s: float = 0.005):
        self.device, self.interval = torch.device(device), interval_s
        self.peak_mb: float | None = None
        self.start_mb: float | None = None
        self.kind = "cuda_max_allocated" if self.device.type == "cuda" else "process_rss_peak"
        self._stop = threading.Event()
        self._peak = 0

    def _sample(self) -> None:
        while not self._stop.is_set():
            self._peak = max(self._peak, _rss_bytes())
            self._stop.wait(self.interval)

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            self.start_mb = torch.cuda.memory_allocated(self.device) / 2 ** 20
        else:
            self._peak = _rss_bytes()
            self.start_mb = self._peak / 2 ** 20
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            self.peak_mb = torch.cuda.max_memory_allocated(self.device) / 2 ** 20
        else:
            self._stop.set()
            self._thread.join()
            self._peak = max(self._peak, _rss_bytes())
            self.peak_mb = self._peak / 2 ** 20
        return False
