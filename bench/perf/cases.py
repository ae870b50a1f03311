"""The performance benchmark's plan (which cases run), its runner (each case in a fresh process, suite and
baseline interleaved so that a change in machine load hits both sides of a ratio alike) and its summary
(the side-by-side ratios printed by `peft-bench perf`)."""
from __future__ import annotations

import dataclasses
import os
import statistics
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.perf.decode import DecodeCase
from bench.perf.train import TrainCase

REPO_ROOT = Path(__file__).resolve().parents[2]

# classification (MiniLM on SST-2): every pair runs under both engines and both padding policies
CLASSIFY_PAIRED = ("full", "lora", "prompt")
# classification, suite only (no Trainer + peft equivalent that runs on BERT in this transformers version)
CLASSIFY_SUITE_ONLY = ("bitfit", "adapter", "prefix", "topk")
# GPT-2 training (generation task): prefix tuning is the method peft runs on GPT-2 only
GENERATE_PAIRED = ("prefix",)


@dataclass(frozen=True)
class Plan:
    model: str = "minilm-l6"
    task: str = "sst2"
    gen_model: str = "tiny-gpt2"
    gen_task: str = "e2e"
    gen_split: str = "dev"           # E2E's train file is not in every local copy; speed does not depend on it
    data_dir: str | None = None
    model_dir: str | None = None
    batch_size: int = 32             # what minilm-glue trains SST-2 with
    steps: int = 8                   # timed steps of a max_length case (every batch has the same shape)
    dynamic_steps: int = 32          # timed steps of a dynamic case (batch shapes vary: more steps, same cost)
    warmup: int = 2
    max_length: int = 128
    gen_max_length: int = 512         # the task's max length (E2E with a byte-level tokenizer runs to ~300 tokens)
    examples: int = 2000
    decode_inputs: int = 64
    device: str = "cpu"
    threads: int = 1
    generation_training: bool = True
    suite_only: bool = True
    repeats: int = 2                 # runs of each paired training case (ABBA order); the fastest is kept
    decode_only: bool = False        # only the decoding case
    random_weights: bool = False     # decode with gen_model's architecture, random weights, byte-level tokenizer
    precisions: tuple[str, ...] = () # "no" (fp32) and/or "bf16"; () = fp32, and bf16 where the device has it
    decode: bool = True              # the decoding case (False: training cases only)


def plan_precisions(plan: Plan) -> tuple[str, ...]:
    """The precisions the training cases run in; the last is the main one (max_length cases run only in it)."""
    if plan.precisions:
        return tuple(plan.precisions)
    from bench.precision import resolve_precision

    return ("no", "bf16") if resolve_precision("auto", plan.device) == "bf16" else ("no",)


def train_cases(plan: Plan) -> list[TrainCase]:
    """Paired methods: dynamic padding in every precision, max_length in the main one, both engines; methods
    without a baseline: dynamic padding in every precision."""
    common = dict(data_dir=plan.data_dir, model_dir=plan.model_dir, batch_size=plan.batch_size,
                  warmup=plan.warmup, examples=plan.examples, device=plan.device)
    steps = {"max_length": plan.steps, "dynamic": plan.dynamic_steps}
    precisions = plan_precisions(plan)
    policies = [("max_length", precisions[-1])] + [("dynamic", p) for p in precisions]
    classify = dict(model=plan.model, task=plan.task, max_length=plan.max_length)
    generate = dict(model=plan.gen_model, task=plan.gen_task, split=plan.gen_split, max_length=plan.gen_max_length)
    cases = []
    groups = [(CLASSIFY_PAIRED, classify)] + ([(GENERATE_PAIRED, generate)] if plan.generation_training else [])
    for methods, where in groups:
        for method in methods:
            for padding, precision in policies:
                for engine in ("suite", "baseline"):
                    cases.append(TrainCase(engine=engine, method=method, padding=padding, precision=precision,
                                           steps=steps[padding], **where, **common))
        if plan.suite_only and methods is CLASSIFY_PAIRED:
            for method in CLASSIFY_SUITE_ONLY:
                for precision in precisions:
                    cases.append(TrainCase(engine="suite", method=method, padding="dynamic", precision=precision,
                                           steps=steps["dynamic"], **where, **common))
    return cases


def decode_case(plan: Plan) -> DecodeCase:
    return DecodeCase(model=plan.gen_model, task=plan.gen_task, split=plan.gen_split, data_dir=plan.data_dir,
                      model_dir=plan.model_dir, inputs=plan.decode_inputs, device=plan.device,
                      random_weights=plan.random_weights)


def run_case(kind: str, case, threads: int, *, isolate: bool = True, timeout: float | None = None) -> list[dict]:
    """Run one case, in a fresh Python process unless `isolate` is False (then its memory figures include
    whatever earlier cases left in this process). A failure becomes one record with status=failed and the error;
    so does a case still running after `timeout` seconds (the time guard)."""
    if not isolate:
        from bench.perf.worker import run_job

        load_before = _load()
        records = run_job(kind, asdict(case))
        for record in records:
            record["status"] = "ok"
            record["load_avg_1m_before_after"] = [load_before, _load()]
            record["isolated_process"] = False
        return records
    from bench.perf.isolate import run_cases

    return run_cases([(kind, case)], threads, timeout=timeout, _single=True)[0]


def _precision_name(setting) -> str | None:
    from bench.precision import precision_name

    return None if setting is None else precision_name(setting)


def _pair_key(case) -> tuple:
    return (case.model, case.method, case.padding, case.precision)


def _load() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def run_plan(plan: Plan, on_case: Callable[[str, int, int], None] | None = None, *,
             isolate: bool = True, on_records: Callable[[list[dict]], None] | None = None) -> list[dict]:
    """Every case of the plan; each paired case with its partner, `plan.repeats` times in ABBA order right after
    each other (suite, baseline, baseline, suite, suite, ...), so that the two engines of a repeat run seconds
    apart and a slow spell of a shared machine hits both (the order alternates, so neither engine always runs
    first). Each case keeps its fastest run (best-of-N, the usual estimate of uncontended speed); its record lists
    every run's examples/s in run order, repeat k of a suite record beside repeat k of its baseline."""
    if plan.repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {plan.repeats}")
    train = [] if plan.decode_only else train_cases(plan)
    partner = {_pair_key(c): c for c in train if c.engine == "baseline"}
    suites = {_pair_key(c) for c in train if c.engine == "suite"}
    jobs: list[tuple[str, object]] = []
    for c in train:
        if c.engine == "baseline" and _pair_key(c) in suites:
            continue                                  # run inside its suite case's block
        if c.engine == "suite" and _pair_key(c) in partner:
            pair = [c, partner[_pair_key(c)]]
            for k in range(plan.repeats):
                jobs += [("train", x) for x in (pair if k % 2 == 0 else pair[::-1])]
        else:
            jobs.append(("train", c))
    if plan.decode or plan.decode_only:
        jobs.append(("decode", decode_case(plan)))
    runs: dict[object, list[list[dict]]] = {}
    for i, (kind, case) in enumerate(jobs):
        if on_case is not None:
            on_case(getattr(case, "label", f"decode/{case.model}/{case.task}"), i, len(jobs))
        runs.setdefault(case, []).append(run_case(kind, case, plan.threads, isolate=isolate))
        if on_records is not None:   # what has been measured so far (a run cut short keeps it)
            on_records([r for tries in runs.values() for r in tries[-1]])
    records = []
    for tries in runs.values():
        records += _fastest(tries) if len(tries) > 1 else tries[0]
    return records


def _fastest(tries: list[list[dict]]) -> list[dict]:
    """The fastest ok run of one training case (one record each), annotated with every run's examples/s."""
    ok = [t[0] for t in tries if len(t) == 1 and t[0].get("status") == "ok"]
    if not ok:
        return tries[-1]
    best = dict(max(ok, key=lambda r: r["examples_per_s"]))
    best["repeats"] = len(tries)
    best["repeat_examples_per_s"] = [t[0].get("examples_per_s") for t in tries]
    return [best]


# ------------------------------------------------------------------------------------------------- summary


def _find(records: Iterable[dict], **match) -> dict | None:
    for r in records:
        if r.get("status") == "ok" and all(r.get(k) == v for k, v in match.items()):
            return r
    return None


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _paired(s: dict, b: dict) -> dict:
    """Suite / baseline of each repeat (the two ran back to back) and their median: under a machine whose speed
    drifts between runs, a steadier estimate than the ratio of the two best runs."""
    a, c = s.get("repeat_examples_per_s"), b.get("repeat_examples_per_s")
    if not a or not c or len(a) != len(c) or not all(a) or not all(c):
        return {}
    ratios = [x / y for x, y in zip(a, c)]
    return {"paired_speedups": ratios, "median_paired_speedup": statistics.median(ratios)}


def comparisons(records: list[dict]) -> dict:
    """Side-by-side ratios: suite / baseline at equal policy and precision, suite dynamic / suite max_length,
    bf16 / fp32 at equal engine and policy, LoRA / full memory, batched / batch-1 decoding."""
    out = {"engine": [], "padding": [], "precision": [], "memory": [], "decode": []}
    train = [r for r in records if r.get("kind") == "train" and r.get("status") == "ok"]
    keys = sorted({(r["model"], r["task"], r["method"], r["padding"], r.get("precision", "fp32")) for r in train})
    for model, task, method, padding, prec in keys:
        s = _find(train, model=model, task=task, method=method, padding=padding, precision=prec, engine="suite")
        b = _find(train, model=model, task=task, method=method, padding=padding, precision=prec, engine="baseline")
        if s and b:
            out["engine"].append({
                "model": model, "task": task, "method": method, "padding": padding, "precision": prec,
                "suite_examples_per_s": s["examples_per_s"], "baseline_examples_per_s": b["examples_per_s"],
                "speedup": _ratio(s["examples_per_s"], b["examples_per_s"]),
                "speedup_cpu": _ratio(s["examples_per_cpu_s"], b["examples_per_cpu_s"]),
                **_paired(s, b),
                "suite_peak_mem_mb": s["peak_mem_mb"], "baseline_peak_mem_mb": b["peak_mem_mb"]})
    for model, task, method, prec in sorted({(k[0], k[1], k[2], k[4]) for k in keys}):
        for engine in ("suite", "baseline"):
            d = _find(train, model=model, task=task, method=method, padding="dynamic", precision=prec, engine=engine)
            m = _find(train, model=model, task=task, method=method, padding="max_length", precision=prec,
                      engine=engine)
            if d and m:
                out["padding"].append({
                    "model": model, "task": task, "method": method, "engine": engine, "precision": prec,
                    "dynamic_examples_per_s": d["examples_per_s"], "max_length_examples_per_s": m["examples_per_s"],
                    "speedup": _ratio(d["examples_per_s"], m["examples_per_s"]),
                    "speedup_cpu": _ratio(d["examples_per_cpu_s"], m["examples_per_cpu_s"])})
    for model, task, method, padding in sorted({k[:4] for k in keys}):
        for engine in ("suite", "baseline"):
            lo = _find(train, model=model, task=task, method=method, padding=padding, precision="bf16", engine=engine)
            hi = _find(train, model=model, task=task, method=method, padding=padding, precision="fp32", engine=engine)
            if lo and hi:
                out["precision"].append({
                    "model": model, "task": task, "method": method, "padding": padding, "engine": engine,
                    "bf16_examples_per_s": lo["examples_per_s"], "fp32_examples_per_s": hi["examples_per_s"],
                    "speedup": _ratio(lo["examples_per_s"], hi["examples_per_s"]),
                    "speedup_cpu": _ratio(lo["examples_per_cpu_s"], hi["examples_per_cpu_s"])})
    for model, task, padding, prec in sorted({(k[0], k[1], k[3], k[4]) for k in keys}):
        lora = _find(train, model=model, task=task, method="lora", padding=padding, precision=prec, engine="suite")
        full = _find(train, model=model, task=task, method="full", padding=padding, precision=prec, engine="suite")
        if lora and full:
            out["memory"].append({"model": model, "task": task, "padding": padding, "precision": prec,
                                  "lora_peak_mem_mb": lora["peak_mem_mb"], "full_peak_mem_mb": full["peak_mem_mb"],
                                  "saved_mb": full["peak_mem_mb"] - lora["peak_mem_mb"],
                                  "lora_above_start_mb": lora["peak_mem_mb"] - lora["mem_before_steps_mb"],
                                  "full_above_start_mb": full["peak_mem_mb"] - full["mem_before_steps_mb"]})
    s = _find(records, kind="decode", engine="suite")
    b = _find(records, kind="decode", engine="baseline")
    h = _find(records, kind="decode", engine="hf_batched")
    if s and b:
        out["decode"].append({"model": s["model"], "task": s["task"], "inputs": s["inputs"],
                              "search": s.get("search"),
                              "batched_inputs_per_s": s["inputs_per_s"], "batch1_inputs_per_s": b["inputs_per_s"],
                              "speedup": _ratio(s["inputs_per_s"], b["inputs_per_s"]),
                              "speedup_cpu": _ratio(s["inputs_per_cpu_s"], b["inputs_per_cpu_s"]),
                              "hf_batched_inputs_per_s": h["inputs_per_s"] if h else None,
                              "hf_batched_speedup": _ratio(h["inputs_per_s"], b["inputs_per_s"]) if h else None,
                              "identical_outputs": s["identical_outputs"],
                              "hf_batched_identical_outputs": h["identical_outputs"] if h else None})
    return out


def add_roofline(records: list[dict], peaks: dict[str, float]) -> None:
    """Each training record against the measured matmul peak of the precision it trained in."""
    for r in records:
        if r.get("kind") == "train" and r.get("status") == "ok":
            peak = peaks.get(r.get("precision", "fp32"))
            r["matmul_peak_flops_per_s"] = peak
            r["fraction_of_matmul_peak"] = r["flops_per_s"] / peak if peak else None


def with_machine(records: list[dict], machine: dict) -> list[dict]:
    return [dict(r, machine=machine) for r in records]


def merged(records: list[dict], previous: list[dict]) -> list[dict]:
    """This run's records plus the previous file's records of the kinds (train | decode) this run did not
    measure: regenerating one part of a report keeps the other part as it was measured."""
    kinds = {r.get("kind") for r in records}
    return records + [r for r in previous if r.get("kind") not in kinds]


def replace(plan: Plan, **changes) -> Plan:
    return dataclasses.replace(plan, **changes)
