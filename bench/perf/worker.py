"""Runs benchmark cases in a fresh process (so that peak memory is the case's own):
`python -m bench.perf.worker CASE.json OUT.json`. CASE.json: {"kind": "train"|"decode", "threads": N, "case": {...}}
(OUT.json: a list of records), or {"threads": N, "jobs": [{"kind": ..., "case": {...}}, ...]} (OUT.json: one list
of records per finished job, rewritten after each, so that a process stopped by a time guard keeps what it
measured). Several jobs share a process only on CUDA, where each case's peak memory is read from the device's own
counters (reset per case), not from the process's resident set."""
from __future__ import annotations

import json
import os
import sys
import warnings


def run_job(kind: str, fields: dict) -> list[dict]:
    fields = dict(fields)
    if kind == "train":
        from bench.perf.train import TrainCase, run_train_case

        fields["method_set"] = tuple(fields.get("method_set", ()))
        return [run_train_case(TrainCase(**fields))]
    if kind == "decode":
        from bench.perf.decode import DecodeCase, run_decode_case

        return run_decode_case(DecodeCase(**fields))
    raise ValueError(f"unknown case kind {kind!r}; expected train or decode")


def main(argv: list[str]) -> int:
    case_path, out_path = argv
    with open(case_path) as fh:
        job = json.load(fh)
    import torch

    if job.get("threads"):
        torch.set_num_threads(int(job["threads"]))
    jobs = job.get("jobs") or [{"kind": job["kind"], "case": job["case"]}]
    if any(j["kind"] == "train" and not str(j["case"].get("device", "cpu")).startswith("cuda") for j in jobs):
        # every engine's CPU case under the allocator the suite trains with on a CPU, so that a suite / Trainer
        # ratio is the engines' own (bench.allocator; its effect alone: bench.perf.interleave --malloc-defaults);
        # a GPU case keeps glibc's defaults, as a GPU run of the suite does
        from bench.allocator import retain_freed_memory

        retain_freed_memory()
    warnings.filterwarnings("ignore")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    done = []
    for item in jobs:
        done.append(run_job(item["kind"], item["case"]))
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        with open(out_path + ".tmp", "w") as fh:
            json.dump(done if "jobs" in job else done[0], fh)
        os.replace(out_path + ".tmp", out_path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
