"""`make gpu-check`: everything worth knowing about the CUDA path, in one run of at most 8 minutes on one
H100/H200, written to `reports/perf/gpu-<device>.json` (rewritten after every stage, so a run cut short keeps
what it measured):

1. the CUDA-marked tests (`pytest -m cuda tests/test_cuda.py`; they skip where CUDA is absent);
2. the bf16 matmul peak of the device (best 8192^3 product of ten), the denominator of every MFU figure;
3. training throughput, suite vs `Trainer` + `peft`, both in bf16 autocast, at equal batches (the suite's
   length-grouped dynamic batches, written out and read by Trainer in order; see `bench.perf.train`), on a
   RoBERTa-base shape (SST-2) and a GPT-2-medium shape (E2E), random weights from the registry's configs (no
   download), for full fine-tuning, LoRA, Houlsby adapters and prefix tuning (adapters have no peft equivalent;
   peft's prefix tuning does not run on RoBERTa under transformers 5: those are suite-only), with
   examples/s, tokens/s, MFU (training FLOP/s over the bf16 peak) and peak memory (max allocated);
4. decoding: our batched beam search against one `model.generate` call per input on CUDA at the GPT-2-medium
   and the SmolLM2-135M (Llama layout) shapes (`bench.perf.decode`, the decoding benchmark's own case, each
   model's own vocabulary size): the share of identical rows, and for rows
   that differ the gap of the two outputs' beam scores; it fails only on a gap no near-tie explains
   (`bench.perf.decode_compare`: cuBLAS results differ with the batch shape, so a near-tie may flip a token).

Each stage runs in one fresh process (torch imported once per shape, not once per case; on CUDA a case's peak
memory is the device's counter, reset per case), seeing only the GPU of `--device`, under a time guard
(`--stage-timeout-s`, within the `--budget-s`): a stage stopped by it keeps the cases it finished, and the JSON is
rewritten after every stage. `--dry-run` checks in seconds, before device minutes are spent, that the imports
work, which wheel versions are installed against the tested ones, and what the device is
(`bench.perf.gpu_dry`; on a machine without CUDA it says "no CUDA device").

Lengths are real: the examples come from `--data-dir` (the release files) or, without it, from the fixtures
shipped in the package; with random weights the tokenizer is the family's byte-level one (about four tokens
per BPE token) unless `--model-dir` holds the real model folders, whose tokenizers are then used.

`--tiny` runs the same stages on the CPU with the tiny models and a handful of steps, in seconds (the test
suite runs it, so that this script cannot rot between the rare runs on a GPU).

Run on a GPU machine with no network (its image has torch, accelerate, pytest, numpy, tokenizers,
huggingface_hub, safetensors, regex, typer, psutil; tested with transformers 5.24.0 and peft 0.21.2, carried
as wheels). Here, in the repository root, once:

    echo /.whl/ >> .git/info/exclude
    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \\
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \\
        -d .whl transformers==5.24.0 peft==0.21.2

(two pure-Python wheels, transformers-5.24.0-py3-none-any.whl and peft-0.21.2-py3-none-any.whl, 14 MB). Copy
the data it should read into an ignored folder of the checkout (`.gpudata/`, e.g. `glue/SST-2/train.tsv` and
`e2e/devset.csv` from the release files) or leave it out to use the shipped fixtures. There, carrying `.whl`
(and `.gpudata`):

    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \\
        .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD
    make gpu-check PY=python3 DATA_DIR=.gpudata    # or: python3 -m bench.perf.gpu --data-dir .gpudata
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
FIXTURES = REPO_ROOT / "bench" / "fixtures" / "smoke"
BUDGET_S = 480                    # 8 minutes: a stage that would start later than this is skipped
STAGE_TIMEOUT_S = 240             # a stage still running after this (or the budget's end) is stopped


@dataclass(frozen=True)
class Shape:
    """One model shape and the task it trains on."""

    model: str                    # a key of bench.models.MODELS
    task: str                     # its task (classification or generation)
    split: str                    # the split whose examples give the lengths
    batch_size: int               # examples per step (the papers' batch sizes for these models)
    max_length: int               # tokens per example at most
    paired: tuple[str, ...]       # methods run by both engines
    suite_only: tuple[str, ...]   # methods run by the suite only


SHAPES = (
    Shape("roberta-base", "sst2", "train", 32, 256, ("full", "lora"), ("adapter", "prefix")),
    Shape("gpt2-medium", "e2e", "dev", 8, 512, ("full", "lora", "prefix"), ("adapter",)),
)
TINY_SHAPES = (
    Shape("tiny-roberta", "sst2", "train", 4, 64, ("full", "lora"), ("adapter", "prefix")),
    Shape("tiny-gpt2", "e2e", "dev", 2, 256, ("full", "lora", "prefix"), ("adapter",)),
)
# decoded with random weights: GPT-2 medium (the Prefix-Tuning / LoRA E2E shape) and SmolLM2-135M (the Llama
# layout of smollm2-nlg: rotary positions for every beam, a cache at key-value-head width); tiny ones on the CPU
DECODE_MODELS = {"cuda": ("gpt2-medium", "smollm2-135m"), "cpu": ("tiny-gpt2", "tiny-llama")}


def device_slug(device: str) -> str:
    import torch

    if device.startswith("cuda"):
        name = torch.cuda.get_device_name(torch.device(device))
    else:
        name = "cpu-tiny"
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def train_cases(args, device: str) -> list:
    from bench.perf.train import TrainCase

    shapes = TINY_SHAPES if args.tiny else SHAPES
    steps, warmup = (1, 1) if args.tiny else (args.steps, args.warmup)
    cases = []
    for shape in shapes:
        common = dict(model=shape.model, task=shape.task, split=shape.split, data_dir=args.data_dir,
                      model_dir=args.model_dir, batch_size=shape.batch_size, steps=steps, warmup=warmup,
                      max_length=shape.max_length, examples=0, device=device, precision="bf16",
                      random_weights=not args.tiny, padding="dynamic", fast_path=device == "cpu")
        for method in shape.paired:
            cases += [TrainCase(engine="suite", method=method, **common),
                      TrainCase(engine="baseline", method=method, **common)]
        cases += [TrainCase(engine="suite", method=method, **common) for method in shape.suite_only]
    return cases


def stages(args, device: str, decodes) -> list[tuple[str, list]]:
    """(label, jobs) per stage: the first shape's training cases, one stage per decoding case, the other shapes'
    cases."""
    cases = train_cases(args, device)
    shapes = TINY_SHAPES if args.tiny else SHAPES
    out = []
    for i, shape in enumerate(shapes):
        mine = [("train", c) for c in cases if c.model == shape.model]
        out.append((f"train {shape.model}: {', '.join(f'{c.engine}/{c.method}' for _, c in mine)}", mine))
        if i == 0:
            out += [(f"decode {decode.model} beam search", [("decode", decode)]) for decode in decodes]
    return out


def run_tests(tiny: bool, timeout: float | None = None) -> dict:
    """The CUDA-marked tests in a subprocess; counts from its JUnit XML. Stopped after `timeout` seconds (the
    stage's time guard: then not ok, with what it printed)."""
    with tempfile.TemporaryDirectory() as tmp:
        xml_path = Path(tmp) / "junit.xml"
        cmd = [sys.executable, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider",
               f"--junitxml={xml_path}", str(REPO_ROOT / "tests" / "test_cuda.py")]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])))
        start = time.perf_counter()
        try:
            proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as stop:
            proc = subprocess.CompletedProcess(cmd, -9, _text(stop.stdout), _text(stop.stderr) +
                                               f"\ntime guard: stopped after {timeout:.0f} s")
        seconds = time.perf_counter() - start
        counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        failed = []
        if xml_path.exists():
            root = ET.parse(xml_path).getroot()
            suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
            for suite in suites:
                for key in counts:
                    counts[key] += int(suite.get(key, 0))
                for case in suite.iter("testcase"):
                    if case.find("failure") is not None or case.find("error") is not None:
                        failed.append(f"{case.get('classname')}::{case.get('name')}")
    ok = proc.returncode == 0 and not failed and (tiny or counts["skipped"] < counts["tests"])
    tail = (proc.stdout + proc.stderr).strip().splitlines()[-15:]
    return {"command": " ".join(cmd[1:]), "returncode": proc.returncode, "seconds": round(seconds, 1),
            "passed": counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"],
            "failed": failed, "skipped": counts["skipped"], "ok": ok, "output_tail": tail}


def _text(data) -> str:
    return data.decode(errors="replace") if isinstance(data, bytes) else (data or "")


def _write(report: dict, path: Path) -> None:
    from bench.perf.measure import write_report

    write_report(path, report)


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m bench.perf.gpu", description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="CPU, tiny models, a few steps (the test suite's run)")
    parser.add_argument("--device", default="cuda", help="CUDA device (default cuda; --tiny: cpu)")
    parser.add_argument("--data-dir", default=None, help="release files for the lengths (default: shipped fixtures)")
    parser.add_argument("--model-dir", default=None, help="local model folders: their tokenizers give the lengths")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per training case (default 20)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps before them (default 3)")
    parser.add_argument("--decode-inputs", type=int, default=32, help="E2E inputs decoded (default 32)")
    parser.add_argument("--budget-s", type=float, default=BUDGET_S,
                        help=f"skip what would start after this many seconds (default {BUDGET_S})")
    parser.add_argument("--stage-timeout-s", type=float, default=STAGE_TIMEOUT_S,
                        help=f"time guard per stage: stopped after this many seconds, the JSON keeps what it measured "
                             f"(default {STAGE_TIMEOUT_S})")
    parser.add_argument("--no-tests", action="store_true", help="skip the CUDA-marked tests")
    parser.add_argument("--dry-run", action="store_true",
                        help="in seconds, before spending device minutes: imports, wheel versions, the device")
    parser.add_argument("--out-dir", default=str(REPO_ROOT / "reports" / "perf"))
    parser.add_argument("--out", default=None, help="the JSON path (default OUT_DIR/gpu-<device>.json)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.dry_run:
        from bench.perf.gpu_dry import dry_run

        return dry_run(args.device)
    import torch

    from bench.perf.cases import run_case
    from bench.perf.decode import DecodeCase
    from bench.perf.gpu_summary import print_summary, summarize
    from bench.perf.isolate import run_cases
    from bench.perf.measure import load_average, machine, matmul_peak_flops

    device = "cpu" if args.tiny else args.device
    if device.startswith("cuda") and not torch.cuda.is_available():
        print(f"gpu-check: --device {device} but CUDA is not available here (use --tiny on a CPU)", file=sys.stderr)
        return 2
    if args.data_dir is None:
        args = replace_args(args, data_dir=str(FIXTURES))
    start = time.perf_counter()
    out = Path(args.out) if args.out else Path(args.out_dir) / f"gpu-{device_slug(device)}.json"
    report = {"kind": "gpu-check", "tiny": args.tiny, "machine": machine(device, torch.get_num_threads()),
              "data_dir": args.data_dir, "budget_s": args.budget_s, "load_average_start": load_average(),
              "tests": None, "matmul_peak_bf16_flops_per_s": None, "train": [], "train_summary": [],
              "decode": [], "skipped": [], "status": "running"}
    report["machine"]["cuda"] = torch.version.cuda
    if device.startswith("cuda"):
        props = torch.cuda.get_device_properties(torch.device(device))
        report["machine"].update(gpu_memory_mb=props.total_memory / 2 ** 20, sm_count=props.multi_processor_count,
                                 capability=f"{props.major}.{props.minor}")

    def elapsed() -> float:
        return time.perf_counter() - start

    def stage(label: str) -> bool:
        if elapsed() > args.budget_s:
            report["skipped"].append({"stage": label, "reason": f"time budget ({args.budget_s:.0f} s) spent"})
            _write(report, out)
            return False
        print(f"[{elapsed():6.1f} s] {label}", file=sys.stderr, flush=True)
        return True

    def guard() -> float:
        """Seconds the next stage may run: the per-stage guard, within what is left of the budget."""
        return max(1.0, min(args.stage_timeout_s, args.budget_s - elapsed()))

    if not args.no_tests and stage("CUDA-marked tests"):
        report["tests"] = run_tests(args.tiny, timeout=guard())
        _write(report, out)
    if stage("bf16 matmul peak"):
        report["matmul_peak_bf16_flops_per_s"] = matmul_peak_flops(device, n=256 if args.tiny else 8192,
                                                                   dtype=torch.bfloat16)
        _write(report, out)
    peak = report["matmul_peak_bf16_flops_per_s"]
    decodes = [DecodeCase(model=name, task="e2e", split="dev", data_dir=args.data_dir,
                          inputs=1 if args.tiny else args.decode_inputs, device=device, random_weights=True,
                          real_vocab=not args.tiny, precision="fp32", repeats=1,
                          decoding={"max_new_tokens": 20} if args.tiny else {})
               for name in DECODE_MODELS["cpu" if args.tiny else "cuda"]]
    for label, jobs in stages(args, device, decodes):
        if not stage(label):
            continue
        if args.tiny:                  # in this process: the test suite's run, seconds
            results = [run_case(kind, case, 0, isolate=False) for kind, case in jobs]
        else:                          # one process per stage: torch imported once per shape, not per case
            results = run_cases(jobs, 0, timeout=guard())
        for (kind, _), records in zip(jobs, results):
            for r in records:
                if kind == "train" and r.get("status") == "ok" and peak:
                    r["mfu"] = r["flops_per_s"] / peak
            report[kind].extend(records)
        report["train_summary"] = summarize(report["train"], peak)
        _write(report, out)
    failed = [r for r in report["train"] + report["decode"] if r.get("status") != "ok"]
    tests_ok = report["tests"] is None or report["tests"]["ok"]
    # decoding: a row that differs from batch-1 generate fails only when no near-tie of beam scores explains it
    decode_ok = all(r.get("rows_unexplained") == 0 for r in report["decode"] if r.get("status") == "ok")
    report.update(wall_seconds=round(elapsed(), 1), load_average_end=load_average(),
                  status="ok" if tests_ok and not failed and decode_ok and not report["skipped"] else "incomplete")
    _write(report, out)
    print_summary(report, out)
    return 0 if report["status"] == "ok" else 1


def replace_args(args, **changes):
    return argparse.Namespace(**{**vars(args), **changes})


if __name__ == "__main__":
    sys.exit(main())
