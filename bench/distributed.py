"""What a run does differently under `accelerate launch` / torchrun (data-parallel processes): who it is, how
evaluation is shared, and how a failure is recorded once for the whole job."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from bench.results import ROWS_FILE, write_atomic


def world_size() -> int:
    """How many processes train this run (`accelerate launch` / torchrun set WORLD_SIZE; 1 otherwise)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def process_index() -> int:
    """This process's rank under `accelerate launch` / torchrun (0 otherwise)."""
    return int(os.environ.get("RANK", "0"))


def record_first_failure(folder: Path, rows: list[dict], trace: str) -> bool:
    """Write `rows` as the run's rows.json only if no process has written one (an exclusive link of a complete
    temporary file); True when this call recorded the failure."""
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{ROWS_FILE}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "w") as fh:
            fh.write(json.dumps(rows, indent=1) + "\n")
        try:
            os.link(tmp, folder / ROWS_FILE)
        except FileExistsError:
            return False
    finally:
        os.unlink(tmp)
    write_atomic(folder / "error.txt", trace)
    return True


def evaluate_shared(accelerator, model, tokenizer, task, split: str, examples, *, max_length: int,
                    batch_size: int, decoding, progress: bool):
    """Every example evaluated exactly once: under `accelerate launch` process r predicts examples r::world,
    the predictions are gathered back into split order and scored once. `.examples` counts the examples
    predicted over all processes."""
    from bench.evaluate import SplitResult, evaluate_split, has_gold, score_predictions

    model = accelerator.unwrap_model(model)
    world = accelerator.num_processes
    kw = dict(max_length=max_length, batch_size=batch_size, decoding=decoding)
    if world == 1:
        result = evaluate_split(model, tokenizer, task, split, examples, progress=progress, **kw)
        result.examples = len(result.predictions)
        return result
    from accelerate.utils import gather_object

    mine = examples[accelerator.process_index::world]
    part = evaluate_split(model, tokenizer, task, split, mine, score=False, **kw).predictions if mine else []
    shares = gather_object([part])
    predictions: list = [None] * len(examples)
    for rank, share in enumerate(shares):
        predictions[rank::world] = share
    result = SplitResult(split=split, predictions=predictions)
    result.examples = sum(len(share) for share in shares)
    if has_gold(task, examples):
        result.scores = score_predictions(task, split, predictions, examples)
    return result
