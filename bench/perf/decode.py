"""The decoding measurement of the performance benchmark: a task's beam search on its inputs, batched and
length-sorted (`bench.decode.generate.generate_ids`, the suite: our own beam search where it applies) against one input
at a time with plain Hugging Face `model.generate` calls (the papers' scripts, the baseline), same model, protocol
and inputs; a third record (engine `hf_batched`) runs `model.generate` on the suite's length-sorted, left-padded
batches, to separate what batching gives from what our search gives. Outputs are compared token for token with
the baseline's, and a row that differs by the beam score of both outputs (bench.perf.decode_compare: on a GPU a
near-tie may flip with the batch shape).

Engines run interleaved: repeat r runs them in order (suite, hf_batched, baseline) when r is even and reversed
when odd (ABBA), each after an untimed two-token warm-up, and the fastest repeat of each is kept (interference
from other jobs only slows a run down); every repeat's seconds and the load average are in the record.

The entry point for other scripts (a GPU check): `run_decode_case(DecodeCase(device="cuda", precision="bf16",
...))` returns the records; nothing in it assumes a CPU.
"""
from __future__ import annotations

import dataclasses
import os
import sys
import time
from dataclasses import asdict, dataclass

import torch

from bench.decode.generate import (
    generate_ids, generation_config, hf_processors, newline_token_ids, pick_engine,
)
from bench.perf.decode_compare import compare
from bench.perf.measure import PeakMemory

ENGINES = ("suite", "hf_batched", "baseline")
PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class DecodeCase:
    model: str = "tiny-gpt2"      # a generation model of bench.models.MODELS
    task: str = "e2e"             # a generation task (its Decoding protocol is used)
    split: str = "dev"            # whose inputs are decoded (distinct sources, in file order)
    data_dir: str | None = None
    model_dir: str | None = None
    inputs: int = 64              # first N distinct inputs
    batch_size: int = 0           # 0: the task's decoding.batch_size
    seed: int = 0
    device: str = "cpu"
    random_weights: bool = False  # the named architecture with random weights and the byte-level tokenizer
    real_vocab: bool = False      # random weights keep the model's own vocabulary size (its LM head's real cost)
    precision: str = "fp32"       # fp32 | bf16: the model's weights and activations, the same for every engine
    repeats: int = 2              # timed runs per engine, interleaved ABBA; the fastest is kept
    engines: tuple[str, ...] = ENGINES   # which to run; identical_outputs needs the baseline
    # overrides of the task's Decoding, as (field, value) pairs (a dict is accepted), e.g. {"max_new_tokens": 20}
    decoding: tuple[tuple[str, object], ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "engines", tuple(self.engines))
        pairs = self.decoding.items() if isinstance(self.decoding, dict) else self.decoding
        object.__setattr__(self, "decoding", tuple(sorted((str(k), tuple(v) if isinstance(v, list) else v)
                                                          for k, v in pairs)))
        unknown = [e for e in self.engines if e not in ENGINES]
        if unknown or not self.engines:
            raise ValueError(f"decode case engines must be some of {', '.join(ENGINES)}, got {self.engines!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"decode case precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.repeats < 1:
            raise ValueError(f"decode case repeats must be >= 1, got {self.repeats}")


def _random_model(name: str, real_vocab: bool = False):
    """`name`'s architecture (bench.models literal config) with random weights and the tiny byte-level
    tokenizer's vocabulary of its family: decoding speed at a real size without a download (outputs are
    meaningless). With `real_vocab` the model keeps its own vocabulary size, so the LM head costs what it does in
    the real model (SmolLM2-135M: 28M of its 135M parameters); the byte-level ids are a subset of it."""
    from transformers import AutoModelForCausalLM

    from bench.models import model_config, model_info
    from bench.tiny_tokenizer import tiny_tokenizer
    from methods.base import ARCHES

    info = model_info(name)
    if not ARCHES[info.family].decoder:
        raise ValueError(f"--random-weights: {name} is not a decoder model ({info.family})")
    tokenizer = tiny_tokenizer(info.family)
    config = model_config(name, kind="generate")
    config.vocab_size = max(config.vocab_size, len(tokenizer)) if real_vocab else len(tokenizer)
    config.bos_token_id = config.eos_token_id = tokenizer.eos_token_id
    return AutoModelForCausalLM.from_config(config), tokenizer


def _baseline_ids(model, tokenizer, sources, decoding, device) -> list[list[int]]:
    """One `model.generate` call per input, no padding: how the papers' generation scripts decode."""
    eos = int(tokenizer.eos_token_id)
    pad = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos)
    config = generation_config(decoding, eos_id=eos, pad_id=pad)
    banned = sorted(set(newline_token_ids(tokenizer) if decoding.ban_newlines else ()) | set(decoding.banned_token_ids))
    out = []
    model.eval()
    with torch.inference_mode():
        for src in sources:
            ids = torch.tensor([src], dtype=torch.long, device=device)
            processors = hf_processors(decoding, banned, eos, torch.zeros(1, dtype=torch.long))
            seq = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), generation_config=config,
                                 logits_processor=processors)[0, ids.shape[1]:].tolist()
            out.append(seq[:seq.index(eos)] if eos in seq else seq)
    return out


def _run(engine: str, model, tokenizer, sources, decoding, device) -> list[list[int]]:
    if engine == "baseline":
        return _baseline_ids(model, tokenizer, sources, decoding, device)
    return generate_ids(model, tokenizer, sources, decoding, device=device, progress=False,
                        engine="auto" if engine == "suite" else "hf")


def _sync(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def run_decode_case(case: DecodeCase) -> list[dict]:
    """One record per engine (suite batched, hf_batched, baseline batch-1) with inputs/s, generated tokens/s and
    identical_outputs (token for token equal to the baseline's)."""
    from bench.data import encode_generation_sources, load_split
    from bench.models import load_model
    from bench.tasks import get_task

    task = get_task(case.task)
    if task.decoding is None:
        raise ValueError(f"task {task.name} has no decoding protocol (not a generation task)")
    decoding = dataclasses.replace(task.decoding, **dict(case.decoding))
    if case.batch_size:
        decoding = dataclasses.replace(decoding, batch_size=case.batch_size)
    torch.manual_seed(case.seed)
    if case.random_weights:
        model, tokenizer = _random_model(case.model, case.real_vocab)
    else:
        model, tokenizer = load_model(case.model, kind="generate", model_dir=case.model_dir)
    model.to(device=case.device, dtype=PRECISIONS[case.precision]).eval()
    examples = load_split(task, case.split, case.data_dir)[: case.inputs]
    sources = encode_generation_sources(tokenizer, task, examples)
    newline_token_ids(tokenizer)  # computed once, outside every timing
    if "baseline" in case.engines and decoding.score_length != "generated":
        raise ValueError(f"decoding.score_length={decoding.score_length!r}: model.generate (the baseline) scores "
                         f"by generated length; measure without the baseline engine")

    runs: dict[str, list] = {e: [] for e in case.engines}
    warm = dataclasses.replace(decoding, max_new_tokens=min(2, decoding.max_new_tokens))
    for r in range(case.repeats):
        for engine in case.engines if r % 2 == 0 else tuple(reversed(case.engines)):
            _run(engine, model, tokenizer, sources[:1], warm, case.device)
            load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
            with PeakMemory(case.device) as mem:
                _sync(case.device)
                start, cpu_start = time.perf_counter(), time.process_time()
                ids = _run(engine, model, tokenizer, sources, decoding, case.device)
                _sync(case.device)
                seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
            runs[engine].append((ids, seconds, cpu, mem, load))
    reference = runs["baseline"][0][0] if "baseline" in runs else None
    suite_engine = pick_engine(model, decoding)
    records = []
    for engine, repeats in runs.items():
        ids, seconds, cpu, mem, _ = min(repeats, key=lambda run: run[1])
        agreement = {} if reference is None else compare(model, tokenizer, sources, ids, reference, decoding,
                                                         case.device)
        generated = sum(len(r) for r in ids)
        batched = engine != "baseline"
        records.append({
            "kind": "decode", "engine": engine, "method": "none", "padding": "dynamic" if batched else "none",
            "search": {"suite": suite_engine, "hf_batched": "hf", "baseline": "hf"}[engine],
            "model": case.model + (" (random weights)" if case.random_weights else ""), "task": case.task,
            "precision": case.precision, "device": case.device, "vocab_size": model.config.vocab_size,
            "batch_size": decoding.batch_size if batched else 1,
            "inputs": len(sources), "num_beams": decoding.num_beams, "max_new_tokens": decoding.max_new_tokens,
            "score_length": decoding.score_length,
            "inputs_per_s": len(sources) / seconds, "examples_per_s": len(sources) / seconds,
            "tokens_per_s": generated / seconds, "generated_tokens": generated,
            "inputs_per_cpu_s": len(sources) / cpu, "examples_per_cpu_s": len(sources) / cpu, "cpu_seconds": cpu,
            "mean_source_tokens": sum(len(s) for s in sources) / len(sources), "seconds": seconds,
            "repeat_seconds": [run[1] for run in repeats], "repeat_cpu_seconds": [run[2] for run in repeats],
            "repeat_load1": [run[4] for run in repeats],
            "same_outputs_every_repeat": all(run[0] == repeats[0][0] for run in repeats),
            "peak_mem_mb": mem.peak_mb, "mem_before_steps_mb": mem.start_mb, "mem_measure": mem.kind,
            "identical_outputs": None if reference is None else ids == reference,
            "identical_rows": agreement.get("identical_rows"),
            # rows that differ from the baseline's: the largest beam-score gap and how many no near-tie explains
            # (bench.perf.decode_compare)
            "max_score_gap": agreement.get("max_score_gap"), "rows_unexplained": agreement.get("rows_unexplained"),
            "score_gaps": agreement.get("score_gaps"), "score_tolerance": agreement.get("score_tolerance"),
            "case": asdict(case),
        })
    return records


def main(argv: list[str] | None = None) -> int:
    """`python -m bench.perf.decode [--field value ...] --out FILE`: one decoding case (DecodeCase fields; lists
    comma-separated, `--decoding max_new_tokens=20,score_length=total`), records written as JSON with the
    machine they ran on."""
    import argparse
    import json

    from bench.perf.measure import load_average, machine

    parser = argparse.ArgumentParser(prog="python -m bench.perf.decode", description=main.__doc__)
    for f in dataclasses.fields(DecodeCase):
        if f.type in ("bool", bool):
            parser.add_argument("--" + f.name.replace("_", "-"), action="store_true")
        else:
            parser.add_argument("--" + f.name.replace("_", "-"), default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", required=True)
    args = vars(parser.parse_args(argv))
    out, threads = args.pop("out"), args.pop("threads")
    fields = {}
    for f in dataclasses.fields(DecodeCase):
        value = args[f.name]
        if value is None or value is False:
            continue
        if f.name == "engines":
            value = tuple(value.split(","))
        elif f.name == "decoding":
            pairs = [item.split("=", 1) for item in value.split(",")]
            value = {k: int(v) if v.lstrip("-").isdigit() else v for k, v in pairs}
        elif f.type in ("int", int):
            value = int(value)
        fields[f.name] = value
    if threads:
        torch.set_num_threads(threads)
    case = DecodeCase(**fields)
    before = load_average()
    start = time.perf_counter()
    records = run_decode_case(case)
    info = dict(machine(case.device, threads), load_before=before, load_after=load_average(),
                command="python -m bench.perf.decode " + " ".join(sys.argv[1:] if argv is None else argv),
                wall_seconds=time.perf_counter() - start)
    with open(out, "w") as fh:
        json.dump([dict(r, machine=info) for r in records], fh, indent=1)
    base = next((r for r in records if r["engine"] == "baseline"), None)
    for r in records:
        ratio = f", {r['inputs_per_s'] / base['inputs_per_s']:.2f}x batch-1" if base else ""
        print(f"{r['engine']}: {r['inputs_per_s']:.3f} inputs/s{ratio}, identical rows {r['identical_rows']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
