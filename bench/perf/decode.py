"""The decoding measurement of the performance benchmark: a task's beam search on its inputs, batched and
length-sorted (`bench.decode.generate.generate_ids`, the suite: our own beam search where it applies) against one input
at a time with plain Hugging Face `model.generate` calls (the papers' scripts, the baseline), same model, protocol
and inputs; a third record (engine `hf_batched`) runs `model.generate` on the suite's length-sorted, left-padded
batches, to separate what batching gives from what our search gives. Outputs are compared token for token with
the baseline's."""
from __future__ import annotations

import dataclasses
import time
from dataclasses import asdict, dataclass

import torch
from transformers import LogitsProcessorList

from bench.decode.generate import BanTokens, generate_ids, generation_config, newline_token_ids, pick_engine
from bench.perf.measure import PeakMemory


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


def _random_model(name: str):
    """`name`'s architecture (bench.models literal config) with random weights and the tiny byte-level GPT-2
    tokenizer's vocabulary: decoding speed at a real size without a download (outputs are meaningless)."""
    from transformers import AutoModelForCausalLM

    from bench.models import model_config, model_info
    from bench.tiny_tokenizer import tiny_tokenizer

    info = model_info(name)
    if info.family != "gpt2":
        raise ValueError(f"--random-weights: {name} is not a GPT-2 model")
    tokenizer = tiny_tokenizer("gpt2")
    config = model_config(name, kind="generate")
    config.vocab_size = len(tokenizer)
    config.bos_token_id = config.eos_token_id = tokenizer.eos_token_id
    return AutoModelForCausalLM.from_config(config), tokenizer


def _baseline_ids(model, tokenizer, sources, decoding, device) -> list[list[int]]:
    """One `model.generate` call per input, no padding: how the papers' generation scripts decode."""
    eos = int(tokenizer.eos_token_id)
    pad = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos)
    config = generation_config(decoding, eos_id=eos, pad_id=pad)
    processors = LogitsProcessorList([BanTokens(newline_token_ids(tokenizer))] if decoding.ban_newlines else [])
    out = []
    model.eval()
    with torch.inference_mode():
        for src in sources:
            ids = torch.tensor([src], dtype=torch.long, device=device)
            seq = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), generation_config=config,
                                 logits_processor=processors)[0, ids.shape[1]:].tolist()
            out.append(seq[:seq.index(eos)] if eos in seq else seq)
    return out


def run_decode_case(case: DecodeCase) -> list[dict]:
    """Three records (suite batched, hf_batched, baseline batch-1) with inputs/s, generated tokens/s and
    identical_outputs (token for token equal to the baseline's)."""
    from bench.data import encode_generation_sources, load_split
    from bench.models import load_model
    from bench.tasks import get_task

    task = get_task(case.task)
    if task.decoding is None:
        raise ValueError(f"task {task.name} has no decoding protocol (not a generation task)")
    decoding = task.decoding
    if case.batch_size:
        decoding = dataclasses.replace(decoding, batch_size=case.batch_size)
    torch.manual_seed(case.seed)
    if case.random_weights:
        model, tokenizer = _random_model(case.model)
    else:
        model, tokenizer = load_model(case.model, kind="generate", model_dir=case.model_dir)
    model.to(case.device).eval()
    examples = load_split(task, case.split, case.data_dir)[: case.inputs]
    sources = encode_generation_sources(tokenizer, task, examples)
    newline_token_ids(tokenizer)  # computed once, outside both timings

    runs = {}
    for engine in ("suite", "hf_batched", "baseline"):
        with PeakMemory(case.device) as mem:
            start, cpu_start = time.perf_counter(), time.process_time()
            if engine == "baseline":
                ids = _baseline_ids(model, tokenizer, sources, decoding, case.device)
            else:
                ids = generate_ids(model, tokenizer, sources, decoding, device=case.device, progress=False,
                                   engine="auto" if engine == "suite" else "hf")
            seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
        runs[engine] = (ids, seconds, cpu, mem)
    reference = runs["baseline"][0]
    suite_engine = pick_engine(model, decoding)
    records = []
    for engine, (ids, seconds, cpu, mem) in runs.items():
        generated = sum(len(r) for r in ids)
        batched = engine != "baseline"
        records.append({
            "kind": "decode", "engine": engine, "method": "none", "padding": "dynamic" if batched else "none",
            "search": {"suite": suite_engine, "hf_batched": "hf", "baseline": "hf"}[engine],
            "model": case.model + (" (random weights)" if case.random_weights else ""), "task": case.task,
            "batch_size": decoding.batch_size if batched else 1,
            "inputs": len(sources), "num_beams": decoding.num_beams, "max_new_tokens": decoding.max_new_tokens,
            "inputs_per_s": len(sources) / seconds, "examples_per_s": len(sources) / seconds,
            "tokens_per_s": generated / seconds, "generated_tokens": generated,
            "inputs_per_cpu_s": len(sources) / cpu, "examples_per_cpu_s": len(sources) / cpu, "cpu_seconds": cpu,
            "mean_source_tokens": sum(len(s) for s in sources) / len(sources), "seconds": seconds,
            "peak_mem_mb": mem.peak_mb, "mem_before_steps_mb": mem.start_mb, "mem_measure": mem.kind,
            "identical_outputs": ids == reference,
            "identical_rows": sum(a == b for a, b in zip(ids, reference)), "case": asdict(case),
        })
    return records
