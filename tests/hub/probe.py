"""Run in a subprocess whose environment points the Hub clients at the mirror (HF_ENDPOINT is read at import).

    python -m tests.hub.probe examples OUT.pickle TASK[:SPLIT] ...   # load_split from the Hub, pickled
    python -m tests.hub.probe problems OUT.json                      # preflight lines for broken Hub facts
    python -m tests.hub.probe metric-preflight OUT.json RESULTS_DIR  # a DART grid's metric-model preflight
"""
from __future__ import annotations

import json
import pickle
import sys
from dataclasses import replace


def examples(out: str, wanted: list[str]) -> None:
    from bench.data import load_split
    from bench.tasks import get_task

    got = {}
    for item in wanted:
        name, _, split = item.partition(":")
        for s in [split] if split else get_task(name).splits:
            got[(name, s)] = load_split(name, s)
    with open(out, "wb") as handle:
        pickle.dump(got, handle)


def problems(out: str) -> None:
    from bench.models import MODELS, ModelInfo
    from bench.preflight import _HubDatasets, check_hub_split, check_model
    from bench.tasks import TASKS

    rte, e2e = TASKS["rte"], TASKS["e2e"]
    cases = {
        "wrong repo id": (replace(rte, hub_id="nyu-mll/glue-typo"), "dev"),
        "missing revision": (replace(e2e, hub_revision="refs/convert/parquet-v9"), "dev"),
        "missing split": (replace(rte, hub_splits=(("train", "train"), ("dev", "valid"), ("test", "test"))), "dev"),
        "missing column": (replace(rte, hub_config="sst2"), "dev"),
        "good": (rte, "dev"),
    }
    hub = _HubDatasets()
    lines = {}
    for case, (task, split) in cases.items():
        problem = check_hub_split(task, split, hub)
        lines[case] = problem.line() if problem else None
    MODELS["typo-model"] = ModelInfo("typo-model", "FacebookAI/roberta-bass", "roberta", MODELS["roberta-base"].config)
    for name in ("typo-model", "roberta-base", "gpt2-medium"):
        problem = check_model(name, None)
        lines[f"model {name}"] = problem.line() if problem else None
    for name, repo in (("hub-tiny-roberta", "peft-bench-test/tiny-roberta"),
                       ("hub-tiny-gpt2", "peft-bench-test/tiny-gpt2")):
        base = MODELS[name.removeprefix("hub-")]
        MODELS[name] = ModelInfo(name, repo, base.family, base.config)
        problem = check_model(name, None)
        lines[f"model {name}"] = problem.line() if problem else None
    with open(out, "w") as handle:
        json.dump(lines, handle, indent=1)


def metric_preflight(out: str, results: str) -> None:
    """The preflight of a DART grid (`hub-dart`) as the mirror has everything, then with BLEURT's model repository
    missing: its lines, and the grid command's exit code and stderr then (nothing may run)."""
    import contextlib
    import io

    import tests.hub.cli  # noqa: F401 -- registers hub-dart and its model
    from bench.cli import main
    from bench.preflight import preflight
    from bench.presets import PRESETS
    from bench.scorers import model_based

    specs = PRESETS["hub-dart"].specs("hub-dart")
    got = {"all there": [p.line() for p in preflight(specs)]}
    model_based.HUB_IDS["bleurt"] = "Elron/bleurt-tiny-128-missing"
    got["bleurt missing"] = [p.line() for p in preflight(specs)]
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        got["grid rc"] = main(["grid", "hub-dart", "--results-dir", results, "--no-progress"])
    got["grid stderr"] = err.getvalue()
    with open(out, "w") as handle:
        json.dump(got, handle, indent=1)


if __name__ == "__main__":
    command, out, *rest = sys.argv[1:]
    {"examples": lambda: examples(out, rest), "problems": lambda: problems(out),
     "metric-preflight": lambda: metric_preflight(out, *rest)}[command]()
