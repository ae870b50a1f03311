"""`peft-bench params` end to end through the CLI dispatcher: JSON and table output, and one-line errors
with exit code 2."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.cli import main

REPO = Path(__file__).resolve().parents[1]


def test_json_output(capsys):
    assert main(["params", "roberta-large", "lora", "--set", "r=8", "--json"]) == 0
    out = capsys.readouterr().out
    result = json.loads(out)
    assert out.count("\n") == 1
    for key in ("trained", "stored", "head", "total"):
        assert type(result[key]) is int
    assert type(result["percent"]) is float
    assert result["stored"] == 786_432 and result["trained"] == 786_432
    assert result["head"] == 1024 * 1024 + 1024 + 1024 * 2 + 2
    assert result["method"] == {"name": "lora", "r": 8, "alpha": 16.0, "dropout": 0.0, "targets": ["q", "v"]}
    assert result["kind"] == "classify"


def test_gpt2_defaults_to_generate_and_kind_option(capsys):
    assert main(["params", "gpt2-medium", "lora", "--set", "r=4", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["kind"] == "generate" and result["head"] == 0 and result["stored"] == 393_216
    assert main(["params", "gpt2-medium", "lora", "--set", "r=4", "--kind", "classify", "--num-labels", "3",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["head"] == 1024 * 3


def test_table_output(capsys):
    assert main(["params", "roberta-base", "bitfit"]) == 0
    out = capsys.readouterr().out
    assert "roberta-base (classify) + bitfit (subset=('all',))" in out
    assert "stored" in out and "102,144" in out and "percent" in out


def test_smollm2_lora_table(capsys):
    assert main(["params", "smollm2-135m", "lora"]) == 0
    out = capsys.readouterr().out
    assert "smollm2-135m (generate) + lora" in out
    stored = next(line for line in out.splitlines() if line.split()[0] == "stored")
    assert stored.split()[1] == "460,800"      # 30 x (8 x (576 + 576) + 8 x (576 + 192))


@pytest.mark.parametrize("argv,message", [
    (["params", "roberta-base", "nope"], "unknown method 'nope'; known: full, topk, bitfit, lora"),
    (["params", "nope", "lora"], "unknown model 'nope'; known: roberta-base"),
    (["params", "roberta-base", "lora", "--set", "rank=2"], "method lora has no field 'rank'; fields are: r,"),
    (["params", "roberta-base", "lora", "--set", "r=1.5"], "lora.r: expected an integer, got '1.5'"),
    (["params", "roberta-base", "lora", "--set", "r=0"], "lora.r must be an integer >= 1"),
    (["params", "roberta-base", "lora", "--set", "r"], "--set expects key=value"),
    (["params", "gpt2-medium", "bitfit", "--set", "subset=query"],
     "bitfit subset 'query' is not available for family gpt2"),
    (["params", "roberta-base", "lora", "--kind", "generate"],
     "kind 'generate' needs a decoder family (gpt2, llama, mistral, qwen2)"),
    (["params", "gpt2", "topk", "--set", "k=13"], "topk.k=13 but the model has only 12 blocks"),
    (["params", "smollm2-135m", "bitfit"], "bitfit: llama has no bias terms"),
    (["params", "gpt2", "lora", "--set", "targets=q,gate"], "lora: family gpt2 has no gate projection"),
])
def test_errors_are_one_line_with_exit_2(capsys, argv, message):
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("peft-bench params: error: ")
    assert message in lines[0]


def test_subprocess_deberta_xxlarge_in_seconds():
    import time

    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "bench.cli", "params", "deberta-v2-xxlarge", "lora", "--set",
                           "r=16", "--json"], cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["stored"] == 4_718_592
    assert time.perf_counter() - start < 60   # ~5 s here, most of it importing torch and transformers
