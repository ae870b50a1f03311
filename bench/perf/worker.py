"""Runs one benchmark case in a fresh process (so that peak memory is the case's own):
`python -m bench.perf.worker CASE.json OUT.json`. CASE.json: {"kind": "train"|"decode", "threads": N, "case": {...}}.
OUT.json: a list of records."""
from __future__ import annotations

import json
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
    if job["kind"] == "train":
        # every engine's case under the allocator the suite trains with, so that a suite / Trainer ratio is the
        # engines' own (bench.allocator; its effect alone: bench.perf.interleave --malloc-defaults)
        from bench.allocator import retain_freed_memory

        retain_freed_memory()
    warnings.filterwarnings("ignore")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    records = run_job(job["kind"], job["case"])
    with open(out_path, "w") as fh:
        json.dump(records, fh)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
